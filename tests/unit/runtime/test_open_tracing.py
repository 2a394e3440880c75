"""Whether the gateway traces, as the lifespan decides it from the config and the standard
OpenTelemetry variables (`open_tracing`)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest

from gateway.config import Config
from gateway.runtime.build import open_tracing
from tests.conftest import base_config


def traced_config() -> Config:
    config = base_config()
    observability = dataclasses.replace(config.observability, otlp_endpoint="http://c:4318")
    return dataclasses.replace(config, observability=observability)


@pytest.mark.parametrize("protocol", ["", "http/json", "http/protobuf"])
def test_spans_leave_by_otlp_http(protocol: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    tracing = open_tracing(traced_config())
    assert tracing is not None
    asyncio.run(tracing.close())  # nothing waits: it only closes the collector's client


def test_grpc_asked_serves_without_traces_and_says_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with caplog.at_level(logging.ERROR, logger="gateway"):
        assert open_tracing(traced_config()) is None
    assert "'grpc' is not supported" in caplog.text
