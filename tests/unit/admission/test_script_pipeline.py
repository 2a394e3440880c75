"""The pipelined EVALSHA client's pure parts: the RESP encoding and which URLs it serves."""

from __future__ import annotations

from gateway.admission.script_pipeline import ScriptClient, encode


def test_encode_is_resp() -> None:
    assert encode("GET", b"k", 7) == b"*3\r\n$3\r\nGET\r\n$1\r\nk\r\n$1\r\n7\r\n"


def test_only_plain_redis_and_unix_socket_urls_use_it() -> None:
    assert ScriptClient.supports("redis://h:6379/0")
    assert ScriptClient.supports("unix:///tmp/redis.sock?db=2")
    assert not ScriptClient.supports("rediss://h:6379/0")
