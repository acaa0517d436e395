"""Self-signed certificates and CRLs (openssl CLI), Secret manifests, and Gateway configs that
terminate TLS with them."""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

OPENSSL = "/usr/bin/openssl"

TLS_GATEWAY = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: secure, namespace: default}}
spec:
  servers:
  - port: {{number: 443, name: https, protocol: HTTPS}}
    hosts: [secure.example.com]
    tls: {{mode: SIMPLE, serverCertificate: "{cert}", privateKey: "{key}"}}
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: [secure.example.com]
    tls: {{httpsRedirect: true}}
  - port: {{number: 80, name: http-other, protocol: HTTP}}
    hosts: [plain.example.com]
"""


def self_signed(directory: Path, host: str) -> tuple[Path, Path]:
    """(certificate, key) files for ``host``; the certificate is its own CA."""
    cert, key = directory / f"{host}.crt", directory / f"{host}.key"
    subprocess.run(
        [
            OPENSSL,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            f"/CN={host}",
            "-addext",
            f"subjectAltName=DNS:{host}",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def self_signed_crl(directory: Path, cert: Path, key: Path) -> Path:
    """An empty CRL signed by ``cert``/``key`` (``openssl ca -gencrl`` with a throwaway database)."""
    (directory / "index.txt").write_text("")
    (directory / "crlnumber").write_text("01\n")
    conf = directory / "ca.cnf"
    conf.write_text(
        f"[ca]\ndefault_ca = d\n[d]\ndatabase = {directory / 'index.txt'}\n"
        f"crlnumber = {directory / 'crlnumber'}\ndefault_md = sha256\ndefault_crl_days = 2\n"
    )
    out = directory / f"{cert.stem}.crl"
    subprocess.run(
        [
            OPENSSL,
            "ca",
            "-config",
            str(conf),
            "-gencrl",
            "-keyfile",
            str(key),
            "-cert",
            str(cert),
            "-out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return out


def secret_yaml(
    name: str,
    namespace: str | None,
    entries: dict[str, bytes],
    *,
    string_data: bool = False,
    secret_type: str = "kubernetes.io/tls",
) -> str:
    """A ``v1`` Secret manifest as ``kubectl create secret ... -o yaml`` writes it (``data`` in
    base64), or with ``stringData`` (plain); ``namespace`` None leaves it out, as kubectl does."""
    meta = {"name": name} if namespace is None else {"name": name, "namespace": namespace}
    if string_data:
        body: dict[str, object] = {"stringData": {k: v.decode() for k, v in entries.items()}}
    else:
        body = {"data": {k: base64.b64encode(v).decode() for k, v in entries.items()}}
    doc = {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": secret_type, **body}
    return "---\n" + yaml.safe_dump(doc, sort_keys=False)


CREDENTIAL_GATEWAY = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: secure, namespace: default}
spec:
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [secure.example.com]
    tls: {mode: SIMPLE, credentialName: secure-cert}
  - port: {number: 443, name: https-mtls, protocol: HTTPS}
    hosts: [mtls.example.com]
    tls: {mode: MUTUAL, credentialName: mtls-cert}
"""


@dataclass
class Credentials:
    """Certificates for :data:`CREDENTIAL_GATEWAY`, and its config with the Secrets."""

    secure: tuple[Path, Path]  # (certificate, key) served for secure.example.com
    mtls: tuple[Path, Path]  # ... for mtls.example.com
    client: tuple[Path, Path]  # the client certificate mtls.example.com accepts (its own CA)
    config: str


def credential_config(directory: Path) -> Credentials:
    """:data:`CREDENTIAL_GATEWAY` plus its Secrets, written the ways users write them:
    ``secure-cert`` as kubectl creates it (kubernetes.io/tls, base64 ``data``) in istio-system;
    ``mtls-cert`` in Istio's generic format as ``stringData``; the client CA and its CRL in
    ``mtls-cert-cacert``."""
    secure = self_signed(directory, "secure.example.com")
    mtls = self_signed(directory, "mtls.example.com")
    client = self_signed(directory, "client.example.com")
    crl = self_signed_crl(directory, *client)
    secrets = secret_yaml(
        "secure-cert", "istio-system", {"tls.crt": secure[0].read_bytes(), "tls.key": secure[1].read_bytes()}
    )
    secrets += secret_yaml(
        "mtls-cert",
        "default",
        {"cert": mtls[0].read_bytes(), "key": mtls[1].read_bytes()},
        string_data=True,
        secret_type="Opaque",
    )
    secrets += secret_yaml(
        "mtls-cert-cacert",
        "default",
        {"ca.crt": client[0].read_bytes(), "ca.crl": crl.read_bytes()},
        secret_type="Opaque",
    )
    return Credentials(secure, mtls, client, CREDENTIAL_GATEWAY + secrets)
