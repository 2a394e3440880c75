"""Cache hits of answers in shapes the simulator does not give, from a scripted upstream on a real
socket, with a real redis-server: a hit carries what its miss's answer carried (the whole usage
object, a tool call's streamed parts)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.conftest import SIM_KEY, GatewayFactory, ServerThread, base_config
from tests.redis.endpoints.teams import sdk, serve_teams

TEAMS = {"alpha": {"tier": "tier-5", "cache": "true"}}
# Every detail upstream's chat usage may hold: cached and cache-written prompt tokens, audio,
# reasoning, and the predicted tokens an answer accepted and rejected.
USAGE = {
    "prompt_tokens": 1200, "completion_tokens": 40, "total_tokens": 1240,
    "prompt_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 64, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 12,
        "rejected_prediction_tokens": 5,
    },
}  # fmt: skip
TEXT = "The quick brown fox."
SILENT = "Fox, without usage?"


def chunk(**fields: Any) -> bytes:
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
            "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_1",
            "service_tier": "default"}  # fmt: skip
    return b"data: " + orjson.dumps({**head, **fields}) + b"\n\n"


# A custom tool's call (free-form input, no JSON arguments), as chat completions answers it.
CUSTOM_CALL = {"id": "call_1", "type": "custom", "custom": {"name": "run", "input": "ls -la"}}


async def chat_completions(request: Request) -> Response:
    body = await request.json()
    if body.get("tools"):
        assert body.get("stream") is not True  # the test's miss is whole
        message = {"role": "assistant", "content": None, "refusal": None, "annotations": [],
                   "tool_calls": [CUSTOM_CALL]}  # fmt: skip
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls"}
        return JSONResponse({
            "id": "chatcmpl-2", "object": "chat.completion", "created": 1,
            "model": "gpt-4o-2024-08-06", "choices": [choice], "usage": USAGE,
        })  # fmt: skip
    if body.get("stream") is not True:
        message = {"role": "assistant", "content": TEXT, "refusal": None, "annotations": []}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
        return JSONResponse({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1,
            "model": "gpt-4o-2024-08-06", "choices": [choice], "usage": USAGE,
        })  # fmt: skip
    options = body.get("stream_options") or {}
    # A stream that never says its usage, asked or not (as some proxies relay one).
    silent = body["messages"][0]["content"] == SILENT
    usage = options.get("include_usage") is True and not silent

    async def events() -> AsyncIterator[bytes]:
        extra = {"usage": None} if usage else {}
        for delta, reason in (({"role": "assistant", "content": ""}, None),
                              ({"content": TEXT}, None), ({}, "stop")):  # fmt: skip
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
            yield chunk(choices=[choice], **extra)
        if usage:
            yield chunk(choices=[], usage=USAGE)
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


# A local shell's call: the commands the model wrote, for the client to run.
SHELL_CALL = {
    "id": "sh_1", "type": "shell_call", "status": "completed", "call_id": "call_1",
    "action": {"commands": ["ls -la", "cat README.md"], "max_output_length": None,
               "timeout_ms": None},
    "environment": {"type": "local"},
}  # fmt: skip


async def responses(request: Request) -> Response:
    body = await request.json()
    assert body.get("stream") is not True  # the test's miss is whole
    return JSONResponse({
        "id": "resp_1", "object": "response", "created_at": 1, "completed_at": 2,
        "status": "completed", "error": None, "incomplete_details": None,
        "model": "gpt-4o-2024-08-06", "output": [SHELL_CALL], "parallel_tool_calls": True,
        "tool_choice": "auto", "tools": body.get("tools", []), "store": False,
        "usage": {"input_tokens": 20, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": 12, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": 32},
    })  # fmt: skip


@pytest.fixture(scope="module")
def upstream() -> Iterator[ServerThread]:
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/responses", responses, methods=["POST"]),
        ]
    )
    with ServerThread(app) as server:
        yield server


@pytest.fixture
def gateway(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, upstream: ServerThread
) -> ServerThread:
    config = base_config(OPENAI_BASE_URL=f"{upstream.url}/v1", OPENAI_API_KEY=SIM_KEY)
    return serve_teams(start_gateway, redis_server, tmp_path, TEAMS, config=config, knobs=False)


def test_a_hit_of_a_stream_its_client_asked_no_usage_of_carries_upstreams_whole_usage(
    gateway: ServerThread, redis_server: str
) -> None:
    """The gateway asks upstream for a stream's usage (to charge it) and strips it from a
    client that did not ask: the answer kept still has all of it, every detail, and its hits
    say it as upstream did, whole or in the usage chunk."""
    client = sdk(gateway, "alpha")
    asked: Any = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Fox?"}]}
    create = client.chat.completions.with_raw_response.create
    miss = create(**asked, stream=True)
    assert miss.headers["x-gateway-cache"] == "miss"
    assert all(chunk.usage is None for chunk in miss.parse())
    whole = create(**asked)
    assert whole.headers["x-gateway-cache"] == "hit"
    assert orjson.loads(whole.http_response.content)["usage"] == USAGE
    streamed = create(**asked, stream=True, stream_options={"include_usage": True})
    assert streamed.headers["x-gateway-cache"] == "hit"
    used = [c.usage.model_dump(exclude_unset=True) for c in streamed.parse() if c.usage]
    assert used == [USAGE]


def test_a_hit_of_a_stream_says_its_id_time_fingerprint_and_tier(
    gateway: ServerThread, redis_server: str
) -> None:
    """A hit is its first answer again, whole or streamed: the same id, `created`, model,
    `system_fingerprint` and `service_tier` as the miss's chunks, none made up or lost."""
    create = sdk(gateway, "alpha").chat.completions.with_raw_response.create
    asked: Any = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Fox, again?"}]}
    fields = ("id", "created", "model", "system_fingerprint", "service_tier")
    miss = create(**asked, stream=True)
    assert miss.headers["x-gateway-cache"] == "miss"
    heads = {tuple(getattr(c, name) for name in fields) for c in miss.parse()}
    assert heads == {("chatcmpl-1", 1, "gpt-4o-2024-08-06", "fp_1", "default")}
    whole = create(**asked)
    assert whole.headers["x-gateway-cache"] == "hit"
    completion = orjson.loads(whole.http_response.content)
    assert {tuple(completion[name] for name in fields)} == heads
    streamed = create(**asked, stream=True)
    assert streamed.headers["x-gateway-cache"] == "hit"
    assert {tuple(getattr(c, name) for name in fields) for c in streamed.parse()} == heads


