"""Server-side TLS settings of Gateway servers and Sidecar ingress listeners (semantics §8.4 G9,
§8.6 SC5)."""

from __future__ import annotations

from typing import Any

from meshroute.config.diagnostics import Path
from meshroute.config.validate.context import Ctx, items, strings

CERT_FIELDS = (
    "serverCertificate",
    "privateKey",
    "caCertificates",
    "credentialName",
    "credentialNames",
    "tlsCertificates",
)
# the cipher suites Envoy (BoringSSL) accepts; anything else is ignored with a warning
CIPHER_SUITES = frozenset(
    {
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-PSK-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-PSK-AES128-CBC-SHA",
        "ECDHE-ECDSA-AES256-SHA",
        "ECDHE-RSA-AES256-SHA",
        "ECDHE-PSK-AES256-CBC-SHA",
        "AES128-GCM-SHA256",
        "AES256-GCM-SHA384",
        "AES128-SHA",
        "AES256-SHA",
        "DES-CBC3-SHA",
    }
)


def check_server_tls(ctx: Ctx, tls: dict[str, Any], path: Path) -> None:
    """G9: certificate sources per mode, CRL rules, protocol versions and cipher suites."""
    mode = tls.get("mode", "PASSTHROUGH")  # enum value 0
    for field in ("credentialNames", "tlsCertificates"):
        value = tls.get(field)
        if isinstance(value, list) and not 1 <= len(value) <= 2:
            ctx.error("tls-invalid", (*path, field), f"{field} must have 1 or 2 entries (e.g. RSA and ECDSA)")
    if mode == "ISTIO_MUTUAL":
        for field in CERT_FIELDS:
            if tls.get(field):
                ctx.error("tls-invalid", (*path, field), f"`{field}` cannot be set with mode ISTIO_MUTUAL")
    elif mode in ("PASSTHROUGH", "AUTO_PASSTHROUGH"):
        for field in CERT_FIELDS:
            if tls.get(field):
                ctx.warning("tls-certs-ignored", (*path, field), f"`{field}` is ignored with mode {mode}")
    else:
        _check_cert_sources(ctx, tls, path, mode)
    if tls.get("caCrl") and (tls.get("credentialName") or mode == "SIMPLE"):
        ctx.error("tls-invalid", (*path, "caCrl"), "caCrl cannot be used with credentialName or mode SIMPLE")
    _check_versions_and_ciphers(ctx, tls, path)


def _check_cert_sources(ctx: Ctx, tls: dict[str, Any], path: Path, mode: str) -> None:
    """SIMPLE, MUTUAL, OPTIONAL_MUTUAL: exactly one source of certificates, and a CA for mTLS."""
    sources = [
        name
        for name, present in (
            ("serverCertificate/privateKey", bool(tls.get("serverCertificate") or tls.get("privateKey"))),
            ("credentialName", bool(tls.get("credentialName"))),
            ("credentialNames", bool(tls.get("credentialNames"))),
            ("tlsCertificates", bool(tls.get("tlsCertificates"))),
        )
        if present
    ]
    if len(sources) > 1:
        ctx.error("tls-invalid", path, f"only one certificate source may be set, got {', '.join(sources)}")
    credential = bool(tls.get("credentialName") or tls.get("credentialNames"))
    if credential:
        return
    if tls.get("tlsCertificates"):
        for i, cert in items(tls["tlsCertificates"]):
            for field in ("serverCertificate", "privateKey"):
                if not cert.get(field):
                    ctx.error(
                        "tls-invalid",
                        (*path, "tlsCertificates", i, field),
                        f"each tlsCertificates entry needs `{field}`",
                    )
    else:
        for field in ("serverCertificate", "privateKey"):
            if not tls.get(field):
                ctx.error("tls-invalid", (*path, field), f"mode {mode} needs `{field}` (or a credentialName)")
    if mode in ("MUTUAL", "OPTIONAL_MUTUAL") and not (
        tls.get("caCertificates") or tls.get("caCertCredentialName")
    ):
        ctx.error(
            "tls-invalid",
            (*path, "caCertificates"),
            f"mode {mode} needs `caCertificates` to verify client certificates (or a credentialName)",
        )


def _check_versions_and_ciphers(ctx: Ctx, tls: dict[str, Any], path: Path) -> None:
    if tls.get("minProtocolVersion") in ("TLSV1_0", "TLSV1_1") and not tls.get("cipherSuites"):
        ctx.warning(
            "tls-weak-min-version",
            (*path, "minProtocolVersion"),
            "TLS 1.0/1.1 without cipherSuites: the default suites do not support these versions",
        )
    seen: set[str] = set()
    for i, suite in strings(tls.get("cipherSuites")):
        if suite in seen:
            ctx.warning("tls-cipher-invalid", (*path, "cipherSuites", i), f"duplicate cipher suite {suite!r}")
        elif suite not in CIPHER_SUITES:
            ctx.warning(
                "tls-cipher-invalid", (*path, "cipherSuites", i), f"unsupported cipher suite {suite!r}"
            )
        seen.add(suite)
