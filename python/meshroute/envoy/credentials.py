"""Gateway certificates from Kubernetes Secret manifests in the config (Istio's ``credentialName``).

Istio's gateway reads the Secret ``credentialName`` from the gateway *workload's* namespace, which
the config does not say. So a ``v1`` ``Secret`` of that name is looked up in the Gateway's own
namespace, then in ``istio-system``, then anywhere else if exactly one namespace has one.

Secret formats (as Istio reads them, keys checked in this order, ``type`` not consulted):
generic ``cert`` / ``key`` / ``cacert``, and ``kubernetes.io/tls`` ``tls.crt`` / ``tls.key`` /
``ca.crt``; ``data`` is base64, ``stringData`` plain text and wins over ``data`` (as Kubernetes
merges them). For MUTUAL / OPTIONAL_MUTUAL the client CA comes from ``caCertCredentialName`` when
given, else from the Secret ``NAME-cacert`` when there is one, else from the Secret itself
(Istio's order), with the CRL (``crl`` / ``ca.crl``) of that same Secret; the CA Secret is read
in the namespace where the certificate was found.

Every :class:`CredentialError` message names Secrets, namespaces and keys, never a value.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from meshroute.config.gateway import ServerTLS
from meshroute.config.load import Resource

ISTIO_SYSTEM = "istio-system"
CA_SUFFIX = "-cacert"  # Istio's SdsCaSuffix
K8S_PREFIX = "kubernetes://"
# (certificate, private key) keys: Istio's generic format first, then kubernetes.io/tls.
PAIR_KEYS = (("cert", "key"), ("tls.crt", "tls.key"))
CA_KEYS = ("cacert", "ca.crt")
CRL_KEYS = ("crl", "ca.crl")  # read from the Secret the CA comes from
PRIVATE_KEY_LABELS = frozenset({"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"})

_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)


class CredentialError(Exception):
    """Why a credential cannot be used; the message never contains Secret data."""


@dataclass(frozen=True)
class KeyPair:
    """A certificate chain and its private key, PEM bytes (the key is left out of ``repr``)."""

    cert: bytes
    key: bytes = field(repr=False)
    source: str = ""  # "namespace/name" of the Secret


@dataclass(frozen=True)
class ServerCredential:
    pairs: list[KeyPair]
    ca: bytes | None = None  # PEM bundle verifying client certificates (MUTUAL / OPTIONAL_MUTUAL)
    crl: bytes | None = None  # PEM revocation list(s) from the CA's Secret


class Secrets:
    """The ``v1`` Secrets of a config, by name then namespace."""

    def __init__(self, resources: Iterable[Resource]) -> None:
        self._by_name: dict[str, dict[str, Resource]] = {}
        for res in resources:
            if res.kind == "Secret" and res.api_version == "v1" and res.name:
                self._by_name.setdefault(res.name, {})[res.namespace] = res

    def get(self, name: str, namespace: str) -> Resource | None:
        return self._by_name.get(name, {}).get(namespace)

    def locate(self, name: str, gateway_namespace: str) -> Resource:
        """The Secret ``name`` the gateway would read: the Gateway's namespace, then
        istio-system, then the only other namespace that has one."""
        found = self._by_name.get(name, {})
        preferred = list(dict.fromkeys([gateway_namespace, ISTIO_SYSTEM]))
        for namespace in preferred:
            if namespace in found:
                return found[namespace]
        looked = (
            f"namespace {preferred[0]}" if len(preferred) == 1 else "namespaces " + " and ".join(preferred)
        )
        if len(found) == 1:
            return next(iter(found.values()))
        if not found:
            raise CredentialError(
                f"the config has no Secret {name} (looked in {looked}, then in every other namespace); "
                f"add its manifest (kubectl create secret tls {name} -n {gateway_namespace} "
                "--cert=FILE --key=FILE --dry-run=client -o yaml) or give serverCertificate/privateKey files"
            )
        elsewhere = ", ".join(f"{ns}/{name}" for ns in sorted(found))
        raise CredentialError(
            f"no Secret {name} in {looked}, and several in other namespaces ({elsewhere}): which one "
            f"the gateway workload reads is unknown, so none is used; put it in {gateway_namespace}"
        )


def _where(res: Resource) -> str:
    return f"Secret {res.namespace}/{res.name}"


def _maps(res: Resource) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    data, string_data = res.document.get("data"), res.document.get("stringData")
    return (
        data if isinstance(data, Mapping) else {},
        string_data if isinstance(string_data, Mapping) else {},
    )


def _keys(res: Resource) -> set[str]:
    data, string_data = _maps(res)
    return {str(k) for k in (*data, *string_data)}


def _value(res: Resource, key: str) -> tuple[bytes, str]:
    """(bytes, where) of ``key``: ``stringData`` as UTF-8, else ``data`` base64-decoded."""
    data, string_data = _maps(res)
    if key in string_data:
        where = f"{_where(res)} stringData.{key}"
        value = string_data[key]
        if not isinstance(value, str):
            raise CredentialError(f"{where} is not a string")
        return value.encode("utf-8"), where
    where = f"{_where(res)} data.{key}"
    value = data.get(key)
    if not isinstance(value, str):
        raise CredentialError(f"{where} is not a base64 string")
    try:
        # Kubernetes (Go's StdEncoding) skips line breaks and nothing else.
        return base64.b64decode(value.replace("\n", "").replace("\r", ""), validate=True), where
    except (binascii.Error, ValueError):
        raise CredentialError(f"{where} is not valid base64") from None


def _blocks(value: bytes, where: str) -> list[tuple[str, bytes]]:
    """The PEM blocks of ``value`` as (label, body); a body that is not base64 is an error."""
    if not value.strip():
        raise CredentialError(f"{where} is empty")
    out: list[tuple[str, bytes]] = []
    for match in _BLOCK.finditer(value):
        label, body = match.group(1).decode("ascii"), match.group(2)
        if label.startswith("ENCRYPTED") or (b"Proc-Type:" in body and b"ENCRYPTED" in body):
            raise CredentialError(f"{where}: the private key is encrypted; Envoy needs it unencrypted")
        try:
            base64.b64decode(b"".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            raise CredentialError(f"{where} is not PEM: a {label} block is not valid base64") from None
        out.append((label, body))
    return out


def pem_certificates(value: bytes, where: str) -> bytes:
    """``value`` when it holds at least one PEM certificate."""
    if not any(label == "CERTIFICATE" for label, _ in _blocks(value, where)):
        raise CredentialError(f"{where} is not a PEM certificate (no BEGIN CERTIFICATE block)")
    return value


def pem_private_key(value: bytes, where: str) -> bytes:
    """``value`` when it holds exactly one unencrypted PEM private key."""
    keys = [label for label, _ in _blocks(value, where) if label in PRIVATE_KEY_LABELS]
    if not keys:
        raise CredentialError(f"{where} is not a PEM private key (no BEGIN PRIVATE KEY block)")
    if len(keys) > 1:
        raise CredentialError(f"{where} holds {len(keys)} private keys, not one")
    return value


def key_pair(res: Resource) -> KeyPair:
    """Certificate and key of a Secret in either of Istio's formats."""
    keys = _keys(res)
    for cert_key, key_key in PAIR_KEYS:
        if cert_key in keys and key_key in keys:
            cert = pem_certificates(*_value(res, cert_key))
            key = pem_private_key(*_value(res, key_key))
            return KeyPair(cert, key, f"{res.namespace}/{res.name}")
    for cert_key, key_key in PAIR_KEYS:
        if (cert_key in keys) != (key_key in keys):
            have, missing = (cert_key, key_key) if cert_key in keys else (key_key, cert_key)
            raise CredentialError(f"{_where(res)} has {have} but no {missing}")
    has = ", ".join(sorted(keys)) or "none"
    raise CredentialError(
        f"{_where(res)} holds no certificate: it needs tls.crt and tls.key (type kubernetes.io/tls) "
        f"or cert and key; its keys: {has}"
    )


