"""The `meshroute` command: exit codes and what people and scripts read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import meshroute
from meshroute.cli import main

from .conftest import BOOKINFO

TASKS = Path(meshroute.__file__).parent / "data" / "tasks"


def run(capsys: object, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()  # type: ignore[attr-defined]
    return code, out.out, out.err


def test_validate_ok_and_error_exit_codes(capsys: object, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "validate", meshroute.bookinfo_path())
    assert code == 0 and "valid: 0 error(s)" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: x}\n"
        "spec:\n  host: reviews\n  subsets:\n  - name: v1\n  - name: v1\n"
    )
    code, out, _ = run(capsys, "validate", str(bad))
    assert code == 1
    assert f"{bad}:" in out and "DestinationRule default/x" in out and "spec.subsets[1]" in out


def test_validate_never_tracebacks_on_junk(capsys: object, tmp_path: Path) -> None:
    junk = tmp_path / "junk.yaml"
    junk.write_bytes(b"\x00\xff\xfe{{{[[[: : :\n\t- ]]")
    code, out, err = run(capsys, "validate", str(junk), str(tmp_path / "missing.yaml"))
    assert code == 1 and "Traceback" not in out + err
    assert "yaml-invalid" in out and "file-unreadable" in out


def test_validate_json(capsys: object, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\n"
        "spec:\n  hosts: ['*']\n  http:\n  - route:\n    - destination: {host: a}\n"
    )
    code, out, _ = run(capsys, "validate", "--json", str(bad))
    items = json.loads(out)
    assert code == 1 and items and {"severity", "code", "file", "line", "resource", "path"} <= set(items[0])


def test_route_human_output_names_the_reason(capsys: object) -> None:
    code, out, _ = run(
        capsys,
        "route",
        meshroute.bookinfo_path(),
        str(TASKS / "virtual-service-reviews-test-v2.yaml"),
        "--host",
        "reviews",
        "--path",
        "/reviews/0",
        "-H",
        "end-user: mary",
    )
    assert code == 0
    assert "outbound|9080|v1|reviews.default.svc.cluster.local" in out
    assert "VirtualService default/reviews" in out
    assert "http[0]" in out  # the jason route, and why it did not match


def test_route_json_is_to_dict(capsys: object) -> None:
    code, out, _ = run(
        capsys,
        "route",
        meshroute.bookinfo_path(),
        "--host",
        "productpage.example.com",
        "--path",
        "/productpage",
        "--gateway",
        "default/bookinfo-gateway",
        "--json",
    )
    d = json.loads(out)
    assert code == 0 and d["outcome"] == "route" and d["virtual_service"] == "default/bookinfo"


def test_route_through_a_gateway_workload(capsys: object) -> None:
    argv = ["route", meshroute.bookinfo_path(), "--host", "productpage.example.com", "--path", "/productpage"]
    code, out, _ = run(capsys, *argv, "--gateway-labels", "istio=ingressgateway", "--json")
    d = json.loads(out)
    assert code == 0 and d["gateway"] == "workload:default/istio=ingressgateway"
    assert d["virtual_service"] == "default/bookinfo"
    code, _, err = run(capsys, *argv, "--gateway-labels", "istio=egressgateway")
    assert code == 2 and "no Gateway selects a gateway proxy with istio=egressgateway" in err
    code, _, err = run(capsys, *argv, "--gateway-labels", "istio=ingressgateway", "--gateway", "default/x")
    assert code == 2 and "give one" in err


def test_route_with_bad_config_exits_1(capsys: object, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: VirtualService\napiVersion: networking.istio.io/v1\nmetadata: {name: x}\nspec: 3\n")
    code, _, err = run(capsys, "route", str(bad), "--host", "x")
    assert code == 1 and "error" in err


def test_bad_header_flag_exits_2(capsys: object) -> None:
    code, _, err = run(capsys, "route", meshroute.bookinfo_path(), "--host", "x", "-H", "no-colon")
    assert code == 2 and "NAME:VALUE" in err


def test_console_script_and_samples(samples: Path) -> None:
    exe = Path(sys.executable).with_name("meshroute")
    proc = subprocess.run([str(exe), "validate", str(BOOKINFO)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("flags", [[], ["--engine", "extproc"]], ids=["embedded", "extproc"])
def test_demo_runs(capsys: object, flags: list[str]) -> None:
    # The README's first command (the default engine, embedded; then serve's): real Envoy and
    # Bookinfo apps, every Istio task step.
    code, out, _ = run(capsys, "demo", *flags)
    assert code == 0, out
    assert f"{flags[-1] if flags else 'embedded'} generation 1" in out
    assert "every observation matches istio.io" in out
    assert "✗" not in out


def test_route_tcp_connection(capsys: object, tmp_path: Path) -> None:
    """--protocol tcp: a port declared without a protocol takes the tcp routes, shown as such."""
    config = tmp_path / "redis.yaml"
    config.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: redis}\nspec: {ports: [{port: 6379}]}\n---\n"
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: redis}\n"
        "spec:\n  hosts: [redis]\n  http: [{route: [{destination: {host: redis}}]}]\n"
        "  tcp: [{route: [{destination: {host: redis, port: {number: 6379}}}]}]\n"
    )
    code, out, _ = run(capsys, "route", str(config), "--host", "redis", "--port", "6379", "--protocol", "tcp")
    assert code == 0
    assert out.startswith("TCP connection to redis")
    assert "tcp[0]" in out and "retries" not in out
    code, out, _ = run(capsys, "route", str(config), "--host", "redis", "--port", "6379")
    assert code == 0 and "http[0]" in out
