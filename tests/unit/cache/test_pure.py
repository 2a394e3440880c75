"""The cache's pure parts: the key of a request, whether it may use the cache, what an answer
keeps, and a stream gathered back into the answer it replays as."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk
from openai.types.responses import ResponseStreamEvent as SDKEvent
from pydantic import TypeAdapter

from gateway.cache import decision, replay
from gateway.cache.capture import ChatCapture, ResponsesCapture
from gateway.cache.decision import Mode
from gateway.cache.entry import Entry, decode, delivered, hit_cost, keepable
from gateway.cache.key import cache_key, scope
from gateway.compat import fake_stream
from gateway.wire import sse

ResponseStreamEvent: TypeAdapter[Any] = TypeAdapter(SDKEvent)

BODY: dict[str, Any] = {
    "model": "auto",
    "messages": [{"role": "user", "content": "Hi"}],
    "temperature": 0.2,
    "response_format": {"type": "json_object", "schema": {"b": 1, "a": 2}},
}


def key(payload: dict[str, Any], **over: Any) -> str:
    args = {
        "api": "chat", "model": "gpt-4o", "upstream": "gpt-4o-2024-08-06",
        "where": scope("a", False, False),
    }  # fmt: skip
    args.update(over)
    return cache_key(
        args["api"], args["model"], args["upstream"], args["where"], payload, args.get("headers"),
        as_sent=args.get("as_sent", False),
    )  # fmt: skip


def test_the_key_ignores_delivery_and_order_but_not_the_answer() -> None:
    base = key(BODY)
    reordered = dict(reversed(list(BODY.items())))
    assert key(reordered) == base
    # Inside a value, order is kept: a schema's properties are answered in the order listed.
    reordered["response_format"] = {"type": "json_object", "schema": {"a": 2, "b": 1}}
    assert key(reordered) != base
    delivered = {**BODY, "stream": True, "stream_options": {"include_usage": True},
                 "user": "u1", "safety_identifier": "s", "model": "gpt-4o"}  # fmt: skip
    assert key(delivered) == base
    assert key({**BODY, "temperature": 0.3}) != base
    assert key({**BODY, "seed": 1}) != base
    assert key(BODY, model="o1-mini", upstream="o1-mini-2024-09-12") != base
    # Another configured name of the same upstream model (its own price, its own allow-list),
    # and a fine-tune served under its base's name, are other requests.
    assert key(BODY, model="gpt-4o-premium") != base
    assert key(BODY, upstream="ft:gpt-4o-2024-08-06:acme::x1") != base
    assert key(BODY, api="responses") != base
    assert key(BODY, where=scope("b", False, False)) != base
    assert key(BODY, where=scope("a", False, True)) != base
    assert key(BODY, headers={"openai-beta": "x"}) != base
    assert scope("a", True, False) == scope("b", True, False)


def test_a_left_out_field_upstream_would_refuse_is_in_the_key() -> None:
    """A field that leaves the answer as it is, but that upstream refuses (of another type, or
    not taken with the rest of the request), is part of the key: a request sending it is never
    served an answer kept for one without it, where its own miss would be refused."""
    base = key(BODY)
    taken: list[dict[str, Any]] = [
        {"user": "u1", "prompt_cache_key": "k" * 64, "store": False},
        {"stream": True, "stream_options": {"include_usage": True}},
        {"stream": None, "stream_options": None, "user": None},
        {"safety_identifier": 7},  # the gateway sends its own
    ]
    for fields in taken:
        assert key({**BODY, **fields}) == base, fields
    refused: list[dict[str, Any]] = [
        {"user": 7}, {"prompt_cache_key": ["k"]}, {"prompt_cache_key": "k" * 65},
        {"store": "false"}, {"stream": 1},
        {"stream_options": {"include_usage": True}},  # only with `stream: true`
        {"stream": False, "stream_options": {"include_usage": False}},
        {"background": False},  # the Responses API's, unknown to chat completions
    ]  # fmt: skip
    for fields in refused:
        assert key({**BODY, **fields}) != base, fields
    assert key({**BODY, "background": False}, api="responses") == key(BODY, api="responses")
    # Sent unpatched, a stream may be refused by a model that cannot stream (patched, faked).
    streamed = {**BODY, "stream": True}
    assert key(streamed, as_sent=True) != key(BODY, as_sent=True)
    assert key({**BODY, "stream": False}, as_sent=True) == key(BODY, as_sent=True)
    assert key(BODY, as_sent=True) == base


def test_the_header_decides_then_the_team_or_policy() -> None:
    assert decision.mode(None, False, False) is Mode.OFF
    assert decision.mode(None, True, False) is Mode.ON
    assert decision.mode(None, False, True) is Mode.ON
    assert decision.mode("on", False, False) is Mode.ON
    assert decision.mode("off", True, True) is Mode.BYPASS
    assert decision.mode("refresh", False, False) is Mode.REFRESH


IMAGE_URL = {"type": "image_url", "image_url": {"url": "https://example.com/today.png"}}
INLINE_IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}
REMOTE_IMAGE = {"type": "input_image", "image_url": "https://example.com/today.png"}
REMOTE_FILE = {"type": "input_file", "file_url": "https://example.com/today.pdf"}


@pytest.mark.parametrize(
    ("api", "payload", "tools", "expected"),
    [
        ("chat", {}, False, True),
        ("chat", {"store": True}, False, False),
        ("chat", {"n": 2}, False, False),
        ("chat", {"tools": [{"type": "function"}]}, False, False),
        ("chat", {"tools": [{"type": "function"}]}, True, True),
        ("responses", {}, False, False),  # stored by default
        ("responses", {"store": False}, False, True),
        ("responses", {"store": False, "background": True}, False, False),
        # An image or a file upstream fetches from a URL; one inline or by id is the request's.
        ("chat", {"messages": [{"content": [IMAGE_URL]}]}, False, False),
        ("chat", {"messages": [{"content": [INLINE_IMAGE]}]}, False, True),
        ("chat", {"messages": [{"content": [{"type": "file", "file": {"file_id": "file-1"}}]}]},
         False, True),
        ("responses", {"store": False, "input": [{"content": [REMOTE_IMAGE]}]}, False, False),
        ("responses", {"store": False, "input": [{"content": [REMOTE_FILE]}]}, False, False),
        ("responses", {"store": False, "input": [{"type": "function_call_output",
                                                  "output": [REMOTE_IMAGE]}]}, False, False),
        ("responses", {"store": False, "input": [{"content": [
            {"type": "input_image", "image_url": "data:image/png;base64,AA"},
            {"type": "input_file", "file_id": "file-1"}]}]}, False, True),
        # A web search finds what is there today: not kept, even when tool answers may be.
        ("chat", {"web_search_options": {}}, True, False),
        ("responses", {"store": False, "tools": [{"type": "web_search"}]}, True, False),
        ("responses", {"store": False, "tools": [{"type": "web_search_preview_2025_03_11"}]},
         True, False),
        # Nor other hosted tools reading live data: a vector store's files, a remote MCP
        # server, code run in a container.
        ("responses", {"store": False, "tools": [{"type": "file_search"}]}, True, False),
        ("responses", {"store": False, "tools": [{"type": "mcp"}]}, True, False),
        ("responses", {"store": False, "tools": [{"type": "code_interpreter"}]}, True, False),
        ("responses", {"store": False, "tools": [
            {"type": "shell", "environment": {"type": "container_auto"}}]}, True, False),
        # A local shell's commands run on the client: its answer is a call, kept as tools are.
        ("responses", {"store": False, "tools": [{"type": "shell"}]}, True, True),
        ("responses", {"store": False, "tools": [{"type": "function"}]}, True, True),
        ("responses", {"store": False, "prompt": {"id": "pmpt_1"}}, True, False),
        ("responses", {"store": False, "prompt": {"id": "pmpt_1", "version": "2"}}, False, False),
    ],
)  # fmt: skip
def test_what_may_use_the_cache(
    api: str, payload: dict[str, Any], tools: bool, expected: bool
) -> None:
    assert decision.cacheable(api, payload, tools) is expected


def test_a_model_is_shut_down_from_its_day_on() -> None:
    assert not decision.shut_down("", "2026-12-05")  # no day set
    assert not decision.shut_down("2027-01-14", "2027-01-13")
    assert decision.shut_down("2027-01-14", "2027-01-14")
    assert decision.shut_down("2025-07-28", "2026-12-05")


def test_a_failure_another_try_may_not_meet_elects_another_leader() -> None:
    for status in (408, 409, 429, 499, 500, 502, 503, 504):
        assert decision.passing(status), status
    # Refusals of the request itself: each waiter would be refused alike.
    for status in (400, 401, 403, 404, 413, 422):
        assert not decision.passing(status), status


def completion(finish: str = "stop", **message: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there, friend.",
                                             "refusal": None, "annotations": [], **message},
                     "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
        "service_tier": None, "system_fingerprint": "fp_1",
    }  # fmt: skip


def test_only_whole_answers_are_kept() -> None:
    assert keepable("chat", completion(), tools=False)
    assert not keepable("chat", completion("length"), tools=False)
    assert not keepable("chat", completion("tool_calls"), tools=False)
    assert keepable("chat", completion("tool_calls"), tools=True)
    done = {"status": "completed", "output": [{"type": "message"}]}
    assert keepable("responses", done, tools=False)
    assert not keepable("responses", {**done, "status": "incomplete"}, tools=False)
    called = {**done, "output": [{"type": "function_call"}]}
    assert not keepable("responses", called, tools=False)
    assert keepable("responses", called, tools=True)


def test_an_entry_round_trips_and_garbage_is_no_entry() -> None:
    entry = Entry(completion(), 1234, "gpt-4o", 1000.5)
    assert decode(entry.encode()) == entry
    assert entry.age_s(1010.9) == 10
    assert decode(b"not json") is None
    noted = Entry(completion(), 1, "o1-mini", 1.0, (("x-gateway-patched", "system_messages"),))
    assert decode(noted.encode()) == noted
    # An entry kept before notes were: none. Notes naming any other header: no entry.
    old = orjson.loads(entry.encode())
    del old["notes"]
    assert decode(orjson.dumps(old)) == entry
    assert decode(orjson.dumps({**old, "notes": [["x-ratelimit-limit-requests", "1"]]})) is None
    assert decode(b'{"answer": 1}') is None


def test_a_hit_costs_its_share_rounded_half_up() -> None:
    assert hit_cost(1001, 0.0) == 0
    assert hit_cost(1001, 0.5) == 501
    assert hit_cost(1000, 0.1) == 100
    assert hit_cost(7, 1.0) == 7


@pytest.mark.parametrize("usage", [True, False])
def test_a_chat_stream_gathers_into_the_completion_it_replays_as(usage: bool) -> None:
    answer = completion()
    if not usage:
        answer["usage"] = None
    capture = ChatCapture()
    stream = replay.chat_stream(answer, include_usage=usage)
    for at in range(0, len(stream), 7):  # events split across reads
        capture.feed(stream[at : at + 7])
    assert capture.answer() == answer


def token(text: str) -> dict[str, Any]:
    return {"token": text, "logprob": -0.5, "bytes": list(text.encode()), "top_logprobs": []}


@pytest.mark.parametrize("tokens", [["Hello", " there", ",", " friend", "."], ["\\xe2", "!"]])
def test_a_chat_stream_replays_the_logprobs_it_was_asked_for(tokens: list[str]) -> None:
    """A client that asked `logprobs` streamed gets them on a hit as on a miss: each content
    token with its own (or, when the tokens do not spell the text, all on its first piece)."""
    answer = completion()
    answer["choices"][0]["logprobs"] = {"content": [token(t) for t in tokens], "refusal": None}
    stream = replay.chat_stream(answer, include_usage=True)
    capture = ChatCapture()
    capture.feed_all(stream)
    assert capture.answer() == answer
    sdk_chunks = [
        ChatCompletionChunk.model_validate(orjson.loads(data))
        for data in sse.Decoder().feed(stream)
        if data != b"[DONE]"
    ]
    state = ChatCompletionStreamState()
    for chunk in sdk_chunks:
        state.handle_chunk(chunk)
    final = state.get_final_completion().choices[0]
    assert final.message.content == "Hello there, friend."
    assert final.logprobs is not None and final.logprobs.content is not None
    assert [t.token for t in final.logprobs.content] == tokens
    if "".join(tokens) == "Hello there, friend.":
        with_text = [c for c in sdk_chunks if c.choices and c.choices[0].delta.content]
        assert all(c.choices[0].logprobs is not None for c in with_text)
        assert [c.choices[0].delta.content for c in with_text] == tokens


def test_a_chat_stream_with_tool_calls_gathers_them() -> None:
    call = {"id": "call_1", "type": "function",
            "function": {"name": "lookup", "arguments": '{"city": "Paris", "days": 3}'}}  # fmt: skip
    answer = completion("tool_calls", content=None, tool_calls=[call])
    capture = ChatCapture()
    capture.feed_all(fake_stream.encode(fake_stream.chunks(answer, include_usage=True)))
    gathered = capture.answer()
    assert gathered is not None
    assert gathered["choices"][0]["message"]["tool_calls"] == [call]
    assert gathered["choices"][0]["finish_reason"] == "tool_calls"


def test_a_custom_tools_call_is_not_kept_whole_or_streamed() -> None:
    """Only function calls are gathered from a stream and replayed as one: an answer calling a
    custom tool (its free-form `input`) is not kept, nor is a stream whose call says that kind."""
    call = {"id": "call_1", "type": "custom", "custom": {"name": "run", "input": "ls -la"}}
    answer = completion("tool_calls", content=None, tool_calls=[call])
    assert not keepable("chat", answer, tools=True)
    opening = {"index": 0, "id": "call_1", "type": "custom", "custom": {"name": "run"}}
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [opening]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    capture = ChatCapture()
    capture.feed_all(b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + sse.DONE)
    gathered = capture.answer()
    assert gathered is not None and not keepable("chat", gathered, tools=True)


def test_a_failed_or_unfinished_chat_stream_gathers_nothing() -> None:
    stream = replay.chat_stream(completion(), include_usage=False)
    cut = ChatCapture()
    cut.feed(stream[: stream.rfind(b"data: [DONE]")])
    assert cut.answer() is None
    failed = ChatCapture()
    failed.feed(
        stream[:200] + b'\n\ndata: {"error": {"message": "boom"}}\n\n' + b"data: [DONE]\n\n"
    )
    assert failed.answer() is None


def response_object() -> dict[str, Any]:
    return {
        "id": "resp_1", "object": "response", "created_at": 1, "status": "completed",
        "completed_at": 2, "model": "gpt-4o", "incomplete_details": None, "usage": {"input_tokens": 3},
        "output": [
            {"id": "rs_1", "type": "reasoning", "summary": []},
            {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": "Hello there, friend.",
                          "annotations": [], "logprobs": []}]},
            {"id": "fc_1", "type": "function_call", "status": "completed", "call_id": "c",
             "name": "f", "arguments": '{"a": 1}'},
        ],
    }  # fmt: skip


def test_a_responses_replay_is_openais_event_sequence_and_gathers_back() -> None:
    response = response_object()
    stream = replay.responses_stream(response)
    events = [orjson.loads(line[6:]) for line in stream.split(b"\n") if line.startswith(b"data: ")]
    kinds = [event["type"] for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert events[0]["response"]["status"] == "in_progress"
    assert events[0]["response"]["output"] == []
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == "Hello there, friend."
    assert "response.function_call_arguments.done" in kinds
    assert (
        kinds.count("response.output_item.added") == kinds.count("response.output_item.done") == 3
    )
    capture = ResponsesCapture()
    for at in range(0, len(stream), 11):
        capture.feed(stream[at : at + 11])
    assert capture.answer() == response


def test_an_incomplete_responses_stream_gathers_into_its_incomplete_response() -> None:
    """An answer cut at `max_output_tokens` ended: not kept, but no failed call (whose waiters
    would elect another leader, to be cut short in turn); one that never ends gathers to
    nothing."""
    response = {
        **response_object(), "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
    }  # fmt: skip
    stream = replay.responses_stream(response).replace(
        b"response.completed", b"response.incomplete"
    )
    capture = ResponsesCapture()
    capture.feed(stream)
    assert capture.answer() == response
    assert not keepable("responses", response, tools=True)
    cut = ResponsesCapture()
    cut.feed(stream[: stream.rindex(b"event: response.incomplete")])
    assert cut.answer() is None


def test_a_responses_replay_streams_the_reasoning_summary() -> None:
    """A client showing a reasoning model's summary as it comes (its
    `response.reasoning_summary_text.delta` events) gets it on a hit as on a miss."""
    response = response_object()
    summary = ["First I read the question.", "Then I answered."]
    response["output"][0]["summary"] = [{"type": "summary_text", "text": t} for t in summary]
    stream = replay.responses_stream(response)
    events = [orjson.loads(line[6:]) for line in stream.split(b"\n") if line.startswith(b"data: ")]
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert added["item"]["summary"] == []
    for at, text in enumerate(summary):
        mine = [e for e in events if e.get("summary_index") == at]
        kinds = [e["type"] for e in mine]
        assert kinds[0] == "response.reasoning_summary_part.added"
        assert kinds[-2:] == [
            "response.reasoning_summary_text.done", "response.reasoning_summary_part.done"
        ]  # fmt: skip
        deltas = [e["delta"] for e in mine if e["type"] == "response.reasoning_summary_text.delta"]
        assert "".join(deltas) == text
        for event in mine:
            assert ResponseStreamEvent.validate_python(event).type == event["type"]  # the SDK's
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    capture = ResponsesCapture()
    capture.feed_all(stream)
    assert capture.answer() == response


def test_a_responses_replay_streams_the_logprobs_it_was_asked_for() -> None:
    """`include: ["message.output_text.logprobs"]` streamed: each text delta carries its token's
    logprobs, and the text's done event all of them, on a hit as on a miss."""
    response = response_object()
    tokens = ["Hello", " there", ",", " friend", "."]
    part = response["output"][1]["content"][0]
    part["logprobs"] = [token(t) for t in tokens]
    stream = replay.responses_stream(response)
    events = [orjson.loads(line[6:]) for line in stream.split(b"\n") if line.startswith(b"data: ")]
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert [e["delta"] for e in deltas] == tokens
    assert [e["logprobs"] for e in deltas] == [[entry] for entry in part["logprobs"]]
    done = next(e for e in events if e["type"] == "response.output_text.done")
    assert done["logprobs"] == part["logprobs"]
    # The part opens empty, as upstream's does before its first token: a client adding up the
    # deltas' logprobs after it counts each token once.
    added = next(e for e in events if e["type"] == "response.content_part.added")
    assert added["part"] == {**part, "text": "", "logprobs": []}
    for event in (*deltas, done):
        assert ResponseStreamEvent.validate_python(event).type == event["type"]  # the SDK's


