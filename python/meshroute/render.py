"""Text for people: diagnostics lists and routing decisions with their reasons."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from meshroute._core import Decision
from meshroute.config.diagnostics import Diagnostic, Severity


def render_diagnostics(diagnostics: Sequence[Diagnostic], resources: int | None) -> str:
    """All diagnostics, one per line, then a summary line."""
    lines = [d.render() for d in diagnostics]
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    warnings = len(diagnostics) - errors
    counted = f" in {resources} resource(s)" if resources is not None else ""
    verdict = "invalid" if errors else "valid"
    lines.append(f"{verdict}: {errors} error(s), {warnings} warning(s){counted}")
    return "\n".join(lines)


def render_decision(
    decision: Decision, trace: dict[str, Any], method: str, host: str, path: str, protocol: str = "http"
) -> str:
    """The decision, what it applies, and why earlier routes did not match (``protocol`` tcp: a
    connection that is not HTTP, routed by tcp routes)."""
    d = decision.to_dict()
    tcp = protocol == "tcp" or d.get("protocol") == "tcp"  # a TCP connection: no request line
    request = f"TCP connection to {host}" if tcp else f"{method} {host}{path}"
    out = [f"{request}  (client: {d.get('gateway')}, namespace {d.get('namespace')})"]
    out.append("=> " + _headline(d))
    kind = "tcp" if tcp else "http"
    if d.get("virtual_service"):
        name = f" {d['route_name']!r}" if d.get("route_name") else ""
        out.append(
            f"   VirtualService {d['virtual_service']}, {kind}[{d['route_index']}]{name},"
            f" {_block(d.get('match_index'))}"
        )
    elif d["outcome"] == "route":
        out.append("   default route: no VirtualService route applies to this client")
    out.extend("   " + line for line in _effects(d))
    steps = trace.get("trace") or []
    if steps:
        out.append("why:")
        for step in steps:
            where = (
                f"{step.get('virtual_service')} {step.get('protocol') or 'http'}[{step.get('route_index')}]"
            )
            out.append(f"   {where} {_block(step.get('match_index'))}: {step.get('result')}")
    return "\n".join(out)


def _block(index: object) -> str:
    return "(no match: catch-all)" if index is None else f"match[{index}]"


def _headline(d: dict[str, Any]) -> str:
    outcome = d["outcome"]
    if outcome == "route":
        return f"route to {d['cluster']}"
    if outcome == "redirect":
        return f"redirect {d['status']} to {d['redirect']['location']}"
    if outcome == "direct_response":
        return f"direct response {d['status']}"
    if outcome == "abort":
        return f"fault abort: {d['status']}"
    if outcome == "no_cluster":
        return (
            f"{d['status']}: destination cluster {d.get('cluster')} does not exist (no such host/subset/port)"
        )
    if d["status"] is None:  # a TCP connection to an HTTP port
        return "no route: the port speaks HTTP; a connection that does not is closed"
    return f"{d['status']}: no route for this host/request"


def _effects(d: dict[str, Any]) -> list[str]:
    lines = []
    fault = d.get("fault") or {}
    if fault.get("delay_ms"):
        lines.append(f"fault delay: {fault['delay_ms']} ms")
    rewrite = d.get("rewrite") or {}
    if rewrite.get("path"):
        lines.append(f"rewrite path: {rewrite['path']}")
    if rewrite.get("authority"):
        lines.append(f"rewrite authority: {rewrite['authority']}")
    for side in ("request_headers", "response_headers"):
        ops = d.get(side) or {}
        for op in ("set", "add"):
            for name, value in ops.get(op) or []:
                lines.append(f"{side.split('_')[0]} header {op} {name}: {value}")
        for name in ops.get("remove") or []:
            lines.append(f"{side.split('_')[0]} header remove {name}")
    if d["outcome"] == "route" and d.get("protocol") != "tcp":  # TCP has no timeout or retries
        timeout = d.get("timeout_ms")
        lines.append(f"timeout: {f'{timeout} ms' if timeout else 'none'}")
        retries = d.get("retries") or {}
        if retries.get("attempts"):
            lines.append(f"retries: {retries['attempts']} on {retries.get('retry_on')}")
        else:
            lines.append("retries: none")
        if d.get("traffic_policy"):
            lines.append(f"traffic policy: {d['traffic_policy']}")
    return lines
