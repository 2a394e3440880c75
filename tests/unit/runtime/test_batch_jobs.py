"""Where an ended batch's output file is priced: a large one off the event loop."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import orjson
import pytest

from gateway.config import ModelConfig, Price
from gateway.runtime import batch_jobs
from gateway.runtime.batch_jobs import BatchJobs
from gateway.runtime.follower import Reads
from gateway.wire.usage import Usage
from tests.unit.upstream.test_decoding import Held

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


class Upstream:
    """Answers the output file's content in chunks of `size` bytes, any other read with `{}`."""

    def __init__(self, output: bytes, size: int) -> None:
        self.content = Held([], [output[i : i + size] for i in range(0, len(output), size)])

    async def send(
        self, method: str, path: str, query: bytes, headers: dict[str, str], body: bytes
    ) -> Held:
        return self.content if path.endswith("/content") else Held([], [b"{}"])


def settled(
    output: bytes, size: int, max_line: int = 1 << 20, kind: BatchJobs | None = None
) -> tuple[int, Upstream]:
    """The cost of a batch whose output file upstream sends `size` bytes at a time, read as
    the follower reads it; and the upstream, to see what became of its answer."""
    kind = kind or BatchJobs(60, lambda name: (name, MODEL), max_line)
    upstream = Upstream(output, size)
    read = Reads(cast(Any, upstream), {})
    job: dict[str, Any] = {"status": "completed", "output_file_id": "file-out"}
    record = {"models": ["gpt-4o"], "plan": {"reserve": HOLD}}
    return asyncio.run(kind.priced(job, record, read)).cost, upstream


@pytest.mark.parametrize("size", [1, 7, 1 << 16], ids=["a byte", "7 bytes", "64 KiB"])
@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
@pytest.mark.parametrize("last", [True, False], ids=["last line ended", "last line unended"])
def test_an_output_file_read_as_it_comes_is_charged_as_read_whole(
    size: int, end: bytes, last: bool
) -> None:
    """Lines cut across upstream's reads (a CRLF too: its CR ends one read, its LF begins the
    next), blank lines, a last line without its end: each answered line counted once."""
    output = end.join([LINE, b"", LINE, LINE]) + (end if last else b"")
    assert settled(output, size)[0] == 3 * 800


def test_an_output_file_is_priced_a_block_at_a_time_never_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An output file far larger than its input (every line a whole answer) was read whole
    when its batch ended, and several ending at once could exhaust the worker's memory: what
    is priced at once is a block of lines, and what is held besides is a line at most."""
    monkeypatch.setattr(batch_jobs, "OUTPUT_BLOCK_BYTES", 4 * len(LINE))
    kind = BatchJobs(60, lambda name: (name, MODEL))
    pricing = kind._priced
    sizes: list[int] = []

    def watched(content: bytes | None, fallback: ModelConfig | None) -> tuple[Usage, int] | None:
        sizes.append(len(content or b""))
        return pricing(content, fallback)

    monkeypatch.setattr(kind, "_priced", watched)
    output = b"\n".join([LINE] * 1_000) + b"\n"
    assert settled(output, 1 << 16, kind=kind)[0] == 1_000 * 800
    assert sum(sizes) == len(output)
    assert max(sizes) < 5 * (len(LINE) + 1)  # a block, and one line at most over it


@pytest.mark.parametrize(
    "where", ["first", "between", "last, unended"], ids=lambda where: f"the {where} line"
)
def test_an_output_line_too_long_to_read_charges_the_batch_its_hold(where: str) -> None:
    """A line longer than `batches.max_output_line_bytes` is not held to be read: its usage is
    unknown, and the batch is charged its hold (each line's worst case at half price), never
    less than upstream bills, as when its output file is gone. Upstream's answer is let go of
    there, unread."""
    long = orjson.dumps({
        "custom_id": "r", "response": {"status_code": 200, "body": {
            "model": "gpt-4o", "usage": {"prompt_tokens": 40, "completion_tokens": 150},
            "choices": [{"message": {"content": "x" * 4096}}]}},
    })  # fmt: skip
    lines = {
        "first": [long, LINE, LINE, b""],
        "between": [LINE, long, LINE, b""],
        "last, unended": [LINE, LINE, long],
    }[where]
    cost, upstream = settled(b"\n".join(lines), 1_000, max_line=1_024)
    assert cost == HOLD
    assert upstream.content.closed
    # Read whole, without a bound, it is charged its three lines.
    assert settled(b"\n".join(lines), 1_000, max_line=1 << 20)[0] == 3 * 800
