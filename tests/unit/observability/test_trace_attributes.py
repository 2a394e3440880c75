from __future__ import annotations

import orjson

from gateway.observability.record import Exchange, StreamObserver
from gateway.observability.trace_attributes import (
    StreamFacts,
    answer_attributes,
    answer_facts,
    charge_attributes,
    decision_attributes,
    decision_key,
    error_type,
    operation_attributes,
    request_attributes,
    response_attributes,
    span_name,
    streamed_output,
)

SECRET = "the-secret-prompt-text"
CHAT = {
    "model": "auto",
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": SECRET}],
    "max_completion_tokens": 200,
    "temperature": 0.5,
    "n": 2,
    "stream": True,
}


def test_a_chat_request_by_the_conventions_without_content() -> None:
    assert operation_attributes("chat") == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "openai.api.type": "chat_completions",
    }
    found = request_attributes("chat", CHAT, capture=False)
    assert found == {
        "gen_ai.request.model": "auto",
        "gen_ai.request.max_tokens": 200,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.choice.count": 2,
        "gen_ai.request.stream": True,
    }
    assert SECRET not in repr(found)


def test_content_captured_as_the_conventions_messages() -> None:
    found = request_attributes("chat", CHAT, capture=True)
    messages = orjson.loads(found["gen_ai.input.messages"])
    assert messages[1] == {"role": "user", "parts": [{"type": "text", "content": SECRET}]}
    responses = request_attributes(
        "responses",
        {"model": "o1", "input": SECRET, "instructions": "Be brief.", "max_output_tokens": 9},
        capture=True,
    )
    assert operation_attributes("responses")["openai.api.type"] == "responses"
    assert operation_attributes("responses")["gen_ai.operation.name"] == "chat"
    assert responses["gen_ai.request.max_tokens"] == 9
    assert SECRET in responses["gen_ai.input.messages"]
    assert "Be brief." in responses["gen_ai.system_instructions"]


def test_endpoints_that_are_no_genai_operation_get_none() -> None:
    assert request_attributes("files", {"model": "x"}, capture=True) == {}
    assert operation_attributes("files") == {}
    assert span_name("GET", "files", "x") == "GET"
    assert span_name("POST", "embeddings", "text-embedding-3-small") == (
        "embeddings text-embedding-3-small"
    )


def test_a_whole_answer() -> None:
    answer = {
        "id": "chatcmpl-1",
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1},
    }
    found = answer_attributes("chat", answer, capture=False)
    assert found == {
        "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 5,
        "gen_ai.usage.output_tokens": 1,
    }
    # Read from the bytes, without parsing: the same answer, less its usage (the record's).
    response_id, model, reasons = answer_facts(orjson.dumps(answer))
    assert {"gen_ai.response.id": response_id, **response_attributes(model, reasons)} == {
        key: value for key, value in found.items() if not key.startswith("gen_ai.usage")
    }
    vectors = orjson.dumps(
        {"object": "list", "data": [{"embedding": [0.5] * 300}], "model": "text-embedding-3-small"}
    )
    assert answer_facts(vectors) == ("", "text-embedding-3-small", ())
    captured = answer_attributes("chat", answer, capture=True)
    assert orjson.loads(captured["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hi"}], "finish_reason": "stop"}
    ]


def relayed(facts: StreamFacts, reads: list[bytes]) -> None:
    """Give `facts` a stream's reads as the relay does: to whatever the last call handed over
    to."""
    observe: StreamObserver = facts.feed
    for read in reads:
        observe = observe(read) or observe


