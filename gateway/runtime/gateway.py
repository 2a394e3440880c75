"""Everything a running gateway holds, built once in the app's lifespan and closed with it."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import redis.asyncio as redis
from redis.exceptions import RedisError

from gateway.admission.auth_backoff import AuthBackoff
from gateway.admission.plan import PlanShapes
from gateway.admission.redis_side import Admission
from gateway.admission.team_share import TeamShares
from gateway.cache.flights import Cache
from gateway.compat.patches import LearnedCapabilities
from gateway.config import Config, ModelConfig
from gateway.objects.chat_views import ChatViews
from gateway.objects.ownership import Owners
from gateway.objects.responses import ResponseStore
from gateway.observability.access_log import AccessLog
from gateway.observability.audit import AuditLog
from gateway.observability.metrics import Metrics
from gateway.observability.record import Exchange, RequestTrace
from gateway.observability.tracing import Tracing
from gateway.runtime.batch_jobs import BatchJobs
from gateway.runtime.follower import Follower
from gateway.runtime.response_jobs import BackgroundResponses
from gateway.runtime.tuning_jobs import TuningJobs
from gateway.teams.records import Team, inherited_note, safety_identifier
from gateway.teams.store import TeamStore
from gateway.upstream.contract import Upstream
from gateway.upstream.dispatch import Dispatcher
from gateway.wire import errors
from gateway.wire.headers import upstream_request_headers

T = TypeVar("T")

log = logging.getLogger("gateway")
SANDBOX_TEAM = "sandbox"
# In simulate mode only (no real upstream, no real money), this well-known key is served as the
# sandbox team too, for clients that must send a key (the OpenAI SDKs do). It is never stored.
SANDBOX_KEY = "sk-gw-sandbox"
# At shutdown, settles get this long to reach Redis (milliseconds when it is up); what is
# left is charged at its reserve when the hold expires, and corrected by a later settle.
SETTLE_DRAIN_S = 10.0
# How long a response's bookkeeping waits at most for a request that waits on Redis.
AFTER_RESPONSE_S = 0.005


@dataclass(slots=True)
class Gateway:
    config: Config
    upstream: Upstream
    upstream_key: str
    redis: redis.Redis
    metrics: Metrics
    teams: TeamStore
    admission: Admission
    dispatch: Dispatcher
    responses: ResponseStore
    # Who owns each file, stored chat completion and vector store made through the gateway.
    owners: Owners
    # What clients were told about the stored chat completions the gateway patched.
    chat_views: ChatViews
    # The response cache and the calls in flight it shares.
    cache: Cache
    # Client-facing model name or upstream snapshot name -> (client-facing name, model config).
    models: dict[str, tuple[str, ModelConfig]] = field(default_factory=dict)
    extra_forward_prefixes: tuple[str, ...] = ()
    # Model names that may select a routing policy (`routing.aliases.policy_name` decides).
    aliases: frozenset[str] = frozenset()
    # The name of the team that callers without a key are served as ("": none), once made. Its
    # record is read through the team store's cache on every call (`TeamStore.cached_team`), so
    # that an admin change to it applies as one to any other team does.
    anonymous: str = ""
    background: set[asyncio.Task[None]] = field(default_factory=set)
    learned: LearnedCapabilities = field(default_factory=LearnedCapabilities)
    # Clients of models' own deployments (models.NAME.deployments), closed with the gateway.
    extra_upstreams: list[Upstream] = field(default_factory=list)
    access_log: AccessLog | None = None
    # OpenTelemetry traces, when an OTLP endpoint is configured (`observability.otlp_endpoint`).
    tracing: Tracing | None = None
    # Every admin action, one line each (observability.audit_log).
    audit: AuditLog = field(default_factory=AuditLog)
    # Wrong admin and metrics keys, slowed per client address.
    auth_backoff: AuthBackoff = field(default_factory=AuthBackoff)
    # Each team's requests in flight in this worker (server.max_team_requests).
    shares: TeamShares = field(default_factory=lambda: TeamShares(0))
    # Uploads whose audio length is being read (`wire.audio_length`), one at a time: the
    # reader is Python holding the GIL for up to a few hundred ms on a hostile file, so the loop
    # shares the CPU with one such thread at most, never with a crowd of them.
    audio_reads: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    # Large prompts being counted (`count_off_loop`), one at a time.
    counting: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    # The event loop serving requests, kept once `start` ran (see `gateway.eventloop`).
    loop: asyncio.AbstractEventLoop | None = None
    plans: PlanShapes | None = None
    safety_ids: dict[str, str] = field(default_factory=dict)
    # Substitutions of shut-down models already logged once ("OLD -> NEW").
    substitutions_logged: set[str] = field(default_factory=set)
    team_keys: dict[str, str] = field(default_factory=dict)
    # Follows open batches and fine-tuning jobs to charge them when they end (made in `start`).
    follower: Follower | None = None
    # Hold ids only need to be unique: a random prefix per process and a counter, instead of
    # asking the kernel for random bytes on every request.
    hold_prefix: str = field(default_factory=lambda: secrets.token_hex(6))
    hold_counter: Iterator[int] = field(default_factory=itertools.count)
    _later: list[tuple[Callable[..., object], tuple[object, ...]]] = field(default_factory=list)
    _later_timer: asyncio.TimerHandle | None = None
    # Traced requests whose responses have gone, finished after the rest of the bookkeeping.
    _traced: list[tuple[RequestTrace, Exchange, int]] = field(default_factory=list)

    async def count_off_loop(self, count: Callable[..., T], *args: Any) -> T:
        """`count(*args)` (tokens of a large prompt) in a thread, one at a time per worker.

        The tokenizer takes up to half a microsecond a byte (random letters): a body at
        `server.max_body_bytes` is seconds of CPU, which on the event loop would stall every
        team's requests. It lets go of the GIL, so the loop goes on meanwhile; one count at a
        time keeps a flood of them to one core. The turn is held until the count ends, even if
        its request is cancelled (a client that leaves cannot start another beside it)."""
        await self.counting.acquire()
        try:
            done = asyncio.get_running_loop().run_in_executor(None, count, *args)
        except BaseException:
            self.counting.release()
            raise
        done.add_done_callback(lambda _: self.counting.release())
        return await asyncio.shield(done)

    def after_response(self, callback: Callable[..., object], *args: object) -> None:
        """Run bookkeeping (charging a call, metrics, the access log) after the response was
        written, in the order asked: when the next request waits for Redis (`idle_soon`), or
        `AFTER_RESPONSE_S` later if none comes. Run before the response it would delay it; run
        right after, it delays the next request, which arrives while it runs."""
        loop = self.loop
        if loop is None:
            callback(*args)
            return
        self._later.append((callback, args))
        self._run_later_soon(loop)

    def trace_ended(self, trace: RequestTrace, exchange: Exchange, end_ns: int) -> None:
        """A traced request's response has gone at `end_ns`: its spans are finished with the
        bookkeeping, after the rest of it and one request after the other: run in a row, the
        tracer's code and data are more often still in the CPU's caches than when each request's
        spans are finished between its other bookkeeping (timed in place, 12 to 13 us a request
        against 14)."""
        loop = self.loop
        if loop is None:
            trace.finish(exchange, end_ns)
            return
        self._traced.append((trace, exchange, end_ns))
        self._run_later_soon(loop)

    def _run_later_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        # `AFTER_RESPONSE_S` from the first work asked, unless a request waiting runs it first.
        if self._later_timer is None:
            self._later_timer = loop.call_later(AFTER_RESPONSE_S, self.run_later)

    def idle_soon(self) -> None:
        """This request is about to wait (for Redis): the bookkeeping can run meanwhile."""
        loop = self.loop
        if (self._later or self._traced) and loop is not None:
            loop.call_soon(self.run_later)

    def run_later(self) -> None:
        """Run the bookkeeping asked for so far (the timer's work; also at shutdown)."""
        if self._later_timer is not None:
            self._later_timer.cancel()
            self._later_timer = None
        work, self._later = self._later, []
        for callback, args in work:
            try:
                callback(*args)
            except Exception:  # one failure must not cost the rest their charge or log line
                log.exception("after-response work failed: %r", callback)
        traced, self._traced = self._traced, []
        for trace, exchange, end_ns in traced:
            try:
                trace.finish(exchange, end_ns)
            except Exception:
                log.exception("a request's spans failed to finish: %r", exchange.path)

    def upstream_headers(
        self, client: Iterable[tuple[bytes, bytes]], team: Team | None = None
    ) -> dict[str, str]:
        """Headers for an upstream call, from the client's raw ASGI headers: with the team's
        own upstream key if it has one, else the gateway's."""
        own = self.own_key(team) if team is not None else None
        upstream = self.config.upstream
        return upstream_request_headers(
            client,
            own or self.upstream_key,
            upstream.organization,
            upstream.project,
            self.extra_forward_prefixes,
            team=team.name if team is not None else "",
            salt=upstream.safety_salt,
        )

    def key_headers(self, key_env: str) -> dict[str, str]:
        """Headers for a call the gateway makes itself on a team's behalf (no client's
        request behind it): the team's own key if it names one."""
        return upstream_request_headers(
            (),
            self.team_upstream_key(key_env) if key_env else self.upstream_key,
            self.config.upstream.organization,
            self.config.upstream.project,
            self.extra_forward_prefixes,
        )

    def own_key(self, team: Team) -> str | None:
        """The team's own upstream key (`upstream_key_env`), or None: the gateway's."""
        env = team.upstream_key_env
        return self.team_upstream_key(env) if env else None

    def safety_identifier(self, team: str, given: str | None = None) -> str:
        """The team's `safety_identifier` (made once per team), or a caller's own folded in."""
        if given is not None:
            return safety_identifier(self.config.upstream.safety_salt, team, given)
        found = self.safety_ids.get(team)
        if found is None:
            found = self.safety_ids[team] = safety_identifier(
                self.config.upstream.safety_salt, team
            )
        return found

    def team_upstream_key(self, env: str) -> str:
        """A team's own upstream key, from the environment variable its record names (read
        once). A team whose key is missing is refused, never served with the gateway's key."""
        key = self.team_keys.get(env)
        if key is None:
            key = os.environ.get(env, "")
            if not key:
                raise errors.team_upstream_key_missing(env)
            self.team_keys[env] = key
        return key

    def model_of(self, name: str) -> tuple[str, ModelConfig] | None:
        """A configured model by any of its names, or a fine-tune (`ft:<base>:...`) of a base
        with a fine-tuning price, as that base at its fine-tuned price: whoever owns it (a
        request is served a fine-tune only after its team's ownership is checked)."""
        found = self.models.get(name)
        if found is not None or not name.startswith("ft:"):
            return found
        base = self.models.get(name.split(":", 2)[1])
        if base is None or not base[1].fine_tuning.training_price:
            return None
        return base[0], base[1].fine_tuned(name)

    def today(self) -> str:
        """The day retirements are judged by (see `RetirementConfig.today`)."""
        config = self.config
        if config.retirement.today:
            return config.retirement.today
        return config.simulator.today if config.simulate else datetime.now(UTC).date().isoformat()

    def new_hold_id(self) -> str:
        return f"{self.hold_prefix}{next(self.hold_counter):x}"

    def plan_shapes(self) -> PlanShapes:
        if self.plans is None:
            self.plans = PlanShapes(self.config)
        return self.plans

    async def start(self) -> None:
        """Load teams into the store. Redis being down must not stop the gateway from starting
        (it reports not-ready instead), so the load is retried in the background until it works."""
        loop = self.loop = asyncio.get_running_loop()
        if self.access_log is not None:
            self.background.add(loop.create_task(self.access_log.run()))
        if self.tracing is not None:
            self.background.add(loop.create_task(self.tracing.run()))
        kinds = (
            BatchJobs(
                self.config.batches.poll_s,
                self.model_of,
                self.config.batches.max_output_line_bytes,
            ),
            TuningJobs(self.config.fine_tuning.poll_s),
            BackgroundResponses(self.config.responses.poll_s),
        )
        self.follower = Follower(
            self.redis, self.upstream, self.admission, self.owners, self.key_headers, kinds
        )
        self.background.add(loop.create_task(self.follower.run()))
        try:
            await self._load_teams()
        except (RedisError, OSError) as exc:
            log.error("cannot load teams, Redis unreachable (%s): retrying every 2 s", exc)
            self.background.add(loop.create_task(self._retry_load()))

    async def _retry_load(self) -> None:
        while True:
            await asyncio.sleep(2)
            try:
                await self._load_teams()
            except (RedisError, OSError):
                continue
            log.warning("teams loaded: Redis is reachable again")
            return

    async def _load_teams(self) -> None:
        admission = self.config.admission
        if admission.teams_file:
            text = await asyncio.to_thread(_read_if_present, Path(admission.teams_file))
            if text is None:
                log.warning(
                    "admission.teams_file %s not found: no teams loaded", admission.teams_file
                )
            else:
                # A skipped key matters to an operator serving real traffic; in simulate mode
                # (the quick start) every caller is served anyway, so it is only a note.
                level = logging.INFO if self.config.simulate else logging.WARNING
                for warning in await self.teams.load_file(text, os.environ):
                    log.log(level, "%s: %s", admission.teams_file, warning)
        name = admission.anonymous_team or (SANDBOX_TEAM if self.config.simulate else "")
        if name:
            inherited = await self.teams.ensure_team(Team(name=name, tier="tier-5"))
            if inherited is not None:
                log.warning("admission.anonymous_team: %s", inherited_note(inherited))
            self.anonymous = name
            sandbox = f" (and callers with the key {SANDBOX_KEY})" if self.config.simulate else ""
            log.warning("callers without a key%s are served as team %r", sandbox, name)

    async def close(self) -> None:
        for task in self.background:
            task.cancel()
        self.run_later()
        if self.access_log is not None:
            self.access_log.flush()
        await self.admission.drain(SETTLE_DRAIN_S)
        await self.responses.drain(SETTLE_DRAIN_S)
        await self.owners.drain(SETTLE_DRAIN_S)
        await self.cache.drain(SETTLE_DRAIN_S)
        if self.tracing is not None:
            # After the settles, so their spans are among those sent.
            await self.tracing.close()
        await self.admission.close()
        await self.upstream.close()
        for target in self.extra_upstreams:
            await target.close()
        await self.redis.aclose()
        self.metrics.close()
        self.audit.close()


def _read_if_present(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None
