"""Rules across sections that one field's type cannot state: routing policies resolved from
their line-ups, shutdown days and successors, prices, limits, operator keys."""

from __future__ import annotations

import dataclasses
from typing import Any

from gateway.config.schema import (
    EFFORTS,
    MIN_SECRET_CHARS,
    O1_2024,
    ROLES,
    TOKENIZERS,
    Config,
    ConfigError,
    ImageInputTokens,
    Limits,
    Lineup,
    LineupRole,
    ObservabilityConfig,
    RoutingPolicy,
    ServerConfig,
)  # fmt: skip
from gateway.config.values import iso_date


def lineups(config: Config) -> dict[str, Lineup]:
    """The configured line-ups, and `o1-2024` unless the config redefines it."""
    return {"o1-2024": O1_2024, **config.lineups}


def resolve_policies(config: Config) -> Config:
    """Fill what each routing policy leaves unset from its line-up."""
    known = lineups(config)
    resolved: dict[str, RoutingPolicy] = {}
    for alias, policy in config.routing.policies.items():
        name = policy.lineup or config.routing.lineup
        lineup = known.get(name)
        if lineup is None:
            where = f"routing.policies.{alias}.lineup" if policy.lineup else "routing.lineup"
            raise ConfigError(f"{where}: unknown line-up {name!r} (one of {', '.join(known)})")
        if policy.top_role not in ("reasoning", "hardest"):
            raise ConfigError(
                f"routing.policies.{alias}.top_role: expected 'reasoning' or 'hardest'"
            )
        hardest = lineup.hardest if policy.top_role == "hardest" else lineup.reasoning
        roles = (
            ("general", lineup.general), ("mini", lineup.reasoning), ("preview", hardest),
        )  # fmt: skip
        changes: dict[str, Any] = {}
        for prefix, role in roles:
            if not getattr(policy, f"{prefix}_model"):
                changes[f"{prefix}_model"] = role.model
            if getattr(policy, f"{prefix}_effort") is None:
                changes[f"{prefix}_effort"] = role.effort
        resolved[alias] = dataclasses.replace(policy, lineup=name, **changes)
    routing = dataclasses.replace(config.routing, policies=resolved)
    return dataclasses.replace(config, routing=routing)


def _check_day(value: str, path: str) -> None:
    try:
        iso_date(value)
    except ValueError:
        raise ConfigError(f"{path}: expected a date as YYYY-MM-DD, got {value!r}") from None


def _check_lifecycle(config: Config) -> None:
    """Shutdown days, successors that are models and chains without a loop, line-ups of
    configured models given efforts they take."""
    if config.retirement.today:
        _check_day(config.retirement.today, "retirement.today")
    for name, model in config.models.items():
        if model.shutdown:
            _check_day(model.shutdown, f"models.{name}.shutdown")
        if model.successor and (model.successor not in config.models or model.successor == name):
            raise ConfigError(f"models.{name}.successor: unknown model {model.successor!r}")
        seen = [name]
        while (nxt := config.models[seen[-1]].successor) and nxt in config.models:
            if nxt in seen:
                raise ConfigError(f"models.{name}.successor: a loop ({' -> '.join([*seen, nxt])})")
            seen.append(nxt)
        for i, level in enumerate(model.capabilities.reasoning_effort or ()):
            if level not in EFFORTS:
                raise ConfigError(
                    f"models.{name}.capabilities.reasoning_effort[{i}]: unknown effort {level!r}"
                )
    for lineup_name, lineup in config.lineups.items():
        if lineup.as_of:
            _check_day(lineup.as_of, f"lineups.{lineup_name}.as_of")
        for role_name in ROLES:
            role: LineupRole = getattr(lineup, role_name)
            where = f"lineups.{lineup_name}.{role_name}"
            played = config.models.get(role.model)
            if played is None:
                raise ConfigError(f"{where}.model: unknown model {role.model!r}")
            for i, level in enumerate(role.effort):
                if level not in (played.capabilities.reasoning_effort or ()):
                    raise ConfigError(
                        f"{where}.effort[{i}]: {role.model} does not take effort {level!r}"
                    )


