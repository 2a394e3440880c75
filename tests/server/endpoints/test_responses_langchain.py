"""LangChain's ChatOpenAI on the Responses API (`use_responses_api=True`) through the gateway.

gpt-4o is forwarded natively; o1-mini is served by translation to chat (tools emulated by
prompting). LangChain reads the Response objects and events into its messages: text, usage
metadata, tool calls; a tool round trip sends the function call and its output back as input.
"""

from __future__ import annotations

from functools import reduce
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from tests.conftest import CLIENT_KEY, GatewayFactory, ServerThread

MODELS = ["gpt-4o", "o1-mini"]
HELLO = "Say hello to the gateway."


@pytest.fixture(autouse=True)
def no_langsmith(monkeypatch: pytest.MonkeyPatch) -> None:
    # LangSmith tracing, if the environment turned it on, would send runs to its service.
    for name in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "LANGSMITH_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def gateway(start_gateway: GatewayFactory) -> ServerThread:
    return start_gateway()


def chat_model(gateway: ServerThread, model: str) -> ChatOpenAI:
    return ChatOpenAI(
        model=model,
        use_responses_api=True,
        base_url=f"{gateway.url}/v1",
        api_key=CLIENT_KEY,  # type: ignore[arg-type]
        max_retries=0,
    )


def check_usage(message: AIMessage, model: str) -> None:
    usage: Any = message.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    reasoning = usage.get("output_token_details", {}).get("reasoning", 0)
    if model.startswith("o1"):
        assert 0 < reasoning < usage["output_tokens"]
    else:
        assert reasoning == 0


@pytest.mark.parametrize("model", MODELS)
def test_invoke(gateway: ServerThread, model: str) -> None:
    message = chat_model(gateway, model).invoke(HELLO)
    assert isinstance(message, AIMessage)
    assert message.text.strip()
    assert message.response_metadata["object"] == "response"
    assert message.response_metadata["status"] == "completed"
    assert message.response_metadata["model_name"].startswith(model + "-")
    assert message.response_metadata["id"].startswith("resp_")
    check_usage(message, model)


@pytest.mark.parametrize("model", MODELS)
def test_stream(gateway: ServerThread, model: str) -> None:
    chunks = list(chat_model(gateway, model).stream(HELLO))
    assert len(chunks) > 3 and all(isinstance(c, AIMessageChunk) for c in chunks)
    whole = reduce(lambda a, b: a + b, chunks)
    assert isinstance(whole, AIMessageChunk)
    assert whole.text.strip()
    assert whole.response_metadata["status"] == "completed"
    # Usage arrives once, with the completed response, not summed over chunks.
    assert sum(1 for c in chunks if c.usage_metadata) == 1
    check_usage(whole, model)


@pytest.mark.parametrize("model", MODELS)
def test_tool_round_trip(gateway: ServerThread, model: str) -> None:
    ran: list[str] = []

    @tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        ran.append(city)
        return f"Sunny, 21 C in {city}."

    bound = chat_model(gateway, model).bind_tools([get_weather])
    messages: list[BaseMessage] = [HumanMessage("Use the tool to get the weather in Paris.")]
    asked = bound.invoke(messages)
    assert isinstance(asked, AIMessage)
    (call,) = asked.tool_calls
    assert call["name"] == "get_weather" and call["id"]
    assert isinstance(call["args"]["city"], str) and call["args"]["city"]
    check_usage(asked, model)

    output = get_weather.invoke(call["args"])
    assert ran == [call["args"]["city"]]
    messages += [asked, ToolMessage(output, tool_call_id=call["id"])]
    answered = bound.invoke(messages)
    assert isinstance(answered, AIMessage)
    assert answered.tool_calls == []  # the loop ends: a text answer after the tool result
    assert answered.text.strip()
    check_usage(answered, model)
