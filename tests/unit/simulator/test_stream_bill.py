"""What the simulator bills a stream by how far it got (`stream_bill`), and the app billing
streams whose client left: the prompt, the reasoning done, the frames sent."""

from __future__ import annotations

from typing import Any

import anyio
import orjson
import pytest

from gateway.config import SimulatorConfig
from gateway.simulator import bill, create_simulator
from gateway.simulator.answers import TOOL_CALL_OVERHEAD_TOKENS
from gateway.simulator.stream_bill import StreamBill, chunk_output, event_output
from gateway.wire.tokens import count_text
from tests.unit.simulator.test_app import CHAT, call

USAGE = {
    "prompt_tokens": 20,
    "completion_tokens": 1000,
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 960},
}


def chunk(**delta: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta}]}


CHUNKS = [chunk(role="assistant", content=""), chunk(content="Hello"), chunk(content=" world")]
CHUNKS += [chunk(), {"choices": [], "usage": USAGE}]


def charge(sent: int, thought: float = 1.0) -> int:
    return (
        StreamBill("/v1/chat/completions", "o1-mini", USAGE, CHUNKS, chunk_output)
        .charge(sent, thought)
        .micros
    )


def tokens(prompt: int, output: int) -> int:
    return bill.tokens_charge("/v1/chat/completions", "o1-mini", prompt, output).micros


def test_a_stream_sent_whole_is_billed_its_usage() -> None:
    assert charge(len(CHUNKS)) == bill.usage_charge("/v1/chat/completions", "o1-mini", USAGE).micros


def test_a_stream_cut_short_is_billed_its_prompt_its_reasoning_and_the_frames_sent() -> None:
    assert charge(2) == tokens(20, 960 + count_text("Hello"))
    assert charge(3) == tokens(20, 960 + count_text("Hello world"))


def test_a_stream_left_while_the_model_thinks_is_billed_the_thinking_done() -> None:
    assert charge(0, thought=0.0) == tokens(20, 0)
    assert charge(0, thought=0.25) == tokens(20, 240)
    assert charge(0, thought=7.0) == tokens(20, 960)  # never more than it thought


def test_the_output_a_frame_carries() -> None:
    opening = {"index": 0, "id": "call_1", "function": {"name": "get_weather", "arguments": ""}}
    assert chunk_output(chunk(tool_calls=[opening])) == ("get_weather", 1)
    argument = {"index": 0, "function": {"arguments": '{"city'}}
    assert chunk_output(chunk(tool_calls=[argument])) == ('{"city', 0)
    assert event_output({"type": "response.output_text.delta", "delta": "Hi"}) == ("Hi", 0)
    item = {"type": "function_call", "name": "get_weather", "arguments": ""}
    assert event_output({"type": "response.output_item.added", "item": item}) == (
        "get_weather",
        1,
    )
    assert event_output({"type": "response.completed", "response": {}}) == ("", 0)
    assert TOOL_CALL_OVERHEAD_TOKENS > 0  # what an opened call adds to its name's tokens


LONG = " ".join(["word"] * 50)
PACED = {"x-sim-answer": LONG, "x-sim-chunk-interval-ms": "20"}


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses"])
async def test_a_stream_whose_client_leaves_is_billed_its_prompt_and_the_frames_sent(
    path: str,
) -> None:
    app = create_simulator(SimulatorConfig())
    chat = path.endswith("completions")
    body: dict[str, Any] = (
        {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
        if chat
        else {"model": "gpt-4o", "input": "Say hello.", "stream": True, "store": False}
    )
    whole = await call(app, body, {"x-sim-answer": LONG}, path=path)
    billed_whole = app.bill.view()["total_micros"]
    with anyio.fail_after(10):
        cut = await call(app, body, PACED, path=path, disconnect_after=0.2)
    assert 0 < len(cut.bodies) < len(whole.bodies)  # left part-way, noticed between frames
    last = [event for frame in whole.bodies for event in _events(frame)][-1]
    prompt = last["usage"]["prompt_tokens"] if chat else last["response"]["usage"]["input_tokens"]
    text = "".join(_text(event) for frame in cut.bodies for event in _events(frame))
    expected = bill.tokens_charge(path, "gpt-4o-2024-08-06", prompt, count_text(text)).micros
    assert app.bill.view()["total_micros"] - billed_whole == expected < billed_whole


def _events(frame: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line[6:]) for line in frame.split(b"\n") if line.startswith(b"data: {")]


def _text(event: dict[str, Any]) -> str:
    if event.get("type") == "response.output_text.delta":
        return str(event["delta"])
    return "".join(choice["delta"].get("content") or "" for choice in event.get("choices") or ())


@pytest.mark.anyio
async def test_a_reasoning_stream_left_while_it_thinks_is_billed_part_of_its_reasoning() -> None:
    app = create_simulator(SimulatorConfig())
    body = {"model": "o1-mini", "messages": CHAT["messages"], "stream": True}
    knobs = {
        "x-sim-o1-streaming": "true",
        "x-sim-reasoning-tokens": "6400",
        "x-sim-ttft-ms": "2000",
    }
    with anyio.fail_after(10):
        left = await call(app, body, knobs, disconnect_after=0.5)
    assert left.messages == []  # no headers: they come with the first token
    lines = app.bill.view()["by_key"]["sk-simulated-upstream"]["lines"]
    (line,) = lines
    reasoning = line["detail"]["reasoning_tokens"]
    assert 0 < reasoning < 6400 and line["detail"]["output_tokens"] == reasoning
