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
