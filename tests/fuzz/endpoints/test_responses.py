"""Fuzzing the Responses API and the other JSON endpoints the gateway reads: whatever a client
sends, it is answered with an OpenAI-shaped 4xx or served, never a 5xx of the gateway's own, a
stream ends as a stream should, and the gateway keeps serving afterwards.

Hypothesis mutates valid requests (items of every kind, tools, formats, reasoning, odd values in
any field) and sends them over a real socket to a gateway in front of the simulator, whose own
rules are OpenAI's. It found the simulator storing an `item_reference` whose id was no string as
a message, and answering 500 for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import CLIENT_KEY, SIM_KEY, GatewayFactory, ServerThread, base_config
from tests.fuzz.endpoints.test_chat import HTTP, check_answer, json_values, numbers, odd_text

# Both eras' models: the o1 era's, and today's line-up (the o1 era's names served by successors).
MODELS = [
    "gpt-4o", "gpt-4o-mini", "o1-preview", "o1-mini", "o1", "auto", "auto-best", "nope",
    "gpt-6-luna", "gpt-6.1-sol", "gpt-6.2-astra",
]  # fmt: skip
TODAY = "2026-12-05"
ERAS = {
    "o1-2024": {},
    "2026-12": {"O1GW__RETIREMENT__TODAY": TODAY, "O1GW__ROUTING__LINEUP": "openai-2026-12"},
}
VALID: dict[str, Any] = {"model": "gpt-4o", "input": "Say hello to the gateway."}
FIELDS = [
    "model", "input", "instructions", "tools", "tool_choice", "text", "max_output_tokens",
    "reasoning", "temperature", "top_p", "top_logprobs", "store", "previous_response_id",
    "background", "stream", "include", "metadata", "truncation", "parallel_tool_calls",
    "service_tier", "user", "safety_identifier", "prompt_cache_key", "max_tool_calls",
    "stream_options", "prompt",
]  # fmt: skip
# Values each field takes when valid, so that mutations reach the layers past the validator.
GOOD: dict[str, list[Any]] = {
    "tools": [
        [{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}],
        [{"type": "web_search_preview"}],
        [{"type": "file_search", "vector_store_ids": ["vs_1"]}],
        [{"type": "code_interpreter", "container": {"type": "auto"}}],
        [{"type": "function", "name": "g", "strict": True, "parameters": {"type": "object"}}],
    ],
    "tool_choice": ["auto", "none", "required", {"type": "function", "name": "f"}],
    "text": [
        {"format": {"type": "text"}},
        {"format": {"type": "json_object"}},
        {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
        {"verbosity": "low"},
    ],
    "reasoning": [{"effort": "low"}, {"effort": "high", "summary": "auto"}, {}],
    "max_output_tokens": [16, 100, 4096],
    "include": [["reasoning.encrypted_content"], ["message.output_text.logprobs"]],
    "metadata": [{"a": "b"}],
    "truncation": ["auto", "disabled"],
    "service_tier": ["auto", "default", "flex", "priority"],
    "stream_options": [{"include_obfuscation": False}],
    "stream": [True],
    "store": [True, False],
    "background": [True],
    "previous_response_id": ["resp_nope"],
}


@st.composite
def content_parts(draw: st.DrawFn) -> Any:
    kind = draw(
        st.sampled_from(
            ["input_text", "input_image", "input_file", "output_text", "refusal", "weird", None]
        )
    )
    part: dict[str, Any] = {} if kind is None else {"type": kind}
    if kind in ("input_text", "output_text"):
        part["text"] = draw(st.one_of(odd_text, json_values))
    elif kind == "input_image":
        part[draw(st.sampled_from(["image_url", "file_id", "detail"]))] = draw(
            st.one_of(st.sampled_from(["data:,", "file-x", "low", "high"]), json_values)
        )
    elif kind == "input_file":
        part[draw(st.sampled_from(["file_id", "file_data", "filename", "file_url"]))] = draw(
            st.one_of(st.sampled_from(["file-x", "data:application/pdf;base64,AA=="]), json_values)
        )
    return draw(st.one_of(st.just(part), json_values)) if draw(st.booleans()) else part


@st.composite
def items(draw: st.DrawFn) -> Any:
    kind = draw(
        st.sampled_from(
            ["message", "function_call", "function_call_output", "reasoning", "item_reference",
             "web_search_call", "weird", None]
        )
    )  # fmt: skip
    item: dict[str, Any] = {} if kind is None else {"type": kind}
    if kind in ("message", None):
        item["role"] = draw(
            st.one_of(st.sampled_from(["user", "assistant", "system", "developer"]), json_values)
        )
        item["content"] = draw(
            st.one_of(odd_text, st.lists(content_parts(), max_size=3), json_values)
        )
    elif kind == "function_call":
        item.update(call_id="call_1", name="f", arguments=draw(st.one_of(odd_text, json_values)))
    elif kind == "function_call_output":
        item.update(
            call_id=draw(st.sampled_from(["call_1", "call_2"])),
            output=draw(st.one_of(odd_text, st.lists(content_parts(), max_size=2), json_values)),
        )
    elif kind == "reasoning":
        item["summary"] = draw(st.one_of(st.just([]), json_values))
        if draw(st.booleans()):
            item["encrypted_content"] = draw(odd_text)
    elif kind == "item_reference":
        item["id"] = draw(st.one_of(st.just("msg_1"), json_values))
    if draw(st.booleans()):
        item[draw(st.sampled_from(["id", "status", "x", "role", "content"]))] = draw(json_values)
    return item


@st.composite
def responses_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request with a few fields set to valid values, then a few to odd ones."""
    payload: dict[str, Any] = {
        **VALID,
        "model": draw(st.sampled_from(MODELS)),
        "input": draw(st.one_of(odd_text, st.lists(items(), max_size=4)))
        if draw(st.booleans())
        else VALID["input"],
    }
    for field in draw(st.lists(st.sampled_from(sorted(GOOD)), max_size=3)):
        payload[field] = draw(st.sampled_from(GOOD[field]))
    for _ in range(draw(st.integers(0, 3))):
        field = draw(st.one_of(st.sampled_from(FIELDS), odd_text))
        payload[field] = draw(st.one_of(json_values, numbers))
    if draw(st.integers(0, 9)) == 0:
        payload.pop(draw(st.sampled_from(["model", "input"])), None)
    return payload


