"""Each team's share of a worker: how many of its requests are in flight, at most
`server.max_team_requests`. Pure (no I/O, no clock).

Teams share one upstream connection pool per worker (`upstream.pool_size`), and a call holds
its connection for as long as upstream thinks and the client reads, minutes for a reasoning
model. Rate limits count requests started, not requests open, so without this one team's slow
calls could hold every connection and each other team's call would queue behind them.
"""

from __future__ import annotations

__all__ = ["TeamShares"]


class TeamShares:
    """Requests in flight per team; `limit` 0 bounds nothing."""

    __slots__ = ("_counts", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: dict[str, int] = {}

    def enter(self, team: str) -> bool:
        """Count one more request of `team`; False (nothing counted) when it has `limit`."""
        count = self._counts.get(team, 0)
        if self.limit and count >= self.limit:
            return False
        self._counts[team] = count + 1
        return True

    def leave(self, team: str) -> None:
        count = self._counts[team] - 1
        if count:
            self._counts[team] = count
        else:
            del self._counts[team]  # a team with nothing in flight takes no room

    def in_flight(self, team: str) -> int:
        return self._counts.get(team, 0)
