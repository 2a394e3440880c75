"""Fine-tuning jobs, as the gateway follows them (`runtime.follower`): held at creation (the
training file's tokens times its epochs at the base's training price, for as long as a job may
run), and priced once upstream says the job ended from the tokens it trained, at the training
price the job was held at: a job that failed or was cancelled is charged what it reports
trained (nothing, when it trained nothing); one that says a count that is none (negative,
fractional, past `MOST_TRAINED_TOKENS`), or succeeded without saying what it trained, its
hold. Its fine-tuned model and result files become the team's.
"""

from __future__ import annotations

from typing import Any

from gateway.admission.pricing import training_cost
from gateway.runtime.follower import Ended, JobKind, Read
from gateway.wire.usage import Usage

# Far more than a training file (at most a few hundred million tokens) times its epochs.
MOST_TRAINED_TOKENS = 10**12


class TuningJobs(JobKind):
    name = "fine_tuning_job"
    path = "/fine_tuning/jobs"
    open_key = "o1gw:fine_tuning_jobs:open"
    ended_statuses = frozenset({"succeeded", "failed", "cancelled"})

    async def priced(self, job: dict[str, Any], record: dict[str, Any], read: Read) -> Ended:
        """A job followed with its base's `training_price` (micro-dollars per 1M tokens)."""
        trained = job.get("trained_tokens")
        if trained is None and job.get("status") != "succeeded":
            trained = 0  # it trained nothing
        if (
            isinstance(trained, bool)
            or not isinstance(trained, int)
            or not 0 <= trained <= MOST_TRAINED_TOKENS
        ):
            # Upstream billed the training, but the job does not say how much of it (or says
            # a count that is none): charged its hold, the most it could cost, as a lost bill is.
            cost = int(record["plan"]["reserve"])
            return Ended(Usage(), cost, self._made(job))
        cost = training_cost(trained, int(record["training_price"]))
        return Ended(Usage(prompt_tokens=trained), cost, self._made(job))

    @staticmethod
    def _made(job: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        """The fine-tuned model and the result files the job made."""
        made = [("model", m) for m in (job.get("fine_tuned_model"),) if isinstance(m, str)]
        made += [("file", f) for f in job.get("result_files") or () if isinstance(f, str)]
        return tuple(made)
