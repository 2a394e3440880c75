"""The tracer's caches of encoded attributes: alike requests share them, odd values get their
own, and none grows without bound."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.observability import tracing as tracing_module
from gateway.observability.trace_settings import TraceSettings
from gateway.observability.tracing import Tracing


class NoClient:
    async def send(self, *args: Any) -> Any:
        raise AssertionError("nothing is exported here")

    async def close(self) -> None:
        pass


def tracer() -> Tracing:
    settings = TraceSettings("http://127.0.0.1:9/v1/traces", "o1-gateway", 1.0, False)
    return Tracing(settings, "http://127.0.0.1:9/v1", NoClient())


def decoded(encoded: bytes) -> dict[str, Any]:
    found = orjson.loads(b"[" + encoded + b"]")
    return {kv["key"]: next(iter(kv["value"].values())) for kv in found}


def test_alike_requests_share_their_encoding_and_odd_values_get_their_own() -> None:
    t = tracer()
    first = t.requested("chat", {"model": "gpt-4o", "max_tokens": 5, "stream": True}, "auto")
    again = t.requested("chat", {"model": "gpt-4o", "max_tokens": 5, "stream": True}, "auto")
    assert again == first and len(t.requests) == 1
    assert decoded(first[0]) == {
        "gen_ai.request.model": "auto", "gen_ai.request.max_tokens": "5",
        "gen_ai.request.stream": True,
    }  # fmt: skip
    # `true` for a number is not `1` (though equal in Python).
    flag = t.requested("chat", {"model": "gpt-4o", "max_tokens": True}, "")
    one = t.requested("chat", {"model": "gpt-4o", "max_tokens": 1}, "")
    listed = t.requested("chat", {"model": "gpt-4o", "temperature": [1]}, "")
    assert decoded(flag[0]) == {"gen_ai.request.model": "gpt-4o"}
    assert decoded(one[0]) == {"gen_ai.request.model": "gpt-4o", "gen_ai.request.max_tokens": "1"}
    assert decoded(listed[0]) == {"gen_ai.request.model": "gpt-4o"}
    assert t.requested("chat", {"model": "gpt-4o", "max_tokens": True}, "") == flag
    # A list among the values (no key) is encoded for itself, never kept.
    assert len(t.requests) == 3
    huge = t.requested("chat", {"model": "gpt-4o", "seed": 1 << 70}, "")
    assert decoded(huge[0]) == {
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.request.seed": str(1 << 70),
    }
    assert len(t.requests) == 4
    assert t.requested("files", {"model": "gpt-4o"}, "") == (b"", "")


def test_caches_start_again_when_full() -> None:
    t = tracer()
    for n in range(tracing_module._SHARED_KINDS * 3):
        t.requested("chat", {"model": "gpt-4o", "temperature": f"odd {n}"}, "")
        t.responded(f"model-{n}", ("stop",))
    assert len(t.requests) <= tracing_module._SHARED_KINDS
    assert len(t.responses) <= tracing_module._SHARED_KINDS


def test_a_long_client_string_is_neither_kept_nor_put_on_a_span() -> None:
    # Embeddings and legacy completions take any model string to their 404: megabytes each,
    # which 256 kept kinds (and every span waiting for export) would hold.
    t = tracer()
    long = "m" * 1_000_000
    for payload in ({"model": long}, {"model": "gpt-4o", "temperature": long}):
        for endpoint in ("embeddings", "completions"):
            encoded, name = t.requested(endpoint, payload, "")
            assert len(encoded) + len(name) < 1_000
    assert all(len(repr(key)) < 1_000 for key in t.requests)
    short = t.requested("embeddings", {"model": "m" * 256}, "")
    assert decoded(short[0]) == {"gen_ai.request.model": "m" * 256}
