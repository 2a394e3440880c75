"""The simulator's Responses API on a real socket, driven by the official openai SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from gateway.config import SimulatorConfig
from gateway.simulator import create_simulator
from tests.conftest import ServerThread

KEY = "sk-simulated-upstream"
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
    "strict": True,
}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    config = SimulatorConfig(api_keys=(KEY, "sk-other-key"), request_log=50)
    with ServerThread(create_simulator(config)) as running:
        yield running


def sdk(server: ServerThread, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key=key, max_retries=0)


def chat_text(server: ServerThread, messages: list[Any]) -> str:
    completion = sdk(server).chat.completions.create(model="gpt-4o", messages=messages)
    return completion.choices[0].message.content or ""


def test_create_answers_like_chat(server: ServerThread) -> None:
    raw = sdk(server).responses.with_raw_response.create(
        model="gpt-4o", input="Say hello.", instructions="Be brief.", metadata={"run": "1"}
    )
    response = raw.parse()
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.error is None
    assert response.model == "gpt-4o-2024-08-06"
    assert response.instructions == "Be brief." and response.metadata == {"run": "1"}
    assert response.store is True and response.background is False
    (item,) = response.output
    assert item.type == "message" and item.id.startswith("msg_") and item.role == "assistant"
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello."},
    ]
    assert response.output_text == chat_text(server, messages)
    usage = response.usage
    assert usage is not None
    chat = sdk(server).chat.completions.create(model="gpt-4o", messages=messages)  # type: ignore[arg-type]
    assert chat.usage is not None
    assert (usage.input_tokens, usage.output_tokens) == (
        chat.usage.prompt_tokens,
        chat.usage.completion_tokens,
    )
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert raw.headers["x-request-id"].startswith("req_")
    assert "x-ratelimit-remaining-tokens" in raw.headers


def test_raw_json_has_the_recorded_shape(server: ServerThread) -> None:
    reply = httpx.post(
        f"{server.url}/v1/responses",
        headers={"authorization": f"Bearer {KEY}", "x-sim-answer": "Hi there."},
        json={"model": "gpt-4o-mini", "input": "Hi"},
    )
    body = reply.json()
    assert body["output"][0]["content"] == [
        {"type": "output_text", "text": "Hi there.", "annotations": [], "logprobs": []}
    ]
    assert body["incomplete_details"] is None and body["error"] is None
    assert body["text"] == {"format": {"type": "text"}}
    assert body["tool_choice"] == "auto" and body["tools"] == []
    assert body["usage"]["input_tokens_details"] == {"cached_tokens": 0}
    assert body["completed_at"] >= body["created_at"]


def test_max_output_tokens_makes_it_incomplete(server: ServerThread) -> None:
    response = sdk(server).responses.create(
        model="gpt-4o", input="Tell me a lot.", max_output_tokens=16
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens == 16
    with pytest.raises(openai.BadRequestError) as info:
        sdk(server).responses.create(model="gpt-4o", input="Hi", max_output_tokens=15)
    assert info.value.body["param"] == "max_output_tokens"  # type: ignore[index]


def test_stream_events_in_order(server: ServerThread) -> None:
    stream = sdk(server).responses.create(
        model="gpt-4o",
        input="Hi",
        stream=True,
        extra_headers={"x-sim-answer": "Hello there, friend."},
    )
    events = list(stream)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    kinds = [e.type for e in events]
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * len(deltas),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert "".join(d.delta for d in deltas) == "Hello there, friend."  # type: ignore[attr-defined]
    assert events[0].response.status == "in_progress"  # type: ignore[attr-defined]
    final = events[-1].response  # type: ignore[attr-defined]
    assert final.output_text == "Hello there, friend." and final.usage.output_tokens == 5


def test_raw_stream_frames(server: ServerThread) -> None:
    with httpx.stream(
        "POST",
        f"{server.url}/v1/responses",
        headers={"authorization": f"Bearer {KEY}", "x-sim-answer": "Hi."},
        json={"model": "gpt-4o", "input": "Hi", "stream": True},
    ) as reply:
        text = "".join(reply.iter_text())
    frames = [frame for frame in text.split("\n\n") if frame]
    assert "[DONE]" not in text
    for frame in frames:
        event_line, data_line = frame.split("\n")
        assert json.loads(data_line.removeprefix("data: "))["type"] == event_line.removeprefix(
            "event: "
        )


def test_stream_helper(server: ServerThread) -> None:
    with sdk(server).responses.stream(
        model="gpt-4o", input="Hi", extra_headers={"x-sim-answer": "Streamed helper text."}
    ) as stream:
        texts = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == final.output_text == "Streamed helper text."


class Forecast(BaseModel):
    city: str
    high_c: int
    sunny: bool


def test_parse_with_a_pydantic_model(server: ServerThread) -> None:
    response = sdk(server).responses.parse(
        model="gpt-4o", input="Forecast for Paris?", text_format=Forecast
    )
    assert response.output_parsed == Forecast(city="example", high_c=1, sunny=True)


def test_json_object_format(server: ServerThread) -> None:
    response = sdk(server).responses.create(
        model="gpt-4o", input="Answer in json.", text={"format": {"type": "json_object"}}
    )
    assert isinstance(json.loads(response.output_text), dict)


def test_retrieve_delete_and_input_items(server: ServerThread) -> None:
    client = sdk(server)
    items: Any = [
        {"role": "user", "content": "First."},
        {"role": "assistant", "content": "Second."},
        {"role": "user", "content": [{"type": "input_text", "text": "Third."}]},
    ]
    created = client.responses.create(model="gpt-4o", input=items)
    assert client.responses.retrieve(created.id).output_text == created.output_text
    page = client.responses.input_items.list(created.id)
    assert [item.content[0].text for item in page.data] == ["Third.", "Second.", "First."]  # type: ignore[union-attr]
    assert all(item.id.startswith("msg_") for item in page.data)  # type: ignore[union-attr]
    first = client.responses.input_items.list(created.id, order="asc", limit=2)
    assert [i.content[0].text for i in first.data] == ["First.", "Second."]  # type: ignore[union-attr]
    assert first.has_more and first.last_id == first.data[-1].id  # type: ignore[union-attr]
    rest = client.responses.input_items.list(created.id, order="asc", after=first.last_id)  # type: ignore[arg-type]
    assert [i.content[0].text for i in rest.data] == ["Third."]  # type: ignore[union-attr]
    # Another key cannot see it.
    with pytest.raises(openai.NotFoundError):
        sdk(server, "sk-other-key").responses.retrieve(created.id)
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.retrieve(created.id)
    assert info.value.body == {  # type: ignore[comparison-overlap]
        "message": f"Response with id '{created.id}' not found.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def test_store_false_is_not_retrievable(server: ServerThread) -> None:
    created = sdk(server).responses.create(model="gpt-4o", input="Hi", store=False)
    assert created.store is False
    with pytest.raises(openai.NotFoundError):
        sdk(server).responses.retrieve(created.id)


def test_previous_response_id_chains_the_conversation(server: ServerThread) -> None:
    client = sdk(server)
    first = client.responses.create(
        model="gpt-4o", input="My name is Ada.", instructions="Be kind."
    )
    second = client.responses.create(
        model="gpt-4o", input="What is my name?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id and second.instructions is None
    # The chained answer is chat's answer to the whole conversation, instructions not carried.
    history = [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "What is my name?"},
    ]
    assert second.output_text == chat_text(server, history)
    assert second.usage is not None and first.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="gpt-4o", input="Hi", previous_response_id="resp_missing")
    assert info.value.body == {  # type: ignore[comparison-overlap]
        "message": "Previous response with id 'resp_missing' not found.",
        "type": "invalid_request_error",
        "param": "previous_response_id",
        "code": "previous_response_not_found",
    }


def test_function_call_round_trip(server: ServerThread) -> None:
    client = sdk(server)
    first = client.responses.create(
        model="gpt-4o", input="Use the weather tool for Paris.", tools=[WEATHER]
    )
    (call,) = first.output
    assert call.type == "function_call" and call.id.startswith("fc_")
    assert call.call_id.startswith("call_") and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "example", "unit": "C"}
    assert call.status == "completed"
    # The agent loop: feed the result back; the model answers with text and stops calling.
    second = client.responses.create(
        model="gpt-4o",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18 C"}],
        tools=[WEATHER],
        tool_choice="required",
    )
    assert second.output[0].type == "message" and second.output_text
    # The same loop without previous_response_id: the items passed back by hand.
    third = client.responses.create(
        model="gpt-4o",
        input=[
            {"role": "user", "content": "Use the weather tool for Paris."},
            call.model_dump(),  # type: ignore[list-item]
            {"type": "function_call_output", "call_id": call.call_id, "output": "18 C"},
        ],
        tools=[WEATHER],
    )
    assert third.output_text == second.output_text


def test_forced_function_call_streams_argument_deltas(server: ServerThread) -> None:
    events = list(
        sdk(server).responses.create(
            model="gpt-4o", input="Hi", tools=[WEATHER], stream=True,
            tool_choice={"type": "function", "name": "get_weather"},
        )
    )  # fmt: skip
    kinds = [e.type for e in events]
    assert kinds[2] == "response.output_item.added"
    assert events[2].item.arguments == ""  # type: ignore[attr-defined]
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert "".join(deltas) == done.arguments
    assert kinds[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]


def test_o1_models_are_refused(server: ServerThread) -> None:
    for model in ("o1-preview", "o1-mini-2024-09-12"):
        with pytest.raises(openai.BadRequestError) as info:
            sdk(server).responses.create(model=model, input="Hi")
        assert info.value.body == {  # type: ignore[comparison-overlap]
            "message": f"The requested model '{model}' is not supported with the Responses API.",
            "type": "invalid_request_error",
            "param": "model",
            "code": None,
        }
    with pytest.raises(openai.NotFoundError) as missing:
        sdk(server).responses.create(model="gpt-9", input="Hi")
    assert missing.value.code == "model_not_found"


def test_reasoning_effort_on_gpt_4o_is_refused(server: ServerThread) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        sdk(server).responses.create(model="gpt-4o", input="Hi", reasoning={"effort": "low"})
    assert info.value.body == {  # type: ignore[comparison-overlap]
        "message": "Unsupported parameter: 'reasoning.effort' is not supported with this model.",
        "type": "invalid_request_error",
        "param": "reasoning.effort",
        "code": "unsupported_parameter",
    }


def test_background_poll_and_cancel(server: ServerThread) -> None:
    client = sdk(server)
    queued = client.responses.create(model="gpt-4o", input="Hi", background=True)
    assert queued.status == "queued" and queued.output == [] and queued.usage is None
    polled = [client.responses.retrieve(queued.id) for _ in range(3)]
    assert [r.status for r in polled] == ["in_progress", "completed", "completed"]
    assert polled[-1].output_text and polled[-1].usage is not None
    # A finished response stays finished.
    assert client.responses.cancel(queued.id).status == "completed"

    other = client.responses.create(model="gpt-4o", input="Hi", background=True)
    assert client.responses.retrieve(other.id).status == "in_progress"
    cancelled = client.responses.cancel(other.id)
    assert cancelled.status == "cancelled" and cancelled.output == []
    assert client.responses.retrieve(other.id).status == "cancelled"

    plain = client.responses.create(model="gpt-4o", input="Hi")
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.cancel(plain.id)
    assert info.value.message.endswith("Only background responses can be cancelled.")
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="gpt-4o", input="Hi", background=True, store=False)


def test_a_background_response_the_knob_fails_ends_failed_unbilled(server: ServerThread) -> None:
    client = sdk(server, "sk-other-key")
    billed = billed_to(server, "sk-other-key")
    queued = client.responses.create(
        model="gpt-4o", input="Hi", background=True,
        extra_headers={"x-sim-background": "failed"},
    )  # fmt: skip
    assert queued.status == "queued" and queued.error is None
    polled = [client.responses.retrieve(queued.id) for _ in range(2)]
    assert [r.status for r in polled] == ["in_progress", "failed"]
    failed = polled[-1]
    assert failed.error is not None and failed.error.code == "rate_limit_exceeded"
    assert "in organization org-simulatedOrganization001 on tokens per min" in failed.error.message
    assert failed.output == [] and failed.usage is None and failed.completed_at is None
    events = list(client.responses.retrieve(queued.id, stream=True))
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.failed",
    ]
    assert events[-1].response.error == failed.error
    assert billed_to(server, "sk-other-key") == billed


def billed_to(server: ServerThread, key: str) -> int:
    bill = httpx.get(f"{server.url}/_sim/bill").json()["by_key"]
    return int(bill.get(key, {}).get("total_micros", 0))


def test_faults_and_knobs_apply(server: ServerThread) -> None:
    with pytest.raises(openai.RateLimitError):
        sdk(server).responses.create(
            model="gpt-4o", input="Hi", extra_headers={"x-sim-fault": "429"}
        )
    with pytest.raises(openai.APIError):
        list(
            sdk(server).responses.create(
                model="gpt-4o",
                input="Hi",
                stream=True,
                extra_headers={"x-sim-fault": "stream-error"},
            )
        )


def test_a_mid_stream_error_is_the_error_event_then_response_failed(server: ServerThread) -> None:
    answer = httpx.post(
        f"{server.url}/v1/responses",
        json={"model": "gpt-4o", "input": "Hi", "stream": True},
        headers={"Authorization": "Bearer sk-simulated-upstream", "x-sim-fault": "stream-error"},
    )
    events = [
        json.loads(line[len("data: ") :])
        for line in answer.text.splitlines()
        if line.startswith("data: ")
    ]
    error, failed = events[-2], events[-1]
    assert error["type"] == "error" and error["error"]["type"] == "server_error"
    assert failed["type"] == "response.failed"
    assert failed["sequence_number"] == error["sequence_number"] + 1
    assert failed["response"]["status"] == "failed" and failed["response"]["usage"] is None
    assert failed["response"]["error"]["message"] == error["error"]["message"]
