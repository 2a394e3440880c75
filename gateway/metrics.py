"""Prometheus metrics: one registry per app (no module globals), children cached per label set.

prometheus-client's `.labels()` costs a dict lookup plus tuple building on every call; the hot
path asks for the same few label sets over and over, so the children are memoised here.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

# Sub-millisecond buckets resolve the gateway's own overhead; the top buckets cover o1 thinking.
OVERHEAD_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.5,
)
DURATION_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "gateway_requests_total",
            "Requests answered, by endpoint, requested model and status class.",
            ["endpoint", "model", "status_class"],
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
            "Time from sending upstream to the upstream response headers.",
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
        self.upstream_errors = Counter(
            "gateway_upstream_errors_total",
            "Upstream failures the gateway answered for (unreachable, timeout, mid-stream loss).",
            ["code"],
            registry=r,
        )
        self.open_streams = Gauge("gateway_open_streams", "Streaming responses open.", registry=r)
        self.adaptive_patches = Counter(
            "gateway_adaptive_patches_total",
            "Capabilities upstream refused although the table granted them, patched from then on.",
            ["model", "capability"],
            registry=r,
        )
        self.admission_degraded = Counter(
            "gateway_admission_degraded_total",
            "Admissions decided without Redis, by outcome: fail_open (in-process limiter) or "
            "fail_closed (refused with 503).",
            ["outcome"],
            registry=r,
        )
        self._requests: dict[tuple[str, str, str], Counter] = {}
        self._timers: dict[str, tuple[Histogram, Histogram, Histogram]] = {}

    def observe(
        self, endpoint: str, model: str, status: int, total_s: float, upstream_s: float | None
    ) -> None:
        key = (endpoint, model, _status_class(status))
        counter = self._requests.get(key)
        if counter is None:
            counter = self._requests[key] = self.requests.labels(*key)
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

    def observe_overhead(self, endpoint: str, seconds: float) -> None:
        timers = self._timers.get(endpoint)
        if timers is not None:
            timers[2].observe(max(seconds, 0.0))
        else:
            self.overhead.labels(endpoint).observe(max(seconds, 0.0))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _status_class(status: int) -> str:
    return f"{status // 100}xx"
