"""The pipelined EVALSHA client against a real redis-server: order, NOSCRIPT, auth and db,
stalls and lost connections."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator

import pytest
import redis
from redis.exceptions import ResponseError

from gateway.admission.script_pipeline import NotSent, ScriptClient
from tests.conftest import start_redis_server

pytestmark = pytest.mark.anyio
SCRIPT = "return {tonumber(ARGV[1]), redis.call('INCR', KEYS[1])}"
SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_redis_server(tmp, "--requirepass", "s3cret")
        try:
            yield proc, url.replace("redis://", "redis://:s3cret@").replace("/0", "/3")
        finally:
            proc.kill()
            proc.wait()


async def test_many_concurrent_calls_get_their_own_replies(
    server: tuple[subprocess.Popen[bytes], str],
) -> None:
    _, url = server
    client = ScriptClient(url, timeout_s=2)
    try:
        # The script is not loaded yet: NOSCRIPT falls back to EVAL, which loads it.
        replies = await asyncio.gather(
            *(client.evalsha(SHA, SCRIPT, ["n"], [i]) for i in range(500))
        )
        assert [r[0] for r in replies] == list(range(500))
        assert sorted(r[1] for r in replies) == list(range(1, 501))
    finally:
        await client.close()
    # AUTH and SELECT happened: the counter lives in db 3.
    assert redis.Redis.from_url(url).get("n") == b"500"


async def test_script_flush_is_survived(server: tuple[subprocess.Popen[bytes], str]) -> None:
    _, url = server
    client = ScriptClient(url, timeout_s=2)
    try:
        await client.evalsha(SHA, SCRIPT, ["n"], [1])
        redis.Redis.from_url(url).script_flush()
        assert (await client.evalsha(SHA, SCRIPT, ["n"], [2]))[0] == 2
        with pytest.raises(ResponseError):
            await client.evalsha("0" * 40, "return redis.call('NOPE')", ["n"], [])
        assert (await client.evalsha(SHA, SCRIPT, ["n"], [3]))[0] == 3  # still in step
    finally:
        await client.close()


async def test_a_stalled_redis_times_out_and_the_client_recovers(
    server: tuple[subprocess.Popen[bytes], str],
) -> None:
    proc, url = server
    client = ScriptClient(url, timeout_s=0.3)
    try:
        await client.evalsha(SHA, SCRIPT, ["n"], [1])
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            results = await asyncio.gather(
                *(client.evalsha(SHA, SCRIPT, ["n"], [i]) for i in range(5)),
                return_exceptions=True,
            )
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        assert all(isinstance(r, OSError) for r in results), results  # TimeoutError or lost
        assert (await client.evalsha(SHA, SCRIPT, ["n"], [9]))[0] == 9
    finally:
        await client.close()


async def test_a_restarted_redis_is_reconnected() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_redis_server(tmp)
        client = ScriptClient(url, timeout_s=0.5)
        try:
            await client.evalsha(SHA, SCRIPT, ["n"], [1])
            proc.kill()
            proc.wait()
            with pytest.raises(OSError):
                await client.evalsha(SHA, SCRIPT, ["n"], [2])
            port = url.rsplit(":", 1)[1].split("/")[0]
            proc = subprocess.Popen(  # noqa: ASYNC220 (the test restarts its own Redis)
                ["redis-server", "--port", port, "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
            )
            for _ in range(50):
                try:
                    assert (await client.evalsha(SHA, SCRIPT, ["n"], [3]))[0] == 3
                    break
                except OSError:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("never reconnected")
        finally:
            await client.close()
            proc.kill()
            proc.wait()


async def test_a_deferred_call_rides_with_the_next_one_or_leaves_when_redis_is_idle(
    server: tuple[subprocess.Popen[bytes], str],
) -> None:
    _, url = server
    client = ScriptClient(url, timeout_s=2)
    try:
        await client.evalsha(SHA, SCRIPT, ["n"], [0])  # connected, script loaded
        # Nothing else in flight: no company is coming soon, so it leaves at once.
        idle = client.submit(SHA, ["n"], [1], defer_s=10)
        assert idle is not None
        assert (await asyncio.wait_for(idle, 5))[0] == 1
        # With a call in flight, it waits: for that call's reply (Redis is idle then)...
        busy = client.submit(SHA, ["n"], [2])
        await asyncio.sleep(0)  # busy's write has gone; its reply has not come back yet
        behind = client.submit(SHA, ["n"], [3], defer_s=10)
        assert busy is not None and behind is not None
        assert not behind.done()
        assert (await asyncio.wait_for(behind, 5))[0] == 3  # long before its 10 s
        assert busy.done()
        # ...or for the next call, whose write takes it along.
        busy = client.submit(SHA, ["n"], [4])
        await asyncio.sleep(0)
        deferred = client.submit(SHA, ["n"], [5], defer_s=10)
        assert deferred is not None
        now = await client.evalsha(SHA, SCRIPT, ["n"], [6])
        assert now[0] == 6 and deferred.done() and deferred.result()[0] == 5
    finally:
        await client.close()


async def test_a_unix_socket_url_is_served_with_its_database() -> None:
    # The store `o1-gateway serve` starts itself listens on a Unix socket only.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "redis.sock")
        proc, _ = start_redis_server(tmp, "--unixsocket", path, "--unixsocketperm", "700")
        client = ScriptClient(f"unix://{path}?db=2", timeout_s=2)
        try:
            assert ScriptClient.supports(f"unix://{path}")
            assert await client.evalsha(SHA, SCRIPT, ["n"], [7]) == [7, 1]
            assert redis.Redis(unix_socket_path=path, db=2).get("n") == b"1"
            assert redis.Redis(unix_socket_path=path, db=0).get("n") is None
        finally:
            await client.close()
            proc.kill()
            proc.wait()


async def test_a_call_that_never_left_says_so(server: tuple[subprocess.Popen[bytes], str]) -> None:
    """A lost connection fails every call on it; those it had not written yet never reached
    Redis (`NotSent`), those written may have run. No connection at all: `NotSent` too."""
    proc, url = server
    client = ScriptClient(url, timeout_s=2)
    try:
        await client.evalsha(SHA, SCRIPT, ["n"], [0])  # connected, script loaded
        written = client.submit(SHA, ["n"], [1])
        await asyncio.sleep(0)  # written; its reply not read yet
        held_back = client.submit(SHA, ["n"], [2], defer_s=10)  # waits for company
        assert written is not None and held_back is not None
        assert client._conn is not None and client._conn.transport is not None
        client._conn.transport.abort()
        try:
            await written  # its reply may have come back first
        except ConnectionError as lost:
            assert not isinstance(lost, NotSent)
        with pytest.raises(NotSent):
            await held_back
        proc.kill()
        proc.wait()
        with pytest.raises(NotSent):
            await client.evalsha(SHA, SCRIPT, ["n"], [3])
    finally:
        await client.close()
