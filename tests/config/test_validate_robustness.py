"""No input may make validation raise: random YAML-like data in every position, binary junk,
truncated files."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshroute.config.diagnostics import Diagnostic
from meshroute.config.load import Resource, load_text
from meshroute.config.validate import normalize_spec, validate_resource
from meshroute.config.validate.schema import KIND_ROOT, MESSAGES, Enum, ListOf, MapOf

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# field names that exist somewhere in the schema, so random data reaches deep validators
_NAMES = sorted({name for msg in MESSAGES.values() for name in msg.fields})
_ENUMS = sorted(
    {v for msg in MESSAGES.values() for t in msg.fields.values() if isinstance(t, Enum) for v in t.values}
)
_SAMPLE_STRINGS = ["", "*", "5s", "0s", "1.5ms", "a.b.com", "unix:///x", "(?=a)", "%", "v1", "/", "::1"]
_SAMPLE_STRINGS += ["1.2.3.4/8", "HTTP", "TLS", "MUTUAL", "mesh", "ns/gw", "~", ".", "*.a.com", "80"]
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([*_SAMPLE_STRINGS, *_ENUMS]),
    st.text(alphabet=string.printable, max_size=12),
)
_KEYS = st.one_of(st.sampled_from(_NAMES), st.text(max_size=8), st.integers(), st.booleans())
_YAML = st.recursive(
    _SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(_KEYS, children, max_size=6)),
    max_leaves=40,
)


def _shaped(type_name: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Data that mostly follows the schema (so semantic rules run) with random junk mixed in."""
    if depth > 5:
        return _YAML
    if isinstance(type_name, ListOf):
        return st.one_of(st.lists(_shaped(type_name.item, depth + 1), max_size=3), _YAML)
    if isinstance(type_name, MapOf):
        return st.one_of(
            st.dictionaries(st.text(max_size=6), _shaped(type_name.value, depth + 1), max_size=3), _YAML
        )
    if isinstance(type_name, str) and type_name in MESSAGES:
        fields = MESSAGES[type_name].fields
        return st.one_of(
            st.fixed_dictionaries({}, optional={k: _shaped(t, depth + 1) for k, t in fields.items()}), _YAML
        )
    return _SCALARS


def _resource(kind: str, spec: Any, metadata: Any = None) -> Resource:
    return Resource(
        api_version="networking.istio.io/v1",
        kind=kind,
        name="x",
        namespace="default",
        metadata=metadata if isinstance(metadata, dict) else {},
        spec=spec,
        file="f.yaml",
        line=1,
    )


def _check(diags: list[Diagnostic]) -> None:
    assert isinstance(diags, list)
    assert all(isinstance(d, Diagnostic) for d in diags)
    assert not [d for d in diags if d.code == "internal-error"], [d.render() for d in diags]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(KIND_ROOT)), spec=_YAML, metadata=_YAML)
def test_random_data_never_raises(kind: str, spec: Any, metadata: Any) -> None:
    _check(validate_resource(_resource(kind, spec, metadata)))
    normalize_spec(kind, spec)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), kind=st.sampled_from(sorted(KIND_ROOT)))
def test_schema_shaped_data_never_raises(data: st.DataObject, kind: str) -> None:
    spec = data.draw(_shaped(KIND_ROOT[kind]))
    _check(validate_resource(_resource(kind, spec)))
    normalize_spec(kind, spec)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_binary_junk_never_raises(blob: bytes) -> None:
    result = load_text(b"apiVersion: networking.istio.io/v1\nkind: VirtualService\n" + blob, "junk.yaml")
    for res in result.resources:
        _check(validate_resource(res))


def test_truncated_fixtures_never_raise() -> None:
    for path in sorted(FIXTURES.rglob("*.yaml")):
        data = path.read_bytes()
        for cut in range(0, len(data), max(1, len(data) // 40)):
            result = load_text(data[:cut], str(path))
            for res in result.resources:
                _check(validate_resource(res))
