from __future__ import annotations

import orjson
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.wire import sse, tokens
from gateway.wire.usage import (
    ResponsesStreamMeter,
    StreamMeter,
    Usage,
    answer_usage,
    whole_answer,
)

USAGE = {
    "prompt_tokens": 9,
    "completion_tokens": 4,
    "total_tokens": 13,
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0},
}


def chunk(delta: dict[str, object], usage: object = None, choices: bool = True) -> bytes:
    body: dict[str, object] = {
        "id": "c",
        "object": "chat.completion.chunk",
        "model": "gpt-4o-2024-08-06",
    }
    body["choices"] = [{"index": 0, "delta": delta, "finish_reason": None}] if choices else []
    body["usage"] = usage
    return sse.encode(body)


STREAM = (
    chunk({"role": "assistant", "content": ""})
    + chunk({"content": "Hello"})
    + chunk({"content": " world"})
    + chunk({}, usage=USAGE, choices=False)
    + sse.DONE
)


def response_usage(content: bytes) -> tuple[Usage | None, str]:
    return answer_usage(whole_answer(content))


def test_response_usage_reads_chat_and_embeddings() -> None:
    usage, model = response_usage(orjson.dumps({"model": "gpt-4o-2024-08-06", "usage": USAGE}))
    assert usage == Usage(9, 4) and model == "gpt-4o-2024-08-06"
    assert whole_answer(b"not json") is None and whole_answer(b"[1]") is None
    assert response_usage(b"not json") == (None, "")
    assert response_usage(
        orjson.dumps({"object": "embedding", "usage": {"prompt_tokens": 5, "total_tokens": 5}})
    )[0] == Usage(5)


def test_stream_passes_bytes_through_unchanged_and_finds_usage() -> None:
    meter = StreamMeter()
    out = b"".join(meter.feed(STREAM[i : i + 7]) for i in range(0, len(STREAM), 7)) + meter.flush()
    assert out == STREAM
    assert meter.usage == Usage(9, 4) and meter.model == "gpt-4o-2024-08-06"


def test_usage_chunk_the_caller_did_not_ask_for_is_removed() -> None:
    meter = StreamMeter(strip_usage=True)
    out = meter.feed(STREAM) + meter.flush()
    events = sse.Decoder().feed(out)
    assert events[-1] == b"[DONE]"
    assert all(orjson.loads(e)["choices"] for e in events[:-1])
    assert len(events) == 4
    assert meter.generated_usage(100) == Usage(9, 4)


def test_a_stream_cut_short_is_charged_for_the_text_generated() -> None:
    meter = StreamMeter()
    meter.feed(
        chunk({"role": "assistant", "content": ""}) + chunk({"content": "Hello world, this is"})
    )
    usage = meter.generated_usage(prompt_tokens=50)
    assert usage.prompt_tokens == 50
    assert usage.completion_tokens == 5  # o200k: "Hello", " world", ",", " this", " is"


def test_tool_call_arguments_count_as_generated() -> None:
    meter = StreamMeter()
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    meter.feed(
        chunk({"tool_calls": [call]})
        + chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Paris"}'}}]})
    )
    assert meter.generated_usage(0).completion_tokens > 5


texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=8) | st.sampled_from(
    ['"', "\\", '"delta":{"content":"x"}', "\n\n", "data: ", '"usage":{}', "\u2028"]
)


