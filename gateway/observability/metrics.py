"""Prometheus metrics: one registry per app (no module globals), children cached per label set.

Names and labels are a contract with `deploy/` (dashboards and alert rules): see the README's
monitoring section. Labels stay low-cardinality: teams and configured model names, never keys,
request ids or prompts (key ids only when `observability.key_id_labels` is on).

With several uvicorn workers, `PROMETHEUS_MULTIPROC_DIR` makes prometheus-client keep values in
per-process files, and a scrape adds up every worker's (`MultiProcessCollector`). Values read
from Redis at scrape time (budgets, Redis health) are the same for every worker, so they are
not kept in those files but computed by whichever worker serves the scrape.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client import exposition as text_format
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector

from gateway.config import ModelConfig
from gateway.wire.usage import Usage

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from gateway.routing.heuristic import Decision

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Sub-millisecond buckets resolve the gateway's own overhead; the top buckets cover o1 thinking.
OVERHEAD_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
)  # fmt: skip
DURATION_BUCKETS = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
)  # fmt: skip
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1)
PATCH_KINDS = frozenset(
    {"system_message", "fake_stream", "tools", "response_format", "sampling_params", "max_tokens"}
)
REFUSAL_KINDS = ("requests", "tokens", "weekly_messages", "budget")
REDIS_OPS = ("admit", "settle", "scrape")
TOKEN_KINDS = ("prompt", "cached", "completion", "reasoning")
# Why the HTTP server dropped a connection before the app answered, or while its client took
# nothing of the answer (gateway.server.protocol).
DROP_REASONS = (
    "connection_cap", "header_timeout", "body_timeout", "headers_too_large", "malformed_request",
    "write_timeout",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TeamBudget:
    team: str
    limit: int | None  # micro-dollars a month; None = unlimited
    spent: int


class Metrics:
    def __init__(self, key_id_labels: bool = False) -> None:
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.key_id_labels = key_id_labels
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        request_labels = ["team", "endpoint", "model", "routed_model", "status_class"]
        if key_id_labels:
            request_labels.append("key_id")
        self.requests = Counter(
            "gateway_requests_total",
            "Requests answered, by team, endpoint, requested model, routed model, status class.",
            request_labels,
            registry=r,
        )
        self.duration = Histogram(
            "gateway_request_duration_seconds",
            "Whole request duration as the client sees it (streams: until the last byte).",
            ["endpoint"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.upstream_duration = Histogram(
            "gateway_upstream_duration_seconds",
            "Upstream time: until its answer was read (streams: until its response headers).",
            ["endpoint"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "gateway_overhead_seconds",
            "Time the gateway itself adds before the response headers (total minus upstream).",
            ["endpoint"],
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "gateway_time_to_first_token_seconds",
            "Streams: from the request's arrival to the first content chunk sent to the client.",
            ["model"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "gateway_tokens_total",
            "Tokens charged, by team, model, endpoint and kind (prompt, cached, completion, "
            "reasoning); cached is part of prompt and reasoning part of completion, as OpenAI "
            "reports them.",
            ["team", "model", "endpoint", "kind"],
            registry=r,
        )
        self.spend = Counter(
            "gateway_spend_microdollars_total",
            "Cost charged to teams, in micro-dollars (1e-6 USD), by team, model and endpoint.",
            ["team", "model", "endpoint"],
            registry=r,
        )
        self.cache_hits = Counter(
            "gateway_cache_hits_total",
            "Chat and Responses answers served from the response cache, or shared with an "
            "identical request in flight, by team and model.",
            ["team", "model"],
            registry=r,
        )
        self.cache_misses = Counter(
            "gateway_cache_misses_total",
            "Requests the response cache was on for that called upstream (misses and "
            "refreshes), by team and model.",
            ["team", "model"],
            registry=r,
        )
        self.cache_saved = Counter(
            "gateway_cache_saved_microdollars_total",
            "What cache hits would have cost upstream, less what they were charged, in "
            "micro-dollars, by team and model.",
            ["team", "model"],
            registry=r,
        )
        self.refusals = Counter(
            "gateway_ratelimit_refusals_total",
            "Requests refused by a limit: requests, tokens, weekly_messages or budget.",
            ["team", "kind"],
            registry=r,
        )
        self.route_decisions = Counter(
            "gateway_route_decisions_total",
            "Routing decisions of model aliases, by policy, chosen model and main reason.",
            ["policy", "model", "reason"],
            registry=r,
        )
        self.patches = Counter(
            "gateway_patches_total",
            "Compatibility patches applied to requests, by model and kind.",
            ["model", "kind"],
            registry=r,
        )
        self.tool_calls = Counter(
            "gateway_tool_calls_total",
            "Hosted tool calls (web search, file search, code interpreter) charged, by team, "
            "model and tool.",
            ["team", "model", "tool"],
            registry=r,
        )
        self.adaptive_patches = Counter(
            "gateway_adaptive_patches_total",
            "Capabilities upstream refused although the table granted them, patched from then on.",
            ["model", "capability"],
            registry=r,
        )
        self.upstream_retries = Counter(
            "gateway_upstream_retries_total", "Upstream calls retried.", ["model"], registry=r
        )
        self.upstream_fallbacks = Counter(
            "gateway_upstream_fallbacks_total",
            "Requests served by a fallback model.",
            ["from_model", "to_model"],
            registry=r,
        )
        self.model_substitutions = Counter(
            "gateway_model_substitutions_total",
            "Requests naming a shut-down model, served by its successor.",
            ["model", "successor"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "gateway_upstream_errors_total",
            "Upstream failures: its 5xx answers passed on (upstream_500, upstream_503...), its "
            "refusals for the account (upstream_401, upstream_403, upstream_429) and those the "
            "gateway answered for (unreachable, timeout, mid-stream loss).",
            ["code"],
            registry=r,
        )
        self.redis_duration = Histogram(
            "gateway_redis_duration_seconds",
            "Redis round trips by operation (admit, settle, scrape).",
            ["op"],
            buckets=REDIS_BUCKETS,
            registry=r,
        )
        self.redis_errors = Counter(
            "gateway_redis_errors_total",
            "Redis calls that failed, by operation.",
            ["op"],
            registry=r,
        )
        self.settles_refused = Counter(
            "gateway_settles_refused_total",
            "Settles the admission script refused as invalid: never retried, so their holds "
            "expire charged at their reserve, whatever the call cost.",
            registry=r,
        )
        self.admission_degraded = Counter(
            "gateway_admission_degraded_total",
            "Admissions decided without Redis, by outcome: fail_open (in-process limiter) or "
            "fail_closed (refused with 503).",
            ["outcome"],
            registry=r,
        )
        self.admin_actions = Counter(
            "gateway_admin_actions_total",
            "Admin API actions (team.create, key.revoke, ...; authenticate for refused admin "
            "keys) by outcome: success, error, denied or throttled.",
            ["action", "outcome"],
            registry=r,
        )
        self.in_flight = Gauge(
            "gateway_in_flight_requests",
            "Requests being handled.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.model_shutdowns = Gauge(
            "gateway_model_shutdown_timestamp_seconds",
            "The day (00:00 UTC, Unix seconds) upstream stops serving a configured model, and "
            'the model that serves it from then ("": none, refused).',
            ["model", "successor"],
            registry=r,
            multiprocess_mode="max",
        )
        self.open_streams = Gauge(
            "gateway_open_streams",
            "Streaming responses open.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.dropped_connections = Counter(
            "gateway_dropped_connections_total",
            "Connections the HTTP server refused or closed itself, by reason: over "
            "server.max_connections, a request head or body too slow, a head too large, not HTTP.",
            ["reason"],
            registry=r,
        )
        # Series that exist before their first event, so dashboards show 0 rather than nothing.
        for reason in DROP_REASONS:
            self.dropped_connections.labels(reason)
        for op in (*REDIS_OPS, "cache"):
            self.redis_errors.labels(op)
        for outcome in ("fail_open", "fail_closed"):
            self.admission_degraded.labels(outcome)
        self._requests: dict[tuple[str, ...], Counter] = {}
        self._usage: dict[tuple[str, str, str], tuple[Counter, ...]] = {}
        self._timers: dict[str, tuple[Histogram, Histogram, Histogram]] = {}
        self._redis_timers = {op: self.redis_duration.labels(op) for op in REDIS_OPS}
        # Route decisions (3 labels) and patches (2): the label counts keep the keys apart.
        self._children: dict[tuple[str, ...], Counter] = {}

    def close(self) -> None:
        if self.multiprocess:
            # This worker's live gauges (in flight, open streams) stop counting.
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    def known_models(
        self, models: Mapping[str, ModelConfig], successors: Mapping[str, str]
    ) -> None:
        """`successors`: the model serving each one with a shutdown day from that day ("":
        none), which is not always its `successor` (one shut down before it passes it on)."""
        for name, model in models.items():
            self.upstream_retries.labels(name)
            if model.shutdown:
                day = datetime.fromisoformat(model.shutdown).replace(tzinfo=UTC)
                self.model_shutdowns.labels(name, successors.get(name, "")).set(day.timestamp())

    def count_request(
        self,
        labels: tuple[str, ...],
        endpoint: str,
        total_s: float,
        upstream_s: float | None,
        overhead_s: float | None,
    ) -> None:
        counter = self._requests.get(labels)
        if counter is None:
            counter = self._requests[labels] = self.requests.labels(*labels)
        counter.inc()
        timers = self._timers.get(endpoint)
        if timers is None:
            timers = self._timers[endpoint] = (
                self.duration.labels(endpoint),
                self.upstream_duration.labels(endpoint),
                self.overhead.labels(endpoint),
            )
        timers[0].observe(total_s)
        if upstream_s is not None:
            timers[1].observe(upstream_s)
        if overhead_s is not None:
            timers[2].observe(max(overhead_s, 0.0))

    def count_usage(self, team: str, model: str, endpoint: str, usage: Usage, cost: int) -> None:
        labels = (team, model, endpoint)
        children = self._usage.get(labels)
        if children is None:
            children = self._usage[labels] = (
                *(self.tokens.labels(*labels, kind) for kind in TOKEN_KINDS),
                self.spend.labels(*labels),
            )
        prompt, cached, completion, reasoning, spend = children
        prompt.inc(usage.prompt_tokens)
        cached.inc(usage.cached_tokens)
        completion.inc(usage.completion_tokens)
        reasoning.inc(usage.reasoning_tokens)
        spend.inc(cost)

    def count_cache(self, team: str, model: str, hit: bool, saved: int = 0) -> None:
        if not hit:
            self.cache_misses.labels(team, model).inc()
            return
        self.cache_hits.labels(team, model).inc()
        self.cache_saved.labels(team, model).inc(saved)

    def count_route(self, policy: str, decision: Decision) -> None:
        labels = (policy, decision.model, route_reason(decision))
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self.route_decisions.labels(*labels)
        child.inc()

    def count_patches(self, model: str, patches: Iterable[str]) -> None:
        for patch in patches:
            labels = (model, patch_kind(patch))
            child = self._children.get(labels)
            if child is None:
                child = self._children[labels] = self.patches.labels(*labels)
            child.inc()

    def count_tool_calls(self, team: str, model: str, calls: Mapping[str, int]) -> None:
        """`calls` by output item type (`web_search_call`): counted by tool (`web_search`)."""
        for item_type, n in calls.items():
            self.tool_calls.labels(team, model, item_type.removesuffix("_call")).inc(n)

    def time_redis(self, op: str, seconds: float) -> None:
        self._redis_timers[op].observe(seconds)

    def render(
        self, accept: str, redis_up: bool | None, budgets: Iterable[TeamBudget]
    ) -> tuple[bytes, str]:
        """The exposition in the format the scraper asked for: (body, content type)."""
        registry = self.registry
        if self.multiprocess:
            forget_dead_workers(os.environ[MULTIPROC_ENV])
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        scrape = _ScrapeTime(redis_up, list(budgets))
        registry.register(scrape)
        try:
            if "application/openmetrics-text" in accept:
                body = openmetrics.generate_latest(registry)  # type: ignore[no-untyped-call]
                return body, openmetrics.CONTENT_TYPE_LATEST
            return text_format.generate_latest(registry), text_format.CONTENT_TYPE_LATEST
        finally:
            registry.unregister(scrape)


class _ScrapeTime(Collector):
    """Gauges read from Redis for this scrape only."""

    def __init__(self, redis_up: bool | None, budgets: list[TeamBudget]) -> None:
        self._redis_up = redis_up
        self._budgets = budgets

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "gateway_redis_up", "1 if Redis answered a ping during this scrape, else 0."
        )
        up.add_metric([], 1.0 if self._redis_up else 0.0)
        yield up
        limit = GaugeMetricFamily(
            "gateway_budget_limit_microdollars",
            "A team's monthly budget in micro-dollars (teams without a budget are left out).",
            labels=["team"],
        )
        spent = GaugeMetricFamily(
            "gateway_budget_spent_microdollars",
            "What a team has been charged this calendar month (UTC), in micro-dollars.",
            labels=["team"],
        )
        remaining = GaugeMetricFamily(
            "gateway_budget_remaining_microdollars",
            "Budget left this month in micro-dollars (not below 0).",
            labels=["team"],
        )
        for budget in self._budgets:
            spent.add_metric([budget.team], float(budget.spent))
            if budget.limit is not None:
                limit.add_metric([budget.team], float(budget.limit))
                remaining.add_metric([budget.team], float(max(budget.limit - budget.spent, 0)))
        yield limit
        yield spent
        yield remaining


def patch_kind(patch: str) -> str:
    """Fold the patch names compat/emulation report into the metric's few kinds."""
    if patch in PATCH_KINDS:
        return patch
    if patch in ("system", "developer", "system_messages", "developer_messages"):
        return "system_message"
    if patch == "stream":
        return "fake_stream"
    if patch in ("functions", "tool_choice", "tool_messages", "function_call"):
        return "tools"
    if patch in ("temperature", "top_p", "n", "presence_penalty", "frequency_penalty", "stop",
                 "logprobs", "top_logprobs", "logit_bias"):  # fmt: skip
        return "sampling_params"
    return "other"


def route_reason(decision: Decision) -> str:
    """One low-cardinality word for why a model was chosen (the full reasons go in headers)."""
    if any(reason.startswith("budget") for reason in decision.reasons):
        return "budget_step_down"
    first = decision.reasons[0] if decision.reasons else ""
    if first == "images":
        return "images"
    if first == "no user text" or not decision.domain:
        return "no_text"
    return decision.domain


def forget_dead_workers(directory: str) -> None:
    """A worker that died without its clean exit (`Metrics.close`: killed, out of memory, which
    the server replaces with a new one) left its live gauges in its file, and a scrape would add
    its last requests in flight and streams open for good: the gauges of workers no longer
    running go, as at a clean exit (what they counted stays)."""
    for path in Path(directory).glob("gauge_live*_*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _running(int(pid)):
            multiprocess.mark_process_dead(int(pid), directory)  # type: ignore[no-untyped-call]


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: running
        return True
    return True
