"""Hundreds of slow and hostile connections at once against a gateway process: each is closed
by its limit (408 for a head or body too slow, 431 for a header flood, a silent one just
closed), the gateway's memory stays flat, and valid clients are served all along."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.hostile import CLOSED, Mix, attack
from tests.conftest import CLIENT_KEY, ServerThread, start_gateway_process

# Before the server's limits, four connections flooding headers held 164 MiB; here 100 such
# and 400 more slow connections may add a few KiB each, and the allocator its slack.
MAX_GROWTH_MB = 48


def test_slow_and_hostile_connections_are_closed_by_their_limits_in_bounded_memory(
    simulator: ServerThread, teams_file: Path, tmp_path: Path
) -> None:
    proc, port = start_gateway_process(
        simulator, "", teams_file, log=tmp_path / "gateway.log",
        O1GW__SERVER__HEADER_TIMEOUT_S="2", O1GW__SERVER__BODY_TIMEOUT_S="2",
    )  # fmt: skip
    mix = Mix()
    try:
        outcome = asyncio.run(attack("127.0.0.1", port, CLIENT_KEY, mix, proc.pid))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(
        f"gateway RSS: {outcome.rss_before_mb:.1f} MiB before, {outcome.rss_peak_mb:.1f} peak, "
        f"{outcome.rss_after_mb:.1f} after; {outcome.valid_ok} valid calls served meanwhile"
    )
    assert outcome.answers == {
        "trickle": {408: mix.trickle},
        "flood": {431: mix.flood},
        "stall": {408: mix.stall},
        "silent": {CLOSED: mix.silent},
    }
    assert outcome.valid_failed == []
    assert outcome.valid_ok >= mix.valid_callers
    assert outcome.rss_peak_mb - outcome.rss_before_mb < MAX_GROWTH_MB
    assert "Traceback" not in (tmp_path / "gateway.log").read_text()
