"""The exporter on its own, over real sockets: bounded, batched, and harmless when the collector
is away."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.observability.otlp_json import INTERNAL, literal, shared_attributes, span_template
from gateway.observability.span_export import SpanExport
from gateway.observability.trace_settings import ExportSettings, TraceSettings
from gateway.runtime.build import collector_client_config
from gateway.upstream.http1_client import Http1Upstream
from tests.conftest import ServerThread
from tests.server.observability.conftest import Receiver

TRACE = b"4bf92f3577b34da6a3ce929d0e0e4736"


def exporter(url: str, **export: object) -> SpanExport:
    settings = TraceSettings(f"{url}/v1/traces", "o1-gateway", 1.0, False, ExportSettings(**export))  # type: ignore[arg-type]
    client = Http1Upstream(collector_client_config(settings))
    return SpanExport(client, settings.export, settings.service_name, "o1-gateway")


def span(number: int) -> bytes:
    attributes = (literal(shared_attributes({"n": number})),)
    template = span_template(f"span {number}", INTERNAL, False, False, attributes)
    return template % (TRACE, b"%016x" % (number + 1), 1, 2)


def test_a_full_queue_drops_and_batches_leave_whole(
    receiver: tuple[ServerThread, Receiver],
) -> None:
    endpoint, found = receiver

    async def scenario() -> SpanExport:
        export = exporter(endpoint.url, max_batch=2, max_queue=3, delay_s=60)
        task = asyncio.get_running_loop().create_task(export.run())
        for number in range(5):
            export.queue.add(span(number), 1)
        assert export.queue.dropped == 2  # the 4th and 5th found the queue full
        for _ in range(200):  # the first batch filled: it leaves without waiting for the delay
            if export.exported:
                break
            await asyncio.sleep(0.01)
        assert export.exported == 2 and len(export.queue.pending) == 1  # the rest waits for a batch
        task.cancel()
        await export.close()  # at shutdown, what is left
        return export

    export = asyncio.run(scenario())
    assert export.exported == 3
    assert [s.name for s in found.spans] == ["span 0", "span 1", "span 2"]
    assert found.spans[0].attributes == {"n": 0}


def test_a_collector_away_costs_the_spans_only(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> SpanExport:
        export = exporter("http://127.0.0.1:9", timeout_s=2.0)  # nothing listens there
        export.queue.add(span(1), 1)
        await export.close()
        return export

    with caplog.at_level(logging.WARNING, logger="gateway"):
        export = asyncio.run(scenario())
    assert export.exported == 0 and export.queue.pending == []
    assert "1 export(s) failed" in caplog.text