def test_a_kept_response_echoes_the_request_it_answers_now() -> None:
    kept = {"id": "resp_1", "user": "alice", "safety_identifier": "o1gw-a", "output": []}
    asked = {"user": "bob", "safety_identifier": "o1gw-b", "prompt_cache_key": "k"}
    again = replay.as_asked(kept, asked)
    # What it echoes is the asker's; what it does not echo stays unsaid.
    assert again == {"id": "resp_1", "user": "bob", "safety_identifier": "o1gw-b", "output": []}
    assert kept["user"] == "alice"  # the entry itself is left as kept
    same = {"user": "alice", "safety_identifier": "o1gw-a"}
    assert replay.as_asked(kept, same) is kept


def test_a_hit_says_the_stream_patch_as_its_own_delivery_does() -> None:
    translated = ("x-gateway-translated", "responses->chat.completions")
    streamed = (("x-gateway-patched", "system_messages,stream"), translated)
    assert delivered(streamed, faked=True) == streamed
    assert delivered(streamed, faked=False) == (
        ("x-gateway-patched", "system_messages"),
        translated,
    )
    whole = (("x-gateway-patched", "system_messages"),)
    assert delivered(whole, faked=True) == (("x-gateway-patched", "system_messages,stream"),)
    # Patched for nothing but its delivery: no patch to say when delivered whole.
    assert delivered((("x-gateway-patched", "stream"),), faked=False) == ()
    assert delivered((), faked=True) == (("x-gateway-patched", "stream"),)


