"""Noticing that the client left (`cancel_on_disconnect`), and streaming without a task group
(`StreamResponse`)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Any

import pytest

from gateway.server.stream_response import StreamResponse, cancel_on_disconnect
from gateway.wire.errors import GatewayError


@pytest.mark.anyio
async def test_a_quick_call_never_starts_a_watcher() -> None:
    received = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        received += 1
        return {"type": "http.disconnect"}

    tasks_before = len(asyncio.all_tasks())
    async with cancel_on_disconnect(receive, None, delay_s=0.2):
        assert len(asyncio.all_tasks()) == tasks_before
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)  # past the delay: the timer was cancelled with the block
    assert received == 0


@pytest.mark.anyio
async def test_a_client_that_leaves_during_a_long_wait_cancels_it_as_a_499() -> None:
    left = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await left.wait()
        return {"type": "http.disconnect"}

    loop = asyncio.get_running_loop()
    loop.call_later(0.1, left.set)
    cancelled = False
    with pytest.raises(GatewayError) as info:
        async with cancel_on_disconnect(receive, None, delay_s=0.02):
            try:
                await asyncio.sleep(30)  # the upstream call
            except asyncio.CancelledError:
                cancelled = True  # stopped when the client left, not waited out
                raise
    assert info.value.status == 499 and cancelled
    # The request's own task was not left cancelled: it can go on to answer and log.
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


@pytest.mark.anyio
async def test_told_of_a_client_that_leaves_the_call_goes_on() -> None:
    """With `on_gone`, the client leaving is told, not acted on: the call ends as it would."""
    told: list[str] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async with cancel_on_disconnect(
        receive, None, delay_s=0.0, on_gone=lambda: told.append("gone")
    ):
        await asyncio.sleep(0.05)  # the upstream call, answered after the client left
    assert told == ["gone"]


@pytest.mark.anyio
async def test_asked_about_a_client_that_leaves_the_call_stops_only_when_told_in_time() -> None:
    """With `unless`, the client leaving asks it: the call stops (a 499) when it says so while
    the call runs, and goes on while it does not; a stop said once the call ended does nothing
    to the task, which has gone on to other work."""
    stops: list[Callable[[], None]] = []
    asked = asyncio.Event()

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    def unless(stop: Callable[[], None]) -> None:
        stops.append(stop)
        asked.set()

    loop = asyncio.get_running_loop()
    with pytest.raises(GatewayError) as info:
        async with cancel_on_disconnect(receive, None, delay_s=0.0, unless=unless):
            await asyncio.wait_for(asked.wait(), 30)
            loop.call_soon(stops[0])  # told to stop (the answer is awaited by nobody)
            await asyncio.sleep(30)  # the upstream call
    assert info.value.status == 499

    asked.clear()
    async with cancel_on_disconnect(receive, None, delay_s=0.0, unless=unless):
        await asyncio.wait_for(asked.wait(), 30)  # the call goes on, and ends
    stops[1]()  # told too late
    await asyncio.sleep(0)  # the task's next step: not cancelled
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0 and len(stops) == 2


@pytest.mark.anyio
async def test_other_messages_are_ignored_and_a_cancel_from_elsewhere_propagates() -> None:
    messages = asyncio.Queue[dict[str, Any]]()
    messages.put_nowait({"type": "http.request", "body": b"", "more_body": False})

    async def receive() -> dict[str, Any]:
        return await messages.get()

    async def waiting() -> None:
        async with cancel_on_disconnect(receive, None, delay_s=0.0):
            await asyncio.sleep(30)

    task = asyncio.create_task(waiting())
    await asyncio.sleep(0.05)
    assert not task.done()  # a stray body message is not a disconnect
    task.cancel()  # e.g. server shutdown: not the client's doing, so no 499
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.anyio
async def test_a_watcher_that_was_started_leaves_no_cycle_behind() -> None:
    # Cyclic garbage would hold each slow request's whole graph until a GC pass: with 512
    # slow streams in flight that showed as 30 MB more peak memory.
    async def receive() -> dict[str, Any]:
        await asyncio.sleep(30)  # the client stays
        return {"type": "http.disconnect"}

    async def one_call() -> None:
        async with cancel_on_disconnect(receive, None, delay_s=0.0):
            await asyncio.sleep(0.01)  # long enough for the watcher to start and wait

    await one_call()  # warm: first calls create lasting objects
    await asyncio.sleep(0.01)
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            await one_call()
        await asyncio.sleep(0.01)  # the cancelled watchers finish
        assert gc.collect() == 0
    finally:
        gc.enable()


def stream_of(chunks: list[bytes], closed: list[str], gap_s: float = 0.0) -> Any:
    async def body() -> Any:
        try:
            for chunk in chunks:
                if gap_s:
                    await asyncio.sleep(gap_s)
                yield chunk
        finally:
            closed.append("closed")

    return body()


@pytest.mark.anyio
async def test_a_stream_is_sent_by_the_request_task_alone() -> None:
    sent: list[dict[str, Any]] = []
    closed: list[str] = []
    tasks: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        tasks.append(len(asyncio.all_tasks()))
        sent.append(message)

    async def receive() -> dict[str, Any]:
        raise AssertionError("a short stream never starts a watcher")

    response = StreamResponse(stream_of([b"a", b"b"], closed), media_type="text/event-stream")
    before = len(asyncio.all_tasks())
    await response({"type": "http"}, receive, send)
    assert [m.get("body") for m in sent] == [None, b"a", b"b", b""]
    assert sent[0]["status"] == 200 and sent[-1]["more_body"] is False
    assert (b"content-type", b"text/event-stream; charset=utf-8") in sent[0]["headers"]
    assert set(tasks) == {before}  # no task group, no listener task
    assert closed == ["closed"]


@pytest.mark.anyio
async def test_a_client_that_leaves_mid_stream_stops_it_and_closes_the_body() -> None:
    gone = asyncio.Event()
    sent: list[bytes] = []
    closed: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message.get("body", b""))
        if len(sent) == 3:
            gone.set()  # uvicorn drops what is sent after this, without an error

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    chunks = [b"%d" % i for i in range(1000)]
    response = StreamResponse(stream_of(chunks, closed, gap_s=0.001), loop=None)
    response_task = asyncio.ensure_future(response({"type": "http"}, receive, send))
    # The watcher starts after WATCH_AFTER_S; then the stream stops at its next step.
    await asyncio.wait_for(response_task, 2)
    assert closed == ["closed"]  # the relay's `finally` (close upstream, charge) ran
    assert len(sent) < len(chunks)
    assert not response_task.cancelled()  # it just ends, as Starlette's does


@pytest.mark.anyio
async def test_a_failing_stream_still_closes_its_body() -> None:
    closed: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        if message.get("body") == b"b":
            raise RuntimeError("boom")

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(30)
        return {"type": "http.disconnect"}

    response = StreamResponse(stream_of([b"a", b"b", b"c"], closed))
    with pytest.raises(RuntimeError):
        await response({"type": "http"}, receive, send)
    assert closed == ["closed"]


@pytest.mark.anyio
async def test_a_response_cancelled_before_its_body_began_still_runs_on_close() -> None:
    closed: list[str] = []
    writing = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        writing.set()
        await asyncio.sleep(30)  # the headers' write waits on a full socket buffer

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(30)
        return {"type": "http.disconnect"}

    async def on_close() -> None:
        closed.append("on_close")

    # The body's own `finally` never runs: it never began.
    response = StreamResponse(stream_of([b"a"], closed), on_close=on_close)
    task = asyncio.ensure_future(response({"type": "http"}, receive, send))
    await writing.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed == ["on_close"]
