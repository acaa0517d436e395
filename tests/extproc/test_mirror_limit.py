"""serve warns for a route with more mirrors than Envoy's mirror policies, read from the compiled
IR (a delegate's routes are named by the root route they were merged into)."""

from __future__ import annotations

from pathlib import Path

from meshroute.config import analyze
from meshroute.extproc import MAX_MIRRORS
from meshroute.extproc.context import mirror_limit_warnings

SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n"


def _mirrors(n: int) -> str:
    return "[" + ", ".join("{destination: {host: a}}" for _ in range(n)) + "]"


def test_only_routes_over_the_limit_are_named(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        SERVICE
        + "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\n"
        + "spec:\n  hosts: [a]\n  http:\n"
        + "  - match: [{uri: {prefix: /x}}]\n    route: [{destination: {host: a}}]\n"
        + f"    mirrors: {_mirrors(MAX_MIRRORS)}\n"
        + f"  - route: [{{destination: {{host: a}}}}]\n    mirrors: {_mirrors(MAX_MIRRORS + 1)}\n"
    )
    analysis = analyze([path])
    assert mirror_limit_warnings(analysis.ir) == [
        f"VirtualService default/a http[1] has {MAX_MIRRORS + 1} mirrors; only the first "
        f"{MAX_MIRRORS} are sent (Envoy has {MAX_MIRRORS} mirror policies)"
    ]
    assert mirror_limit_warnings(None) == []
