"""Where an ended batch's output file is priced: a large one off the event loop."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from gateway.config import ModelConfig, Price
from gateway.runtime.batch_jobs import BatchJobs
from gateway.wire.usage import Usage

MODEL = ModelConfig(price=Price(input=2_500_000, cached_input=1_250_000, output=10_000_000))
LINE = orjson.dumps({
    "custom_id": "r", "response": {"status_code": 200, "body": {
        "model": "gpt-4o", "usage": {"prompt_tokens": 40, "completion_tokens": 150}}},
})  # fmt: skip


def priced_where(lines: int, monkeypatch: pytest.MonkeyPatch) -> tuple[int, bool]:
    """The batch's cost, and whether its output file was priced with an event loop running in
    the pricing thread."""
    kind = BatchJobs(60, lambda name: (name, MODEL))
    on_loop: list[bool] = []
    pricing = kind._priced

    def watched(content: bytes | None, fallback: ModelConfig | None) -> tuple[Usage, int]:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return pricing(content, fallback)

    monkeypatch.setattr(kind, "_priced", watched)
    output = b"\n".join([LINE] * lines)

    async def read(path: str) -> bytes | None:
        return output if path.endswith("/content") else b"{}"

    job: dict[str, Any] = {"status": "completed", "output_file_id": "file-out"}
    ended = asyncio.run(kind.priced(job, {"models": ["gpt-4o"], "plan": {"reserve": 1}}, read))
    return ended.cost, on_loop == [True]


def test_a_large_output_file_is_priced_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    # 50,000 answered lines, some 60 MB, took half a second to price: on the event loop, every
    # team's requests on the worker waited for it.
    lines = 1_000  # over 64 KiB
    cost, on_loop = priced_where(lines, monkeypatch)
    assert not on_loop
    assert cost == lines * 800  # each line at half price: 40 in, 150 out, rounded up


def test_a_small_output_file_is_priced_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    cost, on_loop = priced_where(3, monkeypatch)
    assert on_loop
    assert cost == 3 * 800
