from __future__ import annotations

import re
from typing import Any

import orjson
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.compat import fake_stream
from gateway.simulator import answers, rules
from gateway.wire import sse

USAGE = {
    "prompt_tokens": 12,
    "completion_tokens": 300,
    "total_tokens": 312,
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 256},
}
COMMON = ("id", "object", "created", "model", "system_fingerprint")


def completion(*contents: str | None, finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-AB12",
        "object": "chat.completion",
        "created": 1726000000,
        "model": "o1-preview-2024-09-12",
        "choices": [
            {
                "index": index,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": finish,
            }
            for index, content in enumerate(contents)
        ],
        "usage": USAGE,
        "system_fingerprint": "fp_49f580698f",
    }


def joined(chunks: list[dict[str, Any]], index: int = 0, field: str = "content") -> str:
    return "".join(
        choice["delta"].get(field) or ""
        for chunk in chunks
        for choice in chunk["choices"]
        if choice["index"] == index
    )


def decode(data: bytes) -> list[Any]:
    # Odd-sized reads: events must survive being split anywhere.
    decoder = sse.Decoder()
    events: list[bytes] = []
    for at in range(0, len(data), 7):
        events += decoder.feed(data[at : at + 7])
    events += decoder.flush()
    assert events[-1] == b"[DONE]"
    return [orjson.loads(event) for event in events[:-1]]


# Fragments that break naive SSE framing or naive splitting, mixed with arbitrary Unicode.
texts = st.lists(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
    | st.sampled_from(["\n", "\n\n", "data: ", " ", "\r\n", "😀", "👩‍👩‍👧", "[DONE]", "\u2028"])
).map("".join)


@given(texts, st.booleans())
@example("", True)
@example("data: [DONE]\n\nnext line", False)
@example("   \n", True)
def test_deltas_rebuild_the_content_exactly_with_the_facts_chunk_layout(
    content: str, include_usage: bool
) -> None:
    upstream = completion(content)
    chunks = fake_stream.chunks(upstream, include_usage=include_usage)

    assert joined(chunks) == content
    for chunk in chunks:
        assert {key: chunk[key] for key in COMMON} == {
            "id": "chatcmpl-AB12",
            "object": "chat.completion.chunk",
            "created": 1726000000,
            "model": "o1-preview-2024-09-12",
            "system_fingerprint": "fp_49f580698f",
        }
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    body = chunks[1:-1] if include_usage else chunks[1:]
    *middle, finish = body
    assert all(c["choices"][0]["finish_reason"] is None for c in [chunks[0], *middle])
    assert all(set(c["choices"][0]["delta"]) == {"content"} for c in middle)
    assert all(c["choices"][0]["delta"]["content"] for c in middle), "no empty deltas"
    assert finish["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    ]
    if include_usage:
        assert chunks[-1]["choices"] == []
        assert chunks[-1]["usage"] == USAGE
        assert all(c["usage"] is None for c in chunks[:-1])
    else:
        assert all("usage" not in c for c in chunks)

    encoded = fake_stream.encode(chunks)
    assert encoded.endswith(b"\n\ndata: [DONE]\n\n")
    assert decode(encoded) == chunks


@given(texts)
def test_pieces_join_back_and_only_the_first_can_be_one_character(text: str) -> None:
    pieces = fake_stream.pieces(text)
    assert "".join(pieces) == text
    assert all(pieces)
    # Whitespace rides with the next word, so only a one-letter opening word can stand alone.
    assert all(len(piece) > 1 for piece in pieces[1:])
    assert all(len(piece) <= 32 for piece in pieces)


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_prose_goes_out_one_word_per_piece(seed: int) -> None:
    text = answers.answer_text(seed)
    pieces = fake_stream.pieces(text)
    assert "".join(pieces) == text
    assert pieces == re.findall(r"\s*\S+", text)
    assert len(pieces) == len(text.split())
    assert 1 < len(pieces) < len(text)


@given(st.integers(min_value=33, max_value=3000))
def test_text_without_spaces_is_not_one_blob_nor_scraps(length: int) -> None:
    text = "长" * length
    pieces = fake_stream.pieces(text)
    assert "".join(pieces) == text
    assert len(pieces) > 1
    assert all(16 <= len(piece) <= 32 for piece in pieces)


def test_several_choices_each_get_role_content_and_finish_in_order() -> None:
    chunks = fake_stream.chunks(completion("one two", "three four five"), include_usage=True)
    assert joined(chunks, 0) == "one two"
    assert joined(chunks, 1) == "three four five"
    indices = [c["choices"][0]["index"] for c in chunks if c["choices"]]
    # Role chunks for 0 and 1, then interleaved content, then both finishes.
    assert indices == [0, 1, 0, 1, 0, 1, 1, 0, 1]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-2:] == ["stop", "stop"]
    assert finishes.count("stop") == 2
    assert chunks[-1] == {**chunks[-1], "choices": [], "usage": USAGE}


def test_null_content_sends_no_content_deltas() -> None:
    chunks = fake_stream.chunks(completion(None, finish="length"), include_usage=False)
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": "", "refusal": None},
        {},
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_refusal_is_streamed_as_refusal_deltas() -> None:
    upstream = completion(None)
    upstream["choices"][0]["message"]["refusal"] = "I can't help with that."
    chunks = fake_stream.chunks(upstream, include_usage=False)
    assert joined(chunks, field="refusal") == "I can't help with that."
    assert joined(chunks) == ""


