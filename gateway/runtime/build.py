"""How a `Gateway` is built from a `Config`: the upstream clients and each model's deployments,
Redis, the team store, admission, dispatch and metrics, all made once, in the app's lifespan."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys

from gateway.admission.auth_backoff import AuthBackoff
from gateway.admission.redis_side import Admission, pipelined_client
from gateway.admission.team_share import TeamShares
from gateway.cache.flights import Cache
from gateway.cache.store import CacheStore
from gateway.config import Config, ModelConfig, UpstreamConfig
from gateway.objects.chat_views import ChatViews
from gateway.objects.ownership import Owners
from gateway.objects.responses import ResponseStore
from gateway.observability.access_log import AccessLog
from gateway.observability.audit import AuditLog
from gateway.observability.metrics import Metrics
from gateway.observability.trace_settings import TraceSettings, protocol_problem, trace_settings
from gateway.observability.tracing import Tracing
from gateway.routing import retirement
from gateway.routing.aliases import DEFAULT_ALIAS
from gateway.runtime.gateway import Gateway
from gateway.runtime.redis_connection import open_redis
from gateway.teams.store import TeamStore
from gateway.upstream.asgi_client import ASGIUpstream
from gateway.upstream.auto import create_upstream
from gateway.upstream.contract import Upstream
from gateway.upstream.dispatch import Dispatcher, Target
from gateway.upstream.http1_client import Http1Upstream
from gateway.upstream.resilience import Breaker, RetryPolicy

log = logging.getLogger("gateway")


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
    # With the shield off nothing is substituted: no model serves another from its day.
    shielded = _successors(config.models) if config.retirement.shield else {}
    metrics.known_models(config.models, shielded)
    targets, extra_upstreams = _targets(config, upstream, upstream_key)
    fast = pipelined_client(config.redis)
    policy = RetryPolicy(
        attempts=config.upstream.retries + 1,
        backoff_s=config.upstream.retry_backoff_s,
        backoff_max_s=config.upstream.retry_backoff_max_s,
        retry_after_max_s=config.upstream.retry_after_max_s,
    )
    return Gateway(
        config=config,
        upstream=upstream,
        upstream_key=upstream_key,
        redis=client,
        metrics=metrics,
        teams=TeamStore(client, config),
        admission=Admission(
            client,
            config.admission,
            config.redis.pool_size,
            metrics,
            fast=fast,
        ),
        models=models,
        aliases=frozenset({DEFAULT_ALIAS, *config.routing.policies}),
        extra_forward_prefixes=extra,
        dispatch=Dispatcher(targets, policy, metrics),
        responses=ResponseStore(
            client, config.responses.store_ttl_s, fast.submit_command if fast else None
        ),
        # Upstream keeps stored chat completions as long as their views are kept.
        owners=Owners(client, {"chat_completion": config.compat.stored_view_ttl_s}),
        chat_views=ChatViews(client, config.compat.stored_view_ttl_s),
        cache=Cache(CacheStore(client), config.cache, metrics.redis_errors.labels("cache").inc),
        access_log=AccessLog(sys.stderr.buffer) if config.observability.access_log else None,
        audit=AuditLog(config.observability.audit_log),
        auth_backoff=AuthBackoff(config.server.auth_failure_delay_s),
        shares=TeamShares(config.server.max_team_requests),
        extra_upstreams=extra_upstreams,
        tracing=open_tracing(config),
    )


def open_tracing(config: Config) -> Tracing | None:
    """The tracer when an OTLP endpoint is configured, else None."""
    settings = trace_settings(config.observability, os.environ)
    if settings is None:
        return None
    usable, problem = protocol_problem(settings.export)
    if problem:
        (log.warning if usable else log.error)("%s", problem)
    if not usable:
        return None
    try:
        client = Http1Upstream(collector_client_config(settings))
    except (ValueError, OSError) as exc:
        # An endpoint set for the whole environment must not stop the gateway from serving.
        log.error(
            "traces: cannot export to %s (%s); serving without traces", settings.endpoint, exc
        )
        return None
    log.info("exporting traces to %s", settings.endpoint)
    return Tracing(settings, config.upstream.base_url, client)


def collector_client_config(settings: TraceSettings) -> UpstreamConfig:
    """The gateway's own HTTP client, pointed at the collector: a connection or two, kept
    open between exports, and the exporter's timeout for everything."""
    timeout = settings.export.timeout_s
    return UpstreamConfig(
        base_url=settings.endpoint, pool_size=2, ca_file=settings.export.certificate,
        connect_timeout_s=timeout, first_byte_timeout_s=timeout, read_timeout_s=timeout,
        total_timeout_s=timeout,
    )  # fmt: skip


def _successors(models: dict[str, ModelConfig]) -> dict[str, str]:
    """The model serving each model with a shutdown day from that day ("": none)."""
    out = {}
    for name, model in models.items():
        if model.shutdown:
            served = retirement.retired(models, name, model.shutdown)
            out[name] = served.new if served is not None else ""
    return out


def _targets(
    config: Config, default: Upstream, default_key: str
) -> tuple[dict[str, list[Target]], list[Upstream]]:
    """Each model's deployments, each with its own breaker (the default upstream is shared)."""
    up = config.upstream
    targets: dict[str, list[Target]] = {}
    extra: list[Upstream] = []
    for name, model in config.models.items():
        targets[name] = []
        for label, deployment in model.deployments.items():
            client = create_upstream(
                dataclasses.replace(up, base_url=deployment.base_url or up.base_url)
            )
            extra.append(client)
            key = os.environ.get(deployment.api_key_env, "") if deployment.api_key_env else ""
            targets[name].append(
                Target(
                    label,
                    client,
                    key or default_key,
                    Breaker(up.breaker_failures, up.breaker_cooldown_s),
                )
            )
        if not targets[name]:
            targets[name].append(
                Target(
                    "default",
                    default,
                    default_key,
                    Breaker(up.breaker_failures, up.breaker_cooldown_s),
                )
            )
    return targets, extra