@given(
    st.lists(texts, max_size=12),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=6),
)
@example(["Hello", " world"], True, True, False, [5])
def test_any_split_of_a_stream_gives_the_events_usage_and_text_of_a_whole_parse(
    contents: list[str], with_usage: bool, strip: bool, with_tool: bool, sizes: list[int]
) -> None:
    events = [
        chunk({"role": "assistant", "content": ""}),
        *(chunk({"content": c}) for c in contents),
    ]
    if with_tool:
        call = {"index": 0, "function": {"name": "f", "arguments": '{"a": 1}'}}
        events.insert(2, chunk({"tool_calls": [call]}))
    if with_usage:
        events.append(chunk({}, usage=USAGE, choices=False))
    stream = b"".join(events) + sse.DONE
    meter = StreamMeter(strip_usage=strip)
    out, at, turn = [], 0, 0
    while at < len(stream):
        size = sizes[turn % len(sizes)]
        out.append(meter.feed(stream[at : at + size]))
        at, turn = at + size, turn + 1
    out.append(meter.flush())
    dropped = strip and with_usage
    expected = b"".join(events[:-1] if dropped else events) + sse.DONE
    assert b"".join(out) == expected
    assert meter.model == "gpt-4o-2024-08-06"
    if with_usage:
        assert meter.usage == Usage(9, 4) and meter.generated_usage(0) == Usage(9, 4)
    else:
        tool = ['f{"a": 1}'] if with_tool else []
        generated = "".join(contents[:1] + tool + contents[1:])  # in stream order
        assert meter.generated_usage(7) == Usage(7, tokens.count_text(generated))


def test_an_event_split_over_data_lines_is_still_metered() -> None:
    split = b'data: {"id":"c","model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":\ndata: {"content":"Hello there"},"finish_reason":null}],"usage":null}\n\n'
    meter = StreamMeter()
    meter.feed(chunk({"role": "assistant", "content": ""}) + split + chunk({"content": " friend"}))
    assert meter.generated_usage(0) == Usage(0, tokens.count_text("Hello there friend"))


# -- the Responses API's stream ------------------------------------------------------------------


def event(kind: str, **fields: object) -> bytes:
    return b"event: " + kind.encode() + b"\n" + sse.encode({"type": kind, **fields})


RESPONSE = {"id": "resp_1", "object": "response", "model": "gpt-4o-2024-08-06", "usage": None}
RESPONSES_USAGE = {
    "input_tokens": 12,
    "input_tokens_details": {"cached_tokens": 4},
    "output_tokens": 7,
    "output_tokens_details": {"reasoning_tokens": 2},
    "total_tokens": 19,
}
RESPONSES_STREAM = (
    event("response.created", sequence_number=0, response=RESPONSE)
    + event("response.output_text.delta", sequence_number=1, item_id="msg_1", delta="Hello")
    + event("response.output_text.delta", sequence_number=2, item_id="msg_1", delta=" world")
    + event(
        "response.completed",
        sequence_number=3,
        response={**RESPONSE, "usage": RESPONSES_USAGE, "output": [{"id": "msg_1"}]},
    )
)


@given(st.integers(min_value=1, max_value=64))
def test_responses_meter_reads_the_terminal_events_usage_however_the_stream_is_cut(
    size: int,
) -> None:
    named: list[tuple[str, int, list[str]]] = []
    meter = ResponsesStreamMeter(lambda *told: named.append(told))
    out = b"".join(
        meter.feed(RESPONSES_STREAM[i : i + size]) for i in range(0, len(RESPONSES_STREAM), size)
    )
    assert out + meter.flush() == RESPONSES_STREAM  # relayed unchanged
    assert (meter.response_id, meter.model) == ("resp_1", "gpt-4o-2024-08-06")
    assert meter.generated_usage(0) == Usage(12, 7, cached_tokens=4, reasoning_tokens=2)
    # Its 19 tokens, and the framing of its one output item as the next call's input.
    assert meter.context_tokens == 19 + 3
    # Told the id as soon as the stream names it, and the context and its items once it ends.
    assert named == [("resp_1", 0, []), ("resp_1", 22, ["msg_1"])]


def test_a_responses_stream_cut_short_is_charged_for_the_text_generated() -> None:
    meter = ResponsesStreamMeter()
    cut = RESPONSES_STREAM[: RESPONSES_STREAM.index(b"event: response.completed")]
    meter.feed(cut)
    meter.flush()
    assert meter.usage is None
    assert meter.generated_usage(12) == Usage(12, tokens.count_text("Hello world"))