# The other endpoints whose JSON the gateway reads to hold their worst case: a valid body each
# and the fields they take.
OTHERS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "/v1/embeddings": (
        {"model": "text-embedding-3-small", "input": "hello"},
        ["model", "input", "dimensions", "encoding_format", "user"],
    ),
    "/v1/completions": (
        {"model": "gpt-3.5-turbo-instruct", "prompt": "Say"},
        ["model", "prompt", "max_tokens", "n", "best_of", "echo", "suffix", "stream", "logprobs",
         "stream_options", "stop", "logit_bias"],
    ),
    "/v1/images/generations": (
        {"model": "dall-e-3", "prompt": "a cat"},
        ["model", "prompt", "n", "size", "quality", "style", "response_format", "background",
         "output_format", "moderation", "partial_images", "stream"],
    ),
    "/v1/audio/speech": (
        {"model": "tts-1", "input": "hello", "voice": "alloy"},
        ["model", "input", "voice", "response_format", "speed", "instructions", "stream_format"],
    ),
    "/v1/moderations": ({"input": "hello"}, ["model", "input"]),
}  # fmt: skip


@st.composite
def other_requests(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    path = draw(st.sampled_from(sorted(OTHERS)))
    valid, fields = OTHERS[path]
    payload = dict(valid)
    for _ in range(draw(st.integers(0, 3))):
        field = draw(st.one_of(st.sampled_from(fields), odd_text))
        payload[field] = draw(
            st.one_of(json_values, numbers, st.lists(st.integers(-5, 10**6), max_size=4))
        )
    return path, payload


# -- the running gateway --------------------------------------------------------------------------


@pytest.fixture(scope="module", params=sorted(ERAS))
def era(request: pytest.FixtureRequest) -> Iterator[tuple[str, ServerThread]]:
    """The era's name, and a simulator of this module's own living on its day."""
    from gateway.config import SimulatorConfig
    from gateway.simulator import create_simulator

    today = ERAS[request.param].get("O1GW__RETIREMENT__TODAY")
    config = SimulatorConfig(today=today) if today else SimulatorConfig()
    with ServerThread(create_simulator(config)) as server:
        yield request.param, server


@pytest.fixture
def client(start_gateway: GatewayFactory, era: tuple[str, ServerThread]) -> Iterator[httpx.Client]:
    name, simulator = era
    server: ServerThread = start_gateway(
        base_config(OPENAI_BASE_URL=f"{simulator.url}/v1", OPENAI_API_KEY=SIM_KEY, **ERAS[name])
    )
    with httpx.Client(
        base_url=server.url,
        headers={"authorization": f"Bearer {CLIENT_KEY}", "content-type": "application/json"},
        timeout=60,
    ) as http:
        yield http
        after = http.post("/v1/responses", json=VALID)
        assert after.status_code == 200, after.text
        assert after.json()["object"] == "response"


def checked(response: httpx.Response) -> None:
    """`check_answer`'s rules; a stream's events must be SSE, each `data` JSON, and a stream
    that failed says so in an error event (never a 5xx the gateway made, never bytes cut)."""
    check_answer(response)
    if response.status_code == 200 and response.headers.get("content-type", "").startswith(
        "text/event-stream"
    ):
        for line in response.text.splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                orjson.loads(line[6:])


@settings(HTTP, max_examples=150)
@given(payload=responses_requests())
def test_responses_requests_never_get_a_server_error(
    client: httpx.Client, payload: dict[str, Any]
) -> None:
    checked(client.post("/v1/responses", content=orjson.dumps(payload)))


@settings(HTTP, max_examples=100)
@given(request=other_requests())
def test_other_json_endpoints_never_get_a_server_error(
    client: httpx.Client, request: tuple[str, dict[str, Any]]
) -> None:
    path, payload = request
    checked(client.post(path, content=orjson.dumps(payload)))
