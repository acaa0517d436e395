"""Building bootstraps from inline YAML, and finding things in them."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import yaml

from meshroute.config import analyze
from meshroute.envoy import Generated, Options, build
from meshroute.envoy.module import module_path
from meshroute.envoy.process import validate_config


def generate(tmp_path: Path, text: str, options: Options | None = None) -> Generated:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    analysis = analyze([path])
    assert analysis.ok, [d.render() for d in analysis.errors]
    return build(analysis, options)


def clusters(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in config["static_resources"]["clusters"]}


def listeners(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {listener["name"]: listener for listener in config["static_resources"]["listeners"]}


def hcm(chain: dict[str, Any]) -> dict[str, Any]:
    (network_filter,) = chain["filters"]
    assert network_filter["name"] == "envoy.filters.network.http_connection_manager"
    config: dict[str, Any] = network_filter["typed_config"]
    return config


def ext_proc_metadata(chain: dict[str, Any]) -> dict[str, str]:
    ext_proc = hcm(chain)["http_filters"][0]["typed_config"]
    return {m["key"]: m["value"] for m in ext_proc["grpc_service"].get("initial_metadata", [])}


def lb_addresses(cluster: dict[str, Any]) -> list[tuple[str, int]]:
    out = []
    for group in cluster["load_assignment"]["endpoints"]:
        for ep in group["lb_endpoints"]:
            addr = ep["endpoint"]["address"]["socket_address"]
            out.append((addr["address"], addr["port_value"]))
    return out


def assert_valid(tmp_path: Path, config: dict[str, Any], name: str = "envoy.yaml") -> None:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    ok, output = validate_config(path)
    assert ok, output


def embedded_module() -> Path:
    """The packaged dynamic module for ``--engine embedded`` tests; a missing one fails with how to
    build it (a broken install, never a skip)."""
    return module_path()
