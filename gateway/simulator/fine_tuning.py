"""Fine-tuning jobs: the create checks, the training file's tokens, the job and its life. Pure.

Life: `validating_files` -> `queued` -> `running` -> `succeeded`, one step per retrieval (or all
at once with `POST /_sim/fine_tuning/jobs/{id}/complete`). Leaving `validating_files`, a
training file that is not JSONL chat examples fails the job (`failed`, with `error`), and so
does the organization's quota for a job created with `x-sim-fine-tuning: over-quota`
(`over_quota`). On
success `fine_tuned_model` is `ft:<base>:sim-org:<suffix>:<8 chars>` and `trained_tokens` is
the training file's tokens times the epochs (`hyperparameters.n_epochs`, or the method's
`method.<type>.hyperparameters.n_epochs`; default 3): `count_text` over every message's
content, the roles and framing not counted. A succeeded job has a checkpoint for each of its
last `CHECKPOINTS` epochs (each a model, `<fine_tuned_model>:ckpt-step-<n>`) and one result
file of step metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.simulator import openai_errors as oe
from gateway.simulator.openai_errors import SimError
from gateway.simulator.rules import string_error
from gateway.wire.tokens import count_text
from gateway.wire.validation import metadata_error

BASE_MODELS = ("gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06")
ORGANIZATION = "sim-org"  # the organization's name, as fine-tunes' names carry it
DEFAULT_EPOCHS = 3
CHECKPOINTS = 3
MAX_SUFFIX = 64
STEPS = ("validating_files", "queued", "running", "succeeded")
FINISHED = ("succeeded", "failed", "cancelled")
# Resolved "auto" hyperparameters, as a job reports them once it runs.
BATCH_SIZE = 1
LEARNING_RATE_MULTIPLIER = 1.8


def _hyperparameters(body: dict[str, Any]) -> tuple[Any, str]:
    """The hyperparameters a request gives, and where: its method's, else the legacy field."""
    method = body.get("method")
    kind = method.get("type") if isinstance(method, dict) else None
    inner = method.get(kind) if isinstance(method, dict) and isinstance(kind, str) else None
    if isinstance(inner, dict) and inner.get("hyperparameters") is not None:
        return inner["hyperparameters"], f"method.{kind}.hyperparameters"
    return body.get("hyperparameters"), "hyperparameters"


def _epochs(body: dict[str, Any]) -> int | SimError:
    hyper, where = _hyperparameters(body)
    if hyper is None:
        return DEFAULT_EPOCHS
    if not isinstance(hyper, dict):
        return oe.invalid_type(where, "an object", hyper)
    epochs = hyper.get("n_epochs", "auto")
    if epochs == "auto":
        return DEFAULT_EPOCHS
    if isinstance(epochs, bool) or not isinstance(epochs, int):
        return oe.invalid_type(f"{where}.n_epochs", "an integer", epochs)
    if epochs < 1:
        return oe.below_minimum(f"{where}.n_epochs", 1, epochs)
    if epochs > 50:
        return oe.above_maximum(f"{where}.n_epochs", 50, epochs)
    return epochs


def check_create(body: dict[str, Any]) -> int | SimError:
    """The epochs of a valid create request, or its error (the files are checked by the caller)."""
    model = body.get("model")
    if model is None:
        return oe.missing_parameter("model")
    if model not in BASE_MODELS:
        return SimError(
            400,
            f"Model {oe.echo(model)} is not available for fine-tuning or does not exist.",
            param="model",
            code="model_not_available",
        )
    if body.get("training_file") is None:
        return oe.missing_parameter("training_file")
    suffix = body.get("suffix")
    if suffix is not None and (error := string_error("suffix", suffix, MAX_SUFFIX)) is not None:
        return error
    refused = metadata_error(body)
    if refused is not None:
        return oe.from_gateway(refused)
    return _epochs(body)


def training_tokens(data: bytes) -> int | str:
    """The tokens of a JSONL file of chat examples, or what is wrong with it."""
    total = 0
    examples = 0
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            example = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return f"line {number} is not valid JSON"
        messages = example.get("messages") if isinstance(example, dict) else None
        if not isinstance(messages, list) or not messages:
            return f"line {number} has no 'messages' array"
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                total += count_text(content)
        examples += 1
    if examples == 0:
        return "the file has no training examples"
    return total


def training_examples(data: bytes) -> int:
    return sum(1 for raw in data.splitlines() if raw.strip())


