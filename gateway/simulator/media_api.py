"""Images, audio and legacy completions endpoints of the simulated upstream (raw ASGI handlers).

    POST /v1/images/generations     images.py
    POST /v1/audio/speech           raw audio bytes, or events with `stream_format: sse` (audio.py)
    POST /v1/audio/transcriptions   multipart upload; events with `stream=true` (audio.py)
    POST /v1/audio/translations     multipart upload, whisper-1 only
    POST /v1/completions            legacy text completions, JSON or SSE (completions.py)

Each successful call adds its line to the bill (bill.py).
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import orjson

from gateway.simulator import audio, bill, completions, files, images, lifecycle
from gateway.simulator import openai_errors as oe
from gateway.simulator.call import Call, Header
from gateway.simulator.host import Host
from gateway.simulator.ids import alnum_id
from gateway.simulator.multipart import Part
from gateway.simulator.openai_errors import SimError
from gateway.simulator.responses_api import Handler
from gateway.simulator.stream_bill import StreamBill, chunk_output
from gateway.wire import sse


class MediaApi:
    __slots__ = ("_host", "_routes")

    def __init__(self, host: Host) -> None:
        self._host = host
        self._routes: dict[str, Handler] = {
            "/v1/images/generations": self._images,
            "/v1/audio/speech": self._speech,
            "/v1/audio/transcriptions": self._transcriptions,
            "/v1/audio/translations": self._translations,
            "/v1/completions": self._completions,
        }

    def route(self, method: str, path: str) -> Handler | None:
        return self._routes.get(path) if method == "POST" else None

    async def _images(self, call: Call) -> None:
        host = self._host
        body = await host.body_or_answered(call)
        if body is None:
            return
        rates = host.admit(call, 0)
        request = images.check(body)
        if isinstance(request, SimError):
            await host.reply_error(call, request, rates)
            return
        response = images.images_object(request, int(time.time()))
        if request.model == images.GPT_IMAGE:
            usage = response["usage"]
            charge = bill.media_charge(
                "/v1/images/generations",
                request.model,
                usage["input_tokens"],
                0,
                usage["output_tokens"],
            )
        else:
            charge = bill.image_charge(request.model, request.quality, request.size, request.n)
        host.charge(call.key, charge)
        await host.reply(call, orjson.dumps(response), rates)

    async def _speech(self, call: Call) -> None:
        host = self._host
        body = await host.body_or_answered(call)
        if body is None:
            return
        rates = host.admit(call, 0)
        result = audio.speech(body)
        if isinstance(result, SimError):
            await host.reply_error(call, result, rates)
            return
        host.charge(
            call.key,
            bill.speech_charge(
                result.model, result.characters, result.input_tokens, result.output_tokens
            ),
        )
        if result.sse:
            await self._events(call, *audio.speech_events(result), rates)
            return
        await host.reply_raw(call, result.content_type, result.audio, rates)

    async def _events(
        self, call: Call, deltas: list[dict[str, Any]], done: dict[str, Any], rates: list[Header]
    ) -> None:
        """An audio answer as an event stream: its deltas, then the done event with usage."""
        frames = [sse.encode(event) for event in deltas]
        failure = sse.encode({"type": "error", **oe.server_error().payload()})
        await self._host.stream(call, frames, rates, last=sse.encode(done), failure=failure)

    async def _transcriptions(self, call: Call) -> None:
        await self._transcribe(call, translate=False)

    async def _translations(self, call: Call) -> None:
        await self._transcribe(call, translate=True)

    async def _transcribe(self, call: Call, *, translate: bool) -> None:
        host = self._host
        if await host.fault(call, {}):
            return
        rates = host.admit(call, 0)
        fields = files.form_of(call.body, call.content_type)
        result = (
            fields
            if isinstance(fields, SimError)
            else _refusal(fields, host.today(call)) or audio.transcribe(fields, translate=translate)
        )
        if isinstance(result, SimError):
            await host.reply_error(call, result, rates)
            return
        endpoint = call.path
        if result.model == audio.WHISPER:
            charge = bill.whisper_charge(endpoint, result.seconds)
        else:
            charge = bill.media_charge(
                endpoint,
                result.model,
                result.text_tokens,
                result.audio_tokens,
                result.output_tokens,
            )
        host.charge(call.key, charge)
        if result.stream:
            await self._events(call, *audio.transcript_events(result), rates)
            return
        content_type, answer = audio.transcript_body(result, translate=translate)
        if isinstance(answer, str):
            await host.reply_raw(call, content_type, answer.encode(), rates)
        else:
            await host.reply(call, orjson.dumps(answer), rates)

    async def _completions(self, call: Call) -> None:
        host = self._host
        body = await host.body_or_answered(call)
        if body is None:
            return
        result = self.completion(body)
        if isinstance(result, SimError):
            await host.reply_error(call, result, host.admit(call, 0))
            return
        response, charge = result
        rates = host.admit(call, response["usage"]["total_tokens"])
        if body.get("stream") is True:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            chunks = completions.stream_chunks(response, include_usage=include_usage)
            # Billed what it generated by the time it stops, as a chat stream is.
            bill_of = StreamBill(
                "/v1/completions", body["model"], response["usage"], chunks, chunk_output
            )
            frames = [sse.encode(chunk) for chunk in chunks]
            failure = sse.encode(oe.server_error().payload())
            await host.stream(call, frames, rates, last=sse.DONE, failure=failure, bill=bill_of)
            return
        host.charge(call.key, charge)
        await host.reply(call, orjson.dumps(response), rates)

    def completion(
        self, body: dict[str, Any], *, batch: bool = False
    ) -> SimError | tuple[dict[str, Any], bill.Charge]:
        """A legacy completion and its charge; also a batch line's answer."""
        error = completions.check(body)
        if error is not None:
            return error
        completion_id = alnum_id("cmpl-", self._host.draw_seed(), 29)
        response = completions.completion_object(body, completion_id, int(time.time()))
        charge = bill.usage_charge("/v1/completions", body["model"], response["usage"], batch=batch)
        return response, charge


def _refusal(fields: dict[str, Part], today: date) -> SimError | None:
    """The 404 for an upload naming a model shut down by `today` (JSON bodies get theirs from
    the host's `body_or_answered`)."""
    part = fields.get("model")
    return lifecycle.refusal(part.data.decode("utf-8", "replace"), today) if part else None
