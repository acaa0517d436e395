"""A Gateway as the model holds it: its servers parsed once (port, protocol, hosts, TLS) and its
selector (semantics §4). Consumers (workloads, Envoy listeners and TLS contexts) read these
objects, never the raw ``servers`` list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meshroute.config.common import spec_of, string_map, strings
from meshroute.config.load import Resource


@dataclass(frozen=True)
class ServerTLS:
    """A server's ``tls`` block (Istio's ServerTLSSettings), as the Envoy side reads it; all
    defaults when the server has none. Validation has already rejected wrong types, so a field of
    the wrong type reads as unset. ``httpsRedirect`` is :attr:`Server.https_redirect`.
    """

    mode: str = ""  # ``mode`` upper-cased, "" when unset (then PASSTHROUGH, the enum's zero value)
    # ``credentialNames``, else ``(credentialName,)``; () when neither is set. Secret names are
    # checked where they are looked up (:mod:`meshroute.envoy.credentials`).
    credential_names: tuple[str, ...] = ()
    ca_cert_credential_name: str = ""
    # (serverCertificate, privateKey) files: the top-level pair first, then ``tlsCertificates``.
    key_files: tuple[tuple[str, str], ...] = ()
    ca_certificates: str = ""
    ca_crl: str = ""
    subject_alt_names: tuple[str, ...] = ()
    verify_certificate_spki: tuple[str, ...] = ()
    verify_certificate_hash: tuple[str, ...] = ()
    min_protocol_version: str = ""  # upper-cased, "" when unset
    max_protocol_version: str = ""
    cipher_suites: tuple[str, ...] = ()


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
    tls_settings: ServerTLS = ServerTLS()

    @property
    def tls_mode(self) -> str:
        """``tls.mode``: "" without a tls block, PASSTHROUGH (the enum's zero value) when unset."""
        return (self.tls_settings.mode or "PASSTHROUGH") if self.tls else ""

    @property
    def dns_names(self) -> tuple[str, ...]:
        """The distinct hosts without their ``namespace/`` part (that only binds VirtualServices):
        what a listener serves."""
        return tuple(dict.fromkeys(host for _, host in self.hosts if host))


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


def _text(raw: Any) -> str:
    return raw if isinstance(raw, str) else ""


def _key_files(tls: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The certificate/key file pairs; a pair missing either half is no pair."""
    listed = tls.get("tlsCertificates")
    entries = [tls, *(e for e in (listed if isinstance(listed, list) else []) if isinstance(e, Mapping))]
    pairs = ((_text(e.get("serverCertificate")), _text(e.get("privateKey"))) for e in entries)
    return tuple((cert, key) for cert, key in pairs if cert and key)


def parse_server_tls(tls: Mapping[str, Any]) -> ServerTLS:
    """A server's ``tls`` block (normalised spec) as :class:`ServerTLS`.

    >>> tls = parse_server_tls({"mode": "SIMPLE", "credentialName": "web", "subjectAltNames": ["a"]})
    >>> tls.mode, tls.credential_names, tls.subject_alt_names, tls.key_files
    ('SIMPLE', ('web',), ('a',), ())
    """
    # credentialNames wins over credentialName when non-empty (Istio reads one or the other).
    names = strings(tls.get("credentialNames")) or [n for n in [_text(tls.get("credentialName"))] if n]
    return ServerTLS(
        mode=_text(tls.get("mode")).upper(),
        credential_names=tuple(names),
        ca_cert_credential_name=_text(tls.get("caCertCredentialName")),
        key_files=_key_files(tls),
        ca_certificates=_text(tls.get("caCertificates")),
        ca_crl=_text(tls.get("caCrl")),
        subject_alt_names=tuple(strings(tls.get("subjectAltNames"))),
        verify_certificate_spki=tuple(strings(tls.get("verifyCertificateSpki"))),
        verify_certificate_hash=tuple(strings(tls.get("verifyCertificateHash"))),
        min_protocol_version=_text(tls.get("minProtocolVersion")).upper(),
        max_protocol_version=_text(tls.get("maxProtocolVersion")).upper(),
        cipher_suites=tuple(strings(tls.get("cipherSuites"))),
    )


def parse_gateway(res: Resource) -> GatewayInfo:
    selector = spec_of(res).get("selector")
    servers = []
    for i, raw in enumerate(spec_of(res).get("servers") or []):
        port = raw.get("port") if isinstance(raw, Mapping) else None
        number = port.get("number") if isinstance(port, Mapping) else None
        if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < 65536:
            continue  # validation reported it; ``index`` keeps the positions of the others
        hosts = server_hosts(raw.get("hosts"), res.namespace)
        tls = raw.get("tls")
        redirect = isinstance(tls, Mapping) and tls.get("httpsRedirect") is True
        protocol = str(port.get("protocol", "")).upper() if isinstance(port, Mapping) else ""
        has_tls = isinstance(tls, Mapping)
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
                tls_settings=parse_server_tls(tls) if has_tls else ServerTLS(),
            )
        )
    return GatewayInfo(res, tuple(servers), string_map(selector))
