from __future__ import annotations

import pytest

from gateway.auth import Authenticator, bearer_token, key_digest
from gateway.errors import GatewayError


def test_bearer_token_parsing() -> None:
    assert bearer_token([(b"authorization", b"Bearer sk-1")]) == "sk-1"
    assert bearer_token([(b"authorization", b"bearer  sk-2 ")]) == "sk-2"
    assert bearer_token([(b"authorization", b"Basic abc")]) == ""
    assert bearer_token([]) == ""


def test_configured_keys_are_checked_by_digest() -> None:
    auth = Authenticator([key_digest("sk-good")])
    assert auth.authenticate([(b"authorization", b"Bearer sk-good")]) == key_digest("sk-good")[:12]
    with pytest.raises(GatewayError) as bad:
        auth.authenticate([(b"authorization", b"Bearer sk-bad-key-123")])
    assert bad.value.status == 401 and bad.value.code == "invalid_api_key"
    assert "sk-bad-key-123" not in bad.value.message and "sk-ba***23" in bad.value.message
    with pytest.raises(GatewayError) as missing:
        auth.authenticate([])
    assert missing.value.status == 401 and missing.value.code == "missing_api_key"


def test_open_mode_accepts_any_bearer_but_still_needs_one() -> None:
    auth = Authenticator([])
    assert auth.open
    assert auth.authenticate([(b"authorization", b"Bearer anything")])
    with pytest.raises(GatewayError):
        auth.authenticate([(b"authorization", b"Bearer ")])
