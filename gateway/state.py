"""Everything a running gateway holds, built once in the app's lifespan and closed with it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import redis.asyncio as redis

from gateway.auth import Authenticator
from gateway.config import Config, ModelConfig
from gateway.metrics import Metrics
from gateway.store import open_redis
from gateway.upstream import ASGIUpstream, Upstream, create_upstream

log = logging.getLogger("gateway")


@dataclass(slots=True)
class Gateway:
    config: Config
    upstream: Upstream
    upstream_key: str
    redis: redis.Redis
    metrics: Metrics
    auth: Authenticator
    # Client-facing model name or upstream snapshot name -> (client-facing name, model config).
    models: dict[str, tuple[str, ModelConfig]] = field(default_factory=dict)
    extra_forward_prefixes: tuple[str, ...] = ()

    async def close(self) -> None:
        await self.upstream.close()
        await self.redis.aclose()


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
    return Gateway(
        config=config,
        upstream=upstream,
        upstream_key=upstream_key,
        redis=open_redis(config.redis),
        metrics=Metrics(),
        auth=Authenticator(config.server.api_keys_sha256),
        models=models,
        extra_forward_prefixes=extra,
    )
