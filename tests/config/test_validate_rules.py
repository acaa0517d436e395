"""Unit tables for the shared checks (C1-C12), normalisation, and single rules with exact paths."""

from __future__ import annotations

import json
import textwrap

import pytest

from meshroute._core import CompileError, StringMatchSet
from meshroute.config.diagnostics import Severity
from meshroute.config.load import load_text
from meshroute.config.validate import normalize_spec, parse_duration_ms, validate_resources
from meshroute.config.validate.common import (
    duration_problem,
    parse_duration_ns,
    percent_problem,
    wildcard_domain_problem,
)
from meshroute.config.validate.headers import value_problem
from meshroute.config.validate.regex import regex_problem


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("5s", 5000),
        ("0.5s", 500),
        ("1m", 60000),
        ("180.000s", 180000),
        ("300ms", 300),
        ("1h", 3600000),
        ("1h30m", 5400000),
        ("2000us", 2),
        ("1µs", 0),
        ("0", 0),
        (".5s", 500),
        ("-1s", -1000),
    ],
)
def test_parse_duration(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize(
    "text", ["", "5", "s", "1d", "1.2.3s", "5 s", "1e3s", ".s", "99999999999999h", None, 5]
)
def test_parse_duration_rejects(text: object) -> None:
    assert parse_duration_ns(text) is None


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("0s", "duration-too-short"),
        ("500us", "duration-too-short"),
        ("1.0005s", "duration-not-whole-ms"),
        ("-5s", "duration-invalid"),
        ("soon", "duration-invalid"),
        ("1ms", None),
        ("0.001s", None),
    ],
)
def test_duration_c1(text: str, code: str | None) -> None:
    problem = duration_problem(text)
    assert (problem[0] if problem else None) == code


def test_duration_exceptions() -> None:
    assert duration_problem("0s", allow_zero=True) is None  # tcp.idleTimeout
    assert duration_problem("500us", strict=False) is None  # httpCookie.ttl


@pytest.mark.parametrize(
    "regex",
    [
        "^/api/v[0-9]+$",
        "(?i)abc",
        "a(?i)b",
        "(?P<name>x)",
        "(?<name>x)",
        "[[:alpha:]]+",
        r"\pL+",
        r"\p{Greek}",
        r"\x{1F600}",
        r"\Qa.b\E",
        r"a\z",
        r"\d{1,1000}",
        "a*?",
        r"[\d\-]",
        r"\0",
        r"\12",
        "[]a]",
        "[^]a]",
        ".*",
        "a{",  # RE2: a `{` that starts no repeat count is a literal
        "a{,5}",
        "(a{10}){100}",
    ],
)
def test_re2_accepts(regex: str) -> None:
    assert regex_problem(regex) is None
    # the router compiles it too: validation and routing use one compiler
    assert len(StringMatchSet.from_json(json.dumps([{"regex": regex}]))) == 1


@pytest.mark.parametrize(
    "regex",
    [
        r"(a)\1",
        "(?=a)",
        "(?!a)",
        "(?<=a)",
        "(?<!a)",
        "(?>a)",
        "a*+",
        "a++",
        "a{2}+",
        r"a\Z",
        r"\e",
        "(?x)a",
        "(?#c)",
        "a{1001}",
        "(",
        "*a",
        "[a",
        "(?P=n)",
        "x" * 1025,
        r"\8",
        "[[:nope:]]",
        "a**",
        "(a{100}){11}",  # nested repeat counts multiply past 1000
        r"\pL{1000}",  # over the compiled-program size limit
        r"\p{Nope}",
    ],
)
def test_re2_rejects(regex: str) -> None:
    assert regex_problem(regex) is not None
    with pytest.raises(CompileError):
        StringMatchSet.from_json(json.dumps([{"regex": regex}]))


@pytest.mark.parametrize(
    ("regex", "message"),
    [
        (r"/a/(b)\1", r"backreference \1 at position 6 is not supported by RE2"),
        ("/a(?!b)", "negative lookahead `(?!` at position 2 is not supported by RE2"),
        ("/a(b", "invalid regex: unclosed group at position 2"),
        ("x{1001}", "invalid repeat count `{1001}` at position 1: RE2 allows at most 1000 repetitions"),
        ("x" * 1025, "regex is longer than 1024 bytes"),
    ],
)
def test_re2_problem_says_what_and_where(regex: str, message: str) -> None:
    assert regex_problem(regex) == message


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("reviews", True),
        ("reviews.default.svc.cluster.local", True),
        ("*.example.com", True),
        ("*", True),
        ("*foo.com", True),
        ("Foo.COM", True),
        ("istio.io.", True),
        ("a..b", False),
        ("foo*.com", False),
        ("a.123", False),
        ("-a.com", False),
        ("x" * 64 + ".com", False),
        ("", False),
        ("1.2.3.4", False),
    ],
)
def test_wildcard_domain(host: str, ok: bool) -> None:
    assert (wildcard_domain_problem(host) is None) == ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("plain", True),
        ("%%", True),
        ("%HOSTNAME%", True),
        ("%START_TIME(%Y-%m-%d)%", True),
        ("%REQ(x-foo):10%", True),
        ("50%", False),
        ("%lower%", False),
        ("a\nb", False),
        ("tab\there", True),
    ],
)
def test_header_value(value: str, ok: bool) -> None:
    assert (value_problem(value) is None) == ok


