"""A chat.completion.chunk stream as a Responses API event stream."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.translate.responses_chat import usage_to_responses
from gateway.translate.responses_chat_stream import EventStream
from gateway.wire import sse

EVENT = TypeAdapter[Any](ResponseStreamEvent)
USAGE = {
    "prompt_tokens": 9,
    "completion_tokens": 70,
    "total_tokens": 79,
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 64},
}
PAYLOAD = {"model": "o1-mini", "input": "hi", "stream": True}


def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
    choices = [] if delta is None else [
        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    ]  # fmt: skip
    return sse.encode(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "o1-mini-2024-09-12",
            "system_fingerprint": "fp_1",
            "choices": choices,
            "usage": None,
            **extra,
        }
    )


def text_stream(*pieces: str, finish: str = "stop") -> bytes:
    return b"".join(
        [
            chunk({"role": "assistant", "content": "", "refusal": None}),
            *(chunk({"content": piece}) for piece in pieces),
            chunk({}, finish),
            chunk(None, usage=USAGE),
            sse.DONE,
        ]
    )


def call_open(index: int, call_id: str, name: str) -> dict[str, Any]:
    return {
        "index": index,
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": ""},
    }


def argument(index: int, piece: str) -> bytes:
    return chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})


TOOL_STREAM = b"".join(
    [
        chunk({"role": "assistant", "content": None, "tool_calls": [call_open(0, "call_a", "f")]}),
        argument(0, '{"ci'),
        argument(0, 'ty": "Par'),
        argument(0, 'is"}'),
        chunk({"tool_calls": [call_open(1, "call_b", "g")]}),
        argument(1, "{}"),
        chunk({}, "tool_calls"),
        chunk(None, usage=USAGE),
        sse.DONE,
    ]
)


def new_stream(payload: dict[str, Any] = PAYLOAD, key: bytes | None = None) -> EventStream:
    numbers = itertools.count(1)
    return EventStream(
        payload,
        response_id="resp_1",
        created_at=1700000001,
        new_id=lambda prefix: f"{prefix}{next(numbers)}",
        obfuscation_key=key,
    )


def run(upstream: bytes, step: int = 0, *, finish: bool = True) -> tuple[EventStream, bytes]:
    """The whole translated stream, the upstream fed in `step`-byte slices (0: at once)."""
    stream = new_stream()
    out = [stream.start()]
    slices = (
        [upstream] if not step else [upstream[i : i + step] for i in range(0, len(upstream), step)]
    )
    out.extend(stream.feed(piece) for piece in slices)
    if finish:
        out.append(stream.finish())
    return stream, b"".join(out)


def parse(raw: bytes) -> list[dict[str, Any]]:
    """The events, each checked: `event:` names the type, the SDK reads the data (an error
    as OpenAI sends it)."""
    events = []
    for block in raw.split(b"\n\n")[:-1]:
        if block.startswith(b":"):
            continue
        head, data = block.split(b"\n")
        event = orjson.loads(data.removeprefix(b"data: "))
        assert head == b"event: " + event["type"].encode()
        if event["type"] == "error":
            # OpenAI sends the error object nested (which the SDKs raise, as they read any
            # event with an `error`), not the SDK's flat `ResponseErrorEvent`.
            assert set(event["error"]) == {"type", "code", "message", "param"}
        else:
            EVENT.validate_python(event)
        events.append(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"].removeprefix("response.") for e in events]


@pytest.mark.parametrize("step", [0, 1, 7, 61])
def test_a_text_stream_in_any_slicing(step: int) -> None:
    stream, raw = run(text_stream("Hel", "lo", " world"), step)
    events = parse(raw)
    assert types(events) == [
        "created", "in_progress", "output_item.added", "content_part.added",
        "output_text.delta", "output_text.delta", "output_text.delta",
        "output_text.done", "content_part.done", "output_item.done", "completed",
    ]  # fmt: skip
    assert events[0]["response"]["status"] == "in_progress"
    assert events[0]["response"]["output"] == [] and events[0]["response"]["usage"] is None
    added = events[2]["item"]
    assert added == {
        "id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant",
        "content": [],
    }  # fmt: skip
    assert events[3]["part"] == {
        "type": "output_text",
        "text": "",
        "annotations": [],
        "logprobs": [],
    }
    assert {e["item_id"] for e in events[3:9]} == {"msg_1"}
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == (
        "Hello world"
    )
    assert events[7]["text"] == "Hello world"
    assert events[8]["part"]["text"] == "Hello world"
    assert (events[9]["item"]["id"], events[9]["item"]["status"]) == ("msg_1", "completed")
    final = events[-1]["response"]
    assert final["status"] == "completed"
    assert final["model"] == "o1-mini-2024-09-12"
    assert final["usage"] == usage_to_responses(USAGE)
    assert final["output"] == [events[9]["item"]]
    assert stream.done and stream.response == final
    Response.model_validate(final)
    assert stream.finish() == b"" and stream.feed(b"data: [DONE]\n\n") == b""


@pytest.mark.parametrize("step", [0, 3, 50])
def test_tool_calls_with_split_arguments(step: int) -> None:
    events = parse(run(TOOL_STREAM, step)[1])
    assert types(events) == [
        "created", "in_progress",
        "output_item.added", "function_call_arguments.delta", "function_call_arguments.delta",
        "function_call_arguments.delta", "function_call_arguments.done", "output_item.done",
        "output_item.added", "function_call_arguments.delta", "function_call_arguments.done",
        "output_item.done", "completed",
    ]  # fmt: skip
    assert events[2]["item"] == {
        "id": "fc_1", "type": "function_call", "status": "in_progress", "arguments": "",
        "call_id": "call_a", "name": "f",
    }  # fmt: skip
    assert {e["item_id"] for e in events[3:7]} == {"fc_1"}
    assert [e["output_index"] for e in events[2:12]] == [0] * 6 + [1] * 4
    assert events[6]["arguments"] == '{"city": "Paris"}' and events[6]["name"] == "f"
    assert events[8]["item"]["id"] == events[9]["item_id"] == "fc_2"
    final = events[-1]["response"]
    assert [(i["call_id"], i["arguments"], i["status"]) for i in final["output"]] == [
        ("call_a", '{"city": "Paris"}', "completed"),
        ("call_b", "{}", "completed"),
    ]
    Response.model_validate(final)


def test_deltas_are_padded_as_upstream_pads_its_own() -> None:
    """With a key, every delta event (text and call arguments) carries `obfuscation`: letters
    and digits bringing it to a multiple of 16 characters, different for each event and each
    key; nothing else changes. Without one (the request said `include_obfuscation: false`),
    none does."""

    def translated(upstream: bytes, key: bytes | None) -> list[dict[str, Any]]:
        stream = new_stream(key=key)
        return parse(stream.start() + stream.feed(upstream) + stream.finish())

    for upstream in (text_stream("Hel", "lo", " world, and more than sixteen"), TOOL_STREAM):
        plain = translated(upstream, None)
        assert not any("obfuscation" in event for event in plain)
        padded = translated(upstream, b"a" * 32)
        deltas = [event for event in padded if event["type"].endswith(".delta")]
        assert deltas
        for event in deltas:
            assert event["obfuscation"].isalnum()
            assert (len(event["delta"]) + len(event["obfuscation"])) % 16 == 0
        assert len({event["obfuscation"] for event in deltas}) == len(deltas)
        unpadded = [{k: v for k, v in e.items() if k != "obfuscation"} for e in padded]
        assert unpadded == plain
        other = [e.get("obfuscation") for e in translated(upstream, b"b" * 32)]
        assert other != [e.get("obfuscation") for e in padded]


def test_text_before_a_call_is_its_own_item() -> None:
    upstream = b"".join(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Let me check."}),
            chunk({"tool_calls": [call_open(0, "call_a", "f")]}),
            argument(0, "{}"),
            chunk({}, "tool_calls"),
            sse.DONE,
        ]
    )
    events = parse(run(upstream)[1])
    assert types(events)[2:] == [
        "output_item.added", "content_part.added", "output_text.delta", "output_text.done",
        "content_part.done", "output_item.done", "output_item.added",
        "function_call_arguments.delta", "function_call_arguments.done", "output_item.done",
        "completed",
    ]  # fmt: skip
    assert [i["type"] for i in events[-1]["response"]["output"]] == ["message", "function_call"]
    assert events[-1]["response"]["usage"] is None  # upstream sent none


def test_a_refusal_streams_as_refusal_events() -> None:
    upstream = b"".join(
        [chunk({"role": "assistant", "content": ""}), chunk({"refusal": "No."}), chunk({}, "stop")]
    )
    events = parse(run(upstream + sse.DONE)[1])
    assert types(events)[2:] == [
        "output_item.added", "content_part.added", "refusal.delta", "refusal.done",
        "content_part.done", "output_item.done", "completed",
    ]  # fmt: skip
    assert events[-1]["response"]["output"][0]["content"] == [{"type": "refusal", "refusal": "No."}]


def test_the_token_limit_makes_it_incomplete() -> None:
    events = parse(run(text_stream("Hel", finish="length"))[1])
    assert types(events)[-2:] == ["output_item.done", "incomplete"]
    assert events[-2]["item"]["status"] == "incomplete"
    final = events[-1]["response"]
    assert (final["status"], final["incomplete_details"]) == (
        "incomplete",
        {"reason": "max_output_tokens"},
    )
    Response.model_validate(final)


def test_the_finished_response_names_the_tier_that_served_it() -> None:
    """Every chunk names the tier that served the call; the opening events, sent before any
    chunk, echo the tier asked for, as OpenAI's own stream opens (`auto`: none asked)."""
    priority = {"service_tier": "priority"}
    upstream = b"".join(
        [
            chunk({"role": "assistant", "content": "", "refusal": None}, **priority),
            chunk({"content": "ok"}, **priority),
            chunk({}, "stop", **priority),
            chunk(None, usage=USAGE, **priority),
            sse.DONE,
        ]
    )
    stream, raw = run(upstream)
    tiers = {e["type"]: e["response"]["service_tier"] for e in parse(raw) if "response" in e}
    assert tiers == {
        "response.created": "auto",
        "response.in_progress": "auto",
        "response.completed": "priority",
    }
    assert stream.response is not None and stream.response["service_tier"] == "priority"
    # An answer naming no tier was served at the standard one.
    assert parse(run(text_stream("ok"))[1])[-1]["response"]["service_tier"] == "default"


