"""The Responses API's answer shapes: response object, stream events, input item pages."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.simulator import response_shapes as shapes
from gateway.simulator.answers import Answer, Choice, ToolCall
from gateway.simulator.openai_errors import SimError

TEXT = Answer("gpt-4o-2024-08-06", "fp", (Choice("Hello there.", (), "stop", 3),), 10, 0, 0)
CALL = Answer(
    "gpt-4o-2024-08-06", "fp",
    (Choice(None, (ToolCall("call_1", "lookup", '{"q": "x"}'),), "tool_calls", 12),), 10, 0, 0,
)  # fmt: skip


def response(answer: Answer, body: dict[str, Any] | None = None) -> dict[str, Any]:
    output = shapes.output_items(answer, 1)
    settings = shapes.settings(body or {"model": "gpt-4o"}, answer.model)
    return shapes.response_object(
        "resp_1", settings, answer, output, created_at=100, background=False
    )


def test_response_object() -> None:
    obj = response(TEXT)
    assert obj["status"] == "completed" and obj["incomplete_details"] is None
    assert obj["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 3,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 13,
    }
    (item,) = obj["output"]
    assert item["content"] == [
        {"type": "output_text", "text": "Hello there.", "annotations": [], "logprobs": []}
    ]
    assert obj["store"] is True and obj["parallel_tool_calls"] is True
    cut = Answer("m", "fp", (Choice("Hel", (), "length", 1),), 10, 0, 0)
    assert response(cut)["incomplete_details"] == {"reason": "max_output_tokens"}
    assert shapes.unfinished(obj, "queued")["output"] == []


def test_text_stream_events() -> None:
    events = shapes.stream_events(response(TEXT), b"k" * 32)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[0]["response"]["usage"] is None and events[0]["response"]["output"] == []
    assert events[2]["item"]["content"] == [] and events[2]["item"]["status"] == "in_progress"
    assert events[4]["logprobs"] == [] and events[4]["item_id"] == events[2]["item"]["id"]
    # Deltas are padded to a multiple of 16 characters, as upstream's recorded streams are.
    for event in events:
        if event["type"] == "response.output_text.delta":
            assert event["obfuscation"].isalnum()
            assert (len(event["delta"]) + len(event["obfuscation"])) % 16 == 0
        else:
            assert "obfuscation" not in event
    frame = shapes.event_frame(events[0])
    assert frame.startswith(b"event: response.created\ndata: {") and frame.endswith(b"\n\n")
    assert orjson.loads(frame.split(b"data: ", 1)[1])["sequence_number"] == 0


def test_function_call_stream_events() -> None:
    events = shapes.stream_events(response(CALL), None)  # asked for no padding
    added = events[2]
    assert added["item"]["arguments"] == "" and added["item"]["call_id"] == "call_1"
    deltas = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert "".join(deltas) == '{"q": "x"}'
    assert not any("obfuscation" in event for event in events)
    assert [e["type"] for e in events[-3:]] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]


def test_input_items_page() -> None:
    items = [{"id": f"msg_{i}"} for i in range(5)]

    def ids(query: dict[str, str]) -> list[str]:
        page = shapes.input_items_page(items, query)
        assert isinstance(page, dict)
        return [item["id"] for item in page["data"]]

    assert ids({}) == ["msg_4", "msg_3", "msg_2", "msg_1", "msg_0"]
    assert ids({"order": "asc", "limit": "2"}) == ["msg_0", "msg_1"]
    assert ids({"order": "asc", "after": "msg_1"}) == ["msg_2", "msg_3", "msg_4"]
    page = shapes.input_items_page(items, {"limit": "2"})
    assert isinstance(page, dict) and page["has_more"] and page["first_id"] == "msg_4"
    assert isinstance(shapes.input_items_page(items, {"limit": "101"}), SimError)
    assert isinstance(shapes.input_items_page(items, {"order": "up"}), SimError)
