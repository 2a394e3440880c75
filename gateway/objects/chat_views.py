"""What the client was told about a stored chat completion that upstream keeps otherwise.

A chat request with `store: true` is stored upstream as upstream received and answered it. When
the gateway patched it for a model that lacks something (a system message folded into the user
turn, tools or structured output emulated by prompting), upstream's copy is the patched
conversation and the model's raw answer (`<tool_call>` text where the client got `tool_calls`),
not what the client sent and was answered. A request naming a shut-down model is stored under
its successor's name, not the one the client sent. The client's view is kept here, one key per
completion, for upstream's retention of stored completions (`compat.stored_view_ttl_s`), and
dropped with the owner record when the completion is deleted through the gateway or a read finds
upstream has it no longer (expired, or deleted around the gateway):

    o1gw:chat-view:{id}   JSON: {"messages": [the request's messages, as sent, when patched],
                                 "choices": [the choices answered, when they differ],
                                 "named": the shut-down model named, as upstream would have
                                          stored it had it served (its upstream name)}

The stored-completion endpoints show its messages and choices in place of upstream's, and
their list finds a completion by the model named too. Redis I/O.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as redis

PREFIX = "o1gw:chat-view:"


def _key(completion_id: str) -> str:
    return f"{PREFIX}{completion_id}"


class ChatViews:
    def __init__(self, client: redis.Redis, ttl_s: float) -> None:
        self._redis = client
        self._ttl_ms = max(int(ttl_s * 1000), 1)

    async def put(self, completion_id: str, view: dict[str, Any]) -> None:
        await self._redis.set(_key(completion_id), orjson.dumps(view), px=self._ttl_ms)

    async def get(self, completion_id: str) -> dict[str, Any] | None:
        return _view(await self._redis.get(_key(completion_id)))

    async def get_many(self, completion_ids: list[str]) -> list[dict[str, Any] | None]:
        """A page's views in one round trip (GETs pipelined, not MGET: the keys of a page may
        lie on different cluster slots)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for completion_id in completion_ids:
                pipe.get(_key(completion_id))
            found = await pipe.execute()
        return [_view(raw) for raw in found]

    async def delete(self, completion_id: str) -> None:
        await self._redis.delete(_key(completion_id))


def _view(raw: bytes | str | None) -> dict[str, Any] | None:
    view = orjson.loads(raw) if raw is not None else None
    return view if isinstance(view, dict) else None


def named(view: dict[str, Any] | None) -> str | None:
    """The shut-down model its client named, where its successor stored the completion."""
    found = view.get("named") if view is not None else None
    return found if isinstance(found, str) else None


def shown(completion: dict[str, Any], view: dict[str, Any] | None) -> dict[str, Any]:
    """Upstream's stored completion as its client was answered."""
    choices = view.get("choices") if view is not None else None
    return {**completion, "choices": choices} if isinstance(choices, list) else completion
