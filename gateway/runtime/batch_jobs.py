"""Batches, as the gateway follows them (`runtime.follower`): held at creation (each line's
worst case at half price, for as long as its completion window), and priced once upstream says
the batch ended from its output file: each line's usage at half its model's price, rounded up
per line as upstream bills it (also when its team reads it: `settle_ended`, before the file
can be deleted); an output file gone before it was read (deleted by its team's key straight
upstream), at the batch's hold. The output file is read as upstream sends it, a block of
lines (about `OUTPUT_BLOCK_BYTES`) and a line at a time, never held whole (every line holds a
whole answer, and several batches may end at once); a line longer than `max_line` bytes is not
read, and prices the batch at its hold, as a usage not to believe does. The output and error
files become the team's for as long as upstream keeps them: until the file says it expires,
else as long as the batch asked (`output_expires_after`), else upstream's default
(`OUTPUT_KEPT_S`); one already deleted (its team read and deleted it before the batch was
settled) is not recorded again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.admission.pricing import batch_line_cost
from gateway.config import BatchesConfig, ModelConfig
from gateway.runtime.follower import Ended, JobKind, ModelOf, Read, Reads
from gateway.wire import jsonl
from gateway.wire.errors import GatewayError
from gateway.wire.tokens import OFF_LOOP_BYTES
from gateway.wire.usage import Usage, usage_from

# How long upstream keeps a batch's output and error files after it makes them, unless the
# batch asked less (`output_expires_after`): its default, and the most a batch may ask.
OUTPUT_KEPT_S = 30 * 86400
# About how many bytes of an output file's lines are priced at once: a block over
# `OFF_LOOP_BYTES` is priced in one hop to a thread, so the hops cost per megabyte, not per line.
OUTPUT_BLOCK_BYTES = 1 << 20


def output_kept_s(asked: Any) -> int:
    """How long upstream keeps the files of a batch created with `output_expires_after` =
    `asked`, from when it makes them. Anything but a count of seconds from their creation is
    upstream's default (the longest they are kept)."""
    if not isinstance(asked, dict) or asked.get("anchor") != "created_at":
        return OUTPUT_KEPT_S
    seconds = asked.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
        return OUTPUT_KEPT_S
    return seconds


