from __future__ import annotations

import hashlib

from gateway.server.caller import bearer_token
from gateway.teams.store import key_digest


def test_bearer_token_parsing() -> None:
    assert bearer_token([(b"authorization", b"Bearer sk-1")]) == "sk-1"
    assert bearer_token([(b"authorization", b"bearer  sk-2 ")]) == "sk-2"
    assert bearer_token([(b"authorization", b"Basic abc")]) == ""
    assert bearer_token([(b"authorization", b"Bearer ")]) == ""
    assert bearer_token([]) is None


def test_key_digest_is_hex_sha256() -> None:
    assert key_digest("sk-abc") == hashlib.sha256(b"sk-abc").hexdigest()