def test_tool_calls_are_streamed_like_upstream() -> None:
    arguments = '{"city": "Paris", "unit": "celsius"}'
    upstream = completion(None, finish="tool_calls")
    upstream["choices"][0]["message"]["tool_calls"] = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "weather", "arguments": arguments},
        },
        {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": "{}"}},
    ]
    chunks = fake_stream.chunks(upstream, include_usage=False)
    first = chunks[0]["choices"][0]["delta"]
    assert first["content"] is None
    assert first["tool_calls"] == [
        {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "weather", "arguments": ""},
        }
    ]
    calls: dict[int, str] = {}
    for chunk in chunks:
        for call in chunk["choices"][0]["delta"].get("tool_calls", []):
            calls[call["index"]] = calls.get(call["index"], "") + call["function"]["arguments"]
    assert calls == {0: arguments, 1: "{}"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_a_legacy_function_call_is_streamed_like_upstream() -> None:
    # `functions` clients get `message.function_call`; its stream was the role chunk and the
    # finish chunk only, the call itself lost.
    arguments = '{"city": "Paris", "unit": "celsius"}'
    upstream = completion(None, finish="function_call")
    upstream["choices"][0]["message"]["function_call"] = {"name": "weather", "arguments": arguments}
    for chunks in (
        fake_stream.chunks(upstream, include_usage=False),
        decode(fake_stream.encode_completion(upstream, include_usage=False)),
    ):
        deltas = [chunk["choices"][0]["delta"] for chunk in chunks]
        assert deltas[0] == {
            "role": "assistant",
            "content": None,
            "function_call": {"name": "weather", "arguments": ""},
            "refusal": None,
        }
        assert all(set(delta) == {"function_call"} for delta in deltas[1:-1])
        assert all(set(d["function_call"]) == {"arguments"} for d in deltas[1:-1])
        assert "".join(d["function_call"]["arguments"] for d in deltas[:-1]) == arguments
        assert deltas[-1] == {}
        assert chunks[-1]["choices"][0]["finish_reason"] == "function_call"


def test_keepalive_is_an_sse_comment_clients_ignore() -> None:
    assert fake_stream.KEEPALIVE.startswith(b": ")
    assert fake_stream.KEEPALIVE.endswith(b"\n\n")
    decoder = sse.Decoder()
    stream = fake_stream.KEEPALIVE * 3 + fake_stream.encode(
        fake_stream.chunks(completion("hi"), include_usage=False)
    )
    events = decoder.feed(stream)
    assert events[-1] == b"[DONE]"
    assert len(events) == 4  # role, content, finish, [DONE]


@given(
    st.integers(min_value=0, max_value=2**32),
    st.sampled_from(["o1-preview", "gpt-4o"]),
    st.integers(min_value=1, max_value=3),
    st.booleans(),
    st.booleans(),
)
def test_matches_the_simulated_upstream_stream_of_the_same_answer(
    seed: int, model_name: str, n: int, with_tool: bool, include_usage: bool
) -> None:
    model = rules.CHAT_MODELS[model_name]
    request: dict[str, Any] = {"model": model_name, "messages": [{"role": "user", "content": "x"}]}
    if not model.family.reasoning:
        request["n"] = n
        if with_tool:
            request["tools"] = [{"type": "function", "function": {"name": "lookup"}}]
            request["tool_choice"] = {"type": "function", "function": {"name": "lookup"}}
    answer = answers.compose(request, model, prompt_tokens=10, content_seed=seed, id_seed=seed)
    upstream = answers.completion_object(answer, completion_id="chatcmpl-x", created=1726000000)
    native = answers.chunk_objects(
        answer, completion_id="chatcmpl-x", created=1726000000, include_usage=include_usage
    )
    assert fake_stream.chunks(upstream, include_usage=include_usage) == native


@given(
    st.lists(texts | st.none(), min_size=0, max_size=3),
    texts | st.none(),
    st.booleans(),
    st.booleans(),
)
@example(["Then a short test follows.", None], None, True, False)
@example(["\x00o1gw\x00 in the answer itself"], "no", False, False)
@example(["a NUL \x00 and \\u0000 typed out, a \\\\u0000 too"], None, False, False)
@example(["words then a path C:\\u0000x"], "\\u0000", True, False)
@example(["a " + "y" * 40 + ' long word, then "quotes" and\nlines'], None, False, False)
def test_encode_completion_is_the_same_bytes_as_encoding_the_chunks(
    contents: list[str | None], refusal: str | None, include_usage: bool, with_tool: bool
) -> None:
    upstream = completion(*contents)
    if upstream["choices"]:
        upstream["choices"][0]["message"]["refusal"] = refusal
        if with_tool:
            upstream["choices"][0]["message"]["tool_calls"] = [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ]
    expected = fake_stream.encode(fake_stream.chunks(upstream, include_usage=include_usage))
    assert fake_stream.encode_completion(upstream, include_usage=include_usage) == expected


@given(
    texts
    | st.lists(st.sampled_from(["a", "word", " ", "  ", "长长", "\u00a0", "x" * 40])).map("".join)
)
@example("Then a short test follows.")
@example(" leading and trailing ")
def test_the_fast_word_split_finds_what_the_regex_finds(text: str) -> None:
    assert fake_stream._words(text) == fake_stream._WORD.findall(text)
