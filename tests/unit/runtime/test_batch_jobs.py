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


HOLD = 1_000_000


def priced_where(
    lines: int, monkeypatch: pytest.MonkeyPatch, last: bytes = LINE
) -> tuple[int, bool]:
    """The batch's cost, and whether its output file was priced with an event loop running in
    the pricing thread."""
    kind = BatchJobs(60, lambda name: (name, MODEL))
    on_loop: list[bool] = []
    pricing = kind._priced

    def watched(content: bytes | None, fallback: ModelConfig | None) -> tuple[Usage, int] | None:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return pricing(content, fallback)

    monkeypatch.setattr(kind, "_priced", watched)
    output = b"\n".join([*[LINE] * (lines - 1), last])

    async def read(path: str) -> bytes | None:
        return output if path.endswith("/content") else b"{}"

    job: dict[str, Any] = {"status": "completed", "output_file_id": "file-out"}
    record = {"models": ["gpt-4o"], "plan": {"reserve": HOLD}}
    ended = asyncio.run(kind.priced(job, record, read))
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


@pytest.mark.parametrize("lines", [3, 1_000], ids=["in place", "off the event loop"])
def test_a_line_whose_usage_is_no_count_prices_the_batch_at_its_hold(
    monkeypatch: pytest.MonkeyPatch, lines: int
) -> None:
    """A line reporting a count no call reaches (or a negative one) says nothing believable
    of what it cost: the batch is charged its hold, as when its output file is gone. Its cost
    had gone to Redis as a number it cannot add (a huge count), or the line was charged its
    other counts only (a negative prompt read as none)."""
    for usage in ({"prompt_tokens": -40, "completion_tokens": 150},
                  {"prompt_tokens": 40, "completion_tokens": 10**17}):  # fmt: skip
        absurd = orjson.dumps({
            "custom_id": "r", "response": {"status_code": 200, "body": {
                "model": "gpt-4o", "usage": usage}},
        })  # fmt: skip
        assert priced_where(lines, monkeypatch, absurd)[0] == HOLD
