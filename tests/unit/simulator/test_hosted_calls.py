"""The simulated upstream's hosted tools: accepted as OpenAI accepts them, their calls made
before the answer (as many as asked, within `max_tool_calls`), shaped and streamed as OpenAI's."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.simulator import hosted_calls, responses
from gateway.simulator.knobs import Knobs, parse_knobs
from gateway.simulator.response_shapes import stream_events
from gateway.simulator.rules import resolve_chat_model

GPT4O = resolve_chat_model("gpt-4o")
assert GPT4O is not None
TOOLS: list[Any] = [
    {"type": "web_search_preview"},
    {"type": "file_search", "vector_store_ids": ["vs_1"]},
    {"type": "code_interpreter", "container": {"type": "auto"}},
]


def test_hosted_tools_are_accepted_and_checked() -> None:
    body = {"model": "gpt-4o", "input": "Hi", "tools": TOOLS, "max_tool_calls": 3}
    assert responses.check(body, GPT4O) is None
    for tools, param in (
        ([{"type": "file_search"}], "tools[0].vector_store_ids"),
        ([{"type": "code_interpreter"}], "tools[0].container"),
        ([{"type": "computer_use_preview"}], "tools[0].type"),
    ):
        error = responses.check({**body, "tools": tools}, GPT4O)
        assert error is not None and error.param == param
    error = responses.check({**body, "max_tool_calls": -1}, GPT4O)
    assert error is not None and error.param == "max_tool_calls"
    # The model itself calls only the function tools: hosted ones run upstream.
    assert "tools" not in responses.chat_body(body, [{"role": "user", "content": "Hi"}])


@pytest.mark.parametrize(
    ("wanted", "cap", "kinds"),
    [
        (None, None, ["web_search_call", "file_search_call", "code_interpreter_call"]),
        (4, None, ["web_search_call", "file_search_call", "code_interpreter_call", "web_search_call"]),
        (4, 2, ["web_search_call", "file_search_call"]),
        (0, None, []),
    ],
)  # fmt: skip
def test_calls_are_taken_in_turn_within_max_tool_calls(
    wanted: int | None, cap: int | None, kinds: list[str]
) -> None:
    body: dict[str, Any] = {"tools": TOOLS, "max_tool_calls": cap}
    items = hosted_calls.call_items(body, wanted, "news", 7)
    assert [item["type"] for item in items] == kinds
    assert all(item["status"] == "completed" for item in items)
    assert hosted_calls.call_items(body, wanted, "news", 7) == items  # deterministic


def test_call_items_have_openais_shapes() -> None:
    web, files, code = hosted_calls.call_items({"tools": TOOLS}, None, "news", 7)
    assert web["id"].startswith("ws_") and web["action"] == {"type": "search", "query": "news"}
    assert files["id"].startswith("fs_") and files["queries"] == ["news"]
    assert code["id"].startswith("ci_") and code["container_id"].startswith("cntr_")


def test_a_streamed_call_is_added_then_runs_its_stages_then_done() -> None:
    (web,) = hosted_calls.call_items({"tools": TOOLS[:1]}, 1, "news", 7)
    response = {"id": "resp_1", "status": "completed", "output": [web], "usage": {}}
    kinds = [event["type"] for event in stream_events(response, None)]
    assert kinds[2:-1] == [
        "response.output_item.added",
        "response.web_search_call.in_progress",
        "response.web_search_call.searching",
        "response.web_search_call.completed",
        "response.output_item.done",
    ]


def test_the_tool_calls_knob() -> None:
    assert parse_knobs({"x-sim-tool-calls": "3"}) == Knobs(tool_calls=3)
    assert not isinstance(parse_knobs({"x-sim-tool-calls": "-1"}), Knobs)


def test_a_stored_prompts_image_generation_tool_makes_images() -> None:
    """A template (`x-sim-prompt-tools`) may bring the image generation tool: its calls are
    `image_generation_call` items carrying the image (base64), streamed with their stages."""
    knobs = parse_knobs({"x-sim-prompt-tools": "image_generation"})
    assert isinstance(knobs, Knobs) and knobs.prompt_tools == ("image_generation",)
    body: dict[str, Any] = {"prompt": {"id": "pmpt_1"}}
    (image,) = hosted_calls.call_items(body, 1, "a cat", 7, knobs.prompt_tools)
    assert image["id"].startswith("ig_") and image["type"] == "image_generation_call"
    assert image["status"] == "completed" and image["result"]
    response = {"id": "resp_1", "status": "completed", "output": [image], "usage": {}}
    kinds = [event["type"] for event in stream_events(response, None)]
    assert kinds[3:6] == [
        "response.image_generation_call.in_progress",
        "response.image_generation_call.generating",
        "response.image_generation_call.completed",
    ]
