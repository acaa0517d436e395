"""A Gateway as the model holds it: its servers parsed once (port, protocol, hosts, TLS) and its
selector (semantics §4).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meshroute.config.common import spec_of, strings
from meshroute.config.load import Resource


@dataclass(frozen=True)
class Server:
    port: int
    protocol: str
    hosts: tuple[tuple[str, str], ...]  # (namespace part: "*" or a name, dnsName)
    https_redirect: bool
    index: int = 0  # position in the Gateway's ``servers`` list
    name: str = ""  # ``port.name``
    bind: str = ""
    tls: bool = False  # the server has a ``tls`` block (``httpsRedirect`` alone counts, as in Istio)
    tls_mode: str = ""  # ``tls.mode`` upper-cased; "" without a tls block, PASSTHROUGH when unset


@dataclass(frozen=True)
class GatewayInfo:
    resource: Resource
    servers: tuple[Server, ...]
    selector: Mapping[str, str] = field(default_factory=dict)  # labels of its proxies

    @property
    def ref(self) -> str:
        return f"{self.resource.namespace}/{self.resource.name}"

    @property
    def namespace(self) -> str:
        return self.resource.namespace


def server_hosts(raw: Any, gateway_ns: str) -> tuple[tuple[str, str], ...]:
    """A Gateway server's ``[ns/]host`` entries as (namespace, host); ``.`` is the Gateway's
    namespace, none is any.

    >>> server_hosts(["*", "./a.example.com", "prod/b.example.com"], "gw")
    (('*', '*'), ('gw', 'a.example.com'), ('prod', 'b.example.com'))
    """
    out: list[tuple[str, str]] = []
    for entry in strings(raw):
        ns, _, host = entry.rpartition("/")
        out.append((gateway_ns if ns == "." else (ns or "*"), host.lower()))
    return tuple(out)


def parse_gateway(res: Resource) -> GatewayInfo:
    selector = spec_of(res).get("selector")
    servers = []
    for i, raw in enumerate(spec_of(res).get("servers") or []):
        port = raw.get("port") if isinstance(raw, Mapping) else None
        number = port.get("number") if isinstance(port, Mapping) else None
        if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < 65536:
            continue
        hosts = server_hosts(raw.get("hosts"), res.namespace)
        tls = raw.get("tls")
        redirect = isinstance(tls, Mapping) and tls.get("httpsRedirect") is True
        protocol = str(port.get("protocol", "")).upper() if isinstance(port, Mapping) else ""
        has_tls = isinstance(tls, Mapping)
        mode = str(tls.get("mode") or "PASSTHROUGH").upper() if has_tls else ""
        name = port.get("name") if isinstance(port, Mapping) else None
        bind = raw.get("bind")
        servers.append(
            Server(
                number,
                protocol,
                hosts,
                redirect,
                index=i,
                name=name if isinstance(name, str) else "",
                bind=bind if isinstance(bind, str) else "",
                tls=has_tls,
                tls_mode=mode,
            )
        )
    labels = {str(k): str(v) for k, v in selector.items()} if isinstance(selector, Mapping) else {}
    return GatewayInfo(res, tuple(servers), labels)
