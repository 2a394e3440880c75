"""The simulated OpenAI upstream as a raw ASGI app (September 2024 behaviour).

Raw ASGI with orjson because this app is the baseline of the gateway's benchmarks: a framework
router and response classes would cost more than the simulated work itself.

Endpoints: POST /v1/chat/completions (JSON or SSE; `store: true` keeps it, see stored_chat.py),
GET /v1/models, GET /v1/models/{id} (with the key's fine-tuned models; DELETE takes one away),
POST /v1/embeddings, POST /v1/moderations, the Responses API under /v1/responses
(responses_api.py), files (files_api.py), batches (batches_api.py), fine-tuning
(tuning_api.py), vector stores (vector_stores.py), images, audio and legacy completions
(media_api.py); anything else is 404 "Invalid URL (METHOD /path)". State (stored objects,
files, jobs) is in memory, per key, bounded.

Without a key: GET /_sim/bill is what OpenAI would charge for every billable call answered so
far, in micro-dollars, per key and (endpoint, model) (bill.py); DELETE /_sim/bill resets it.
POST /_sim/batches/{id}/complete and POST /_sim/fine_tuning/jobs/{id}/complete run a batch or a
fine-tuning job to its end at once (they otherwise move one step per retrieval).
Every /v1 call needs `Authorization: Bearer <key>` with a key from `config.api_keys`.
With `config.request_log > 0`, GET /_sim/requests lists the last requests received (method, path,
query string, lower-case headers, parsed JSON body or null, the body as text, wall-clock time)
and DELETE /_sim/requests clears them; these two need no key and are not themselves logged.

Request-header knobs, honoured when `config.header_knobs` is true:

    x-sim-latency-ms: F          delay before answering (replaces config.latency_ms)
    x-sim-ttft-ms: F             streams: delay before the first chunk (replaces config.ttft_ms)
    x-sim-chunk-interval-ms: F   streams: pause between chunks (replaces config.chunk_interval_ms)
    x-sim-fault: NAME            answer with a fault instead:
        429          rate limit on requests (RPM), with retry-after and retry-after-ms
        429-tokens   rate limit on tokens (TPM), same headers
        quota        429 insufficient_quota
        500, 503     OpenAI's server_error bodies
        502          Cloudflare's HTML "502 Bad Gateway" page, as OpenAI's edge sends it
        edge-504     the model answers the call and bills it (a whole answer in full, a
                     stream its prompt: the edge left as it began), and the edge answers
                     Cloudflare's HTML "504 Gateway Time-out" page instead, as when the
                     edge stops waiting for an answer the model goes on to finish
        timeout      sleep an hour, then answer; a client that leaves ends the wait early
                     (a whole answer is then billed all the same, see below)
        reset        drop the connection: streams send three chunks first, other answers send
                     the headers and half the body; raises SimulatedReset
        stream-error streams send three chunks, then `data: {"error": ...}` and end without
                     [DONE], as OpenAI ends a failed stream; other answers get the 500
        stream-quota the same with the insufficient_quota error; other answers get its 429
    x-sim-retry-after: F         seconds announced by the 429 faults (default 1)
    x-sim-answer: TEXT           the answer content, verbatim (UTF-8)
    x-sim-answer-b64: B64        the same, base64 of UTF-8 (for text with newlines)
    x-sim-o1-streaming: true     o1 models accept `stream` (the November 2024 behaviour)
    x-sim-reasoning-tokens: N    reasoning tokens a reasoning model reports
    x-sim-tool-calls: N          /v1/responses: the hosted tool calls (web search, file search,
                                 code interpreter) the response makes, within max_tool_calls
                                 (default: one per hosted tool of the request)
    x-sim-prompt-tools: T,T      /v1/responses: the hosted tools (types) a request's stored
                                 prompt template (`prompt`) brings; templates add no text
    x-sim-service-tier: TIER     chat and /v1/responses: the `service_tier` that serves the
                                 request, billed, and the answer says so (default, flex,
                                 priority, scale), as when upstream downgrades a priority
                                 request or a project serves `auto` at priority; without it,
                                 the tier asked for (an "auto" request, or a response naming
                                 none: default). A chat answer names it only to a request
                                 naming a tier, as OpenAI's does
    x-sim-batch: complete        POST /v1/batches: the batch is completed at once
    x-sim-fine-tuning: over-quota  POST /v1/fine_tuning/jobs: the job fails on the
                                 organization's quota as it leaves validation (its error and
                                 its event name the organization)
    x-sim-background: failed     POST /v1/responses with background: the response fails as it
                                 runs, on the organization's token rate limit (its error's
                                 message names the organization, as the 429's does)
    x-sim-today: YYYY-MM-DD      the day the request is answered on (replaces config.today):
                                 a model shut down by then, or not yet released, is 404
                                 model_not_found and left out of GET /v1/models (lifecycle.py)

Timing: `latency_ms` delays every authenticated /v1 answer (unknown URLs and key errors come
back at once, as from OpenAI's edge); streams then wait `ttft_ms` before sending their headers
(OpenAI's headers arrive with the first token) and `chunk_interval_ms` between chunks.
Non-streamed answers wait only `latency_ms`.

A client that leaves during that wait (or the `timeout` fault's) ends a stream there, unbilled:
the model has not begun, as OpenAI stops a stream whose reader left. A stream that has begun is
billed what it generated until the simulator noticed its client left (`stream_bill`): its
prompt, the reasoning of its `ttft_ms` (the model's thinking; the share that passed, if the
client left during it) and the frames sent. A POST answered whole is not stopped: OpenAI
finishes the answer and bills it whoever waits, so the simulator answers it at once, to nobody,
and bills it (`disconnect.finished_when_left`).

Every response carries `x-request-id`, `openai-processing-ms`, `openai-version`, the
`openai-organization` the key belongs to (the name its fine-tunes carry), and the six
`x-ratelimit-*` headers (per key, see ratelimit.py; limits are reported, never enforced).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from typing import Any

import orjson

from gateway.config import SimulatorConfig, iso_date
from gateway.simulator import batch_lines, bill, embeddings, fine_tuning, lifecycle, moderations
from gateway.simulator import openai_errors as oe
from gateway.simulator.answers import (
    Answer,
    chunk_objects,
    completion_object,
    compose,
    prompt_seed,
    served_tier,
)
from gateway.simulator.batches_api import BatchesApi
from gateway.simulator.call import Call, Header, Message, Receive, Scope, Send
from gateway.simulator.catalog import model_list, model_object
from gateway.simulator.disconnect import DisconnectWatch, finished_when_left
from gateway.simulator.files_api import FilesApi
from gateway.simulator.ids import completion_id, moderation_id, request_id
from gateway.simulator.knobs import (
    EDGE_FAULT,
    NO_KNOBS,
    STREAM_FAULTS,
    Knobs,
    fault_index,
    parse_knobs,
)
from gateway.simulator.media_api import MediaApi
from gateway.simulator.openai_errors import SimError
from gateway.simulator.prompt_cache import PromptCache, message_tokens
from gateway.simulator.ratelimit import RateHeaders, RateWindow
from gateway.simulator.response_store import ResponseStore
from gateway.simulator.responses_api import Handler, ResponsesApi
from gateway.simulator.rules import check, requested_output, resolve_chat_model
from gateway.simulator.stored_chat import StoredChatApi
from gateway.simulator.stream_bill import StreamBill, chunk_output
from gateway.simulator.tuning_api import FineTuningApi
from gateway.simulator.vector_stores import VectorStoresApi
from gateway.wire import sse
from gateway.wire.headers import go_duration
from gateway.wire.tokens import TOKENS_FOR_REPLY

TIMEOUT_FAULT_S = 3600.0
PROMPT_CACHE_ENTRIES = 4096
STORED_RESPONSES = 4096
CHAT_PATH = "/v1/chat/completions"

_JSON = b"application/json"
_HTML = b"text/html"
_SSE = sse.CONTENT_TYPE.encode()
_VERSION = (b"openai-version", b"2020-10-01")
_ORGANIZATION = (b"openai-organization", fine_tuning.ORGANIZATION.encode())


class SimulatedReset(Exception):
    """Raised on purpose by `x-sim-fault: reset`: the ASGI server then drops the connection."""


class _ClientGone(Exception):
    pass


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class Simulator:
    """One simulated upstream. All state (rate windows, prompt cache, request log, random ids)
    lives on the instance, so two simulators in one process never share anything."""

    def __init__(self, config: SimulatorConfig, *, seed: int | None = None) -> None:
        self.config = config
        self._keys = frozenset(config.api_keys)
        self._today = iso_date(config.today)
        # Seeded from OS entropy unless a test pins it.
        self._random = random.Random(seed)
        self._rates = RateWindow(config.rpm_limit, config.tpm_limit)
        self._idle_rates = _rate_header_bytes(self._rates.idle())
        self.prompt_cache = PromptCache(PROMPT_CACHE_ENTRIES)
        self.responses = ResponsesApi(self, ResponseStore(STORED_RESPONSES))
        self.bill = bill.Bill()
        self._files = FilesApi(self)
        self._batches = BatchesApi(self, self._files)
        self.media = MediaApi(self)
        self._tuning = FineTuningApi(self, self._files)
        self._stored_chat = StoredChatApi(self)
        vector_stores = VectorStoresApi(self, self._files)
        # Feature modules by path prefix; each routes its own paths (None: invalid URL).
        self._apis: tuple[tuple[str, Callable[[str, str], Handler | None]], ...] = (
            ("/v1/responses", self.responses.route),
            ("/v1/chat/completions/", self._stored_chat.route),
            ("/v1/files", self._files.route),
            ("/v1/batches", self._batches.route),
            ("/v1/fine_tuning/", self._tuning.route),
            ("/v1/vector_stores", vector_stores.route),
            ("/v1/images/", self.media.route),
            ("/v1/audio/", self.media.route),
            ("/v1/completions", self.media.route),
        )
        self._log: deque[dict[str, Any]] | None = (
            deque(maxlen=config.request_log) if config.request_log > 0 else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            try:
                await self._http(scope, receive, send)
            except _ClientGone:
                return
        elif kind == "lifespan":
            await _lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method: str = scope["method"]
        path: str = scope["path"]
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        body = await _read_body(receive)

        if path.startswith("/_sim/") and await self._sim(method, path, send):
            return
        if self._log is not None:
            self._log.append(
                {
                    "method": method,
                    "path": path,
                    "query": scope.get("query_string", b"").decode("latin-1"),
                    "headers": headers,
                    "body": _parse_or_none(body),
                    # As sent (a key given twice, or spelled with escapes, shows here only).
                    "raw": body.decode("utf-8", "replace"),
                    "time": time.time(),
                }
            )

        handler = self._route(method, path)
        if handler is None:
            await self._error(send, oe.invalid_url(method, path), started, self._idle_rates)
            return
        key, auth_error = self._authenticate(headers.get("authorization"))
        if auth_error is not None:
            await self._error(send, auth_error, started, self._idle_rates)
            return

        knobs = NO_KNOBS
        if self.config.header_knobs and any(name.startswith("x-sim-") for name in headers):
            parsed_knobs = parse_knobs(headers)
            if isinstance(parsed_knobs, SimError):
                await self._error(send, parsed_knobs, started, self._idle_rates)
                return
            knobs = parsed_knobs
        latency = knobs.latency_ms if knobs.latency_ms is not None else self.config.latency_ms
        wait_s = latency / 1000 + (TIMEOUT_FAULT_S if knobs.fault == "timeout" else 0)
        content_type = headers.get("content-type", "")
        if wait_s > 0:
            # Like OpenAI, stop working on a stream whose client has gone; a whole answer is
            # finished and billed all the same (at once: nobody waits for the rest of its time).
            watch = DisconnectWatch(receive)
            try:
                if await watch.sleep(wait_s) and not finished_when_left(method, body, content_type):
                    return
            finally:
                watch.close()
        query = scope.get("query_string", b"").decode("latin-1")
        if knobs.fault == EDGE_FAULT:
            # The model answers, and bills, a caller that is gone (the edge stopped waiting):
            # a whole answer in full, a stream what it generated before it noticed.
            await handler(
                Call(path, query, body, key, knobs, started, _gone, _nowhere, content_type)
            )
            await self._send(send, 504, _HTML, oe.CLOUDFLARE_504, started, self._idle_rates)
            return
        await handler(Call(path, query, body, key, knobs, started, receive, send, content_type))

    def _route(self, method: str, path: str) -> Handler | None:
        if path == "/v1/chat/completions":
            return self._chat if method == "POST" else self._stored_chat.route(method, path)
        for prefix, route in self._apis:
            if path.startswith(prefix):
                return route(method, path)
        if method == "POST":
            if path == "/v1/embeddings":
                return self._embeddings
            if path == "/v1/moderations":
                return self._moderations
        elif method == "GET":
            if path == "/v1/models":
                return self._models
            if path.startswith("/v1/models/") and len(path) > len("/v1/models/"):
                return self._model
        elif method == "DELETE" and path.startswith("/v1/models/"):
            return self._delete_model
        return None

    def _authenticate(self, authorization: str | None) -> tuple[str, SimError | None]:
        if not authorization:
            return "", oe.missing_api_key()
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return "", oe.missing_api_key()
        if key not in self._keys:
            return "", oe.invalid_api_key(key)
        return key, None

    # --- endpoints -------------------------------------------------------------------------

    async def body_or_answered(self, call: Call) -> dict[str, Any] | None:
        """The JSON object a POST carries; None once a parse error or a fault has answered."""
        body = _parse_object(call.body)
        if isinstance(body, SimError):
            await self._error(call.send, body, call.started, self.admit(call, 0))
            return None
        if await self.fault(call, body):
            return None
        refusal = lifecycle.refusal(body.get("model"), self.today(call))
        if refusal is not None:
            await self._error(call.send, refusal, call.started, self.admit(call, 0))
            return None
        return body

    def today(self, call: Call) -> date:
        """The day `call` is answered on: its `x-sim-today` knob, else `config.today`."""
        return call.knobs.today or self._today

    async def _chat(self, call: Call) -> None:
        body = await self.body_or_answered(call)
        if body is None:
            return
        answer, tokens = self.chat_answer(body, call.key, call.knobs)
        rates = self.admit(call, tokens)
        if isinstance(answer, SimError):
            await self._error(call.send, answer, call.started, rates)
            return
        chat_id = completion_id(self._random.getrandbits(64))
        created = int(time.time())
        if body.get("store") is True:  # streamed or not, as OpenAI keeps both
            self._stored_chat.keep(
                call.key, body, completion_object(answer, completion_id=chat_id, created=created)
            )
        if body.get("stream") is True:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            chunks = chunk_objects(
                answer, completion_id=chat_id, created=created, include_usage=include_usage
            )
            frames = [sse.encode(chunk) for chunk in chunks]
            failure = sse.encode(oe.stream_failure(call.knobs.fault).payload())
            bill_of = StreamBill(
                CHAT_PATH, answer.model, answer.usage(), chunks, chunk_output, answer.service_tier
            )
            await self.stream(call, frames, rates, last=sse.DONE, failure=failure, bill=bill_of)
            return
        self.charge(call.key, batch_lines.chat_charge(answer))
        completion = completion_object(answer, completion_id=chat_id, created=created)
        payload = orjson.dumps(completion)
        if call.knobs.fault == "reset":
            await self._reset(call, payload, rates)
        await self._send(call.send, 200, _JSON, payload, call.started, rates)

    def chat_answer(
        self, body: dict[str, Any], key: str, knobs: Knobs
    ) -> tuple[Answer | SimError, int]:
        """The answer to a chat request (or its error) and the tokens the rate window admits.

        A key's fine-tuned model answers as its base would, under its own name."""
        asked = body.get("model")
        base = self._tuning.base_of(key, asked) if isinstance(asked, str) else None
        if base is not None:
            body = {**body, "model": base}
        messages = body.get("messages")
        per_message = message_tokens(messages) if isinstance(messages, list) else None
        prompt_tokens = sum(per_message) + TOKENS_FOR_REPLY if per_message is not None else 0
        error = check(
            body,
            o1_streaming=knobs.o1_streaming,
            prompt_tokens=prompt_tokens if per_message is not None else None,
        )
        tokens = prompt_tokens + (requested_output(body) or 0)
        if error is not None:
            return error, tokens
        assert isinstance(messages, list) and per_message is not None  # check() passed
        model = resolve_chat_model(body["model"])
        assert model is not None
        answer = compose(
            body,
            model,
            prompt_tokens=prompt_tokens,
            content_seed=prompt_seed(messages),
            id_seed=self._random.getrandbits(64),
            cached_tokens=self.prompt_cache.lookup_and_store(messages, per_message),
            answer=knobs.answer,
            reasoning_tokens=knobs.reasoning_tokens,
        )
        tier = body.get("service_tier")
        if tier is not None or knobs.service_tier is not None:
            answer = replace(
                answer,
                service_tier=served_tier(tier, knobs.service_tier),
                tier_told=tier is not None,
            )
        return (replace(answer, model=str(asked)) if base is not None else answer), tokens

    def answer_line(
        self, endpoint: str, body: dict[str, Any], key: str
    ) -> tuple[int, dict[str, Any], bill.Charge | None]:
        # A batch runs after its request: its lines are answered on the configured day.
        refusal = lifecycle.refusal(body.get("model"), self._today)
        if refusal is not None:
            return refusal.status, refusal.payload(), None
        return batch_lines.answer_line(self, endpoint, body, key)

    async def stream(
        self,
        call: Call,
        frames: list[bytes],
        rates: list[Header],
        *,
        last: bytes,
        failure: bytes,
        bill: StreamBill | None = None,
    ) -> None:
        """Send SSE `frames` paced by the ttft and chunk-interval knobs, then `last`.

        `failure` is what the stream-error fault sends instead of the rest; chat and the
        Responses API end a failed stream differently. `bill` (one a frame) is charged when the
        stream stops, for what it generated by then: the ttft is the model's thinking, and a
        client that leaves is noticed during it and between frames. Frames sent to a client
        that left unnoticed were generated all the same.
        """
        config, knobs, send = self.config, call.knobs, call.send
        ttft = knobs.ttft_ms if knobs.ttft_ms is not None else config.ttft_ms
        interval = (
            knobs.chunk_interval_ms
            if knobs.chunk_interval_ms is not None
            else config.chunk_interval_ms
        )
        fault_at = fault_index(len(frames))
        watch = DisconnectWatch(call.receive)
        sent, thought = 0, 1.0
        try:
            if ttft > 0:
                began = time.monotonic()
                if await watch.sleep(ttft / 1000):
                    thought = (time.monotonic() - began) * 1000 / ttft
                    return
            headers = self._headers(_SSE, call.started, rates)
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            for index, frame in enumerate(frames):
                if index == fault_at and knobs.fault == "reset":
                    raise SimulatedReset("x-sim-fault: reset")
                if index == fault_at and knobs.fault in STREAM_FAULTS:
                    await send({"type": "http.response.body", "body": failure, "more_body": False})
                    return
                if index and interval > 0 and await watch.sleep(interval / 1000):
                    return
                if watch.gone:
                    return
                await send({"type": "http.response.body", "body": frame, "more_body": True})
                sent += 1
            await send({"type": "http.response.body", "body": last, "more_body": False})
        finally:
            watch.close()
            if bill is not None:
                self.charge(call.key, bill.charge(sent, thought))

    async def _embeddings(self, call: Call) -> None:
        body = await self.body_or_answered(call)
        if body is None:
            return
        error = embeddings.check(body)
        if error is not None:
            await self._error(call.send, error, call.started, self.admit(call, 0))
            return
        response, tokens = embeddings.embeddings_object(body)
        self.charge(call.key, bill.tokens_charge("/v1/embeddings", body["model"], tokens))
        payload = orjson.dumps(response)
        rates = self.admit(call, tokens)
        if call.knobs.fault == "reset":
            await self._reset(call, payload, rates)
        await self._send(call.send, 200, _JSON, payload, call.started, rates)

    async def _moderations(self, call: Call) -> None:
        body = await self.body_or_answered(call)
        if body is None:
            return
        rates = self.admit(call, 0)
        error = moderations.check(body)
        if error is not None:
            await self._error(call.send, error, call.started, rates)
            return
        response = moderations.moderation_object(body, moderation_id(self._random.getrandbits(64)))
        payload = orjson.dumps(response)
        if call.knobs.fault == "reset":
            await self._reset(call, payload, rates)
        await self._send(call.send, 200, _JSON, payload, call.started, rates)

    async def _models(self, call: Call) -> None:
        if await self.fault(call, {}):
            return
        today = self.today(call)
        listed = model_list(today)
        listed["data"].extend(self._tuned_models(call.key, today))
        payload = orjson.dumps(listed)
        await self._send(call.send, 200, _JSON, payload, call.started, self.admit(call, 0))

    async def _model(self, call: Call) -> None:
        if await self.fault(call, {}):
            return
        model_id = call.path[len("/v1/models/") :]
        today = self.today(call)
        found = model_object(model_id, today) or next(
            (m for m in self._tuned_models(call.key, today) if m["id"] == model_id), None
        )
        rates = self.admit(call, 0)
        if found is None:
            await self._error(call.send, oe.model_not_found(model_id), call.started, rates)
            return
        await self._send(call.send, 200, _JSON, orjson.dumps(found), call.started, rates)

    def _tuned_models(self, key: str, today: date) -> list[dict[str, Any]]:
        return [m for m in self._tuning.models(key) if lifecycle.serves(m["id"], today)]

    async def _delete_model(self, call: Call) -> None:
        """A key's fine-tuned model, deleted; any other is a model it cannot find, as is one
        shut down with its base (gone, as its reads say)."""
        if await self.fault(call, {}):
            return
        model_id = call.path[len("/v1/models/") :]
        rates = self.admit(call, 0)
        if not lifecycle.serves(model_id, self.today(call)) or not self._tuning.delete_model(
            call.key, model_id
        ):
            await self._error(call.send, oe.model_not_found(model_id), call.started, rates)
            return
        deleted = {"id": model_id, "object": "model", "deleted": True}
        await self._send(call.send, 200, _JSON, orjson.dumps(deleted), call.started, rates)

    async def _sim(self, method: str, path: str, send: Send) -> bool:
        """The keyless /_sim endpoints; False if `path` is none of them."""
        started = time.perf_counter()
        if path == "/_sim/requests":
            if self._log is None:
                return False
            await self._request_log(method, send)
            return True
        found: dict[str, Any] | None
        if path == "/_sim/bill" and method in ("GET", "DELETE"):
            if method == "DELETE":
                self.bill.reset()
            found = self.bill.view()
        elif method == "POST" and path.endswith("/complete"):
            object_id = path.split("/")[-2]
            if path == f"/_sim/batches/{object_id}/complete":
                found = self._batches.complete(object_id)
            elif path == f"/_sim/fine_tuning/jobs/{object_id}/complete":
                found = self._tuning.complete(object_id)
            else:
                return False
            if found is None:
                error = oe.not_found("Batch" if "/batches/" in path else "FineTuningJob", object_id)
                await self._error(send, error, started, self._idle_rates)
                return True
        else:
            return False
        await self._send(send, 200, _JSON, orjson.dumps(found), started, self._idle_rates)
        return True

    async def _request_log(self, method: str, send: Send) -> None:
        assert self._log is not None
        started = time.perf_counter()
        if method == "GET":
            payload = orjson.dumps({"data": list(self._log)})
        elif method == "DELETE":
            payload = orjson.dumps({"deleted": len(self._log)})
            self._log.clear()
        else:
            await self._error(
                send, oe.invalid_url(method, "/_sim/requests"), started, self._idle_rates
            )
            return
        await self._send(send, 200, _JSON, payload, started, self._idle_rates)

    # --- faults ----------------------------------------------------------------------------

    async def fault(self, call: Call, body: dict[str, Any]) -> bool:
        """Answer with the requested fault; True if the request is done."""
        fault = call.knobs.fault
        if fault is None or fault in ("timeout", "reset", EDGE_FAULT):
            return False
        if fault in STREAM_FAULTS and body.get("stream") is True:
            return False
        model = body.get("model") if isinstance(body.get("model"), str) else "gpt-4o"
        rates = self.admit(call, 0)
        retry = call.knobs.retry_after_s
        retry_headers = [
            (b"retry-after", str(math.ceil(retry)).encode()),
            (b"retry-after-ms", str(round(retry * 1000)).encode()),
        ]
        if fault == "429":
            limit = self.config.rpm_limit
            error = oe.rate_limited(str(model), "requests", limit, limit, 1, go_duration(retry))
            await self._error(call.send, error, call.started, rates, retry_headers)
        elif fault == "429-tokens":
            limit = self.config.tpm_limit
            requested = max(1, len(call.body) // 4)
            error = oe.rate_limited(
                str(model), "tokens", limit, limit, requested, go_duration(retry)
            )
            await self._error(call.send, error, call.started, rates, retry_headers)
        elif fault in ("quota", "stream-quota"):
            await self._error(call.send, oe.insufficient_quota(), call.started, rates)
        elif fault == "502":
            await self._send(call.send, 502, _HTML, oe.CLOUDFLARE_502, call.started, rates)
        elif fault == "503":
            await self._error(call.send, oe.overloaded(), call.started, rates)
        else:  # "500", and "stream-error" on a request that does not stream
            await self._error(call.send, oe.server_error(), call.started, rates)
        return True

    async def _reset(
        self, call: Call, payload: bytes, rates: list[Header], content_type: bytes = _JSON
    ) -> None:
        headers = self._headers(content_type, call.started, rates)
        headers.append((b"content-length", str(len(payload)).encode()))
        await call.send({"type": "http.response.start", "status": 200, "headers": headers})
        half = payload[: len(payload) // 2]
        await call.send({"type": "http.response.body", "body": half, "more_body": True})
        raise SimulatedReset("x-sim-fault: reset")

    # --- responses -------------------------------------------------------------------------

    def admit(self, call: Call, tokens: int) -> list[Header]:
        return _rate_header_bytes(self._rates.admit(call.key, tokens, time.monotonic()))

    def _headers(self, content_type: bytes, started: float, rates: list[Header]) -> list[Header]:
        elapsed_ms = int((time.perf_counter() - started) * 1000)
        return [
            (b"content-type", content_type),
            (b"x-request-id", request_id(self._random.getrandbits(64)).encode()),
            (b"openai-processing-ms", str(elapsed_ms).encode()),
            _VERSION,
            _ORGANIZATION,
            *rates,
        ]

    async def reply(self, call: Call, payload: bytes, rates: list[Header]) -> None:
        """A 200 JSON answer, or half of it when the reset fault is on."""
        if call.knobs.fault == "reset":
            await self._reset(call, payload, rates)
        await self._send(call.send, 200, _JSON, payload, call.started, rates)

    async def reply_raw(
        self, call: Call, content_type: bytes, payload: bytes, rates: list[Header]
    ) -> None:
        """A 200 of other bytes (a file's), or half of them when the reset fault is on."""
        if call.knobs.fault == "reset":
            await self._reset(call, payload, rates, content_type)
        await self._send(call.send, 200, content_type, payload, call.started, rates)

    def charge(self, key: str, charge: bill.Charge) -> None:
        self.bill.add(key, charge)

    async def reply_error(self, call: Call, error: SimError, rates: list[Header]) -> None:
        await self._error(call.send, error, call.started, rates)

    def draw_seed(self) -> int:
        """64 random bits for ids, from this simulator's own (seedable) source."""
        return self._random.getrandbits(64)

    async def _send(
        self,
        send: Send,
        status: int,
        content_type: bytes,
        payload: bytes,
        started: float,
        rates: list[Header],
        extra: list[Header] | None = None,
    ) -> None:
        headers = self._headers(content_type, started, rates)
        headers.append((b"content-length", str(len(payload)).encode()))
        if extra:
            headers.extend(extra)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _error(
        self,
        send: Send,
        error: SimError,
        started: float,
        rates: list[Header],
        extra: list[Header] | None = None,
    ) -> None:
        await self._send(send, error.status, _JSON, error.body(), started, rates, extra)


def _rate_header_bytes(rates: RateHeaders) -> list[Header]:
    return [
        (b"x-ratelimit-limit-requests", b"%d" % rates.limit_requests),
        (b"x-ratelimit-limit-tokens", b"%d" % rates.limit_tokens),
        (b"x-ratelimit-remaining-requests", b"%d" % rates.remaining_requests),
        (b"x-ratelimit-remaining-tokens", b"%d" % rates.remaining_tokens),
        (b"x-ratelimit-reset-requests", rates.reset_requests.encode()),
        (b"x-ratelimit-reset-tokens", rates.reset_tokens.encode()),
    ]


def _parse_or_none(body: bytes) -> Any:
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _parse_object(body: bytes) -> dict[str, Any] | SimError:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return oe.invalid_json(str(exc))
    if not isinstance(parsed, dict):
        return oe.invalid_json("the request body must be a JSON object")
    return parsed


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_simulator(config: SimulatorConfig, *, seed: int | None = None) -> Simulator:
    """The simulated upstream as an ASGI callable; `seed` pins its random ids for tests."""
    return Simulator(config, seed=seed)


async def _gone() -> Message:
    """What a caller the edge stopped waiting for says: it has left."""
    return {"type": "http.disconnect"}


async def _nowhere(message: Message) -> None:
    """Where the answer to a caller that left goes: nowhere, after a turn of the loop (as a
    send to a socket takes), in which its leaving is noticed."""
    await asyncio.sleep(0)
