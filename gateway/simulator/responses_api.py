"""The Responses API endpoints of the simulated upstream (raw ASGI, like `app`).

    POST   /v1/responses                    create (JSON, SSE with `stream`, queued with `background`)
    GET    /v1/responses/{id}               retrieve; a background response advances one step;
                                            with `stream=true`, a background response's events
                                            from `starting_after` on (it runs to its end)
    DELETE /v1/responses/{id}               delete
    GET    /v1/responses/{id}/input_items   the request's input items, paged
    POST   /v1/responses/{id}/cancel        cancel a background response

Everything else a chat request gets applies here too: the key check, rate-limit headers, the
latency, streaming-pace and fault knobs, `x-sim-answer`, the prompt cache. The answer is the one
chat gives for the same conversation (`responses.chat_body`), so the two APIs agree on text,
tool calls and token counts. A background response created with `x-sim-background: failed`
fails as it runs, on the organization's token rate limit: its polls see it queued, in progress,
then failed (`error {code, message}` in the 429's words, no output, no usage), unbilled, and its
stream ends on `response.failed`. A background request that also streams is streamed at once (and
stored finished, and billed whole: a client that leaves its stream does not stop it). An input
item given with an `id` must be one the key stored (an `item_reference` stands for that stored
item).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson

from gateway.simulator import bill, hosted_calls, mcp_servers, reasoning_items, responses
from gateway.simulator import openai_errors as oe
from gateway.simulator import response_shapes as shapes
from gateway.simulator.answers import compose, prompt_seed
from gateway.simulator.call import Call, Header
from gateway.simulator.host import Host
from gateway.simulator.ids import response_item_id
from gateway.simulator.knobs import fault_index
from gateway.simulator.openai_errors import SimError
from gateway.simulator.prompt_cache import message_tokens
from gateway.simulator.response_store import QUEUED, ResponseStore, Stored
from gateway.simulator.stream_bill import StreamBill, event_output
from gateway.wire import obfuscation
from gateway.wire.tokens import TOKENS_FOR_REPLY

PREFIX = "/v1/responses"
# Seeds of one response's ids: its own, its output items', its input items'.
_OUTPUT_SEEDS = 1 << 20
_INPUT_SEEDS = 2 << 20
_HOSTED_SEEDS = 3 << 20
_MCP_SEEDS = 4 << 20
_REASONING_SEEDS = 5 << 20


Handler = Callable[[Call], Awaitable[None]]


class ResponsesApi:
    __slots__ = ("_host", "_store")

    def __init__(self, host: Host, store: ResponseStore) -> None:
        self._host = host
        self._store = store

    def route(self, method: str, path: str) -> Handler | None:
        if path == PREFIX:
            return self._create if method == "POST" else None
        parts = path[len(PREFIX) + 1 :].split("/") if path.startswith(PREFIX + "/") else []
        if len(parts) == 1 and parts[0]:
            return {"GET": self._retrieve, "DELETE": self._delete}.get(method)
        if len(parts) == 2 and parts[0]:
            if parts[1] == "input_items" and method == "GET":
                return self._input_items
            if parts[1] == "cancel" and method == "POST":
                return self._cancel
        return None

    def build(
        self,
        body: dict[str, Any],
        key: str,
        answer_knob: str | None,
        tool_calls: int | None = None,
        prompt_tools: tuple[str, ...] = (),
    ) -> tuple[Stored | SimError, int]:
        """The response to a create request (not yet stored), or its error; and the tokens the
        rate window admits for it (`tool_calls`: the hosted tool calls it makes, `prompt_tools`:
        the hosted tools its stored prompt brings, see `hosted_calls`). Batch lines use this
        too."""
        model = responses.resolve_model(body)
        if isinstance(model, SimError):
            return model, 0
        error = responses.check(body, model)
        history: list[dict[str, Any]] = []
        previous_id = body.get("previous_response_id")
        if error is None and isinstance(previous_id, str):
            previous = self._store.get(key, previous_id)
            if previous is None:
                error = oe.previous_response_not_found(previous_id)
            else:
                history = previous.conversation
        if error is None:
            body, error = self._given_back(body, key)
        if error is not None:
            return error, 0

        host = self._host
        seed = host.draw_seed()
        items = responses.input_items(body, seed + _INPUT_SEEDS)
        messages = responses.instruction_messages(body) + responses.as_messages(history + items)
        per_message = message_tokens(messages)
        # The tools of the MCP servers the conversation imported, and of those it imports now.
        imports = mcp_servers.list_items(body, history, seed + _MCP_SEEDS)
        # Reasoning items given back carry the reasoning they stand for, read as input.
        carried = reasoning_items.carried_tokens(
            items, lambda item_id: self._store.reasoning_tokens(key, item_id)
        )
        prompt_tokens = (
            sum(per_message)
            + TOKENS_FOR_REPLY
            + mcp_servers.list_tokens(history + imports)
            + carried
        )
        limit = body.get("max_output_tokens")
        tokens = prompt_tokens + (limit if isinstance(limit, int) else 0)
        if prompt_tokens > model.context:
            return oe.context_length_exceeded(model.context, prompt_tokens), tokens
        answer = compose(
            responses.chat_body(body, messages),
            model,
            prompt_tokens=prompt_tokens,
            content_seed=prompt_seed(messages),
            id_seed=seed,
            cached_tokens=host.prompt_cache.lookup_and_store(messages, per_message),
            answer=answer_knob,
        )
        query = responses.query_of(items)
        output = [
            *imports,
            *hosted_calls.call_items(body, tool_calls, query, seed + _HOSTED_SEEDS, prompt_tools),
            *reasoning_items.reasoning_item(body, answer.reasoning_tokens, seed + _REASONING_SEEDS),
            *shapes.output_items(answer, seed + _OUTPUT_SEEDS),
        ]
        background = body.get("background") is True
        response = shapes.response_object(
            response_item_id("resp", seed),
            shapes.settings(body, model.snapshot, responses.effort(body, model)),
            answer,
            output,
            created_at=int(time.time()),
            background=background,
        )
        return Stored(response, items, history + items + output, background), tokens

    def _given_back(self, body: dict[str, Any], key: str) -> tuple[dict[str, Any], SimError | None]:
        """The request with each `item_reference` replaced by the stored item it names; the
        404 of the first input item whose id names no item the key stored."""
        given = body.get("input")
        if not isinstance(given, list):
            return body, None
        items: list[Any] = []
        for item in given:
            item_id = item.get("id") if isinstance(item, dict) else None
            # A reasoning item given back whole brings what upstream reads (`store: false`).
            if not isinstance(item_id, str) or "encrypted_content" in item:
                items.append(item)
                continue
            stored = self._store.item(key, item_id)
            if stored is None:
                return body, oe.item_not_found(item_id)
            items.append(stored if item.get("type") == "item_reference" else item)
        return {**body, "input": items}, None

    async def _create(self, call: Call) -> None:
        host = self._host
        body = await host.body_or_answered(call)
        if body is None:
            return
        knobs = call.knobs
        stored, tokens = self.build(
            body, call.key, knobs.answer, knobs.tool_calls, knobs.prompt_tools
        )
        rates = host.admit(call, tokens)
        if isinstance(stored, SimError):
            await host.reply_error(call, stored, rates)
            return
        response = stored.response
        if knobs.service_tier is not None:
            response["service_tier"] = knobs.service_tier
        stream = body.get("stream") is True
        if knobs.background_failed and stored.background and not stream:
            # It fails as it runs, before the model answers: nothing generated, nothing billed.
            answered = len(response["output"])
            stored.conversation = stored.conversation[: len(stored.conversation) - answered]
            limited = oe.background_rate_limited(response["model"], tokens)
            stored.response = response = shapes.failed(response, limited)
        elif not stream or stored.background:
            # A background response runs to its end whoever reads its stream (a client that
            # left resumes it with `GET ?stream=true`): billed whole, as an answer sent whole is.
            host.charge(call.key, bill.usage_charge(
                PREFIX, response["model"], response["usage"], tier=response.get("service_tier")
            ))  # fmt: skip
        if stored.background and not stream:
            stored.stage = QUEUED
        if body.get("store", True) is not False:
            self._store.put(call.key, stored)
        if stream:
            events = shapes.stream_events(response, obfuscation.key_for(body.get("stream_options")))
            frames = [shapes.event_frame(event) for event in events]
            failure = shapes.failure_frames(
                response, oe.stream_failure(call.knobs.fault), fault_index(len(frames))
            )
            bill_of = (
                None
                if stored.background
                else StreamBill(
                    PREFIX,
                    response["model"],
                    response["usage"],
                    events,
                    event_output,
                    response.get("service_tier"),
                )
            )
            await host.stream(call, frames, rates, last=b"", failure=failure, bill=bill_of)
            return
        await host.reply(call, orjson.dumps(stored.view()), rates)

    async def _found(self, call: Call) -> tuple[Stored | None, list[Header]]:
        """The stored response the path names; None once a fault or a 404 has answered."""
        host = self._host
        if await host.fault(call, {}):
            return None, []
        rates = host.admit(call, 0)
        response_id = call.path[len(PREFIX) + 1 :].split("/")[0]
        stored = self._store.get(call.key, response_id)
        if stored is None:
            await host.reply_error(call, oe.response_not_found(response_id), rates)
        return stored, rates

    async def _retrieve(self, call: Call) -> None:
        stored, rates = await self._found(call)
        if stored is None:
            return
        query = dict(parse_qsl(call.query))
        if query.get("stream") != "true":
            view = stored.poll(int(time.time()))
            await self._host.reply(call, orjson.dumps(view), rates)
            return
        # A client picking up a background response's stream (one it left, or never read):
        # its events after `starting_after`, to the end.
        if not stored.background:
            await self._host.reply_error(call, oe.only_background_streamable(), rates)
            return
        after = query.get("starting_after", "-1")
        if not after.lstrip("-").isdigit():
            await self._host.reply_error(
                call, oe.invalid_type("starting_after", "an integer", after), rates
            )
            return
        response = stored.finish(int(time.time()))
        padded = query.get("include_obfuscation") != "false"
        events = shapes.stream_events(response, obfuscation.new_key() if padded else None)
        events = [e for e in events if e["sequence_number"] > int(after)]
        frames = [shapes.event_frame(event) for event in events]
        failure = shapes.failure_frames(
            response, oe.stream_failure(call.knobs.fault), fault_index(len(frames))
        )
        await self._host.stream(call, frames, rates, last=b"", failure=failure)

    async def _delete(self, call: Call) -> None:
        stored, rates = await self._found(call)
        if stored is None:
            return
        response_id = stored.response["id"]
        self._store.delete(call.key, response_id)
        deleted = {"id": response_id, "object": "response", "deleted": True}
        await self._host.reply(call, orjson.dumps(deleted), rates)

    async def _input_items(self, call: Call) -> None:
        stored, rates = await self._found(call)
        if stored is None:
            return
        page = shapes.input_items_page(stored.input_items, dict(parse_qsl(call.query)))
        if isinstance(page, SimError):
            await self._host.reply_error(call, page, rates)
            return
        await self._host.reply(call, orjson.dumps(page), rates)

    async def _cancel(self, call: Call) -> None:
        stored, rates = await self._found(call)
        if stored is None:
            return
        if not stored.background:
            await self._host.reply_error(call, oe.only_background_cancellable(), rates)
            return
        await self._host.reply(call, orjson.dumps(stored.cancel()), rates)
