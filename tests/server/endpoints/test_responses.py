"""End to end: the official openai SDK's Responses API -> gateway -> simulated upstream, on real
sockets. gpt-4o serves the Responses API natively; o1-mini and o1-preview did not, and the
gateway serves it for them by translation to chat completions; `auto` routes first."""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.conftest import CLIENT_KEY, SIM_KEY, GatewayFactory, ServerThread

NATIVE = "gpt-4o"
TRANSLATED = ("o1-mini", "o1-preview")
EVERY = (NATIVE, *TRANSLATED, "auto")
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city now.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


class City(BaseModel):
    name: str
    population: int


@pytest.fixture
def gateway(start_gateway: GatewayFactory) -> ServerThread:
    return start_gateway(upstream={"forward_header_prefixes": ("x-sim-",)})


def sdk(server: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=CLIENT_KEY, max_retries=0)


@pytest.mark.parametrize("model", EVERY)
def test_create_answers_a_response_object(gateway: ServerThread, model: str) -> None:
    raw = sdk(gateway).responses.with_raw_response.create(
        model=model, input="Say hello to the gateway.", instructions="Answer in one sentence."
    )
    response = raw.parse()
    assert response.object == "response" and response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.output_text
    assert response.usage is not None
    assert response.usage.total_tokens == (
        response.usage.input_tokens + response.usage.output_tokens
    )
    assert raw.headers["x-request-id"].startswith("req_")
    assert "x-ratelimit-remaining-requests" in raw.headers
    if model == "auto":
        assert raw.headers["x-gateway-route-model"] in ("gpt-4o", "o1-mini", "o1-preview")
    if model == NATIVE:
        assert "x-gateway-translated" not in raw.headers
    if model in TRANSLATED:
        assert raw.headers["x-gateway-translated"] == "responses->chat.completions"
        assert response.model.startswith(model)  # the snapshot that answered
        # o1 takes no system message: the instructions were merged into the user turn.
        assert "system_messages" in raw.headers["x-gateway-patched"]


@pytest.mark.parametrize("model", TRANSLATED)
def test_logprobs_asked_of_a_translated_model_are_dropped_and_said(
    gateway: ServerThread, model: str
) -> None:
    """o1 gives no logprobs: asked on chat, they are dropped and named in `x-gateway-patched`;
    asked on the Responses API (`include` and `top_logprobs`), the same, not passed over."""
    raw = sdk(gateway).responses.with_raw_response.create(
        model=model, input="Say hello.", include=["message.output_text.logprobs"], top_logprobs=3
    )
    assert raw.parse().output_text
    assert "logprobs" in raw.headers["x-gateway-patched"].split(",")


@pytest.mark.parametrize("model", EVERY)
def test_a_stream_is_the_responses_event_sequence(gateway: ServerThread, model: str) -> None:
    events = list(sdk(gateway).responses.create(model=model, input="Stream a hello.", stream=True))
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert kinds.index("response.output_item.added") < kinds.index("response.content_part.added")
    assert "response.output_text.delta" in kinds
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = next(e for e in events if e.type == "response.output_text.done")
    assert done.text == text and text
    final = events[-1].response  # type: ignore[union-attr]
    assert final.usage is not None and final.usage.output_tokens > 0
    assert final.output_text == text
    # The model it names from the start is the snapshot that answers (never a routing alias).
    assert events[0].response.model == final.model  # type: ignore[union-attr]


@pytest.mark.parametrize("model", (NATIVE, "o1-mini"))
def test_stream_deltas_are_padded_unless_asked_not_to(gateway: ServerThread, model: str) -> None:
    """Each delta event carries `obfuscation` (random letters and digits bringing it to a
    multiple of 16 characters, so that its size does not tell its text's) as OpenAI's do,
    served natively or translated from chat; `stream_options.include_obfuscation: false`
    asks for none."""
    create = sdk(gateway).responses.create

    def deltas(**extra: Any) -> list[dict[str, Any]]:
        events = create(model=model, input="Stream a hello.", stream=True, **extra)
        dumped = [event.model_dump(exclude_unset=True) for event in events]
        assert any(event["type"] == "response.completed" for event in dumped)
        return [event for event in dumped if event["type"].endswith(".delta")]

    padded = deltas()
    assert padded
    for event in padded:
        assert event["obfuscation"].isalnum()
        assert (len(event["delta"]) + len(event["obfuscation"])) % 16 == 0
    plain = deltas(stream_options={"include_obfuscation": False})
    assert plain and not any("obfuscation" in event for event in plain)