def test_a_stream_whose_usage_never_came_is_not_kept_with_a_usage_made_up(
    gateway: ServerThread, redis_server: str
) -> None:
    """Upstream said no usage, asked for it: the gateway charged its own count, which a hit
    would say as upstream's usage. The answer is not kept; the next request calls again."""
    create = sdk(gateway, "alpha").chat.completions.with_raw_response.create
    asked: Any = {"model": "gpt-4o", "messages": [{"role": "user", "content": SILENT}]}
    assert create(**asked, stream=True).headers["x-gateway-cache"] == "miss"
    again = create(**asked)
    assert again.headers["x-gateway-cache"] == "miss"
    assert orjson.loads(again.http_response.content)["usage"] == USAGE


def test_a_replayed_shell_call_streams_its_commands(gateway: ServerThread) -> None:
    """A local shell's call (kept when tool answers may be) streams each of its commands as
    upstream does: the item opened with none, then for each command
    `response.shell_call_command.added`, its `.delta` and `.done`, which a client running
    commands as they come needs."""
    create = sdk(gateway, "alpha").responses.with_raw_response.create
    asked: Any = {
        "model": "gpt-4o", "input": "List the files.", "store": False,
        "tools": [{"type": "shell", "environment": {"type": "local"}}],
        "extra_headers": {"x-gateway-cache-tools": "on"},
    }  # fmt: skip
    assert create(**asked).headers["x-gateway-cache"] == "miss"
    hit = create(**asked, stream=True)
    assert hit.headers["x-gateway-cache"] == "hit"
    events = [e.model_dump(exclude_unset=True) for e in hit.parse()]
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert added["item"]["action"]["commands"] == []
    commands = SHELL_CALL["action"]["commands"]  # type: ignore[index]
    for at, command in enumerate(commands):
        mine = [e for e in events if e.get("command_index") == at]
        assert mine[0]["type"] == "response.shell_call_command.added"
        assert mine[-1]["type"] == "response.shell_call_command.done"
        deltas = [e["delta"] for e in mine if e["type"] == "response.shell_call_command.delta"]
        assert "".join(deltas) == command == mine[-1]["command"]
    done = next(e for e in events if e["type"] == "response.output_item.done")
    assert done["item"] == SHELL_CALL


def test_an_answer_calling_a_custom_tool_is_not_kept(gateway: ServerThread) -> None:
    """A chat answer may call a custom tool (`type: custom`, its free-form `input`), which the
    cache neither gathers from a stream nor replays as one (only function calls are): such an
    answer is not kept, even where tool answers may be. Kept, its streamed hit sent the call
    as a function call with no name and no input."""
    create = sdk(gateway, "alpha").chat.completions.with_raw_response.create
    asked: Any = {
        "model": "gpt-4o", "messages": [{"role": "user", "content": "List the files."}],
        "tools": [{"type": "custom", "custom": {"name": "run"}}],
        "extra_headers": {"x-gateway-cache-tools": "on"},
    }  # fmt: skip
    for _ in range(2):
        whole = create(**asked)
        assert whole.headers["x-gateway-cache"] == "miss"
        message = orjson.loads(whole.http_response.content)["choices"][0]["message"]
        assert message["tool_calls"] == [CUSTOM_CALL]
