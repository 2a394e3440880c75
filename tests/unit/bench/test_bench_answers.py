"""bench.answers: a chat completion's and a Response's text read back, whole and streamed, and
answers of the wrong shape refused."""

from __future__ import annotations

import json

import pytest

from bench.answers import chat_text, output_text, responses_text, sse_events


def _response(text: str, status: str = "completed") -> dict[str, object]:
    return {
        "id": "resp_1",
        "object": "response",
        "status": status,
        "output": [
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
    }


def _event(name: str, data: dict[str, object]) -> str:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"


def _stream(deltas: list[str], final: str | None = None, end: bool = True) -> bytes:
    text = "".join(deltas) if final is None else final
    out = _event("response.created", {"response": _response("", "in_progress")})
    out += "".join(_event("response.output_text.delta", {"delta": d}) for d in deltas)
    if end:
        out += _event("response.completed", {"response": _response(text)})
    return out.encode()


def test_sse_events_keep_names_and_join_data_lines() -> None:
    raw = b"event: a\r\ndata: 1\r\n\r\n: keep-alive\n\ndata: x\ndata: y\n\ndata: [DONE]\n\n"
    assert sse_events(raw) == [("a", "1"), ("", "x\ny"), ("", "[DONE]")]


def test_chat_text_whole_and_streamed() -> None:
    whole = {"object": "chat.completion", "choices": [{"message": {"content": "Waves."}}]}
    assert chat_text(json.dumps(whole).encode(), streamed=False) == "Waves."
    chunks = [{"choices": [{"delta": {"content": part}}]} for part in ("Wa", "ves.")]
    raw = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    assert chat_text(raw.encode(), streamed=True) == "Waves."
    with pytest.raises(ValueError, match="DONE"):
        chat_text(raw.removesuffix("data: [DONE]\n\n").encode(), streamed=True)
    with pytest.raises(ValueError, match=r"chat\.completion"):
        chat_text(json.dumps(_response("x")).encode(), streamed=False)


def test_responses_text_of_a_whole_response() -> None:
    assert responses_text(json.dumps(_response("Sea and sky.")).encode(), False) == "Sea and sky."
    # Only output_text parts of messages count (reasoning items and refusals do not).
    answer = _response("B")
    answer["output"] = [{"type": "reasoning", "summary": []}, *answer["output"]]  # type: ignore[misc]
    assert output_text(answer) == "B"
    for wrong in (_response("x", status="incomplete"), {"object": "chat.completion"}, [1]):
        with pytest.raises(ValueError):
            responses_text(json.dumps(wrong).encode(), False)


def test_responses_text_of_a_stream_ends_with_response_completed() -> None:
    assert responses_text(_stream(["Sea ", "and sky."]), True) == "Sea and sky."
    with pytest.raises(ValueError, match=r"response\.completed"):
        responses_text(_stream(["Sea"], end=False), True)
    with pytest.raises(ValueError, match="add up"):
        responses_text(_stream(["Sea"], final="Sea and sky."), True)
    # A chat stream is not a Responses stream.
    with pytest.raises(ValueError):
        responses_text(b'data: {"choices": []}\n\ndata: [DONE]\n\n', True)
