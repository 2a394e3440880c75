"""Whether the gateway traces, and where to: the config and the standard OpenTelemetry variables
read together. Pure: the environment comes in as a mapping.

The standard variables win over the config, as the gateway's own variables win over its file:
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is the traces URL as it is, `OTEL_EXPORTER_OTLP_ENDPOINT` a
base URL traces go to `/v1/traces` of, `OTEL_SERVICE_NAME` the service's name, and
`OTEL_SDK_DISABLED=true` turns tracing off whatever else says. The exporter's own variables
(`OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`, `_TIMEOUT`, `_COMPRESSION`, `_CERTIFICATE`, `_PROTOCOL`)
and the batch processor's (`OTEL_BSP_*`) are read as the specification defines them (times in
milliseconds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from gateway.config import ObservabilityConfig

TRACES_PATH = "/v1/traces"
# The exporter protocol spans leave by; `http/protobuf`, the specification's default, is taken
# at the same OTLP/HTTP endpoint by the collector and the backends that take OTLP/HTTP.
JSON = "http/json"
HTTP_PROTOCOLS = frozenset({JSON, "http/protobuf"})


@dataclass(frozen=True, slots=True)
class ExportSettings:
    """How spans leave: in batches, over OTLP/HTTP."""

    headers: tuple[tuple[str, str], ...] = ()  # sent with every export (a backend's API key)
    timeout_s: float = 10.0
    gzip: bool = False
    certificate: str = ""  # a PEM bundle trusted besides the system's store
    delay_s: float = 5.0  # the longest a finished span waits to leave
    max_queue: int = 2048  # spans waiting beyond this are dropped (and counted)
    max_batch: int = 512  # spans per export, and how many make one leave at once
    protocol: str = JSON  # asked for (`OTEL_EXPORTER_OTLP_PROTOCOL`), lower-cased


@dataclass(frozen=True, slots=True)
class TraceSettings:
    endpoint: str  # the URL spans are POSTed to
    service_name: str
    sample_ratio: float
    capture_content: bool
    export: ExportSettings = ExportSettings()


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
        export=export_settings(env),
    )


def export_settings(env: Mapping[str, str]) -> ExportSettings:
    """The exporter's and batch processor's standard variables (a traces-only one wins over its
    general one); a value that does not parse keeps the default."""

    def exporter(name: str) -> str:
        return (
            env.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}", "").strip()
            or env.get(f"OTEL_EXPORTER_OTLP_{name}", "").strip()
        )

    default = ExportSettings()
    max_batch = _positive(env.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"), default.max_batch)
    return ExportSettings(
        headers=parse_headers(exporter("HEADERS")),
        timeout_s=_positive(exporter("TIMEOUT"), round(default.timeout_s * 1000)) / 1000,
        gzip=exporter("COMPRESSION").lower() == "gzip",
        certificate=exporter("CERTIFICATE"),
        delay_s=_positive(env.get("OTEL_BSP_SCHEDULE_DELAY"), round(default.delay_s * 1000)) / 1000,
        max_queue=max(_positive(env.get("OTEL_BSP_MAX_QUEUE_SIZE"), default.max_queue), max_batch),
        max_batch=max_batch,
        protocol=exporter("PROTOCOL").lower() or JSON,
    )


def protocol_problem(export: ExportSettings) -> tuple[bool, str]:
    """Whether spans can leave by the protocol asked, and what the log should say about it
    ("": nothing). Another HTTP encoding is taken at the same endpoint, so spans leave as JSON;
    gRPC (port 4317 as a rule) would answer an HTTP POST with nothing a collector keeps."""
    asked = export.protocol
    if asked == JSON:
        return True, ""
    if asked in HTTP_PROTOCOLS:
        return True, f"traces: {asked} asked, exporting OTLP/HTTP as JSON to the same endpoint"
    return False, (
        f"traces: the OTLP exporter protocol {asked!r} is not supported (OTLP/HTTP only: "
        f"point the endpoint at the collector's OTLP/HTTP port, 4318 as a rule); serving "
        f"without traces"
    )


def parse_headers(value: str) -> tuple[tuple[str, str], ...]:
    """`OTEL_EXPORTER_OTLP_HEADERS`: `name=value` pairs, comma-separated, percent-encoded; a
    pair without `=` or a name is skipped."""
    pairs = []
    for pair in value.split(","):
        name, sep, given = pair.partition("=")
        name = unquote(name).strip().lower()
        if sep and name:
            pairs.append((name, unquote(given).strip()))
    return tuple(pairs)


def _positive(value: str | None, default: int) -> int:
    try:
        number = int(float(value)) if value else default
    except ValueError:
        return default
    return number if number > 0 else default
