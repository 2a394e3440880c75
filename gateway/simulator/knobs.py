"""The per-request knobs of the simulated upstream: `x-sim-*` headers, parsed and checked. Pure.

See `gateway.simulator.app` for what each knob does.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from datetime import date

from gateway.config import iso_date
from gateway.simulator.openai_errors import SimError
from gateway.wire.hosted_tools import PRICE_NAMES

# The faults that break a stream after it began (and answer a whole request at once).
STREAM_FAULTS = frozenset({"stream-error", "stream-quota"})
FAULTS = frozenset(
    {
        "429", "429-tokens", "quota", "500", "502", "503", "edge-504", "timeout", "reset",
        *STREAM_FAULTS,
    }
)  # fmt: skip
# The fault whose call the model answers, and bills, behind the edge's own error page.
EDGE_FAULT = "edge-504"

# The tiers an answer may say served it (`x-sim-service-tier`).
SERVED_TIERS = frozenset({"default", "flex", "priority", "scale"})

# Chunks a stream sends before the reset / stream-error faults strike.
CHUNKS_BEFORE_FAULT = 3


def fault_index(frames: int) -> int:
    """Where a stream's fault strikes: before the last frame at the latest, so even a short
    stream sees it."""
    return min(CHUNKS_BEFORE_FAULT, frames - 1)


@dataclass(slots=True)
class Knobs:
    latency_ms: float | None = None
    ttft_ms: float | None = None
    chunk_interval_ms: float | None = None
    fault: str | None = None
    retry_after_s: float = 1.0
    answer: str | None = None
    o1_streaming: bool = False
    reasoning_tokens: int | None = None
    # `x-sim-batch: complete`: a batch created with it is completed at once; `queue-full`: it
    # fails validation on the organization's enqueued-token limit.
    batch_complete: bool = False
    batch_queue_full: bool = False
    # `x-sim-fine-tuning: over-quota`: a fine-tuning job created with it fails on the
    # organization's quota, its error and event naming the organization.
    tuning_over_quota: bool = False
    # `x-sim-background: failed`: a background response created with it fails as it runs.
    background_failed: bool = False
    # `x-sim-today: YYYY-MM-DD`: the day this request is answered on (replaces config.today).
    today: date | None = None
    # `x-sim-tool-calls: N`: the hosted tool calls (web search, ...) a response makes.
    tool_calls: int | None = None
    # `x-sim-prompt-tools: web_search,code_interpreter`: the hosted tools (by type) a request's
    # stored prompt template brings.
    prompt_tools: tuple[str, ...] = ()
    # `x-sim-service-tier: default`: the tier the answer says served it, whatever was asked.
    service_tier: str | None = None


NO_KNOBS = Knobs()


def parse_knobs(headers: dict[str, str]) -> Knobs | SimError:
    """Read the x-sim-* request headers; a malformed value is a 400, not silently ignored."""
    knobs = Knobs()
    for name, value in headers.items():
        try:
            if name == "x-sim-latency-ms":
                knobs.latency_ms = _non_negative(value)
            elif name == "x-sim-ttft-ms":
                knobs.ttft_ms = _non_negative(value)
            elif name == "x-sim-chunk-interval-ms":
                knobs.chunk_interval_ms = _non_negative(value)
            elif name == "x-sim-retry-after":
                knobs.retry_after_s = _non_negative(value)
            elif name == "x-sim-fault":
                if value not in FAULTS:
                    raise ValueError(f"expected one of {', '.join(sorted(FAULTS))}")
                knobs.fault = value
            elif name == "x-sim-answer":
                # Header bytes arrive as latin-1 text; the knob's text is UTF-8.
                knobs.answer = value.encode("latin-1").decode("utf-8", "replace")
            elif name == "x-sim-answer-b64":
                knobs.answer = base64.b64decode(value, validate=True).decode("utf-8")
            elif name == "x-sim-o1-streaming":
                knobs.o1_streaming = value.strip().lower() in ("1", "true", "yes")
            elif name == "x-sim-batch":
                if value not in ("complete", "queue-full"):
                    raise ValueError("expected 'complete' or 'queue-full'")
                knobs.batch_complete = value == "complete"
                knobs.batch_queue_full = value == "queue-full"
            elif name == "x-sim-fine-tuning":
                if value != "over-quota":
                    raise ValueError("expected 'over-quota'")
                knobs.tuning_over_quota = True
            elif name == "x-sim-background":
                if value != "failed":
                    raise ValueError("expected 'failed'")
                knobs.background_failed = True
            elif name == "x-sim-today":
                knobs.today = iso_date(value)
            elif name == "x-sim-tool-calls":
                knobs.tool_calls = int(value)
                if knobs.tool_calls < 0:
                    raise ValueError("must not be negative")
            elif name == "x-sim-prompt-tools":
                knobs.prompt_tools = tuple(t.strip() for t in value.split(",") if t.strip())
                unknown = [t for t in knobs.prompt_tools if t not in PRICE_NAMES]
                if unknown:
                    raise ValueError(f"expected hosted tool types, not {unknown[0]!r}")
            elif name == "x-sim-service-tier":
                if value not in SERVED_TIERS:
                    raise ValueError(f"expected one of {', '.join(sorted(SERVED_TIERS))}")
                knobs.service_tier = value
            elif name == "x-sim-reasoning-tokens":
                knobs.reasoning_tokens = int(value)
                if knobs.reasoning_tokens < 0:
                    raise ValueError("must not be negative")
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            return SimError(400, f"Invalid {name} header {value!r}: {exc}", code="invalid_sim_knob")
    return knobs


def _non_negative(value: str) -> float:
    number = float(value)
    if not number >= 0 or math.isinf(number):
        raise ValueError("expected a non-negative number")
    return number