def test_a_responses_replay_streams_a_custom_tools_input() -> None:
    """A custom tool's call (kept when tool answers may be) streams its input as upstream
    does: the item opened with none, then `response.custom_tool_call_input.delta` and
    `.done`, which a client reading the call as it comes needs."""
    call = {"id": "ctc_1", "type": "custom_tool_call", "status": "completed", "call_id": "c",
            "name": "patch", "input": "*** Begin Patch"}  # fmt: skip
    response = {**response_object(), "output": [call]}
    stream = replay.responses_stream(response)
    events = [orjson.loads(line[6:]) for line in stream.split(b"\n") if line.startswith(b"data: ")]
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert added["item"]["input"] == ""
    deltas = [e for e in events if e["type"] == "response.custom_tool_call_input.delta"]
    assert "".join(e["delta"] for e in deltas) == call["input"]
    done = next(e for e in events if e["type"] == "response.custom_tool_call_input.done")
    assert done["input"] == call["input"]
    for event in (*deltas, done):
        assert ResponseStreamEvent.validate_python(event).type == event["type"]  # the SDK's


def replayed_events(response: dict[str, Any], noise: bytes | None = None) -> list[dict[str, Any]]:
    stream = replay.responses_stream(response, noise)
    return [orjson.loads(line[6:]) for line in stream.split(b"\n") if line.startswith(b"data: ")]