@pytest.mark.parametrize(
    ("value", "ok"), [(0, True), (0.0001, True), (100, True), (0.00001, False), (100.5, False)]
)
def test_percent(value: float, ok: bool) -> None:
    assert (percent_problem(value) is None) == ok


def test_normalize_spec_rewrites_only_field_names() -> None:
    spec = {
        "http": [
            {
                "match": [{"headers": {"x_user_id": {"exact": "a"}}, "ignore_uri_case": True}],
                "route": [{"destination": {"host": "a"}}],
                "mirror_percent": 5,
            }
        ],
        "export_to": ["."],
    }
    assert normalize_spec("VirtualService", spec) == {
        "http": [
            {
                "match": [{"headers": {"x_user_id": {"exact": "a"}}, "ignoreUriCase": True}],
                "route": [{"destination": {"host": "a"}}],
                "mirrorPercent": 5,
            }
        ],
        "exportTo": ["."],
    }
    dr = {"trafficPolicy": {"outlier_detection": {"consecutive_5xx_errors": 3}}, "host": "a"}
    assert normalize_spec("DestinationRule", dr)["trafficPolicy"] == {
        "outlierDetection": {"consecutive5xxErrors": 3}
    }


def _diags(text: str) -> list[tuple[str, str, tuple[str | int, ...], int | None]]:
    result = load_text(textwrap.dedent(text), "t.yaml")
    return [(d.severity.value, d.code, d.path, d.line) for d in validate_resources(result.resources)]


def test_snake_case_paths_name_the_field_as_written() -> None:
    got = _diags("""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: a}
        spec:
          hosts: [a]
          http:
          - route: [{destination: {host: a}}]
            mirror: {host: a}
            mirror_percent: 150
        """)
    assert ("error", "vs-mirror-percent-invalid", ("spec", "http", 0, "mirror_percent"), 10) in got


def test_all_problems_reported_with_exact_paths() -> None:
    got = _diags("""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: a}
        spec:
          hosts: [a]
          http:
          - route:
            - destination: {host: a}
              weight: -1
            - destination: {host: b}
              weight: 2
            timeout: 0s
          - route: [{destination: {host: a}}]
            retries: {attempts: 2, retryOn: "bogus"}
        """)
    # structural problems come first, then semantic ones; http[1] follows a catch-all (warning)
    assert [(c, p) for _, c, p, _ in got] == [
        ("duration-too-short", ("spec", "http", 0, "timeout")),
        ("vs-weight-negative", ("spec", "http", 0, "route", 0, "weight")),
        ("vs-retry-on-invalid", ("spec", "http", 1, "retries", "retryOn")),
        ("vs-route-unreachable", ("spec", "http", 1)),
    ]


def test_legacy_field_message_is_helpful() -> None:
    result = load_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n"
        "  hosts: [a]\n  http:\n  - route: [{destination: {host: a}}]\n"
        "    fault: {abort: {httpStatus: 500, percent: 50}}\n",
        "t.yaml",
    )
    (diag,) = validate_resources(result.resources)
    assert diag.code == "unknown-field" and diag.path == ("spec", "http", 0, "fault", "abort", "percent")
    assert "percentage" in diag.message and diag.line == 8


def test_warnings_do_not_reject() -> None:
    got = _diags("""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: a}
        spec:
          hosts: [a]
          http:
          - match: [{uri: {prefix: /api}}]
            route: [{destination: {host: a}}]
          - match: [{uri: {prefix: /api/v1}}, {uri: {prefix: /api}}]
            route: [{destination: {host: b}}]
        """)
    assert {s for s, *_ in got} == {Severity.WARNING.value}
    assert [c for _, c, _, _ in got] == ["vs-match-shadowed", "vs-match-duplicate", "vs-route-unreachable"]


def test_non_istio_resources_are_skipped() -> None:
    assert _diags("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: 3}\n") == []


def _emitted_codes() -> dict[str, str]:
    """Every code the validator source can emit, with its severity (from the AST)."""
    import ast
    from pathlib import Path

    import meshroute.config.validate as pkg

    out: dict[str, str] = {}
    for path in Path(pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                if name in ("error", "warning", "_error") and isinstance(node.args[0].value, str):
                    out[node.args[0].value] = "W" if name == "warning" else "E"
            elif (
                isinstance(node, ast.Tuple)
                and node.elts
                and isinstance(node.elts[0], ast.Constant)
                and str(node.elts[0].value).startswith("duration-")
            ):
                out[str(node.elts[0].value)] = "E"
    return out


def test_docs_list_every_code_with_its_severity() -> None:
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "diagnostics.md").read_text()
    documented = dict(re.findall(r"^\| `([a-z0-9-]+)` \| ([EW]) \|", doc, re.MULTILINE))
    assert documented == _emitted_codes()
