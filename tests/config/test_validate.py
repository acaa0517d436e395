"""Per-resource validation against fixtures and Istio's own samples and CRD test data.

* ``tests/fixtures/valid/*.yaml`` and every Istio sample must produce no errors;
* ``tests/fixtures/invalid/*.yaml`` must produce every code named in its ``# expect:`` line;
* every document of Istio's ``validation-testdata/*-invalid.yaml`` must produce an error.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meshroute.config.diagnostics import Diagnostic
from meshroute.config.load import Resource, load_paths
from meshroute.config.validate import validate_resource, validate_resources
from tests.conftest import REPO, SAMPLES

FIXTURES = REPO / "tests" / "fixtures"
TESTDATA = SAMPLES / "validation-testdata"


def _files(root: Path, pattern: str = "*.yaml") -> list[Path]:
    return sorted(root.rglob(pattern)) if root.is_dir() else []


def _ids(paths: list[Path], root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in paths]


def _load(path: Path) -> list[Resource]:
    result = load_paths([path])
    assert not result.diagnostics, [d.render() for d in result.diagnostics]
    return result.resources


def _errors(diags: list[Diagnostic]) -> list[str]:
    return [d.render() for d in diags if d.is_error]


def _no_internal_errors(diags: list[Diagnostic]) -> None:
    assert not [d for d in diags if d.code == "internal-error"], [d.render() for d in diags]


def test_istio_samples_present() -> None:
    # A missing tests/data is a broken checkout: fail loudly instead of silently running nothing.
    assert TESTDATA.is_dir(), f"{TESTDATA} not found: the checkout is incomplete"


# === fixtures ===

VALID = _files(FIXTURES / "valid")
INVALID = _files(FIXTURES / "invalid")


def test_fixture_dirs_not_empty() -> None:
    assert len(VALID) >= 5 and len(INVALID) >= 10


@pytest.mark.parametrize("path", VALID, ids=_ids(VALID, FIXTURES))
def test_valid_fixture(path: Path) -> None:
    resources = _load(path)
    assert resources
    diags = validate_resources(resources)
    assert _errors(diags) == []
    _no_internal_errors(diags)


def _expected_codes(path: Path) -> set[str]:
    match = re.search(r"^# expect: (.+)$", path.read_text(), re.MULTILINE)
    assert match, f"{path.name} has no '# expect: code, code' line"
    return {code.strip() for code in match.group(1).split(",")}


@pytest.mark.parametrize("path", INVALID, ids=_ids(INVALID, FIXTURES))
def test_invalid_fixture(path: Path) -> None:
    diags = validate_resources(_load(path))
    codes = {d.code for d in diags}
    missing = _expected_codes(path) - codes
    assert not missing, f"missing {sorted(missing)}; got:\n" + "\n".join(d.render() for d in diags)
    assert _errors(diags)
    _no_internal_errors(diags)
    for d in diags:  # every diagnostic names a place the user can find
        assert d.line is not None and d.file == str(path)


# === Istio samples (bookinfo, httpbin, tcp-echo, task snippets): no errors ===

SAMPLE_FILES = [p for p in _files(SAMPLES) if "validation-testdata" not in p.parts]


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=_ids(SAMPLE_FILES, SAMPLES))
def test_istio_sample_has_no_errors(path: Path) -> None:
    diags = validate_resources(_load(path))
    assert _errors(diags) == []
    _no_internal_errors(diags)


def test_samples_cover_every_kind_but_sidecar() -> None:
    kinds = {r.kind for p in SAMPLE_FILES for r in _load(p) if r.is_istio}
    assert {"VirtualService", "DestinationRule", "Gateway", "ServiceEntry"} <= kinds


def test_fault_injection_sample_warns_unreachable() -> None:
    """docs/tasks.md VAL-1: accepted, with an unreachable-rule warning."""
    diags = validate_resources(_load(SAMPLES / "bookinfo/networking/fault-injection-details-v1.yaml"))
    assert [(d.code, d.path) for d in diags] == [("vs-route-unreachable", ("spec", "http", 1))]


# === Istio's CRD validation test data ===

TESTDATA_VALID = _files(TESTDATA, "*-valid.yaml")
TESTDATA_INVALID = [(path, i) for path in _files(TESTDATA, "*-invalid.yaml") for i in range(len(_load(path)))]


@pytest.mark.parametrize("path", TESTDATA_VALID, ids=_ids(TESTDATA_VALID, TESTDATA))
def test_istio_testdata_valid(path: Path) -> None:
    diags = validate_resources(_load(path))
    assert _errors(diags) == []
    _no_internal_errors(diags)


@pytest.mark.parametrize(
    ("path", "index"), TESTDATA_INVALID, ids=[f"{p.name}#{i}" for p, i in TESTDATA_INVALID]
)
def test_istio_testdata_invalid(path: Path, index: int) -> None:
    res = _load(path)[index]
    diags = validate_resource(res)
    assert _errors(diags), f"{res.kind} {res.name} was accepted"
    _no_internal_errors(diags)


def test_istio_testdata_invalid_count() -> None:
    # 3 DestinationRules, 12 ServiceEntries, 7 WorkloadEntries (commented-out documents excluded)
    assert len(TESTDATA_INVALID) == 22