def pem_crl(value: bytes, where: str) -> bytes:
    """``value`` when it holds at least one PEM certificate revocation list."""
    if not any(label == "X509 CRL" for label, _ in _blocks(value, where)):
        raise CredentialError(f"{where} is not a PEM CRL (no BEGIN X509 CRL block)")
    return value


def has_ca(res: Resource) -> bool:
    return any(k in CA_KEYS for k in _keys(res))


def ca_bundle(res: Resource) -> tuple[bytes, bytes | None]:
    """(CA certificates, CRL or None) of a Secret: ``cacert`` else ``ca.crt``, and ``crl`` else
    ``ca.crl`` (Istio's order)."""
    keys = _keys(res)
    ca_key = next((k for k in CA_KEYS if k in keys), None)
    if ca_key is None:
        raise CredentialError(f"{_where(res)} has no CA certificate (key cacert or ca.crt)")
    crl_key = next((k for k in CRL_KEYS if k in keys), None)
    ca = pem_certificates(*_value(res, ca_key))
    return ca, pem_crl(*_value(res, crl_key)) if crl_key else None


def secret_name(raw: str, field_name: str) -> str:
    """A Kubernetes Secret name from ``credentialName`` (``NAME`` or ``kubernetes://NAME``)."""
    name = raw
    if name.startswith(K8S_PREFIX):
        name = name[len(K8S_PREFIX) :]
    if not name or "://" in name or "/" in name:
        raise CredentialError(
            f"{field_name} {raw!r}: only a Kubernetes Secret name (NAME or kubernetes://NAME) is supported"
        )
    return name


def server_credential(
    secrets: Secrets, tls: ServerTLS, gateway_namespace: str, mutual: bool
) -> ServerCredential:
    """Key pairs for ``credentialName`` / ``credentialNames`` and, when ``mutual``, the client CA."""
    names = [secret_name(n, "credentialName") for n in tls.credential_names]
    pairs: list[KeyPair] = []
    first: Resource | None = None
    for name in names:
        try:
            res = secrets.locate(name, gateway_namespace)
            pairs.append(key_pair(res))
        except CredentialError as exc:
            raise CredentialError(f"credentialName {name}: {exc}") from None
        first = first or res
    if not mutual or first is None:
        return ServerCredential(pairs)
    # The CA is read where the gateway found the certificate: the workload's namespace.
    namespace = first.namespace
    if tls.ca_cert_credential_name:
        ca_name = secret_name(tls.ca_cert_credential_name, "caCertCredentialName")
        ca_secret = secrets.get(ca_name, namespace)
        if ca_secret is None:
            raise CredentialError(
                f"caCertCredentialName {ca_name}: no Secret {namespace}/{ca_name} (the namespace of the "
                "server certificate)"
            )
        return ServerCredential(pairs, *ca_bundle(ca_secret))
    separate = secrets.get(first.name + CA_SUFFIX, namespace)
    if separate is not None:
        return ServerCredential(pairs, *ca_bundle(separate))
    if not has_ca(first):
        raise CredentialError(
            f"tls.mode {tls.mode} needs a CA to verify clients: {_where(first)} has no ca.crt or cacert "
            f"key and the config has no Secret {namespace}/{first.name}{CA_SUFFIX}"
        )
    return ServerCredential(pairs, *ca_bundle(first))
