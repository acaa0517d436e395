"""TLS contexts: Gateway server TLS (downstream) and DestinationRule client TLS (upstream).

Gateway servers take certificate files, or ``credentialName`` when the config holds the Secret
(:mod:`.credentials`; the PEM is inlined into the bootstrap); they read the parsed
:class:`~meshroute.config.gateway.ServerTLS`. DestinationRule ``credentialName`` is not read: those
policies stay plaintext with a warning.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from meshroute.config.gateway import ServerTLS
from meshroute.envoy.common import Json, typed
from meshroute.envoy.credentials import CredentialError, Secrets, server_credential

TLS_SOCKET = "envoy.transport_sockets.tls"
_VERSIONS = {
    "TLS_AUTO": "TLS_AUTO",
    "TLSV1_0": "TLSv1_0",
    "TLSV1_1": "TLSv1_1",
    "TLSV1_2": "TLSv1_2",
    "TLSV1_3": "TLSv1_3",
}
# Istio's gateway default: TLS 1.2 minimum (semantics §4 ServerTLSSettings).
GATEWAY_MIN_TLS = "TLSv1_2"
# What Istio advertises on an HTTPS gateway listener; the HCM (codec AUTO) follows the ALPN result.
GATEWAY_ALPN = ["h2", "http/1.1"]


@dataclass(frozen=True)
class Outcome:
    """A transport socket (None = plaintext) and, when something was not honoured, why."""

    socket: Json | None
    warning: str | None = None
    auto_sni: bool = False  # upstream: no SNI could be derived, so Envoy takes it from the Host
    # Certificate files the context would name that cannot be read here: Envoy rejects a whole
    # bootstrap naming one, so its listener (or cluster) is left out instead.
    missing: tuple[str, ...] = ()


def unreadable(paths: list[Any]) -> tuple[str, ...]:
    """The ``paths`` (certificate, key, CA, CRL files) that are not readable files, in order.

    >>> unreadable(["/nonexistent/cert.pem", __file__])
    ('/nonexistent/cert.pem',)
    """
    out: list[str] = []
    for raw in paths:
        path = str(raw)
        if path not in out and not (os.path.isfile(path) and os.access(path, os.R_OK)):
            out.append(path)
    return tuple(out)


def _missing_outcome(missing: tuple[str, ...], what: str) -> Outcome:
    files = ", ".join(missing)
    noun = "file" if len(missing) == 1 else "files"
    return Outcome(None, f"{what} {noun} {files} cannot be read (no such file)", missing=missing)


def _file(path: Any) -> Json:
    return {"filename": str(path)}


def _inline(pem: bytes) -> Json:
    """A DataSource holding ``pem``; proto-JSON/YAML ``bytes`` are base64."""
    return {"inline_bytes": base64.b64encode(pem).decode("ascii")}


def _san_matchers(sans: Iterable[str]) -> list[Json]:
    return [{"san_type": "URI" if "://" in san else "DNS", "matcher": {"exact": san}} for san in sans]


def _raw_sans(raw: Any) -> list[str]:
    """A DestinationRule's ``subjectAltNames`` (still a raw mapping there) for :func:`_san_matchers`."""
    return [str(san) for san in raw] if isinstance(raw, list) else []


def _tls_params(tls: ServerTLS, default_min: str | None) -> Json:
    params: Json = {}
    low = _VERSIONS.get(tls.min_protocol_version, default_min)
    high = _VERSIONS.get(tls.max_protocol_version)
    if low and low != "TLS_AUTO":
        params["tls_minimum_protocol_version"] = low
    if high and high != "TLS_AUTO":
        params["tls_maximum_protocol_version"] = high
    if tls.cipher_suites:
        params["cipher_suites"] = list(tls.cipher_suites)
    return params


def server_tls(tls: ServerTLS, secrets: Secrets | None = None, namespace: str = "default") -> Outcome:
    """DownstreamTlsContext for a Gateway server whose ``tls.mode`` terminates TLS.

    SIMPLE needs ``serverCertificate`` + ``privateKey`` (or ``tlsCertificates``) files, or
    ``credentialName`` / ``credentialNames`` naming Secrets in ``secrets`` (looked up from the
    Gateway's ``namespace``); MUTUAL / OPTIONAL_MUTUAL also a CA, ``caCertificates`` or from the
    Secrets (client certificates are then required / only requested).
    """
    mode = tls.mode or "PASSTHROUGH"  # unset is the enum's zero value
    if mode not in ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL"):
        return Outcome(None, f"tls.mode {mode} is not terminated by meshroute's Envoy")
    mutual = mode in ("MUTUAL", "OPTIONAL_MUTUAL")
    if tls.credential_names:
        try:
            credential = server_credential(secrets or Secrets([]), tls, namespace, mutual)
        except CredentialError as exc:
            return Outcome(None, str(exc))
        inlined = [
            {"certificate_chain": _inline(pair.cert), "private_key": _inline(pair.key)}
            for pair in credential.pairs
        ]
        ca = _inline(credential.ca) if credential.ca else None
        return _downstream(tls, mode, inlined, ca, _inline(credential.crl) if credential.crl else None)
    certs: list[Json] = [
        {"certificate_chain": _file(cert), "private_key": _file(key)} for cert, key in tls.key_files
    ]
    if not certs:
        return Outcome(
            None, "no server certificate: give serverCertificate/privateKey files or credentialName"
        )
    if mutual and not tls.ca_certificates:
        return Outcome(None, f"tls.mode {mode} needs caCertificates (a file) to verify clients")
    files = [c[k]["filename"] for c in certs for k in ("certificate_chain", "private_key")]
    files += [path for path in (tls.ca_certificates, tls.ca_crl) if mutual and path]
    if missing := unreadable(files):
        return _missing_outcome(missing, "certificate")
    ca = _file(tls.ca_certificates) if mutual else None
    return _downstream(tls, mode, certs, ca, _file(tls.ca_crl) if tls.ca_crl else None)


