"""The OpenAI Agents SDK through the gateway: its default Responses model, one tool, a whole run.

`Runner.run` drives an `Agent` with one `@function_tool` over `POST /v1/responses`: a first call
that answers with a function call, the tool run locally, a second call carrying the tool's
output that answers with text. gpt-4o is forwarded natively; o1-mini (no tools, no Responses
API upstream) is served by translation to chat with the tools emulated by prompting.

The simulated model calls a tool when the prompt asks for one ("use the tool ..."), whether the
tools come natively (gpt-4o) or in the gateway's prompted protocol (o1-mini), with arguments
made from the tool's JSON schema, and answers with text once a tool result follows.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from agents import (
    Agent,
    Runner,
    function_tool,
    set_default_openai_api,
    set_default_openai_client,
    set_tracing_disabled,
)
from agents.items import ToolCallItem, ToolCallOutputItem

from gateway.admission.pricing import cost_micros
from gateway.wire.usage import Usage
from tests.conftest import CLIENT_KEY, GatewayFactory, ServerThread, base_config

ADMIN_KEY = "adm-agents-0123456789-0123456789"
PROMPT = "Use the tool to get the weather in Paris."
PRICES = {name: model.price for name, model in base_config().models.items()}


@pytest.fixture
def gateway(start_gateway: GatewayFactory) -> ServerThread:
    return start_gateway(server={"admin_key": ADMIN_KEY})


@pytest.fixture(autouse=True)
def agents_sdk() -> None:
    # The SDK's tracing exporter would otherwise post spans, with the client's key, to OpenAI.
    set_tracing_disabled(True)
    set_default_openai_api("responses")  # the default, said out loud


def spent_micros(gateway: ServerThread) -> int:
    answer = httpx.get(
        f"{gateway.url}/admin/teams/test/usage",
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert answer.status_code == 200, answer.text
    spent: int = answer.json()["spent_micros"]
    return spent


def client_for(gateway: ServerThread) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=CLIENT_KEY, max_retries=0)


@pytest.mark.anyio
@pytest.mark.parametrize("model", ["gpt-4o", "o1-mini"])
async def test_agent_runs_a_tool_and_answers(gateway: ServerThread, model: str) -> None:
    calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        calls.append(city)
        return f"Sunny, 21 C in {city}."

    client = client_for(gateway)
    set_default_openai_client(client, use_for_tracing=False)
    agent = Agent(
        name="weather",
        instructions="You answer questions about the weather.",
        model=model,
        tools=[get_weather],
    )
    before = spent_micros(gateway)
    result = await Runner.run(agent, PROMPT, max_turns=4)
    await client.close()

    # The tool ran once, with the arguments of the model's function call, and its output went
    # back to the model.
    kinds = [type(item) for item in result.new_items]
    assert kinds.count(ToolCallItem) == 1 and kinds.count(ToolCallOutputItem) == 1
    assert kinds.index(ToolCallItem) < kinds.index(ToolCallOutputItem)
    call = next(item for item in result.new_items if isinstance(item, ToolCallItem))
    assert call.raw_item.type == "function_call" and call.raw_item.name == "get_weather"
    assert call.raw_item.call_id.startswith("call_")
    arguments = json.loads(call.raw_item.arguments)
    assert isinstance(arguments["city"], str) and arguments["city"]
    assert calls == [arguments["city"]]
    output = next(item for item in result.new_items if isinstance(item, ToolCallOutputItem))
    assert output.output == f"Sunny, 21 C in {calls[0]}."
    # The run ends with a text answer from the second call.
    assert isinstance(result.final_output, str) and result.final_output.strip()
    assert len(result.raw_responses) == 2
    assert all(r.response_id and r.response_id.startswith("resp_") for r in result.raw_responses)

    # The team paid exactly what the two answers' usages cost at the configured prices.
    usages = [r.usage for r in result.raw_responses]
    for usage in usages:
        assert usage.input_tokens > 0 and usage.output_tokens > 0
        assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    if model.startswith("o1"):
        assert all(u.output_tokens_details.reasoning_tokens > 0 for u in usages)
    expected = sum(
        cost_micros(
            PRICES[model],
            Usage(
                prompt_tokens=u.input_tokens,
                completion_tokens=u.output_tokens,
                cached_tokens=u.input_tokens_details.cached_tokens,
            ),
        )
        for u in usages
    )
    assert expected > 0
    assert spent_micros(gateway) - before == expected