@pytest.mark.parametrize("model", (NATIVE, "o1-mini"))
def test_the_stream_helper_gives_the_final_response(gateway: ServerThread, model: str) -> None:
    with sdk(gateway).responses.stream(model=model, input="Stream a hello.") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.output_text == "".join(deltas)
    assert final.status == "completed"


@pytest.mark.parametrize("model", (NATIVE, *TRANSLATED))
def test_parse_with_a_pydantic_model(gateway: ServerThread, model: str) -> None:
    parsed = sdk(gateway).responses.parse(
        model=model, input="Name a large city and its population.", text_format=City
    )
    city = parsed.output_parsed
    assert isinstance(city, City) and city.name


@pytest.mark.parametrize("model", (NATIVE, *TRANSLATED))
def test_stored_responses_retrieve_chain_list_and_delete(gateway: ServerThread, model: str) -> None:
    client = sdk(gateway)
    first = client.responses.create(model=model, input="Remember the number 7.")
    assert client.responses.retrieve(first.id).output_text == first.output_text
    second = client.responses.create(
        model=model, input="Which number was it?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    # As upstream lists them: the items this response was given (the earlier turns are its
    # previous response's).
    items = client.responses.input_items.list(second.id)
    assert [item.type for item in items.data] == ["message"]
    assert items.data[0].content[0].text == "Which number was it?"  # type: ignore[union-attr]
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)


