"""The fine-tuning endpoints of the simulated upstream (raw ASGI handlers).

    POST /v1/fine_tuning/jobs               create (training file: an uploaded `fine-tune` file)
    GET  /v1/fine_tuning/jobs               list (`limit`, `after`; newest first)
    GET  /v1/fine_tuning/jobs/{id}          retrieve: an unfinished job moves one step
    POST /v1/fine_tuning/jobs/{id}/cancel   cancel
    GET  /v1/fine_tuning/jobs/{id}/events   its events, newest first
    GET  /v1/fine_tuning/jobs/{id}/checkpoints   a succeeded job's checkpoints, newest first

`POST /_sim/fine_tuning/jobs/{id}/complete` (no key) runs a job to its end; `x-sim-fine-tuning:
over-quota` on create has the job fail on the organization's quota as it leaves validation. A succeeded job's
model joins its key's model list (`DELETE /v1/models/{model}` takes it out) and answers chat
completions like its base; its step metrics are a `fine-tune-results` file of its key's
(`result_files`); the bill gets the training (`trained_tokens` at the base's training price)
when the job succeeds.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from gateway.simulator import bill, fine_tuning
from gateway.simulator import openai_errors as oe
from gateway.simulator.call import Call
from gateway.simulator.files_api import FilesApi
from gateway.simulator.fine_tuning import Job
from gateway.simulator.host import Host
from gateway.simulator.ids import alnum_id
from gateway.simulator.jobs_api import JobsApi
from gateway.simulator.openai_errors import SimError
from gateway.simulator.responses_api import Handler

PREFIX = "/v1/fine_tuning/jobs"
STORED_JOBS = 256


class FineTuningApi(JobsApi[Job]):
    __slots__ = ("_models",)

    def __init__(self, host: Host, files: FilesApi) -> None:
        super().__init__(host, files, PREFIX, "FineTuningJob", fine_tuning.FINISHED, STORED_JOBS)
        # key -> fine-tuned model -> (base, created); bounded by the jobs a key can keep.
        self._models: dict[str, dict[str, tuple[str, int]]] = {}

    def more(self) -> dict[str, Handler]:
        return {"events": self._events, "checkpoints": self._checkpoints}

    def base_of(self, key: str, model: str) -> str | None:
        """The base model of `key`'s fine-tuned `model`, None if it has no such model."""
        entry = self._models.get(key, {}).get(model)
        return entry[0] if entry is not None else None

    def models(self, key: str) -> list[dict[str, Any]]:
        return [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": fine_tuning.ORGANIZATION,
            }
            for name, (_, created) in self._models.get(key, {}).items()
        ]

    def delete_model(self, key: str, model: str) -> bool:
        """Take `key`'s fine-tuned `model` away; False if it has no such model."""
        return self._models.get(key, {}).pop(model, None) is not None

    def _step(self, key: str, job: Job) -> None:
        if job.status in fine_tuning.FINISHED:
            return
        host = self._host
        now = int(time.time())
        status, message = job.advance(now, alnum_id("", host.draw_seed(), 8))
        level = "error" if status == "failed" else "info"
        job.event(alnum_id("ft-event-", host.draw_seed(), 24), message, now, level)
        if status == "succeeded":
            self._results(key, job, now)
            name = job.object["fine_tuned_model"]
            models = self._models.setdefault(key, {})
            models[name] = (job.object["model"], now)
            while len(models) > STORED_JOBS:
                models.pop(next(iter(models)))
            host.charge(
                key, bill.training_charge(job.object["model"], name, job.object["trained_tokens"])
            )

    def _results(self, key: str, job: Job, now: int) -> None:
        """What a succeeded job leaves beside its model: its checkpoints and step metrics."""
        host, obj = self._host, job.object
        examples = fine_tuning.training_examples(job.training_data)
        steps = fine_tuning.checkpoint_steps(examples, obj["hyperparameters"]["n_epochs"])
        job.checkpoints = [
            fine_tuning.checkpoint_object(alnum_id("ftckpt_", host.draw_seed(), 24), obj, step, now)
            for step in steps
        ]
        metrics = fine_tuning.step_metrics(steps[0] if steps else 0)
        stored = self._files.add(key, "step_metrics.csv", "fine-tune-results", metrics)
        obj["result_files"] = [stored.object["id"]]

    def _file_error(self, key: str, param: str, file_id: Any) -> SimError | None:
        stored = self._files.store.get(key, file_id) if isinstance(file_id, str) else None
        if stored is None:
            return SimError(
                400, f"invalid {param}: {file_id}", param=param, code=f"invalid_{param}"
            )
        if stored.object["purpose"] != "fine-tune":
            return SimError(
                400,
                f"File {file_id} has purpose '{stored.object['purpose']}'; fine-tuning needs "
                "'fine-tune'.",
                param=param,
                code=f"invalid_{param}",
            )
        return None

    async def _create(self, call: Call) -> None:
        host = self._host
        body = await host.body_or_answered(call)
        if body is None:
            return
        rates = host.admit(call, 0)
        epochs = fine_tuning.check_create(body)
        error = epochs if isinstance(epochs, SimError) else None
        if error is None:
            error = self._file_error(call.key, "training_file", body["training_file"])
        if error is None and body.get("validation_file") is not None:
            error = self._file_error(call.key, "validation_file", body["validation_file"])
        if error is not None or isinstance(epochs, SimError):
            await host.reply_error(call, error or oe.server_error(), rates)
            return
        stored = self._files.store.get(call.key, body["training_file"])
        assert stored is not None  # checked above
        now = int(time.time())
        job_id = alnum_id("ftjob-", host.draw_seed(), 24)
        job = Job(
            fine_tuning.job_object(job_id, body, epochs, now), stored.data,
            over_quota=call.knobs.tuning_over_quota,
        )  # fmt: skip
        job.event(
            alnum_id("ft-event-", host.draw_seed(), 24), f"Created fine-tuning job: {job_id}", now
        )
        self._store.put(call.key, job_id, job)
        await host.reply(call, orjson.dumps(job.object), rates)

    async def _events(self, call: Call) -> None:
        job, rates = await self._found(call)
        if job is not None:
            await self._page(call, job.events, rates)

    async def _checkpoints(self, call: Call) -> None:
        job, rates = await self._found(call)
        if job is not None:
            await self._page(call, job.checkpoints[::-1], rates)