def check(config: Config) -> None:
    if not config.models:
        raise ConfigError("models: at least one model must be configured")
    for name, model in config.models.items():
        if not model.upstream:
            raise ConfigError(f"models.{name}.upstream: required (the model name sent upstream)")
        if model.context <= 0:
            raise ConfigError(f"models.{name}.context: must be positive")
        if not 0 < model.max_output <= model.context:
            raise ConfigError(f"models.{name}.max_output: must be between 1 and the context size")
        # Without its bound, a hold would count no audio tokens: the call would pass any budget.
        for kind, bound in (
            ("audio_input", "audio_tokens_per_minute"),
            ("audio_output", "audio_tokens_per_character"),
        ):
            if getattr(model.price, kind) and getattr(model, bound) <= 0:
                raise ConfigError(f"models.{name}.{bound}: required with price.{kind}")
        _check_image_input_tokens(model.image_input_tokens, f"models.{name}.image_input_tokens")
        if model.tokenizer not in TOKENIZERS:
            raise ConfigError(
                f"models.{name}.tokenizer: expected one of {', '.join(TOKENIZERS)},"
                f" got {model.tokenizer!r}"
            )
    for i, opened in enumerate(config.passthrough.allow):
        where = f"passthrough.allow[{i}]"
        if opened.charge not in ("usage", "free"):
            raise ConfigError(f"{where}.charge: expected 'usage' or 'free', got {opened.charge!r}")
        if opened.hold_usd and opened.charge == "free":
            raise ConfigError(f"{where}.hold_usd: a free path holds nothing")
        if opened.method not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            raise ConfigError(f"{where}.method: expected an HTTP method, got {opened.method!r}")
        if not opened.path.startswith("/v1/") or opened.path.startswith(
            ("/v1/organization", "/v1/dashboard")
        ):
            raise ConfigError(f"{where}.path: expected a /v1/ path outside the account's admin API")
    _check_day(config.simulator.today, "simulator.today")
    if config.upstream.client not in ("http1", "aiohttp", "httpx"):
        raise ConfigError(
            "upstream.client: expected 'http1', 'aiohttp' or 'httpx',"
            f" got {config.upstream.client!r}"
        )
    if not config.upstream.base_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"upstream.base_url: expected an http(s) URL, got {config.upstream.base_url!r}"
        )
    for key in (
        "max_body_bytes", "max_upload_bytes", "max_header_bytes", "max_connections",
        "header_timeout_s", "body_timeout_s", "keep_alive_timeout_s", "write_timeout_s",
    ):  # fmt: skip
        if getattr(config.server, key) <= 0:
            raise ConfigError(f"server.{key}: must be positive")
    if config.server.max_team_requests < 0:
        raise ConfigError("server.max_team_requests: must not be negative (0: no bound)")
    # A body the gateway read is written again for upstream, and orjson writes 254 levels.
    if not 1 <= config.server.max_json_depth <= 254:
        raise ConfigError("server.max_json_depth: from 1 to 254")
    if config.upstream.proxy and not config.upstream.proxy.startswith("http://"):
        raise ConfigError(
            f"upstream.proxy: expected an http:// proxy URL, got {config.upstream.proxy!r}"
        )
    _check_operator_access(config.server)
    _check_observability(config.observability)
    if config.upstream.pool_size <= 0:
        raise ConfigError("upstream.pool_size: must be positive")
    if config.upstream.retries < 0:
        raise ConfigError("upstream.retries: must not be negative")
    if config.upstream.breaker_failures < 1:
        raise ConfigError("upstream.breaker_failures: must be at least 1")
    if config.hosted_tools.default_max_tool_calls < 1:
        raise ConfigError("hosted_tools.default_max_tool_calls: must be at least 1")
    for name, model in config.models.items():
        tuning = model.fine_tuning
        if tuning.training_price and not (tuning.price.input or tuning.price.output):
            raise ConfigError(
                f"models.{name}.fine_tuning.price: required with a training_price (what its "
                "fine-tunes cost to use)"
            )
        for i, fallback in enumerate(model.fallbacks):
            if fallback not in config.models or fallback == name:
                raise ConfigError(f"models.{name}.fallbacks[{i}]: unknown model {fallback!r}")
        for label, deployment in model.deployments.items():
            if deployment.base_url and not deployment.base_url.startswith(("http://", "https://")):
                raise ConfigError(
                    f"models.{name}.deployments.{label}.base_url: expected an http(s) URL"
                )
    for name, tier in config.tiers.items():
        check_limits(tier.limits, config, f"tiers.{name}.limits")
        for i, allowed in enumerate(tier.models):
            if allowed != "*" and allowed not in config.models:
                raise ConfigError(f"tiers.{name}.models[{i}]: unknown model {allowed!r}")
    for name, profile in config.limit_profiles.items():
        check_limits(profile, config, f"limit_profiles.{name}")
    admission = config.admission
    for key in ("rate_limits_on_redis_error", "budgets_on_redis_error"):
        if getattr(admission, key) not in ("open", "closed"):
            raise ConfigError(f"admission.{key}: expected 'open' or 'closed'")
    if admission.hold_ttl_s <= 0:
        raise ConfigError("admission.hold_ttl_s: must be positive")
    if admission.audio_min_bitrate <= 0:
        raise ConfigError("admission.audio_min_bitrate: must be positive")
    if admission.cache_ttl_s < 0:
        raise ConfigError("admission.cache_ttl_s: must not be negative")
    for alias, policy in config.routing.policies.items():
        if alias in config.models:
            raise ConfigError(f"routing.policies.{alias}: the name of a configured model")
        for prefix in ("general", "mini", "preview"):
            name = getattr(policy, f"{prefix}_model")
            routed = config.models.get(name)
            if routed is None:
                raise ConfigError(
                    f"routing.policies.{alias}.{prefix}_model: unknown model {name!r}"
                )
            for level in getattr(policy, f"{prefix}_effort") or ():
                if level not in (routed.capabilities.reasoning_effort or ()):
                    raise ConfigError(
                        f"routing.policies.{alias}.{prefix}_effort: {name} does not take"
                        f" effort {level!r}"
                    )
    _check_lifecycle(config)
    cache = config.cache
    for key in ("ttl_s", "max_entry_bytes", "coalesce_wait_s", "lock_ttl_s"):
        if getattr(cache, key) <= 0:
            raise ConfigError(f"cache.{key}: must be positive")
    if not 0 <= cache.charge_fraction <= 1:
        raise ConfigError("cache.charge_fraction: must be between 0 and 1")
    if config.fine_tuning.auto_epochs < 1:
        raise ConfigError("fine_tuning.auto_epochs: must be at least 1")
    for key in ("hold_s", "poll_s", "max_line_bytes"):
        if getattr(config.fine_tuning, key) <= 0:
            raise ConfigError(f"fine_tuning.{key}: must be positive")
    for key in ("max_line_bytes", "max_output_line_bytes"):
        if getattr(config.batches, key) <= 0:
            raise ConfigError(f"batches.{key}: must be positive")
    if config.compat.keepalive_s <= 0:
        raise ConfigError("compat.keepalive_s: must be positive")
    if config.compat.stored_view_ttl_s < 1:
        raise ConfigError("compat.stored_view_ttl_s: must be at least 1 (second)")
    if config.compat.status_grace_s < 0:
        raise ConfigError("compat.status_grace_s: must not be negative")
    if config.compat.reasoning_headroom_tokens < 0:
        raise ConfigError("compat.reasoning_headroom_tokens: must not be negative")
    if admission.default_completion_tokens < 0:
        raise ConfigError("admission.default_completion_tokens: must not be negative")
    if admission.left_stream_margin_tokens < 0:
        raise ConfigError("admission.left_stream_margin_tokens: must not be negative")
    if "auto" not in admission.service_tiers:
        raise ConfigError("admission.service_tiers: must price 'auto' (a request naming none)")
    for service_tier, percent in admission.service_tiers.items():
        if type(percent) is not int or percent < 1:
            raise ConfigError(
                f"admission.service_tiers.{service_tier}: a whole percent, at least 1"
            )