@pytest.mark.parametrize("model", (NATIVE, *TRANSLATED, "auto"))
def test_a_function_call_round_trip(gateway: ServerThread, model: str) -> None:
    client = sdk(gateway)
    asked = "Use the get_weather tool for Paris."
    first = client.responses.create(model=model, input=asked, tools=[WEATHER])  # type: ignore[list-item]
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather" and call.call_id.startswith("call_")
    assert isinstance(json.loads(call.arguments)["city"], str)
    result: Any = {"type": "function_call_output", "call_id": call.call_id, "output": "21 C, sun"}
    second = client.responses.create(
        model=model,
        input=[{"role": "user", "content": asked}, call.model_dump(exclude_none=True), result],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert second.output_text
    assert not [item for item in second.output if item.type == "function_call"]


@pytest.mark.parametrize("model", TRANSLATED)
def test_a_streamed_function_call_on_a_translated_model(gateway: ServerThread, model: str) -> None:
    events = list(
        sdk(gateway).responses.create(
            model=model, input="Use the get_weather tool for Paris.", tools=[WEATHER], stream=True,  # type: ignore[list-item]
        )
    )  # fmt: skip
    kinds = [event.type for event in events]
    assert "response.function_call_arguments.delta" in kinds
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(done.arguments)["city"]
    assert kinds[-1] == "response.completed"


def test_parallel_tool_calls_without_tools_is_taken_on_a_translated_model(
    gateway: ServerThread,
) -> None:
    # The Responses API takes it without tools (as chat does not): the translation leaves it
    # out rather than have the chat path refuse it.
    response = sdk(gateway).responses.create(
        model="o1-mini", input="Hello", parallel_tool_calls=True
    )
    assert response.status == "completed" and response.parallel_tool_calls is True


def test_o1_preview_upstream_refuses_the_responses_api(simulator: ServerThread) -> None:
    # Why the gateway translates: the upstream itself answers o1-preview's refusal.
    answer = httpx.post(
        f"{simulator.url}/v1/responses",
        json={"model": "o1-preview", "input": "Hello"},
        headers={"Authorization": "Bearer sk-simulated-upstream"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == (
        "The requested model 'o1-preview' is not supported with the Responses API."
    )


def test_background_on_a_translated_model_is_refused_clearly(gateway: ServerThread) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        sdk(gateway).responses.create(model="o1-mini", input="Hello", background=True)
    assert info.value.code == "unsupported_parameter"
    assert info.value.param == "background"


def test_a_stored_prompt_template_on_a_translated_model_is_refused(gateway: ServerThread) -> None:
    """Its text lives upstream only: a translated answer would silently drop it."""
    with pytest.raises(openai.BadRequestError) as info:
        sdk(gateway).responses.create(
            model="o1-mini", input="Hello", extra_body={"prompt": {"id": "pmpt_1"}}
        )
    assert info.value.code == "unsupported_parameter"
    assert info.value.param == "prompt"


def test_background_on_a_native_model_is_polled_and_cancelled(gateway: ServerThread) -> None:
    client = sdk(gateway)
    queued = client.responses.create(model=NATIVE, input="Think slowly.", background=True)
    assert queued.status in ("queued", "in_progress")
    polled = client.responses.retrieve(queued.id)
    assert polled.id == queued.id
    cancelled = client.responses.cancel(queued.id)
    assert cancelled.id == queued.id


def test_a_response_not_in_background_cannot_be_cancelled(gateway: ServerThread) -> None:
    client = sdk(gateway)
    done = client.responses.create(model="o1-mini", input="Hello")
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.cancel(done.id)
    assert info.value.message.endswith("Only background responses can be cancelled.")


def test_no_other_path_under_responses_reaches_upstream(gateway: ServerThread) -> None:
    answer = httpx.post(
        f"{gateway.url}/v1/responses/resp_1/compact",
        headers={"Authorization": f"Bearer {CLIENT_KEY}"},
        json={},
    )
    assert answer.status_code == 404
    message = answer.json()["error"]["message"]
    assert message.startswith("Invalid URL (POST /v1/responses/resp_1/compact)")


def sim_bodies(simulator: ServerThread, marker: str) -> list[tuple[str, Any]]:
    """The upstream requests (path, body) that carried `marker` anywhere in their body."""
    log = httpx.get(f"{simulator.url}/_sim/requests").json()["data"]
    return [(r["path"], r["body"]) for r in log if marker in json.dumps(r["body"])]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("first_model", "then"), [(NATIVE, "o1-mini"), ("o1-mini", NATIVE)])
def test_a_conversation_may_change_between_native_and_translated_models(
    gateway: ServerThread, simulator: ServerThread, first_model: str, then: str, stream: bool
) -> None:
    client = sdk(gateway)
    marker = f"Remember the number {id(client)}{stream}."
    first = client.responses.create(model=first_model, input=marker)
    if stream:
        with client.responses.stream(
            model=then, input="Which number was it?", previous_response_id=first.id
        ) as events:
            second = events.get_final_response()
    else:
        second = client.responses.create(
            model=then, input="Which number was it?", previous_response_id=first.id
        )
    assert second.output_text and second.previous_response_id == first.id
    # Read back, it is the response the client made: chained to the first, given one message.
    assert client.responses.retrieve(second.id).previous_response_id == first.id
    items = client.responses.input_items.list(second.id, limit=1)
    assert [item.type for item in items] == ["message"]  # every page, as the SDK walks them
    assert items.data[0].content[0].text == "Which number was it?"  # type: ignore[union-attr]
    path, body = sim_bodies(simulator, "Which number was it?")[-1]
    # The earlier turn travels with the new one, in the shape the new model's upstream takes.
    assert marker in json.dumps(body) and first.output_text in json.dumps(body)
    if then == NATIVE:
        assert path == "/v1/responses" and "previous_response_id" not in body
    else:
        assert path == "/v1/chat/completions"


@pytest.mark.parametrize("kind", [[], {}, ["input_file"]])
def test_a_content_part_whose_type_is_no_string_is_no_internal_error(
    gateway: ServerThread, kind: Any
) -> None:
    # Held as a part of no file, and upstream's to judge: never a 500.
    part = {"type": kind, "text": "hi"}
    for item in (
        {"role": "user", "content": [part]},
        {"type": "function_call_output", "call_id": "call_1", "output": [part]},
    ):
        answer = httpx.post(
            f"{gateway.url}/v1/responses",
            headers={"Authorization": f"Bearer {CLIENT_KEY}"},
            json={"model": NATIVE, "input": [item]},
        )
        assert answer.status_code in (200, 400), answer.text
        assert (
            answer.status_code == 200 or answer.json()["error"]["type"] == "invalid_request_error"
        )


HARD = "Prove that the square root of 2 is irrational, step by step, with a rigorous proof."


@pytest.mark.parametrize(
    "asks",
    [{"background": True}, {"tools": [{"type": "web_search"}]}],
    ids=["background", "hosted_tool"],
)
def test_auto_routes_what_translation_cannot_carry_to_a_native_model(
    start_gateway: GatewayFactory, asks: dict[str, Any]
) -> None:
    """A prompt `auto` sends to o1 asks for what only the Responses API itself gives: it is
    routed to the policy's model that serves that API natively, as a request with images is,
    where the o1 model it would have been routed to answered 400."""
    client = sdk(start_gateway(hosted_tools={"web_search": 0.01}))
    alone = client.responses.with_raw_response.create(model="auto", input=HARD)
    assert alone.headers["x-gateway-route-model"] == "o1-mini"  # translated for
    raw = client.responses.with_raw_response.create(model="auto", input=HARD, **asks)
    assert raw.headers["x-gateway-route-model"] == "gpt-4o"
    assert "Responses API" in raw.headers["x-gateway-route-reason"]
    assert "x-gateway-translated" not in raw.headers
    assert raw.parse().status in ("queued", "in_progress", "completed")


def test_a_background_response_stream_is_picked_up_again(gateway: ServerThread) -> None:
    """The SDK resumes a background response's stream with `retrieve(stream=True,
    starting_after=N)` (and `responses.stream(response_id=...)`): the events after N, to the
    end, as OpenAI keeps them, where the simulated upstream answered JSON and the SDK's stream
    ended with no event."""
    client = sdk(gateway)
    queued = client.responses.create(model=NATIVE, input="Count to five.", background=True)
    events = list(client.responses.retrieve(queued.id, stream=True, starting_after=2))
    assert events and [e.sequence_number for e in events] == list(range(3, 3 + len(events)))
    assert events[-1].type == "response.completed"
    deltas = [e.model_dump(exclude_unset=True) for e in events if e.type.endswith(".delta")]
    assert deltas and all(e["obfuscation"] for e in deltas)
    again = client.responses.retrieve(
        queued.id, stream=True, starting_after=2, include_obfuscation=False
    )
    assert not any("obfuscation" in e.model_dump(exclude_unset=True) for e in again)
    with client.responses.stream(response_id=queued.id, starting_after=2) as stream:
        final = stream.get_final_response()
    assert final.status == "completed"
    assert final.output_text == client.responses.retrieve(queued.id).output_text != ""
    # A response that did not run in the background has no stream to pick up.
    done = client.responses.create(model=NATIVE, input="Hello")
    with pytest.raises(openai.BadRequestError):
        list(client.responses.retrieve(done.id, stream=True))


def test_items_of_a_picked_up_stream_may_be_given_back(gateway: ServerThread) -> None:
    """A background response read only through its resumed stream: its output items are the
    team's to give back, as those of a response read whole are."""
    client = sdk(gateway)
    asked = "Use the get_weather tool for Paris."
    queued = client.responses.create(model=NATIVE, input=asked, tools=[WEATHER], background=True)  # type: ignore[list-item]
    with client.responses.stream(response_id=queued.id) as stream:
        final = stream.get_final_response()
    call = next(item for item in final.output if item.type == "function_call")
    given: Any = call.model_dump(exclude_none=True, exclude={"parsed_arguments"})
    result: Any = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    second = client.responses.create(
        model=NATIVE,
        input=[{"role": "user", "content": asked}, given, result],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert second.output_text


@pytest.mark.parametrize("model", (NATIVE, "o1-mini"))
def test_a_response_not_run_in_background_has_no_stream_to_pick_up(
    gateway: ServerThread, model: str
) -> None:
    """Asked for as a stream, a response the gateway translated answers as upstream answers
    for one of its own: a 400, where it answered JSON the SDK read as a stream of no event."""
    client = sdk(gateway)
    done = client.responses.create(model=model, input="Hello")
    with pytest.raises(openai.BadRequestError) as refused:
        list(client.responses.retrieve(done.id, stream=True))
    assert refused.value.param == "stream"
    assert client.responses.retrieve(done.id).id == done.id  # read whole, as before


@pytest.mark.parametrize("model", EVERY)
def test_audio_input_is_refused_before_upstream_as_chat_refuses_it(
    gateway: ServerThread, simulator: ServerThread, model: str
) -> None:
    """An `input_audio` part, in a message or in a function's output, is billed at audio
    prices the gateway neither holds nor charges: refused with chat's 400, never sent."""
    client = sdk(gateway)
    log = f"{simulator.url}/_sim/requests"
    before = httpx.get(log).json()["data"]
    said: Any = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    given: list[tuple[Any, str]] = [
        ([{"role": "user", "content": [{"type": "input_text", "text": "Hi"}, said]}],
         "input[0].content[1].type"),
        ([{"type": "function_call_output", "call_id": "call_1", "output": [said]}],
         "input[0].output[0].type"),
    ]  # fmt: skip
    for items, param in given:
        with pytest.raises(openai.BadRequestError) as info:
            client.responses.create(model=model, input=items)
        assert (info.value.code, info.value.param) == ("unsupported_value", param)
        assert "Audio is not available on the Responses API" in info.value.message
    assert httpx.get(log).json()["data"] == before


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k" * 65: "v"}}, "metadata"),
        ({"metadata": {"run": "v" * 513}}, "metadata.run"),
        ({"metadata": {"run": 1}}, "metadata.run"),
        ({"safety_identifier": "u" * 65}, "safety_identifier"),
        ({"include": ["reasoning.encrypted_contents"]}, "include[0]"),
        ({"include": "reasoning.encrypted_content"}, "include"),
    ],
)
def test_what_openai_refuses_and_translation_would_drop_is_refused_as_upstream_refuses_it(
    gateway: ServerThread, simulator: ServerThread, extra: dict[str, Any], param: str
) -> None:
    """A translated request's chat form carries no `metadata`, `safety_identifier` or
    `include` upstream: what every model refuses of them is refused in upstream's words
    before anything is sent, not answered 200."""
    asked = {"input": "Hello", **extra}
    native = httpx.post(
        f"{simulator.url}/v1/responses", json={**asked, "model": NATIVE},
        headers={"Authorization": f"Bearer {SIM_KEY}"},
    )  # fmt: skip
    log = f"{simulator.url}/_sim/requests"
    before = httpx.get(log).json()["data"]
    translated = httpx.post(
        f"{gateway.url}/v1/responses", json={**asked, "model": "o1-mini"},
        headers={"Authorization": f"Bearer {CLIENT_KEY}"},
    )  # fmt: skip
    assert native.status_code == translated.status_code == 400
    assert translated.json()["error"] == native.json()["error"]
    assert translated.json()["error"]["param"] == param
    assert httpx.get(log).json()["data"] == before


def test_what_openai_takes_of_them_is_still_translated(gateway: ServerThread) -> None:
    response = sdk(gateway).responses.create(
        model="o1-mini", input="Hello", metadata={f"k{i}": "v" * 512 for i in range(16)},
        safety_identifier="u" * 64, include=["reasoning.encrypted_content"],
    )  # fmt: skip
    assert response.status == "completed" and len(response.metadata or {}) == 16


def test_a_translated_request_keeps_its_end_users_apart_upstream(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    """A client's `safety_identifier` is folded into its team's, on a translated request as
    on a native one: two end users of one team are two identifiers upstream, where the
    translation dropped the client's and sent the team's alone."""
    text = f"Hello {secrets.token_hex(8)}"
    client = sdk(gateway)
    for given in ("user-1", "user-2", None):
        extra = {} if given is None else {"safety_identifier": given}
        client.responses.create(model="o1-mini", input=text, **extra)  # type: ignore[arg-type]
    sent = [entry["body"]["safety_identifier"] for entry in httpx.get(
        f"{simulator.url}/_sim/requests").json()["data"] if text in entry["raw"]]  # fmt: skip
    assert len(set(sent)) == 3 and all(s.startswith("o1gw-") for s in sent)


def test_a_translated_request_keeps_its_prompt_cache_key_upstream(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    """Chat completions takes `prompt_cache_key` as the Responses API does: the chat form of
    a translated request carries it, where its client's caching was lost."""
    text = f"Hello {secrets.token_hex(8)}"
    sdk(gateway).responses.create(model="o1-mini", input=text, prompt_cache_key="conversation-7")
    sent = [entry for entry in httpx.get(
        f"{simulator.url}/_sim/requests").json()["data"] if text in entry["raw"]]  # fmt: skip
    assert [(e["path"], e["body"].get("prompt_cache_key")) for e in sent] == [
        ("/v1/chat/completions", "conversation-7")
    ]
