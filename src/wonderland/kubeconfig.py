"""The daemon's credentials: a bearer token, a self-made TLS certificate and a kubeconfig.

All live in the state directory with mode 0600. The kubeconfig pins the certificate
(``certificate-authority-data``), so the CLI, the ``kubernetes`` client and kubectl
verify the server instead of skipping TLS checks.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from wonderland.errors import ConfigError

__all__ = [
    "ClientConfig",
    "ensure_certificate",
    "ensure_token",
    "kubeconfig_path",
    "read_kubeconfig",
    "write_kubeconfig",
]

CONTEXT = "wonderland"


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` with mode 0600, atomically (no reader sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def kubeconfig_path(state_dir: Path) -> Path:
    return state_dir / "kubeconfig"


def ensure_token(state_dir: Path) -> str:
    """The API token (made once, kept across restarts so kubeconfigs stay valid)."""
    path = state_dir / "token"
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
    token = secrets.token_urlsafe(32)
    _write_private(path, token.encode())
    return token


def ensure_certificate(state_dir: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, ::1 and localhost; (cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory = state_dir / "tls"
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    now = datetime.datetime.now(datetime.UTC)
    if cert_path.exists() and key_path.exists():
        try:
            current = x509.load_pem_x509_certificate(cert_path.read_bytes())
            if current.not_valid_after_utc - now > datetime.timedelta(days=30):
                return cert_path, key_path
        except ValueError:
            pass  # unreadable: make a new one
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wonderland")])
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def write_kubeconfig(state_dir: Path, server: str, ca_pem: bytes, token: str) -> Path:
    """Write ``<state_dir>/kubeconfig`` (mode 0600) for kubectl and the kubernetes client."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": CONTEXT, "user": {"token": token}}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": "default"},
            }
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }
    path = kubeconfig_path(state_dir)
    _write_private(path, yaml.safe_dump(config, sort_keys=False).encode())
    return path


@dataclass(frozen=True)
class ClientConfig:
    """Where the control API is and how to talk to it."""

    server: str
    token: str
    ca_pem: bytes
    namespace: str = "default"


def read_kubeconfig(path: Path) -> ClientConfig:
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"no wonderland daemon is running here: {path} does not exist. "
            "Start one with `wonderland up` (or set WONDERLAND_HOME)."
        ) from None
    try:
        cluster = raw["clusters"][0]["cluster"]
        user = raw["users"][0]["user"]
        context = raw["contexts"][0]["context"]
        return ClientConfig(
            server=str(cluster["server"]),
            token=str(user["token"]),
            ca_pem=base64.b64decode(cluster["certificate-authority-data"]),
            namespace=str(context.get("namespace") or "default"),
        )
    except (KeyError, IndexError, TypeError, ValueError):
        raise ConfigError(
            f"{path} is not a wonderland kubeconfig; restart the daemon (`wonderland up`) "
            "to write it again"
        ) from None