def test_a_responses_replay_pads_each_delta_as_upstream_does() -> None:
    """Every delta event carries `obfuscation`, letters and digits bringing the delta to a
    multiple of 16 characters, drawn from the noise given (the same noise, the same padding;
    other noise, other padding); no noise, no padding, and nothing else changes."""
    response = response_object()
    padded = replayed_events(response, b"k" * 32)
    deltas = [e for e in padded if e["type"].endswith(".delta")]
    assert {e["type"] for e in deltas} == {
        "response.output_text.delta", "response.function_call_arguments.delta"
    }  # fmt: skip
    for event in deltas:
        assert event["obfuscation"].isalnum()
        assert (len(event["delta"]) + len(event["obfuscation"])) % 16 == 0
        assert ResponseStreamEvent.validate_python(event).type == event["type"]  # the SDK's
    assert not any("obfuscation" in e for e in padded if not e["type"].endswith(".delta"))
    assert replayed_events(response, b"k" * 32) == padded
    again = replayed_events(response, b"j" * 32)
    assert [e.get("obfuscation") for e in again] != [e.get("obfuscation") for e in padded]
    plain = replayed_events(response)
    assert plain == [{k: v for k, v in e.items() if k != "obfuscation"} for e in padded]


def test_a_responses_replay_streams_a_local_shells_commands() -> None:
    """A local shell's call streams each command (added empty, its delta, done), in the SDK's
    shapes, padded as any delta; its item opens with no commands."""
    call = {"id": "sh_1", "type": "shell_call", "status": "completed", "call_id": "c",
            "action": {"commands": ["ls", ""]}, "environment": {"type": "local"}}  # fmt: skip
    events = replayed_events({**response_object(), "output": [call]}, b"k" * 32)
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert added["item"]["action"] == {"commands": []}
    mine = [e for e in events if e["type"].startswith("response.shell_call_command.")]
    assert [(e["type"].rpartition(".")[2], e["command_index"]) for e in mine] == [
        ("added", 0), ("delta", 0), ("done", 0), ("added", 1), ("done", 1)
    ]  # fmt: skip
    assert [e["delta"] if "delta" in e else e["command"] for e in mine] == ["", "ls", "ls", "", ""]
    for event in mine:
        assert ResponseStreamEvent.validate_python(event).type == event["type"]  # the SDK's
    assert mine[1]["obfuscation"]
