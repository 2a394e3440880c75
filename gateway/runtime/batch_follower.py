"""The batches the gateway follows until they end, to charge them what they cost.

A batch is held when it is created (each line's worst case at half price, for as long as its
completion window) and settled once upstream says it ended: from its output file, each line's
usage at half its model's price, rounded up per line as upstream bills it. The open batches are
kept in Redis, so any replica may settle any batch (the hold id makes a second settle count
nothing) and a restart loses none. The output and error files become the team's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import orjson
import redis.asyncio as redis
from redis.exceptions import RedisError

from gateway.admission.plan import Bucket, Plan, WeeklyCap
from gateway.admission.pricing import batch_line_cost
from gateway.admission.redis_side import Admission
from gateway.config import ModelConfig
from gateway.objects.ownership import Owners
from gateway.upstream.contract import Upstream
from gateway.wire.errors import GatewayError
from gateway.wire.usage import Usage, usage_from

log = logging.getLogger("gateway")
OPEN = "o1gw:batches:open"
ENDED = frozenset({"completed", "failed", "expired", "cancelled"})
# Headers for a call upstream on a team's behalf, by the name of its key's variable ("": the
# gateway's key).
HeadersFor = Callable[[str], dict[str, str]]


class BatchFollower:
    def __init__(
        self,
        client: redis.Redis,
        upstream: Upstream,
        admission: Admission,
        owners: Owners,
        models: dict[str, tuple[str, ModelConfig]],
        headers_for: HeadersFor,
        poll_s: float,
    ) -> None:
        self._redis = client
        self._upstream = upstream
        self._admission = admission
        self._owners = owners
        self._models = models
        self._headers_for = headers_for
        self._poll_s = poll_s

    async def follow(
        self, batch_id: str, team: str, key_env: str, plan: Plan, models: list[str]
    ) -> None:
        """Follow a batch whose lines name `models` (configured names)."""
        record = {"team": team, "key_env": key_env, "plan": asdict(plan), "models": models}
        await self._redis.hset(OPEN, batch_id, orjson.dumps(record))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                await self.check_all()
            except (RedisError, OSError) as exc:
                log.warning("cannot follow batches now (%s)", exc)

    async def check_all(self) -> None:
        for raw_id, raw in (await self._redis.hgetall(OPEN)).items():
            batch_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            try:
                await self.check(batch_id, orjson.loads(raw))
            except GatewayError as exc:
                log.warning("batch %s: upstream did not answer (%s)", batch_id, exc.message)

    async def check(self, batch_id: str, record: dict[str, Any]) -> None:
        """Settle the batch if upstream says it ended."""
        headers = self._headers_for(record.get("key_env") or "")
        batch = await self._read_json(f"/batches/{batch_id}", headers)
        if batch is None or batch.get("status") not in ENDED:
            return
        usage, cost = Usage(), 0
        output = batch.get("output_file_id")
        if isinstance(output, str):
            content = await self._read(f"/files/{output}/content", headers)
            usage, cost = self._priced(content, self._dearest(record.get("models") or []))
        plan = _plan(record["plan"])
        await self._admission.settle(plan, usage, cost, release_weekly=False)
        self._admission.count_usage(plan.team, plan.model, usage, cost)
        for file_id in (output, batch.get("error_file_id")):
            if isinstance(file_id, str):
                await self._owners.record("file", record["team"], file_id, time.time())
        await self._redis.hdel(OPEN, batch_id)

    def _dearest(self, names: list[str]) -> ModelConfig | None:
        """Of the models a batch's lines named, the one whose output costs most."""
        models = [found[1] for name in names if (found := self._models.get(name)) is not None]
        return max(models, key=lambda m: (m.price.output, m.price.input), default=None)

    def _priced(self, content: bytes | None, fallback: ModelConfig | None) -> tuple[Usage, int]:
        """The usage and half-price cost of every answered line of an output file; a line
        answered by a model the config does not name (a newer snapshot) is priced as the
        dearest model the batch's lines named: never less than upstream bills."""
        prompt = completion = cached = reasoning = cost = 0
        for line in (content or b"").splitlines():
            try:
                entry = orjson.loads(line)
                body = entry["response"]["body"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
            used = usage_from(body.get("usage")) if isinstance(body, dict) else None
            if used is None:
                continue
            found = self._models.get(str(body.get("model")))
            model = found[1] if found is not None else fallback
            if model is None:
                continue
            cost += batch_line_cost(model.price, used)
            prompt += used.prompt_tokens
            completion += used.completion_tokens
            cached += used.cached_tokens
            reasoning += used.reasoning_tokens
        return Usage(prompt, completion, cached, reasoning), cost

    async def _read(self, path: str, headers: dict[str, str]) -> bytes | None:
        resp = await self._upstream.send("GET", path, b"", headers, b"")
        try:
            content = await resp.read()
        finally:
            await resp.close()
        return content if resp.status == 200 else None

    async def _read_json(self, path: str, headers: dict[str, str]) -> dict[str, Any] | None:
        content = await self._read(path, headers)
        try:
            answer = orjson.loads(content) if content is not None else None
        except orjson.JSONDecodeError:
            return None
        return answer if isinstance(answer, dict) else None


def _plan(data: dict[str, Any]) -> Plan:
    return Plan(
        **{
            **data,
            "buckets": tuple(Bucket(**b) for b in data["buckets"]),
            "weekly": tuple(WeeklyCap(**w) for w in data["weekly"]),
        }
    )
