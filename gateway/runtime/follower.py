"""The jobs the gateway follows upstream until they end, to charge them what they cost:
batches and fine-tuning jobs, each kind saying how to read its end and price it (`JobKind`).

A job is held when it is created (its worst case, for as long as it may run) and settled once
upstream says it ended, by its kind's rule (one upstream no longer has, at its hold). The open
jobs are kept in Redis, one hash per kind, so any replica may settle any job (the hold id makes
a second settle count nothing) and a restart loses none; every worker of every replica
follows them, and the first to claim a job in a poll interval is the one that reads it (an
older job's interval is longer: `look_interval_s`). What a job made (output files, a fine-tuned
model) becomes the team's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import orjson
import redis.asyncio as redis
from redis.exceptions import RedisError, ResponseError

from gateway.admission.plan import Bucket, Plan, WeeklyCap
from gateway.admission.redis_side import SETTLED_ALREADY, Admission, refused
from gateway.config import ModelConfig
from gateway.objects.ownership import Owners
from gateway.upstream.contract import Upstream
from gateway.wire import errors
from gateway.wire.errors import GatewayError
from gateway.wire.usage import Usage

log = logging.getLogger("gateway")
NOT_FOUND = 404
# A job looked at by one follower, for most of a poll interval: every worker of every replica
# follows every open job, and each reading each at every pass multiplied the upstream reads
# by their number (`o1gw:looked:{kind}:{id}`, set only if absent, expiring).
LOOKED_PREFIX = "o1gw:looked:"
# The share of a poll interval a look holds its job: a follower's next pass, a poll interval
# later, finds it free again however late its last pass began.
LOOKED_SHARE = 0.9
# An older job is read less often: at most a tenth of its age late, and at least every
# `SLOWEST` poll intervals (a day-long batch read every minute cost 1,440 reads upstream for
# one counted creation; so, about 170). A client reading its job settles it at once anyway.
AGE_SHARE = 10
SLOWEST = 10


def look_interval_s(poll_s: float, age_s: float) -> float:
    """How long after a look at a job `age_s` old the next one is due."""
    return min(max(poll_s, age_s / AGE_SHARE), poll_s * SLOWEST)


# Headers for a call upstream on a team's behalf, by the name of its key's variable ("": the
# gateway's key).
HeadersFor = Callable[[str], dict[str, str]]
# An upstream read (a path relative to the base URL) with the job's team's key: the body of a
# 200, None for a 404 (there is no such object, or no more); any other answer raises, so that
# the job is looked at again later (a 5xx or a 429 says nothing of what the job cost).
Read = Callable[[str], Awaitable[bytes | None]]
# A model by any name a request or an answer gives it (a fine-tune's too): its configured name
# and config, or None.
ModelOf = Callable[[str], tuple[str, ModelConfig] | None]


class Reads:
    """`Read` with a job's team's key, and `chunks`: a file's content as upstream's answer
    brings it, never held whole (a batch's output file: every line a whole answer)."""

    def __init__(self, upstream: Upstream, headers: dict[str, str]) -> None:
        self._upstream = upstream
        self._headers = headers

    async def __call__(self, path: str) -> bytes | None:
        async with self.chunks(path) as chunks:
            return None if chunks is None else b"".join([c async for c in chunks])

    @contextlib.asynccontextmanager
    async def chunks(self, path: str) -> AsyncIterator[AsyncIterator[bytes] | None]:
        """The answer's body as it comes, None for a 404 (as `Read`); upstream's answer let
        go of when the block ends, read to its end or not."""
        resp = await self._upstream.send("GET", path, b"", self._headers, b"")
        try:
            if resp.status == NOT_FOUND:
                yield None
            elif resp.status == 200:
                yield resp.iter_chunks()
            else:
                raise errors.upstream_status(resp.status)
        finally:
            await resp.close()


@dataclass(frozen=True, slots=True)
class Ended:
    """What a job that ended cost, and the objects it made (kind, id): the team's now, each
    until upstream deletes it (`expiring`: Unix seconds, by id; one not there never expires)."""

    usage: Usage
    cost: int
    made: tuple[tuple[str, str], ...] = ()
    expiring: dict[str, float] = field(default_factory=dict)


class JobKind(ABC):
    """One kind of job: where upstream keeps it, when it has ended and what it cost."""

    name: str  # its owner records' kind, and what `Follower.follow` is told: "batch"
    path: str  # upstream, relative to the base URL: "/batches"
    open_key: str  # the Redis hash of its open jobs: job id -> its record
    ended_statuses: frozenset[str]

    def __init__(self, poll_s: float) -> None:
        self.poll_s = poll_s  # how often its open jobs are read

    @abstractmethod
    async def priced(self, job: dict[str, Any], record: dict[str, Any], read: Read) -> Ended:
        """The cost of an ended `job` (as upstream answers it), followed as `record`."""


class Follower:
    def __init__(
        self,
        client: redis.Redis,
        upstream: Upstream,
        admission: Admission,
        owners: Owners,
        headers_for: HeadersFor,
        kinds: Sequence[JobKind],
    ) -> None:
        self._redis = client
        self._upstream = upstream
        self._admission = admission
        self._owners = owners
        self._headers_for = headers_for
        self.kinds = {kind.name: kind for kind in kinds}
        self._pending: set[asyncio.Task[None]] = set()

    async def follow(
        self, kind: str, job_id: str, team: str, key_env: str, plan: Plan, **extra: Any
    ) -> None:
        """Follow a job of `kind` until it ends; `extra` is what its kind prices it by."""
        record = {
            "team": team, "key_env": key_env, "plan": asdict(plan), "since": int(time.time()),
            **extra,
        }  # fmt: skip
        await self._redis.hset(self.kinds[kind].open_key, job_id, orjson.dumps(record))

    def follow_soon(
        self,
        kind: str,
        job_id: str,
        team: str,
        key_env: str,
        plan: Plan,
        lost: Callable[[], None],
        **extra: Any,
    ) -> None:
        """`follow`, beside the answer that made the job (its call needs no Redis wait);
        `lost` is called if the job cannot be followed (Redis away): its hold is then its
        caller's to charge, as no look will settle it (and one admitted without Redis, never
        written, would not even expire into a charge)."""
        task = asyncio.get_running_loop().create_task(
            self.follow(kind, job_id, team, key_env, plan, **extra)
        )
        self._pending.add(task)
        task.add_done_callback(partial(self._followed, kind, job_id, lost))

    def _followed(
        self, kind: str, job_id: str, lost: Callable[[], None], task: asyncio.Task[None]
    ) -> None:
        self._pending.discard(task)
        error = None if task.cancelled() else task.exception()
        if task.cancelled() or error is not None:
            log.error("cannot follow %s %s: %r", kind, job_id, error or "cancelled")
            lost()

    async def run(self) -> None:
        await asyncio.gather(*(self._follow_all(kind) for kind in self.kinds.values()))

    async def _follow_all(self, kind: JobKind) -> None:
        while True:
            await asyncio.sleep(kind.poll_s)
            try:
                await self.check_all(kind)
            except (RedisError, OSError) as exc:
                log.warning("cannot follow %s jobs now (%s)", kind.name, exc)

    async def check_all(self, kind: JobKind, *, shared: bool = True) -> None:
        """Look at each open job of `kind`; `shared`: those no other follower looked at in
        this poll interval only (False: every one, as one pass run by hand)."""
        for raw_id, raw in (await self._redis.hgetall(kind.open_key)).items():
            job_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            record = orjson.loads(raw)
            if shared and not await self._looking(kind, job_id, record):
                continue
            try:
                await self.check(kind, job_id, record)
            except GatewayError as exc:
                log.warning("%s %s: upstream did not answer (%s)", kind.name, job_id, exc.message)

    async def _looking(self, kind: JobKind, job_id: str, record: dict[str, Any]) -> bool:
        """Whether this follower is the first to look at the job this interval (its poll
        interval, longer as the job ages: `look_interval_s`)."""
        since = record.get("since")
        age_s = time.time() - since if isinstance(since, int | float) else 0.0
        held_ms = int(look_interval_s(kind.poll_s, age_s) * LOOKED_SHARE * 1000)
        if held_ms <= 0:
            return True
        key = f"{LOOKED_PREFIX}{kind.name}:{job_id}"
        return bool(await self._redis.set(key, b"1", nx=True, px=held_ms))

    async def settle_ended(self, kind_name: str, job_id: str) -> None:
        """Settle a followed job now if it ended, not at the next look: before its team deletes
        it upstream (a background response), after which what it cost can no longer be read."""
        kind = self.kinds[kind_name]
        raw = await self._redis.hget(kind.open_key, job_id)
        if raw is not None:
            await self.check(kind, job_id, orjson.loads(raw))

    async def check(self, kind: JobKind, job_id: str, record: dict[str, Any]) -> None:
        """Settle the job if upstream says it ended."""
        read = Reads(self._upstream, self._headers_for(record.get("key_env") or ""))
        found = await read(f"{kind.path}/{job_id}")
        if found is None:
            # Upstream has no such job any more (a background response deleted while it ran):
            # what it cost can no longer be read, and it may have billed all of it.
            ended = Ended(Usage(), int(record["plan"]["reserve"]))
        else:
            job = _object(found)
            if job is None or job.get("status") not in kind.ended_statuses:
                return
            ended = await kind.priced(job, record, read)
        # The record as it is now, not as this pass read the open list: another replica may
        # have settled the job meanwhile (this look waited on upstream: a stalled answer, a
        # large output file), and a settle landing after its hold is forgotten would charge
        # it again.
        current = await self._redis.hget(kind.open_key, job_id)
        if current is None:
            return
        record = orjson.loads(current)
        plan = _plan(record["plan"])
        # A look that failed after it began settling (Redis went away) may have settled it:
        # this settle is that one again, and counts once however long Redis was away
        # (`Admission.settle`'s `first_ms`, for a hold the admission script wrote).
        began = record.get("settling")
        if not isinstance(began, int):
            began = None
            settling = orjson.dumps({**record, "settling": int(time.time() * 1000)})
            await self._redis.hset(kind.open_key, job_id, settling)
        first_ms = began if record.get("written", True) is True else None
        try:
            status = await self._admission.settle(
                plan, ended.usage, ended.cost, release_weekly=False, first_ms=first_ms
            )
        except ResponseError as exc:
            if not refused(exc):
                raise
            # What the job was priced at cannot be written (a bug in its price): charged its
            # hold now, never less than it may cost, rather than looked at again each pass, a
            # refusal each time, its hold charged on expiry only if Redis wrote it.
            self._admission.refused_settle(plan, ended.cost, exc, "the job is")
            ended = Ended(Usage(), plan.reserve, ended.made, ended.expiring)
            status = await self._admission.settle(
                plan, ended.usage, ended.cost, release_weekly=False, first_ms=first_ms
            )
        if status != SETTLED_ALREADY:
            # Counted by the look that settled it (another at once: a second replica, or its
            # client reading it), as gateway_spend_microdollars_total matches the spend.
            self._admission.count_usage(plan, ended.usage, ended.cost)
        for object_kind, object_id in ended.made:
            expires_at = ended.expiring.get(object_id)
            await self._owners.record(
                object_kind, record["team"], object_id, time.time(), expires_at
            )
        await self._redis.hdel(kind.open_key, job_id)


def _object(content: bytes | None) -> dict[str, Any] | None:
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
