from __future__ import annotations

from gateway.config import ObservabilityConfig
from gateway.observability.trace_settings import trace_settings, traces_url


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