def test_keepalive_comments_pass_through() -> None:
    comment = sse.comment("o1-gateway: waiting for the model")
    stream = new_stream()
    start = stream.start()
    assert stream.feed(comment[:3]) == b""
    assert stream.feed(comment[3:]) == comment
    assert stream.feed(text_stream("ok")).startswith(b"event: response.output_item.added\n")
    assert len(parse(start)) == 2


def test_feed_before_start_starts_the_stream() -> None:
    stream = new_stream()
    events = parse(stream.feed(text_stream("ok")))
    assert types(events)[:2] == ["created", "in_progress"]
    assert stream.start() == b""


def test_a_mid_stream_error_fails_the_response() -> None:
    error = {
        "message": "The server had an error.",
        "type": "server_error",
        "param": None,
        "code": "server_error",
    }
    upstream = chunk({"role": "assistant", "content": ""}) + chunk({"content": "Hel"})
    stream, raw = run(upstream + sse.encode({"error": error}), 5, finish=False)
    events = parse(raw + stream.finish())
    assert types(events)[-2:] == ["error", "failed"]
    # Nested, as OpenAI sends it (and as the gateway's own stream errors are): the SDKs raise it.
    assert events[-2] == {
        "type": "error",
        "error": {
            "type": "server_error",
            "code": "server_error",
            "message": "The server had an error.",
            "param": None,
        },
        "sequence_number": len(events) - 2,
    }
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["usage"] is None
    assert failed["error"] == {"code": "server_error", "message": "The server had an error."}
    assert failed["output"][0]["status"] == "incomplete"
    assert stream.response == failed
    Response.model_validate(failed)


def test_a_stream_cut_mid_answer_fails_rather_than_hangs() -> None:
    upstream = chunk({"role": "assistant", "content": ""}) + chunk({"content": "Hel"})
    stream, raw = run(upstream[:-20], finish=False)
    assert not stream.done
    events = parse(raw + stream.finish())
    assert types(events)[-2:] == ["error", "failed"]
    assert events[-1]["response"]["error"]["code"] == "server_error"
    assert stream.done


def test_a_stream_missing_only_done_still_completes() -> None:
    upstream = text_stream("ok").removesuffix(sse.DONE)
    stream, raw = run(upstream, finish=False)
    assert not stream.done
    events = parse(raw + stream.finish())
    assert types(events)[-1] == "completed"
    assert events[-1]["response"]["usage"] == usage_to_responses(USAGE)


def test_a_last_event_without_its_blank_line_is_read() -> None:
    upstream = text_stream("ok").removesuffix(b"\n\n")
    events = parse(run(upstream)[1])
    assert types(events)[-1] == "completed"
