"""A Sidecar as the model holds it: its workload selector, egress imports (all listeners and per
port) and outbound traffic policy (semantics §6).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from meshroute.config.common import spec_of, string_map, strings
from meshroute.config.hosts import intersect
from meshroute.config.load import Resource


@dataclass(frozen=True)
class SidecarInfo:
    resource: Resource
    selector: Mapping[str, str]
    # (namespace part, host) import entries; None = no egress section = import everything.
    egress: tuple[tuple[str, str], ...] | None
    unknown_host: str  # "passthrough" (ALLOW_ANY) | "blackhole" (REGISTRY_ONLY)
    exclusions: tuple[tuple[str, str], ...] = field(default=())
    # Egress listeners with a port: port -> its import entries (§6); `catch_all`: the entries of
    # the listener without a port (None: there is none, so no other port imports anything).
    by_port: Mapping[int, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    catch_all: tuple[tuple[str, str], ...] | None = None

    @property
    def namespace(self) -> str:
        return self.resource.namespace

    def imports(self, config_ns: str, hosts: Iterable[str], client_ns: str) -> bool:
        """Whether config of ``config_ns`` for any of ``hosts`` is imported by the egress hosts (§6).

        ``*`` = any namespace; ``.`` = the client's namespace (so a mesh-wide default Sidecar in the
        root namespace means each workload's own namespace); ``~``-prefixed entries exclude
        (``~/*`` trims everything).
        """
        hosts = list(hosts)
        if self.egress is None:
            return True

        def hit(entries: Sequence[tuple[str, str]]) -> bool:
            return any(
                (ns == "*" or ns == config_ns or (ns == "." and config_ns == client_ns))
                and any(intersect(h, host) for host in hosts)
                for ns, h in entries
            )

        return hit(self.egress) and not hit(self.exclusions)

    def imports_on_port(self, config_ns: str, host: str, client_ns: str, port: int) -> bool:
        """Whether the egress listener of ``port`` (the one declaring that port, else the one
        without a port) imports ``host`` of ``config_ns`` (§6: hosts per port)."""
        if not self.by_port:
            return self.imports(config_ns, [host], client_ns)
        entries = self.by_port.get(port, self.catch_all)
        if entries is None:
            return False
        return any(
            (ns == "*" or ns == config_ns or (ns == "." and config_ns == client_ns)) and intersect(h, host)
            for ns, h in entries
        ) and not any(
            (ns == "*" or ns == config_ns or (ns == "." and config_ns == client_ns)) and intersect(h, host)
            for ns, h in self.exclusions
        )

    def port_imports(self, config_ns: str, hosts: Iterable[str], client_ns: str, port: int) -> bool:
        """Whether the egress listener of ``port`` imports the config of ``config_ns`` for any of
        ``hosts`` (a VirtualService: Istio ``SelectVirtualServices`` per listener; the route
        table of a port uses its listener's VirtualServices only, §6)."""
        return any(self.imports_on_port(config_ns, h, client_ns, port) for h in hosts)


def parse_sidecar(res: Resource, mesh_default: str = "passthrough") -> SidecarInfo:
    """``mesh_default``: what the mesh config's outbound policy makes of unknown hosts, for a
    Sidecar without ``outboundTrafficPolicy`` (§6, §12)."""
    spec = spec_of(res)
    selector = spec.get("workloadSelector")
    labels = selector.get("labels") if isinstance(selector, Mapping) else None
    egress: list[tuple[str, str]] | None = None
    exclusions: list[tuple[str, str]] = []
    by_port: dict[int, tuple[tuple[str, str], ...]] = {}
    catch_all: tuple[tuple[str, str], ...] | None = None
    if isinstance(spec.get("egress"), list):
        egress = []
        for listener in spec["egress"]:
            own: list[tuple[str, str]] = []
            for entry in strings(listener.get("hosts") if isinstance(listener, Mapping) else None):
                ns, _, host = entry.partition("/")
                target = exclusions if ns.startswith("~") else egress
                ns = ns[1:] if ns.startswith("~") else ns
                target.append((ns or "*", host.lower()))
                if target is egress:
                    own.append((ns or "*", host.lower()))
            port = listener.get("port") if isinstance(listener, Mapping) else None
            number = port.get("number") if isinstance(port, Mapping) else None
            if isinstance(number, int) and number > 0:  # 0: a Unix socket, no route table
                by_port.setdefault(number, tuple(own))  # the first listener of a port wins
            elif port is None and catch_all is None:
                catch_all = tuple(own)
    policy = spec.get("outboundTrafficPolicy")
    # Proto enum 0 is REGISTRY_ONLY, so `outboundTrafficPolicy: {}` blocks; absent = the mesh's.
    if isinstance(policy, Mapping):
        unknown_host = (
            "blackhole" if policy.get("mode", "REGISTRY_ONLY") == "REGISTRY_ONLY" else "passthrough"
        )
    else:
        unknown_host = mesh_default
    return SidecarInfo(
        resource=res,
        selector=string_map(labels),
        egress=tuple(egress) if egress is not None else None,
        unknown_host=unknown_host,
        exclusions=tuple(exclusions),
        by_port=by_port,
        catch_all=catch_all,
    )