def _downstream(tls: ServerTLS, mode: str, certs: list[Json], ca: Json | None, crl: Json | None) -> Outcome:
    """The transport socket; ``ca`` / ``crl`` (DataSources) are set for MUTUAL / OPTIONAL_MUTUAL."""
    common: Json = {
        "tls_params": _tls_params(tls, GATEWAY_MIN_TLS),
        "tls_certificates": certs,
        "alpn_protocols": GATEWAY_ALPN,
    }
    context: Json = {"common_tls_context": common}
    if ca is not None:
        validation: Json = {"trusted_ca": ca}
        if crl is not None:
            validation["crl"] = crl
        if matchers := _san_matchers(tls.subject_alt_names):
            validation["match_typed_subject_alt_names"] = matchers
        for key, values in (
            ("verify_certificate_spki", tls.verify_certificate_spki),
            ("verify_certificate_hash", tls.verify_certificate_hash),
        ):
            if values:
                validation[key] = list(values)
        common["validation_context"] = validation
        context["require_client_certificate"] = mode == "MUTUAL"
    return Outcome(
        {"name": TLS_SOCKET, "typed_config": typed(_DOWNSTREAM, **context)},
    )


_DOWNSTREAM = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
_UPSTREAM = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"


def client_tls(tls: Mapping[str, Any] | None, host: str, system_ca: str) -> Outcome:
    """UpstreamTlsContext for a DestinationRule ``tls`` block (semantics §3.8).

    DISABLE/unset: plaintext. SIMPLE: originate TLS, SNI = ``sni`` or the service host, verify
    against ``caCertificates`` or the system bundle unless ``insecureSkipVerify``. MUTUAL with
    ``clientCertificate``/``privateKey`` files: also present the client certificate. ISTIO_MUTUAL
    and file-less MUTUAL need Istio's certificates or Kubernetes secrets: plaintext plus a warning.
    """
    if not tls:
        return Outcome(None)
    mode = str(tls.get("mode", "DISABLE")).upper()
    if mode == "DISABLE":
        return Outcome(None)
    if mode == "ISTIO_MUTUAL":
        return Outcome(
            None, "tls.mode ISTIO_MUTUAL needs Istio-issued certificates; the cluster stays plaintext"
        )
    common: Json = {}
    if mode in ("SIMPLE", "MUTUAL"):
        named = [tls[k] for k in ("clientCertificate", "privateKey") if mode == "MUTUAL" and tls.get(k)]
        if not tls.get("insecureSkipVerify"):
            named += [tls[k] for k in ("caCertificates", "caCrl") if tls.get(k)]
        if missing := unreadable(named):
            return _missing_outcome(missing, "TLS")
    if mode == "MUTUAL":
        if not (tls.get("clientCertificate") and tls.get("privateKey")):
            return Outcome(
                None,
                "tls.mode MUTUAL without clientCertificate/privateKey files (credentialName is a "
                "Kubernetes secret); the cluster stays plaintext",
            )
        common["tls_certificates"] = [
            {"certificate_chain": _file(tls["clientCertificate"]), "private_key": _file(tls["privateKey"])}
        ]
    elif mode != "SIMPLE":
        return Outcome(None, f"unknown tls.mode {mode}; the cluster stays plaintext")
    warning = None
    if not tls.get("insecureSkipVerify"):
        ca = tls.get("caCertificates")
        if not ca and os.path.exists(system_ca):
            ca = system_ca
        if ca:
            validation: Json = {"trusted_ca": _file(ca)}
            if tls.get("caCrl"):
                validation["crl"] = _file(tls["caCrl"])
            if matchers := _san_matchers(_raw_sans(tls.get("subjectAltNames"))):
                validation["match_typed_subject_alt_names"] = matchers
            common["validation_context"] = validation
        else:
            warning = (
                f"no caCertificates and no system CA bundle at {system_ca}: "
                "server certificates are not verified"
            )
    context: Json = {"common_tls_context": common}
    sni = tls.get("sni") or (host if not host.startswith("*") else None)
    if sni:
        context["sni"] = str(sni)
    return Outcome(
        {"name": TLS_SOCKET, "typed_config": typed(_UPSTREAM, **context)}, warning, auto_sni=not sni
    )
