"""Who is calling: bearer keys checked against SHA-256 digests, never stored in plaintext.

Comparing digests through a set lookup leaks at most timing about a hash of the secret, which
tells an attacker nothing about the secret itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from gateway import errors


def bearer_token(headers: Iterable[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return ""
    return ""


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Authenticator:
    """Accepts keys whose digest is configured; with none configured, any bearer token (dev mode)."""

    def __init__(self, digests: Iterable[str]) -> None:
        self._digests = frozenset(digests)
        self.open = not self._digests

    def authenticate(self, headers: Iterable[tuple[bytes, bytes]]) -> str:
        """Return the caller's key id (a digest prefix, safe to log); raise GatewayError 401."""
        token = bearer_token(headers)
        if not token:
            raise errors.missing_key()
        digest = key_digest(token)
        if not self.open and digest not in self._digests:
            raise errors.invalid_key(token)
        return digest[:12]