def test_function_call_arguments_count_as_generated_in_a_responses_stream() -> None:
    meter = ResponsesStreamMeter()
    meter.feed(
        event("response.created", sequence_number=0, response=RESPONSE)
        + event("response.function_call_arguments.delta", sequence_number=1, delta='{"city":')
        + event("response.function_call_arguments.delta", sequence_number=2, delta=' "Paris"}')
    )
    assert meter.generated_usage(3).completion_tokens == tokens.count_text('{"city": "Paris"}')


def test_a_responses_stream_without_event_lines_is_parsed_event_by_event() -> None:
    meter = ResponsesStreamMeter()
    bare = b"".join(
        line
        for line in RESPONSES_STREAM.splitlines(keepends=True)
        if line.startswith((b"data:", b"\n"))
    )
    assert b"event:" not in bare
    meter.feed(bare)
    assert meter.response_id == "resp_1"
    assert meter.generated_usage(0) == Usage(12, 7, cached_tokens=4, reasoning_tokens=2)


def test_a_meter_tells_the_completions_id_once() -> None:
    told: list[tuple[str, int]] = []
    meter = StreamMeter(on_id=lambda completion_id, created: told.append((completion_id, created)))
    first = {"id": "chatcmpl-1", "created": 7, "model": "gpt-4o", "choices": []}
    meter.feed(b"data: " + orjson.dumps(first) + b"\n\ndata: " + orjson.dumps(first) + b"\n\n")
    meter.feed(b"data: " + orjson.dumps(first) + b"\n\n")
    assert told == [("chatcmpl-1", 7)]


# -- token-priced audio ---------------------------------------------------------------------------

TRANSCRIPTION_USAGE = {
    "type": "tokens",
    "input_tokens": 53,
    "input_token_details": {"text_tokens": 5, "audio_tokens": 48},
    "output_tokens": 20,
    "total_tokens": 73,
}


def test_audio_usage_tells_text_from_audio() -> None:
    from gateway.wire.usage import AudioUsage, audio_usage_from

    assert audio_usage_from(TRANSCRIPTION_USAGE, speech=False) == AudioUsage(
        text_input=5, audio_input=48, text_output=20
    )
    # Input not attributed to text is audio, the dearer kind.
    bare = {"type": "tokens", "input_tokens": 53, "output_tokens": 20}
    assert audio_usage_from(bare, speech=False) == AudioUsage(audio_input=53, text_output=20)
    lying = {**TRANSCRIPTION_USAGE, "input_token_details": {"text_tokens": 90}}
    assert audio_usage_from(lying, speech=False) == AudioUsage(text_input=53, text_output=20)
    speech = {"input_tokens": 7, "output_tokens": 31, "total_tokens": 38}
    assert audio_usage_from(speech, speech=True) == AudioUsage(text_input=7, audio_output=31)
    assert audio_usage_from({"type": "duration", "seconds": 3}, speech=False) is None
    assert audio_usage_from(None, speech=True) is None
    assert audio_usage_from({"input_tokens": -1, "output_tokens": 2}, speech=True) is None