def job_object(job_id: str, body: dict[str, Any], epochs: int, created_at: int) -> dict[str, Any]:
    method = body.get("method")
    kind = method.get("type") if isinstance(method, dict) else None
    kind = kind if kind in ("supervised", "dpo") else "supervised"
    hyperparameters = {
        "n_epochs": epochs,
        "batch_size": BATCH_SIZE,
        "learning_rate_multiplier": LEARNING_RATE_MULTIPLIER,
    }
    return {
        "object": "fine_tuning.job",
        "id": job_id,
        "model": body["model"],
        "created_at": created_at,
        "finished_at": None,
        "fine_tuned_model": None,
        "organization_id": oe.ORGANIZATION_ID,
        "result_files": [],
        "status": "validating_files",
        "training_file": body["training_file"],
        "validation_file": body.get("validation_file"),
        "hyperparameters": hyperparameters,
        "trained_tokens": None,
        "error": None,
        "seed": body.get("seed") if isinstance(body.get("seed"), int) else 42,
        "suffix": body.get("suffix"),
        "metadata": body.get("metadata"),
        "integrations": body.get("integrations") or [],
        "estimated_finish": None,
        "method": {"type": kind, kind: {"hyperparameters": hyperparameters}},
    }


def over_quota() -> dict[str, Any]:
    """The error a job fails with when its training would pass the organization's spending
    limit. A guess: the facts record no failed job's error; the wording is as users quote
    OpenAI's, the code that of OpenAI's quota refusals (`insufficient_quota`)."""
    return {
        "code": "insufficient_quota",
        "message": "Creating this fine-tuning job would exceed your hard limit, please check your "
        f"plan and billing details. Quota remaining for {oe.ORGANIZATION_ID}: USD 0.00.",
        "param": None,
    }


def fine_tuned_name(base: str, suffix: str | None, tag: str) -> str:
    return f"ft:{base}:{ORGANIZATION}:{suffix or ''}:{tag}"


def checkpoint_steps(examples: int, epochs: int) -> list[int]:
    """The steps of a succeeded job's checkpoints, newest first: the end of each of its last
    epochs (a step is one example at batch size 1)."""
    return [examples * epoch for epoch in range(epochs, max(epochs - CHECKPOINTS, 0), -1)]


def checkpoint_object(
    checkpoint_id: str, job: dict[str, Any], step: int, created_at: int
) -> dict[str, Any]:
    loss = round(1.0 / (1 + step), 4)
    return {
        "object": "fine_tuning.job.checkpoint",
        "id": checkpoint_id,
        "created_at": created_at,
        "fine_tuned_model_checkpoint": f"{job['fine_tuned_model']}:ckpt-step-{step}",
        "fine_tuning_job_id": job["id"],
        "step_number": step,
        "metrics": {
            "step": step,
            "train_loss": loss,
            "train_mean_token_accuracy": round(1 - loss, 4),
            "valid_loss": loss,
            "valid_mean_token_accuracy": round(1 - loss, 4),
            "full_valid_loss": loss,
            "full_valid_mean_token_accuracy": round(1 - loss, 4),
        },
    }


def step_metrics(steps: int) -> bytes:
    """The result file of a succeeded job: its training metrics, one CSV row a step."""
    rows = [b"step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"]
    for step in range(1, steps + 1):
        loss = round(1.0 / (1 + step), 4)
        rows.append(f"{step},{loss},{round(1 - loss, 4)},,".encode())
    return b"\n".join(rows) + b"\n"


@dataclass(slots=True)
class Job:
    object: dict[str, Any]
    # The training file's bytes, read at create.
    training_data: bytes
    events: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    # Fails leaving `validating_files`, on the organization's quota (`over_quota`).
    over_quota: bool = False

    @property
    def status(self) -> str:
        return str(self.object["status"])

    def event(self, event_id: str, message: str, now: int, level: str = "info") -> None:
        self.events.append(
            {
                "object": "fine_tuning.job.event",
                "id": event_id,
                "created_at": now,
                "level": level,
                "message": message,
                "data": {},
                "type": "message",
            }
        )

    def advance(self, now: int, model_tag: str) -> tuple[str, str]:
        """Move one step on; (new status, the event message that step logs)."""
        obj = self.object
        status = self.status
        if status == "validating_files":
            tokens = training_tokens(self.training_data)
            if isinstance(tokens, str) or self.over_quota:
                error = over_quota() if self.over_quota else {
                    "code": "invalid_training_file",
                    "message": f"The job failed due to an invalid training file: {tokens}.",
                    "param": "training_file",
                }  # fmt: skip
                obj.update(status="failed", finished_at=now, error=error)
                return "failed", error["message"]
            obj.update(status="queued")
            return "queued", "Files validated, moving job to queued state"
        if status == "queued":
            obj.update(status="running")
            return "running", "Fine-tuning job started"
        if status == "running":
            tokens = training_tokens(self.training_data)
            assert isinstance(tokens, int)  # validated when it left validating_files
            name = fine_tuned_name(obj["model"], obj.get("suffix"), model_tag)
            obj.update(
                status="succeeded",
                finished_at=now,
                fine_tuned_model=name,
                trained_tokens=tokens * obj["hyperparameters"]["n_epochs"],
            )
            return "succeeded", "The job has successfully completed"
        return status, ""

    def cancel(self, now: int) -> SimError | None:
        if self.status in FINISHED:
            return oe.cannot_cancel("fine-tuning job", self.status)
        self.object.update(status="cancelled", finished_at=now)
        return None
