"""Cancelling the upstream wait when the client leaves (`cancel_on_disconnect`)."""

from __future__ import annotations

import asyncio
import gc
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.requests import Request

from gateway.errors import GatewayError
from gateway.patched_answers import cancel_on_disconnect


def request_with(receive: Any) -> Request:
    app = SimpleNamespace(state=SimpleNamespace(gateway=SimpleNamespace(loop=None)))
    return Request({"type": "http", "app": app}, receive)


@pytest.mark.anyio
async def test_a_quick_call_never_starts_a_watcher() -> None:
    received = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        received += 1
        return {"type": "http.disconnect"}

    tasks_before = len(asyncio.all_tasks())
    async with cancel_on_disconnect(request_with(receive), delay_s=0.2):
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
    started = loop.time()
    with pytest.raises(GatewayError) as info:
        async with cancel_on_disconnect(request_with(receive), delay_s=0.02):
            await asyncio.sleep(30)  # the upstream call
    assert info.value.status == 499
    assert loop.time() - started < 5
    # The request's own task was not left cancelled: it can go on to answer and log.
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


@pytest.mark.anyio
async def test_other_messages_are_ignored_and_a_cancel_from_elsewhere_propagates() -> None:
    messages = asyncio.Queue[dict[str, Any]]()
    messages.put_nowait({"type": "http.request", "body": b"", "more_body": False})

    async def receive() -> dict[str, Any]:
        return await messages.get()

    async def waiting() -> None:
        async with cancel_on_disconnect(request_with(receive), delay_s=0.0):
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
        async with cancel_on_disconnect(request_with(receive), delay_s=0.0):
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