def test_audio_answers_say_their_usage_whole_or_streamed() -> None:
    from gateway.wire import sse
    from gateway.wire.usage import AudioStreamMeter, audio_answer_usage

    body = orjson.dumps({"text": "hi", "usage": TRANSCRIPTION_USAGE})
    assert audio_answer_usage(body) == TRANSCRIPTION_USAGE
    assert audio_answer_usage(b"ID3\x04\x00" + bytes(100)) is None  # raw mp3
    assert audio_answer_usage(b"hello there\n") is None  # response_format text
    assert audio_answer_usage(b"{not json") is None
    done = {"type": "speech.audio.done", "usage": {"input_tokens": 7, "output_tokens": 31}}
    stream = sse.encode({"type": "speech.audio.delta", "audio": "SUQzBAAAAAAAAA=="}) + sse.encode(
        done
    )
    assert audio_answer_usage(stream) == done["usage"]
    # Relayed in pieces, as it comes; passed on untouched.
    meter = AudioStreamMeter()
    assert b"".join(meter.feed(stream[i : i + 7]) for i in range(0, len(stream), 7)) == stream
    assert meter.reported == done["usage"]
    # Another event's usage is not the call's; a stream cut short says nothing.
    cut = AudioStreamMeter()
    cut.feed(sse.encode({"type": "transcript.text.delta", "delta": '"usage"'}))
    cut.feed(b'data: {"type":"transcript.text.done","usage":{"input_tokens"')
    assert cut.flush() == b"" and cut.reported is None


def test_a_chat_stream_upstream_ends_with_an_error_event_is_marked_failed() -> None:
    error = sse.encode({"error": {"message": "boom", "type": "server_error"}})
    for strip in (False, True):
        meter = StreamMeter(strip)
        # One read: the error event comes with routine content deltas, which are not parsed.
        meter.feed(chunk({"role": "assistant", "content": ""}) + chunk({"content": "Hi"}) + error)
        meter.flush()
        assert meter.failed and meter.usage is None
        assert meter.generated_usage(5) == Usage(5, tokens.count_text("Hi"))
    whole = StreamMeter()
    whole.feed(STREAM)
    assert not whole.failed


def test_a_responses_stream_notes_its_response_events_and_an_error() -> None:
    meter = ResponsesStreamMeter()
    head = event("response.created", sequence_number=0, response=RESPONSE)
    meter.feed(head + event("error", sequence_number=1, error={"message": "boom"}))
    assert meter.failed and meter.events == 2
    assert meter.response == RESPONSE
    whole = ResponsesStreamMeter()
    whole.feed(RESPONSES_STREAM)
    assert not whole.failed and whole.events == RESPONSES_STREAM.count(b"\n\n")


def test_a_responses_stream_counts_its_hosted_tool_calls() -> None:
    searching = {"id": "ws_1", "type": "web_search_call", "status": "in_progress"}
    begun = (
        event("response.created", sequence_number=0, response=RESPONSE)
        + event("response.output_item.added", sequence_number=1, output_index=0, item=searching)
        + event("response.web_search_call.searching", sequence_number=2, item_id="ws_1")
        + event("response.output_item.added", sequence_number=3, output_index=1,
                item={**searching, "id": "ws_2"})
    )  # fmt: skip
    cut = ResponsesStreamMeter()
    cut.feed(begun)
    assert cut.hosted_calls() == {"web_search_call": 2}  # the calls begun, without its end
    done = ResponsesStreamMeter()
    output = [{"type": "web_search_call"}, {"type": "file_search_call"}, {"type": "message"}]
    end = {**RESPONSE, "usage": RESPONSES_USAGE, "output": output}
    done.feed(begun + event("response.completed", sequence_number=4, response=end))
    assert done.hosted_calls() == {"web_search_call": 1, "file_search_call": 1}


def test_a_stream_says_the_tier_that_served_it() -> None:
    """Chat: the chunks name it, the usage chunk too; the Responses API: its terminal event
    (the first one echoes the tier asked for)."""
    served = STREAM.replace(b'"model":', b'"service_tier":"default","model":')
    meter = StreamMeter()
    meter.feed(served)
    assert meter.service_tier == "default"
    plain = StreamMeter()
    plain.feed(STREAM)
    assert plain.service_tier is None
    responses = ResponsesStreamMeter()
    responses.feed(
        event("response.created", sequence_number=0, response={**RESPONSE, "service_tier": "auto"})
        + event(
            "response.completed",
            sequence_number=1,
            response={**RESPONSE, "usage": RESPONSES_USAGE, "service_tier": "default"},
        )
    )
    assert responses.service_tier == "default"
