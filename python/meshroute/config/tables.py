"""Interning tables of the IR: each distinct target, route, policy and scope gets one id."""

from __future__ import annotations

import json
from typing import Any

Target = tuple[str, "str | None", "int | None"]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class Tables:
    """Append-only id tables; ids are list positions, so the IR stays deterministic."""

    def __init__(self) -> None:
        self.gateways: list[str] = ["mesh"]  # GatewayId 0 is always mesh
        self.targets: list[Target] = []
        self.policies: list[str] = ["{}"]  # PolicyId 0 = the empty policy
        self.routes: list[dict[str, Any]] = []
        self.scopes: list[dict[str, Any]] = []
        self._gateway_ids: dict[str, int] = {"mesh": 0}
        self._target_ids: dict[Target, int] = {}
        self._policy_ids: dict[str, int] = {"{}": 0}
        self._route_ids: dict[str, int] = {}
        self._scope_ids: dict[tuple[tuple[int, ...], ...], int] = {}

    def gateway(self, ref: str) -> int:
        if ref not in self._gateway_ids:
            self._gateway_ids[ref] = len(self.gateways)
            self.gateways.append(ref)
        return self._gateway_ids[ref]

    def target(self, host: str, subset: str | None, port: int | None) -> int:
        key = (host, subset, port)
        if key not in self._target_ids:
            self._target_ids[key] = len(self.targets)
            self.targets.append(key)
        return self._target_ids[key]

    def policy(self, policy: dict[str, Any]) -> int:
        text = _canonical(policy) if policy else "{}"
        if text not in self._policy_ids:
            self._policy_ids[text] = len(self.policies)
            self.policies.append(text)
        return self._policy_ids[text]

    def route(self, route: dict[str, Any]) -> int:
        text = _canonical(route)
        if text not in self._route_ids:
            self._route_ids[text] = len(self.routes)
            self.routes.append(route)
        return self._route_ids[text]

    def scope(self, clusters: list[list[int]]) -> int:
        key = tuple(map(tuple, clusters))  # ints only: equal keys <=> equal JSON
        if key not in self._scope_ids:
            self._scope_ids[key] = len(self.scopes)
            self.scopes.append({"clusters": clusters})
        return self._scope_ids[key]

    def target_dicts(self) -> list[dict[str, Any]]:
        return [{"host": h, "subset": s, "port": p} for h, s, p in self.targets]
