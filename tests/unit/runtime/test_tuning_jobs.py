"""What an ended fine-tuning job is charged, from the job upstream answers."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.runtime.tuning_jobs import TuningJobs

RECORD = {"training_price": 25_000_000, "plan": {"reserve": 7_500_000}}


def priced(job: dict[str, Any]) -> tuple[int, int, tuple[tuple[str, str], ...]]:
    async def read(path: str) -> bytes | None:
        raise AssertionError(f"a job's price reads nothing more ({path})")

    ended = asyncio.run(TuningJobs(poll_s=60).priced(job, RECORD, read))
    return ended.cost, ended.usage.prompt_tokens, ended.made


def test_a_job_is_charged_what_it_trained_at_its_training_price() -> None:
    job = {"status": "succeeded", "trained_tokens": 120_000, "fine_tuned_model": "ft:m",
           "result_files": ["file-r"]}  # fmt: skip
    assert priced(job) == (3_000_000, 120_000, (("model", "ft:m"), ("file", "file-r")))


def test_a_job_that_failed_or_was_cancelled_having_trained_nothing_is_charged_nothing() -> None:
    for status in ("failed", "cancelled"):
        assert priced({"status": status, "trained_tokens": None}) == (0, 0, ())


def test_a_job_that_succeeded_without_saying_what_it_trained_is_charged_its_hold() -> None:
    # Upstream billed the training; 0 would let the team train for free.
    job = {"status": "succeeded", "trained_tokens": None, "fine_tuned_model": "ft:m"}
    assert priced(job) == (7_500_000, 0, (("model", "ft:m"),))


def test_a_job_that_says_a_count_that_is_none_is_charged_its_hold() -> None:
    """A negative count had been charged nothing, one past any training file a cost Redis
    cannot add; a fractional one in a failed job nothing: none says what upstream billed."""
    for status in ("succeeded", "failed", "cancelled"):
        for trained in (-120_000, 10**17, 1.5e5, "120000"):
            assert priced({"status": status, "trained_tokens": trained}) == (7_500_000, 0, ())
