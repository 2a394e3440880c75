"""Whether the gateway traces, and where to: the config and the standard OpenTelemetry variables
read together. Pure: the environment comes in as a mapping.

The standard variables win over the config, as the gateway's own variables win over its file:
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is the traces URL as it is, `OTEL_EXPORTER_OTLP_ENDPOINT` a
base URL traces go to `/v1/traces` of, `OTEL_SERVICE_NAME` the service's name, and
`OTEL_SDK_DISABLED=true` turns tracing off whatever else says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.config import ObservabilityConfig

TRACES_PATH = "/v1/traces"


@dataclass(frozen=True, slots=True)
class TraceSettings:
    endpoint: str  # the URL spans are POSTed to
    service_name: str
    sample_ratio: float
    capture_content: bool


def traces_url(base: str) -> str:
    """The traces URL of an OTLP/HTTP base URL (one naming /v1/traces already is kept)."""
    base = base.rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


def trace_settings(config: ObservabilityConfig, env: Mapping[str, str]) -> TraceSettings | None:
    """How to trace, or None: no endpoint anywhere (or the SDK disabled), so tracing is off."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if not endpoint:
        base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or config.otlp_endpoint
        if not base:
            return None
        endpoint = traces_url(base)
    return TraceSettings(
        endpoint=endpoint,
        service_name=env.get("OTEL_SERVICE_NAME", "").strip() or config.otel_service_name,
        sample_ratio=config.otel_sample_ratio,
        capture_content=config.otel_capture_content,
    )
