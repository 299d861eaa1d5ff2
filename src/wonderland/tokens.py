"""Service account tokens, as a cluster's TokenRequest API issues them.

The kubelet writes one into a pod for every projected ``serviceAccountToken`` volume
source: a JWT signed (RS256) with this platform's key, for the audience the pod asked for,
with Kubernetes' claims (``sub: system:serviceaccount:<ns>:<name>``, ``kubernetes.io``
with the namespace, pod and service account). A server that accepts such tokens (the
trainer status endpoint) verifies the signature, the expiry and its own audience, exactly
as a cluster component verifies a projected token against the cluster's issuer.

The key is made on first use and kept in ``<state_dir>/keys/service-account.key`` (mode
0600), so tokens stay valid across restarts of the platform.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from wonderland.errors import WonderlandError

__all__ = [
    "ISSUER",
    "MIN_EXPIRATION_SECONDS",
    "ServiceAccountTokenIssuer",
    "TokenClaims",
    "TokenError",
    "TokenIssuer",
]

ISSUER = "https://kubernetes.default.svc.cluster.local"
# The API server's bounds for a requested token's lifetime (TokenRequest validation).
MIN_EXPIRATION_SECONDS = 600
_ALGORITHM = "RS256"
_KEY_FILE = "service-account.key"


class TokenError(WonderlandError):
    """A token is malformed, expired, signed by another key or meant for another audience."""


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token says about who holds it."""

    namespace: str
    service_account: str
    pod_name: str
    pod_uid: str
    audiences: tuple[str, ...]
    expires_at: int


class TokenIssuer(Protocol):
    """Issues and verifies service account tokens (the TokenRequest API's role)."""

    def issue(
        self,
        namespace: str,
        service_account: str,
        audiences: tuple[str, ...],
        expiration_seconds: int,
        pod_name: str = "",
        pod_uid: str = "",
    ) -> str: ...

    def verify(self, token: str, audience: str) -> TokenClaims: ...


class ServiceAccountTokenIssuer:
    """RS256 tokens signed with a key kept in the state directory."""

    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / "keys" / _KEY_FILE
        self._lock = threading.Lock()
        self._private: rsa.RSAPrivateKey | None = None

    def _key(self) -> rsa.RSAPrivateKey:
        with self._lock:
            if self._private is None:
                self._private = self._load_or_create()
            return self._private

    def _load_or_create(self) -> rsa.RSAPrivateKey:
        if self._path.is_file():
            loaded = serialization.load_pem_private_key(self._path.read_bytes(), password=None)
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise TokenError(f"{self._path} does not hold an RSA private key; remove it")
            return loaded
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self._path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        os.replace(tmp, self._path)
        return key

    def issue(
        self,
        namespace: str,
        service_account: str,
        audiences: tuple[str, ...],
        expiration_seconds: int,
        pod_name: str = "",
        pod_uid: str = "",
    ) -> str:
        now = int(time.time())
        ttl = max(int(expiration_seconds), MIN_EXPIRATION_SECONDS)
        identity: dict[str, Any] = {
            "namespace": namespace,
            "serviceaccount": {"name": service_account, "uid": ""},
        }
        if pod_name:
            identity["pod"] = {"name": pod_name, "uid": pod_uid}
        claims: dict[str, Any] = {
            "aud": list(audiences),
            "exp": now + ttl,
            "iat": now,
            "nbf": now,
            "iss": ISSUER,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": identity,
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
        }
        return jwt.encode(claims, self._key(), algorithm=_ALGORITHM)

    def verify(self, token: str, audience: str) -> TokenClaims:
        public = self._key().public_key()
        try:
            claims = jwt.decode(
                token,
                public,
                algorithms=[_ALGORITHM],
                audience=audience,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(f"token rejected: {exc}") from None
        identity = claims.get("kubernetes.io")
        if not isinstance(identity, dict):
            raise TokenError("token rejected: no kubernetes.io claim")
        pod = identity.get("pod") or {}
        account = identity.get("serviceaccount") or {}
        aud = claims["aud"]
        return TokenClaims(
            namespace=str(identity.get("namespace", "")),
            service_account=str(account.get("name", "")),
            pod_name=str(pod.get("name", "")),
            pod_uid=str(pod.get("uid", "")),
            audiences=tuple(aud) if isinstance(aud, list) else (str(aud),),
            expires_at=int(claims["exp"]),
        )
