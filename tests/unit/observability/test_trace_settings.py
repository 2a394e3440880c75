from __future__ import annotations

from gateway.config import ObservabilityConfig
from gateway.observability.trace_settings import (
    ExportSettings,
    protocol_problem,
    trace_settings,
    traces_url,
)


def test_off_without_an_endpoint_anywhere() -> None:
    assert trace_settings(ObservabilityConfig(), {}) is None
    assert trace_settings(ObservabilityConfig(), {"OTEL_SERVICE_NAME": "x"}) is None


def test_the_config_endpoint_is_a_base_url() -> None:
    found = trace_settings(ObservabilityConfig(otlp_endpoint="http://collector:4318/"), {})
    assert found is not None
    assert found.endpoint == "http://collector:4318/v1/traces"
    assert found.service_name == "o1-gateway"
    assert (found.sample_ratio, found.capture_content) == (1.0, False)
    assert traces_url("http://c:4318/v1/traces") == "http://c:4318/v1/traces"


def test_the_standard_variables_win() -> None:
    config = ObservabilityConfig(otlp_endpoint="http://file:4318", otel_sample_ratio=0.25)
    found = trace_settings(config, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318"})
    assert found is not None and found.endpoint == "http://env:4318/v1/traces"
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:9999/custom",
        "OTEL_SERVICE_NAME": "gateway-eu",
    }
    found = trace_settings(config, env)
    assert found is not None
    assert (found.endpoint, found.service_name) == ("http://traces:9999/custom", "gateway-eu")
    assert found.sample_ratio == 0.25
    assert trace_settings(config, {**env, "OTEL_SDK_DISABLED": "true"}) is None


def test_the_exporters_standard_variables() -> None:
    config = ObservabilityConfig(otlp_endpoint="http://c:4318")
    found = trace_settings(config, {})
    assert found is not None and found.export == ExportSettings()
    env = {
        "OTEL_EXPORTER_OTLP_HEADERS": "api-key=general,x-tenant=eu",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "Api-Key=s%3Dcret%2C1, =nameless,novalue",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": "/etc/ca.pem",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_BSP_MAX_QUEUE_SIZE": "100",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "50",
    }
    found = trace_settings(config, env)
    assert found is not None
    assert found.export == ExportSettings(
        headers=(("api-key", "s=cret,1"),), timeout_s=2.5, gzip=True, certificate="/etc/ca.pem",
        delay_s=0.2, max_queue=100, max_batch=50,
    )  # fmt: skip
    # Nonsense keeps the default; a queue never holds less than a batch.
    odd = {"OTEL_EXPORTER_OTLP_TIMEOUT": "soon", "OTEL_BSP_MAX_QUEUE_SIZE": "-3",
           "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4096"}  # fmt: skip
    found = trace_settings(config, odd)
    assert found is not None
    assert (found.export.timeout_s, found.export.max_queue, found.export.max_batch) == (
        10.0, 4096, 4096,
    )  # fmt: skip


def test_the_exporter_protocol() -> None:
    config = ObservabilityConfig(otlp_endpoint="http://c:4318")

    def asked(env: dict[str, str]) -> tuple[bool, str]:
        found = trace_settings(config, env)
        assert found is not None
        return protocol_problem(found.export)

    assert asked({}) == (True, "")
    assert asked({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}) == (True, "")
    # The specification's default: the same endpoint takes JSON, and the log says so.
    usable, said = asked({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    assert usable and "as JSON" in said
    # gRPC is not spoken: tracing stays off rather than POST to a gRPC port.
    usable, said = asked({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "GRPC"})
    assert not usable and "'grpc' is not supported" in said and "4318" in said
    # The traces-only variable wins over the general one.
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}
    assert asked(env) == (True, "")