def test_stream_facts_across_chunk_boundaries() -> None:
    stream = (
        b'data: {"id":"chatcmpl-9","object":"chat.completion.chunk","model":"o1-mini",'
        b'"choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n'
        b'data: {"id":"chatcmpl-9","choices":[{"index":0,"delta":{"content":"lo"}}]}\n\n'
        b'data: {"id":"chatcmpl-9","choices":[{"index":0,"delta":{},"finish_reason":"length"}]}\n\n'
        b"data: [DONE]\n\n"
    )
    for size in (7, 40, len(stream)):
        for whole in (False, True):  # captured needs it whole: the last
            facts = StreamFacts(whole)
            relayed(facts, [stream[at : at + size] for at in range(0, len(stream), size)])
            assert facts.facts() == ("chatcmpl-9", "o1-mini", ("length",)), (size, whole)
        assert orjson.loads(facts.captured()["gen_ai.output.messages"]) == streamed_output(stream)
    assert streamed_output(stream) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hello"}],
         "finish_reason": "length"}
    ]  # fmt: skip


def test_a_long_streams_facts_come_from_its_first_and_last_reads() -> None:
    delta = (
        b'data: {"id":"chatcmpl-7","model":"gpt-4o","choices":[{"delta":{"content":"w"},'
        b'"finish_reason":null}]}\n\n'
    )
    end = (
        b'data: {"id":"chatcmpl-7","choices":[{"delta":{},"finish_reason":"stop"}]}\n\n'
        b'data: {"id":"chatcmpl-7","choices":[],"usage":{"total_tokens":9}}\n\ndata: [DONE]\n\n'
    )
    facts = StreamFacts(whole=False)
    relayed(facts, [delta] * 2000 + [end[at : at + 9] for at in range(0, len(end), 9)])
    assert facts.facts() == ("chatcmpl-7", "gpt-4o", ("stop",))
    # Only the first reads (up to the head) and the last few are kept.
    assert len(facts._head) * len(delta) < 2 * 512 and len(facts._reads) == 16
    # Its head read, the stream's chunks are handed to an observer that only keeps them.
    assert StreamFacts(whole=False).feed(delta) is None
    assert StreamFacts(whole=False).feed(delta * 8) is not None


def test_the_record_and_its_errors() -> None:
    ex = Exchange(
        started=0.0,
        team="research",
        policy="auto",
        route_reason="physics",
        patches=("system_message",),
    )
    ex.routed_model, ex.cache, ex.error_code = "o1-preview", "hit", "rate_limit_exceeded"
    found = decision_attributes(ex, 429)
    assert found["http.response.status_code"] == 429
    assert found["gateway.team"] == "research"
    assert found["gateway.route.policy"] == "auto"
    assert found["gateway.route.reason"] == "physics"
    assert found["gateway.patches"] == ("system_message",)  # an array, encoded
    assert found["gateway.cache.status"] == "hit"
    assert found["gateway.error.code"] == "rate_limit_exceeded"
    assert charge_attributes(ex) == {}  # not admitted, nothing charged
    # Requests alike in their decisions share their encoding; one in another route does not.
    other = Exchange(started=1.0, team="research", policy="auto", route_reason="physics",
                     patches=("system_message",))  # fmt: skip
    other.routed_model, other.cache, other.error_code = ex.routed_model, ex.cache, ex.error_code
    assert decision_key(other) == decision_key(ex)
    other.route_reason = "code"
    assert decision_key(other) != decision_key(ex)
    assert error_type(ex, 429) == ""  # the caller's: not a server span's error
    assert error_type(ex, 502) == "rate_limit_exceeded"
    assert error_type(Exchange(started=0.0), 503) == "503"
    ex.error_code = "upstream_truncated"
    assert error_type(ex, 200) == "upstream_truncated"  # a stream cut after its 200


def test_stream_facts_skip_null_finish_reasons_and_read_spaced_ones() -> None:
    stream = (
        b'data: {"id": "c-1", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"content":'
        b' "a"}, "finish_reason": null}]}\n\n'
        b'data: {"choices": [{"index": 1, "delta": {}, "finish_reason":null}]}\n\n'
        b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n'
        b'data: {"choices": [{"index": 1, "delta": {}, "finish_reason":"length"}]}\n\n'
    )
    for size in (5, 33, len(stream)):
        facts = StreamFacts(whole=True)  # two choices: kept whole
        relayed(facts, [stream[at : at + size] for at in range(0, len(stream), size)])
        assert facts.facts() == ("c-1", "gpt-4o", ("stop", "length")), size