def _check_image_input_tokens(images: ImageInputTokens, path: str) -> None:
    # An image held at no tokens would let image requests past any budget; a `low` above
    # `high` is a typo (no detail costs more than the most an image costs).
    for key in ("low", "high"):
        if getattr(images, key) < 1:
            raise ConfigError(f"{path}.{key}: must be a positive number of tokens")
    if images.low > images.high:
        raise ConfigError(
            f"{path}.low: at most high ({images.high}), got {images.low}: an image at"
            " detail low costs no more than one at its most"
        )


def _check_observability(observability: ObservabilityConfig) -> None:
    if not 0 <= observability.otel_sample_ratio <= 1:
        raise ConfigError("observability.otel_sample_ratio: expected a share from 0 to 1")
    endpoint = observability.otlp_endpoint
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise ConfigError(
            f"observability.otlp_endpoint: expected an http:// or https:// URL, got {endpoint!r}"
        )


def _check_operator_access(server: ServerConfig) -> None:
    for key, env in (("admin_key", "GATEWAY_ADMIN_KEY"), ("metrics_key", "GATEWAY_METRICS_KEY")):
        value = getattr(server, key)
        if value and len(value) < MIN_SECRET_CHARS:
            raise ConfigError(
                f"server.{key} ({env}): at least {MIN_SECRET_CHARS} characters, got"
                f" {len(value)}; make one with `openssl rand -hex 32`"
            )
    if not 0 <= server.metrics_port <= 65535:
        raise ConfigError("server.metrics_port: expected a port number, or 0 for none")
    if server.metrics_port and server.metrics_port == server.port:
        raise ConfigError("server.metrics_port: must differ from server.port")
    if server.auth_failure_delay_s <= 0:
        raise ConfigError("server.auth_failure_delay_s: must be positive")


def check_limits(limits: Limits, config: Config, path: str) -> None:
    """Limits must be positive, name known models, and use a known profile."""
    if limits.profile and limits.profile not in config.limit_profiles:
        raise ConfigError(f"{path}.profile: unknown limit profile {limits.profile!r}")
    for name in ("requests_per_minute", "tokens_per_minute"):
        value = getattr(limits, name)
        if value is not None and value <= 0:
            raise ConfigError(f"{path}.{name}: must be positive")
    for model, model_limits in limits.models.items():
        if model not in config.models:
            raise ConfigError(f"{path}.models.{model}: unknown model")
        for name in ("requests_per_minute", "tokens_per_minute", "messages_per_week"):
            value = getattr(model_limits, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{path}.models.{model}.{name}: must be positive")
