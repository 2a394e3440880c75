"""The Batch API of the simulated upstream (raw ASGI handlers).

    POST /v1/batches               create from an uploaded `batch` file
    GET  /v1/batches               list (`limit` 1-100 default 20, `after`; newest first)
    GET  /v1/batches/{id}          retrieve: an unfinished batch moves one step (see batches.py)
    POST /v1/batches/{id}/cancel   cancel

Knobs: `x-sim-batch: complete` on create, or `POST /_sim/batches/{id}/complete` (no key), runs
the batch to its end at once; `x-sim-batch: queue-full` has it fail validation on the
organization's enqueued-token limit. On completion every line is answered by the simulator's own code
for its endpoint (`Host.answer_line`), the output (and error) lines are written to files of
purpose `batch_output`, and the bill gets the lines at half price.
"""

from __future__ import annotations

import time

import orjson

from gateway.simulator import batches, bill
from gateway.simulator import openai_errors as oe
from gateway.simulator.batches import Batch
from gateway.simulator.call import Call
from gateway.simulator.files_api import FilesApi
from gateway.simulator.host import Host
from gateway.simulator.ids import hex_id, request_id
from gateway.simulator.jobs_api import JobsApi

PREFIX = "/v1/batches"
STORED_BATCHES = 1024


class BatchesApi(JobsApi[Batch]):
    __slots__ = ()

    def __init__(self, host: Host, files: FilesApi) -> None:
        super().__init__(host, files, PREFIX, "Batch", batches.FINISHED, STORED_BATCHES)

    def _step(self, key: str, batch: Batch) -> None:
        now = int(time.time())
        if batch.status == "finalizing":
            self._finish(key, batch, now)
        elif batch.status not in batches.FINISHED:
            batch.advance(now)

    def _finish(self, key: str, batch: Batch, now: int) -> None:
        host = self._host
        endpoint = batch.object["endpoint"]
        outputs: list[bytes] = []
        failures: list[bytes] = []
        charges: list[bill.Charge] = []
        for line in batch.lines:
            status, body, charge = host.answer_line(endpoint, line["body"], key)
            seed = host.draw_seed()
            row = batches.output_line(
                hex_id("batch_req_", seed), line["custom_id"], status, request_id(seed), body
            )
            (outputs if status == 200 else failures).append(orjson.dumps(row))
            if charge is not None:
                charges.append(charge)
        batch_id = batch.object["id"]
        output_id = error_id = None
        if outputs:
            output = self._files.add(
                key, f"{batch_id}_output.jsonl", "batch_output", b"\n".join(outputs) + b"\n",
                batch.output_expires_s,
            )  # fmt: skip
            output_id = output.object["id"]
        if failures:
            errors = self._files.add(
                key, f"{batch_id}_error.jsonl", "batch_output", b"\n".join(failures) + b"\n",
                batch.output_expires_s,
            )  # fmt: skip
            error_id = errors.object["id"]
        usage = batches.usage_of([charge.detail for charge in charges])
        batch.finish(now, output_id, error_id, len(failures), usage)
        for charge in bill.batch_charges(charges):
            host.charge(key, charge)

    async def _create(self, call: Call) -> None:
        host = self._host
        body = await host.body_or_answered(call)
        if body is None:
            return
        rates = host.admit(call, 0)
        error = batches.check_create(body)
        stored = None if error else self._files.store.get(call.key, body["input_file_id"])
        if error is None and stored is None:
            error = oe.not_found("File", body["input_file_id"])
        if error is None and stored is not None and stored.object["purpose"] != "batch":
            error = oe.invalid_file("input_file_id", "the file's purpose must be 'batch'.")
        if error is not None or stored is None:
            await host.reply_error(call, error or oe.server_error(), rates)
            return
        lines, _ = batches.parse_lines(stored.data, body["endpoint"])
        model = lines[0]["body"].get("model") if lines else None
        batch_id = hex_id("batch_", host.draw_seed())
        obj = batches.batch_object(
            batch_id, body, int(time.time()), model if isinstance(model, str) else None
        )
        batch = Batch(
            obj, stored.data, output_expires_s=batches.output_expires_s(body),
            queue_full=call.knobs.batch_queue_full,
        )  # fmt: skip
        self._store.put(call.key, batch_id, batch)
        if call.knobs.batch_complete:
            self.complete(batch_id)
        await host.reply(call, orjson.dumps(batch.object), rates)
