"""An OTLP/HTTP traces receiver on a real socket, taking the JSON encoding."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import ServerThread


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent: str
    kind: int
    status: int
    attributes: dict[str, Any]
    service: str


def value_of(value: dict[str, Any]) -> Any:
    """An OTLP `AnyValue` in JSON: 64-bit integers come as decimal strings."""
    ((which, given),) = value.items()
    if which == "arrayValue":
        return [value_of(v) for v in given.get("values", ())]
    return int(given) if which == "intValue" else given


def attributes_of(message: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: value_of(a["value"]) for a in message.get("attributes", ())}


@dataclass
class Receiver:
    """An OTLP/HTTP traces endpoint taking the JSON encoding: what was exported to it, decoded."""

    spans: list[Span] = field(default_factory=list)
    content_types: set[str] = field(default_factory=set)

    async def traces(self, request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        self.content_types.add(request.headers["content-type"])
        export = orjson.loads(body)
        for resource in export["resourceSpans"]:
            service = attributes_of(resource["resource"])["service.name"]
            for scope in resource["scopeSpans"]:
                assert scope["scope"]["name"] == "o1-gateway"
                for span in scope["spans"]:
                    assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"]) > 0
                    found = Span(
                        span["name"], span["traceId"], span["spanId"],
                        span.get("parentSpanId", ""), span["kind"],
                        span.get("status", {}).get("code", 0), attributes_of(span), service,
                    )  # fmt: skip
                    self.spans.append(found)
        return Response(b"{}", media_type="application/json")

    def trace(self, trace_id: str) -> list[Span]:
        return [span for span in self.spans if span.trace_id == trace_id]


@pytest.fixture
def receiver() -> Iterator[tuple[ServerThread, Receiver]]:
    found = Receiver()
    app = Starlette(routes=[Route("/v1/traces", found.traces, methods=["POST"])])
    with ServerThread(app) as server:
        yield server, found
