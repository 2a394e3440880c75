"""The per-request record's pure parts: endpoint labels, the access line, the batching log."""

from __future__ import annotations

import io
import json

import pytest

from gateway.observability.access_log import AccessLog, access_line
from gateway.observability.record import Exchange
from gateway.server.entry import endpoint_of


@pytest.mark.parametrize(
    ("path", "endpoint"),
    [
        ("/v1/chat/completions", "chat"),
        ("/v1/embeddings", "embeddings"),
        ("/v1/route", "route"),
        ("/v1/made-up/thing", "other"),
        ("/healthz", "other"),
    ],
)
def test_endpoint_labels_are_a_closed_set(path: str, endpoint: str) -> None:
    assert endpoint_of(path) == endpoint


def test_access_line_leaves_out_what_is_unknown() -> None:
    line = access_line(Exchange(started=1.0, method="GET", path="/v1/models", status=200), 1.5)
    assert line["duration_ms"] == 500.0
    assert "cost_micros" not in line and "upstream_ms" not in line and "ttft_ms" not in line


def test_access_log_batches_lines_and_survives_a_broken_stream() -> None:
    sink = io.BytesIO()
    log = AccessLog(sink, max_bytes=200)
    log.write({"n": 1})
    assert sink.getvalue() == b""  # held until the next flush
    for n in range(2, 40):
        log.write({"n": n})
    assert sink.getvalue()  # the size limit flushed early
    log.flush()
    assert [json.loads(line)["n"] for line in sink.getvalue().splitlines()] == list(range(1, 40))
    sink.close()
    log.write({"n": 40})
    log.flush()  # a closed stream loses the line but never raises into a request
