"""Reading a caller's bearer key, and the only form in which keys are stored: a SHA-256 digest.

Keys are looked up by digest, so a lookup's timing tells an attacker at most something about a
hash of the secret, which says nothing about the secret itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


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