class BatchJobs(JobKind):
    name = "batch"
    path = "/batches"
    open_key = "o1gw:batches:open"
    ended_statuses = frozenset({"completed", "failed", "expired", "cancelled"})

    def __init__(
        self,
        poll_s: float,
        model_of: ModelOf,
        max_line: int = BatchesConfig().max_output_line_bytes,
    ) -> None:
        super().__init__(poll_s)
        self._model_of = model_of
        self._max_line = max_line

    async def priced(self, job: dict[str, Any], record: dict[str, Any], read: Read) -> Ended:
        """A batch followed with the models its lines named (`models`: configured names)."""
        usage, cost = Usage(), 0
        output = job.get("output_file_id")
        if isinstance(output, str):
            dearest = self._dearest(record.get("models") or [])
            async with _chunks(read, f"/files/{output}/content") as chunks:
                if chunks is None:
                    # Gone before it was read (its team may delete it once the batch ended):
                    # upstream billed its lines all the same, which only the file said.
                    priced = None
                else:
                    priced = await self._priced_lines(chunks, dearest)
            # A line's usage not to believe, or a line too long to read: the batch at its
            # hold, as one unread.
            usage, cost = priced or (Usage(), int(record["plan"]["reserve"]))
        files = [f for f in (output, job.get("error_file_id")) if isinstance(f, str)]
        expiring = await self._expiring(files, record, read)
        made = tuple(("file", f) for f in files if f in expiring)
        return Ended(usage, cost, made, expiring)

    async def _expiring(
        self, files: list[str], record: dict[str, Any], read: Read
    ) -> dict[str, float]:
        """When upstream deletes each of the batch's files it still has (Unix seconds): as
        the file says, else as the batch asked, counted from now (after they were made)."""
        asked = time.time() + output_kept_s(record.get("output_expires_after"))
        expiring: dict[str, float] = {}
        for file_id in files:
            try:
                found = await read(f"/files/{file_id}")
            except GatewayError:
                found = b"{}"  # not read now: as the batch asked
            if found is None:
                continue  # deleted already: nothing to own
            try:
                file = orjson.loads(found)
            except orjson.JSONDecodeError:
                file = None
            said = file.get("expires_at") if isinstance(file, dict) else None
            if isinstance(said, int | float) and not isinstance(said, bool):
                expiring[file_id] = float(said)
            else:
                expiring[file_id] = asked
        return expiring

    def _dearest(self, names: list[str]) -> ModelConfig | None:
        """Of the models a batch's lines named, the one whose output costs most."""
        models = [found[1] for name in names if (found := self._model_of(name)) is not None]
        return max(models, key=lambda m: (m.price.output, m.price.input), default=None)

    async def _priced_lines(
        self, chunks: AsyncIterator[bytes], fallback: ModelConfig | None
    ) -> tuple[Usage, int] | None:
        """`_priced` of an output file's lines, block by block as they come; None as soon as
        a block is, or at a line longer than `max_line` (what it cost is unread)."""
        usage, cost = Usage(), 0
        read = jsonl.blocks(chunks, self._max_line, OUTPUT_BLOCK_BYTES)
        async with contextlib.aclosing(read):
            try:
                async for _, block in read:
                    if len(block) > OFF_LOOP_BYTES:
                        # A day's batch is tens of megabytes of lines, half a second of
                        # parsing that on the event loop would stall every team's requests.
                        priced = await asyncio.to_thread(self._priced, block, fallback)
                    else:
                        priced = self._priced(block, fallback)
                    if priced is None:
                        return None
                    usage, cost = _sum(usage, priced[0]), cost + priced[1]
            except jsonl.LineTooLong:
                return None
        return usage, cost

    def _priced(
        self, content: bytes | None, fallback: ModelConfig | None
    ) -> tuple[Usage, int] | None:
        """The usage and half-price cost of every answered line of an output file; a line
        answered by a model the config does not name (a newer snapshot) is priced as the
        dearest model the batch's lines named: never less than upstream bills. None when a
        line gives a usage that is none to believe (`usage_from`): what it cost is unknown."""
        prompt = completion = cached = reasoning = cost = 0
        for line in (content or b"").splitlines():
            try:
                entry = orjson.loads(line)
                body = entry["response"]["body"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
            given = body.get("usage") if isinstance(body, dict) else None
            used = usage_from(given)
            if used is None and given is not None:
                return None
            if used is None:
                continue
            found = self._model_of(str(body.get("model")))
            model = found[1] if found is not None else fallback
            if model is None:
                continue
            cost += batch_line_cost(model.price, used)
            prompt += used.prompt_tokens
            completion += used.completion_tokens
            cached += used.cached_tokens
            reasoning += used.reasoning_tokens
        return Usage(prompt, completion, cached, reasoning), cost


def _sum(a: Usage, b: Usage) -> Usage:
    return Usage(
        a.prompt_tokens + b.prompt_tokens,
        a.completion_tokens + b.completion_tokens,
        a.cached_tokens + b.cached_tokens,
        a.reasoning_tokens + b.reasoning_tokens,
    )


@contextlib.asynccontextmanager
async def _chunks(read: Read, path: str) -> AsyncIterator[AsyncIterator[bytes] | None]:
    """A file's content as it comes (`Reads.chunks`), or read whole by a `Read` that reads no
    other way, as one chunk."""
    if isinstance(read, Reads):
        async with read.chunks(path) as chunks:
            yield chunks
        return
    content = await read(path)
    yield None if content is None else _one(content)


async def _one(content: bytes) -> AsyncIterator[bytes]:
    yield content
