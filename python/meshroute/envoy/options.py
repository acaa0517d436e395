"""What ``meshroute envoy-config`` lets the operator choose; everything else follows the config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from meshroute.extproc import addresses

DEFAULT_EXTPROC = "unix:/tmp/meshroute.sock"
# Who decides each HTTP request: ``meshroute serve`` over ext_proc, or the dynamic module inside
# Envoy (``meshroute.envoy.module``), its config delivered by ECDS files.
EXTPROC = "extproc"
EMBEDDED = "embedded"
ENGINES = (EXTPROC, EMBEDDED)
# What ``envoy-config``, ``run`` and ``demo`` use without ``--engine``. (``Options.engine`` itself
# defaults to extproc: the embedded engine also needs ``files_dir``, which only a caller knows.)
DEFAULT_ENGINE = EMBEDDED
# Who picks the endpoint inside a service cluster: Envoy's own load balancers (lb_policy), or
# meshroute-lb inside Envoy, the module's load-balancing policy (docs/envoy.md, "Load balancing in
# Rust"). Either way the cluster carries the same DestinationRule policy.
LB_ENVOY = "envoy"
LB_RUST = "rust"
LBS = (LB_ENVOY, LB_RUST)
# Debian/Ubuntu's CA bundle: Istio verifies SIMPLE upstream TLS against the system roots when a
# DestinationRule names no caCertificates (VERIFY_CERTIFICATE_AT_CLIENT).
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@dataclass(frozen=True)
class Options:
    """Listener addresses, the ext_proc endpoints and the mesh client context.

    ``bind_ports`` maps a Gateway server port to the port the listener really binds (ports below
    1024 need privileges; tests need free ports); ext_proc still reports the Gateway's own port.
    ``engine`` ``embedded`` puts the dynamic-module filter where ext_proc is, its config read from
    ``files_dir/ecds-<name>.yaml`` (an absolute directory, :mod:`meshroute.envoy.live`).
    ``lb`` ``rust`` makes the service clusters balance with the module (``lb_module``: its path,
    default the packaged one; ``lb_seed``: seeds its random draws, for tests), with either engine.
    ``locality`` (else the topology labels of ``source_labels``) is the mesh client's locality:
    with one, the clusters' endpoints are placed in priorities and locality weights as istiod
    would for that proxy (:mod:`meshroute.envoy.locality`; ``failoverPriority`` compares
    ``source_labels``).
    ``gateway_workload`` (a :func:`meshroute.config.workloads.workload_name`,
    ``workload:<ns>/<k=v,...>``; "" = every one) makes the bootstrap that of one gateway proxy:
    only that workload's merged servers get listeners, and their listener context names the
    proxy (its namespace and labels), so a host only another proxy's Gateways serve is answered
    404 (docs/envoy.md, "One gateway workload"). ``build`` resolves it again against the config
    it builds (:func:`meshroute.config.workloads.resolve` on the name's labels and namespace).
    """

    extproc: tuple[str, ...] = field(default_factory=lambda: tuple(addresses(DEFAULT_EXTPROC)))
    mesh_port: int = 15001
    admin_port: int = 15000
    bind_address: str = "127.0.0.1"
    bind_ports: Mapping[int, int] = field(default_factory=dict)
    source_namespace: str | None = None
    source_labels: Mapping[str, str] = field(default_factory=dict)
    access_log: str = "/dev/stdout"  # "" = no access log
    # A Python ext_proc server can fall behind Envoy's 200 ms default under bursts (docs/envoy.md).
    message_timeout: str = "1s"
    domain: str = "cluster.local"
    system_ca: str = SYSTEM_CA_BUNDLE
    engine: str = EXTPROC
    files_dir: str = ""
    lb: str = LB_ENVOY
    lb_module: str = ""
    lb_seed: int | None = None
    # The mesh listener's client workload's region/zone/subzone (``--locality``): with it (or the
    # topology labels of ``source_labels``), clusters carry Istio's locality placement for it.
    locality: str = ""
    # The one gateway proxy this Envoy is (``--gateway-labels``/``--gateway-namespace``); "" = all.
    gateway_workload: str = ""

    @property
    def client_locality(self) -> str:
        """``locality``, else the one ``source_labels`` give (topology labels); "" when none."""
        from meshroute.localities import label_locality

        return self.locality or label_locality(self.source_labels)

    @property
    def gateway_proxy(self) -> tuple[str, dict[str, str]] | None:
        """(namespace, labels) of ``gateway_workload``; None for every gateway proxy.

        >>> Options(gateway_workload="workload:istio-system/app=gw,istio=ingress").gateway_proxy
        ('istio-system', {'app': 'gw', 'istio': 'ingress'})
        """
        from meshroute.config.workloads import parse_name

        if not self.gateway_workload:
            return None
        parsed = parse_name(self.gateway_workload)
        if parsed is None:
            raise ValueError(
                f"gateway_workload {self.gateway_workload!r} is not a gateway workload name "
                "(workload:<namespace>/<k=v,...>)"
            )
        return parsed

    def bind_port(self, gateway_port: int) -> int:
        return self.bind_ports.get(gateway_port, gateway_port)
