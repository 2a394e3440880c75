"""Everything a running gateway holds, built once in the app's lifespan and closed with it."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as redis
from redis.exceptions import RedisError

from gateway.admission import Admission
from gateway.compat import LearnedCapabilities
from gateway.config import Config, ModelConfig
from gateway.metrics import Metrics
from gateway.store import open_redis
from gateway.team_store import TeamStore
from gateway.teams import Team
from gateway.upstream import ASGIUpstream, Upstream, create_upstream

log = logging.getLogger("gateway")
SANDBOX_TEAM = "sandbox"


@dataclass(slots=True)
class Gateway:
    config: Config
    upstream: Upstream
    upstream_key: str
    redis: redis.Redis
    metrics: Metrics
    teams: TeamStore
    admission: Admission
    # Client-facing model name or upstream snapshot name -> (client-facing name, model config).
    models: dict[str, tuple[str, ModelConfig]] = field(default_factory=dict)
    extra_forward_prefixes: tuple[str, ...] = ()
    # The team that callers without a known key are served as, if any.
    anonymous: Team | None = None
    background: set[asyncio.Task[None]] = field(default_factory=set)
    learned: LearnedCapabilities = field(default_factory=LearnedCapabilities)

    async def start(self) -> None:
        """Load teams into the store. Redis being down must not stop the gateway from starting
        (it reports not-ready instead), so the load is retried in the background until it works."""
        try:
            await self._load_teams()
        except (RedisError, OSError) as exc:
            log.error("cannot load teams, Redis unreachable (%s): retrying every 2 s", exc)
            self.background.add(asyncio.get_running_loop().create_task(self._retry_load()))

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
                for warning in await self.teams.load_file(text, os.environ):
                    log.warning("%s: %s", admission.teams_file, warning)
        name = admission.anonymous_team or (SANDBOX_TEAM if self.config.simulate else "")
        if name:
            await self.teams.ensure_team(Team(name=name, tier="tier-5"))
            self.anonymous = await self.teams.get_team(name)
            log.warning("callers without a known key are served as team %r", name)

    async def close(self) -> None:
        for task in self.background:
            task.cancel()
        await self.admission.drain()
        await self.upstream.close()
        await self.redis.aclose()
        self.metrics.close()


def _read_if_present(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


def open_gateway(config: Config) -> Gateway:
    if config.simulate:
        from gateway.simulator import create_simulator

        upstream: Upstream = ASGIUpstream(
            create_simulator(config.simulator), config.upstream.read_timeout_s
        )
        upstream_key = config.simulator.api_keys[0]
        # The in-process simulator's knobs travel as x-sim-* headers.
        extra = (*config.upstream.forward_header_prefixes, "x-sim-")
    else:
        upstream = create_upstream(config.upstream)
        upstream_key = config.upstream.api_key
        extra = config.upstream.forward_header_prefixes
    models: dict[str, tuple[str, ModelConfig]] = {}
    for name, model in config.models.items():
        models.setdefault(model.upstream, (name, model))
    for name, model in config.models.items():
        models[name] = (name, model)
    client = open_redis(config.redis)
    metrics = Metrics(key_id_labels=config.observability.key_id_labels)
    metrics.known_models(config.models)
    return Gateway(
        config=config,
        upstream=upstream,
        upstream_key=upstream_key,
        redis=client,
        metrics=metrics,
        teams=TeamStore(client, config),
        admission=Admission(client, config.admission, config.redis.pool_size, metrics),
        models=models,
        extra_forward_prefixes=extra,
    )
