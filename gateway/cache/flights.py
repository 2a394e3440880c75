"""Identical requests in flight share one upstream call.

The first request for a key in this process opens a `Flight` and asks Redis once (`lookup`):
an entry is a hit for it and for every request that joined meanwhile; the lock makes it the
leader, which calls upstream and `finish`es the flight with the answer to keep (or None); a
lock another replica holds makes it poll the entry, backing off, until the entry comes, the
leader ends with no answer to keep (the waiters go their own way), the leader's call fails or
the lock expires (the first to take it leads). Later requests for the key in this process wait
on the flight's future, not on Redis; a waiter whose client leaves stops waiting, and counts no
more. A call that failed (an error, its client gone, cut short) frees its lock and tells the
waiters here to elect another leader (`AGAIN`): the first of them to wake opens the next
flight, the others join it, and it takes the lock unless a poller on another replica took it
first; so one call is retried, not one per waiter. No request waits longer than
`coalesce_wait_s` in all, however many leaders fail. The opener whose client leaves while it
decides or polls goes on for the waiters that joined it, its own team waiting no more
(`opener_left`), and stops once none is left; should the lock come to it then, it calls
upstream only while requests of its team wait (`awaited`), never for the marks its own polls
left in Redis. A leader whose own client leaves reads on for
the waiters of its team here (the flight counts them by team) and on other replicas (their
polls mark the key in Redis for each team waiting), rather than leave each to call upstream
alone (`unless_awaited`); never for another team's (a shared cache's), which would make the
leader's team pay the whole answer they get. The leader renews its lock while it works, for at
most `coalesce_wait_s`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from enum import Enum
from functools import partial
from typing import Any

from redis.exceptions import RedisError

from gateway.cache.entry import Entry, decode
from gateway.cache.store import DONE, CacheStore, Found
from gateway.config import CacheConfig
from gateway.eventloop import KeptLoop

log = logging.getLogger("gateway.cache")
POLL_FIRST_S = 0.01
POLL_MAX_S = 0.5
# How long a leader's "no answer to keep" stays on its lock: long enough for pollers to see it.
DONE_MS = 5000
# How long a poll marks its key awaited: past the longest gap between two polls.
AWAITED_MS = int(POLL_MAX_S * 4000)


class Lead(Enum):
    AGAIN = "again"  # a flight's end when its call failed: its waiters elect another leader


# What a flight's waiters are told: the answer, None (each goes its own way), or `Lead.AGAIN`.
Outcome = Entry | Lead | None


class Flight:
    __slots__ = ("future", "key", "opener", "opener_left", "renewer", "team", "token", "waiters")

    def __init__(
        self,
        key: str,
        future: asyncio.Future[Outcome],
        team: str = "",
        opener: asyncio.Task[Any] | None = None,
    ) -> None:
        self.key = key
        self.token = secrets.token_hex(8)
        self.future = future
        self.renewer: asyncio.Task[None] | None = None
        self.team = team  # of the request that opened it (its leader, if it leads)
        self.opener = opener  # the task of that request, while it decides or polls
        self.waiters: dict[str, int] = {}  # requests in this process waiting on `future`, by team
        # The request that opened it lost its client while it decides or polls: it goes on for
        # the waiters, its team waiting no more.
        self.opener_left = False


class Cache:
    _loop = KeptLoop()

    def __init__(
        self, store: CacheStore, config: CacheConfig, on_error: Callable[[], None]
    ) -> None:
        self.config = config
        self._store = store
        self._on_error = on_error
        self._flights: dict[str, Flight] = {}
        self._writes: set[asyncio.Task[None]] = set()
        self._checks: set[asyncio.Task[None]] = set()  # `unless_awaited`'s
        # The last write of each key still going: the next one waits for it, so a key's writes
        # land in the order their answers came (a refresh is never overwritten by an older one).
        self._last_write: dict[str, asyncio.Task[None]] = {}
        self._ttl_ms = int(config.ttl_s * 1000)
        self._lock_ms = int(config.lock_ttl_s * 1000)
        # Names this replica's marks in Redis: its own polls never count as waiters elsewhere.
        self._replica = secrets.token_hex(8)

    async def join(self, key: str, team: str) -> Entry | Flight | None:
        """The answer (a hit, or a call in flight shared), the flight this request of `team`
        leads (call upstream, then `finish` it), or None: call upstream alone (Redis
        unreachable, the leader ended with no answer to keep, or it waited `coalesce_wait_s`).
        A leader whose call failed is followed by another, elected among the waiters."""
        loop = self._loop
        deadline = loop.time() + self.config.coalesce_wait_s
        while True:
            flight = self._flights.get(key)
            if flight is None or _call_failed(flight):
                break
            outcome = await self._wait(flight, team, deadline)
            if outcome is not Lead.AGAIN:
                return outcome
            if loop.time() >= deadline:
                return None
        task = asyncio.current_task(loop)
        flight = self._flights[key] = Flight(key, loop.create_future(), team, task)
        try:
            return await self._decide(flight, deadline)
        except BaseException:
            # Its waiters' clients may still be there: one of them leads instead.
            self._end(flight, Lead.AGAIN)
            raise
        finally:
            flight.opener = None  # decided: `opener_left` concerns it no more

    async def _wait(self, flight: Flight, team: str, deadline: float) -> Outcome:
        """What the flight ends with, or None once the request has waited until `deadline`;
        counted among its waiters meanwhile."""
        waiters = flight.waiters
        waiters[team] = waiters.get(team, 0) + 1
        future = flight.future
        try:
            if not future.done():
                # Never cancels the flight's future, whoever stops waiting.
                await asyncio.wait((future,), timeout=deadline - self._loop.time())
            return future.result() if future.done() else None
        finally:
            if waiters[team] == 1:
                del waiters[team]
            else:
                waiters[team] -= 1

    async def _decide(self, flight: Flight, deadline: float) -> Entry | Flight | None:
        loop = self._loop
        delay = POLL_FIRST_S
        while True:
            if flight.opener_left and not flight.waiters:
                # Nobody here waits for the answer: no hit to give, no call to make.
                self._end(flight, None)
                return None
            try:
                found, value = await self._store.lookup(
                    flight.key,
                    flight.token,
                    self._lock_ms,
                    AWAITED_MS,
                    self._awaiting(flight),
                    self._replica,
                )
            except (RedisError, OSError) as exc:
                self._failed("lookup", exc)
                self._end(flight, None)
                return None
            if found is Found.ENTRY:
                entry = decode(value)
                self._end(flight, entry)
                return entry
            if found is Found.LEADS:
                flight.renewer = loop.create_task(self._renew(flight))
                return flight
            if value == DONE or loop.time() + delay > deadline:
                self._end(flight, None)
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, POLL_MAX_S)

    @staticmethod
    def _awaiting(flight: Flight) -> set[str]:
        """The teams whose requests here wait for the flight's answer."""
        return set(flight.waiters) if flight.opener_left else {flight.team, *flight.waiters}

    def opener_left(self, key: str, task: asyncio.Task[Any] | None) -> bool:
        """The client of the request running as `task`, waiting for the key's answer, left.
        True: it opened the key's flight and still decides or polls, and waits on for the
        requests that joined it, no more for its team; False: it is to stop waiting."""
        flight = self._flights.get(key)
        if flight is None or task is None or flight.opener is not task:
            return False
        flight.opener_left = True
        return True

    def finish(self, flight: Flight, entry: Entry | None, failed: bool = False) -> None:
        """The leader's call ended: `entry` is its answer to keep, or None. The waiters here have
        it at once; the others once it is in Redis. `failed`: the call gave no answer at all
        (an error, its client gone, cut short): its lock is freed rather than marked done, and
        the waiters, here and on other replicas, elect another leader."""
        if flight.renewer is not None:
            flight.renewer.cancel()
        if not flight.future.done():
            flight.future.set_result(Lead.AGAIN if failed else entry)
        raw = None if failed else self._encoded(entry)
        self._write(flight.key, self._finish(flight, raw, failed))

    async def _finish(self, flight: Flight, raw: bytes | None, failed: bool = False) -> None:
        try:
            if raw is not None:
                await self._store.put(flight.key, raw, self._ttl_ms, flight.token)
            elif flight.token and failed:
                await self._store.free(flight.key, flight.token)
            elif flight.token:
                await self._store.release(flight.key, flight.token, DONE_MS)
        finally:
            # Until the entry is in Redis, a request for it here is answered from the flight.
            if self._flights.get(flight.key) is flight:
                del self._flights[flight.key]

    def unless_awaited(self, flight: Flight, then: Callable[[], None]) -> None:
        """Call `then` (the leader's client left: stop the call) unless requests of its team
        wait for the flight's answer, here or, as Redis says, on other replicas."""
        if flight.team in flight.waiters:
            return
        task = self._loop.create_task(self._unless_awaited(flight, then))
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def _unless_awaited(self, flight: Flight, then: Callable[[], None]) -> None:
        if not await self.awaited(flight):
            then()

    async def awaited(self, flight: Flight) -> bool:
        """Whether requests of the flight's team wait for its answer: here, or, as Redis says,
        on other replicas (this one's marks, left by its polls, are its waiters here)."""
        if flight.team in flight.waiters:
            return True
        try:
            awaited = await self._store.awaited(flight.key, flight.team, self._replica)
        except (RedisError, OSError) as exc:
            self._failed("lookup", exc)
            awaited = False
        return awaited or flight.team in flight.waiters

    def waiting(self, team: str) -> int:
        """Requests of `team` here waiting for an identical call in flight: joined to one
        here, or polling for another replica's."""
        count = 0
        for flight in list(self._flights.values()):
            if not flight.future.done():
                count += flight.waiters.get(team, 0)
                # Its opener decides or polls (a leader renews its lock; a landing holds none),
                # its client still there.
                count += (
                    flight.team == team and flight.renewer is None and bool(flight.token)
                    and not flight.opener_left
                )  # fmt: skip
        return count

    def keep(self, key: str, entry: Entry) -> None:
        """Keep an answer called for alone (a refresh, a request whose leader gave up)."""
        raw = self._encoded(entry)
        if raw is None:
            return
        flight = self.landing(key)
        if flight is None:  # another leads: its answer follows
            self._write(key, self._store.put(key, raw, self._ttl_ms))
            return
        flight.future.set_result(entry)
        self._write(key, self._finish(flight, raw))

    def landing(self, key: str) -> Flight | None:
        """A flight for an answer called for alone, ended by `finish` once it may be kept:
        until it is in Redis, a request for it here is answered from the flight (not from an
        older answer still on its way there). None when another request here leads a call."""
        current = self._flights.get(key)
        if current is not None and not current.future.done():
            return None
        flight = self._flights[key] = Flight(key, self._loop.create_future())
        flight.token = ""  # holds no lock
        return flight

    def entry(
        self, answer: dict[str, Any], cost: int, model: str, notes: tuple[tuple[str, str], ...]
    ) -> Entry:
        """An answer to keep, kept now."""
        return Entry(answer, cost, model, time.time(), notes)

    def _encoded(self, entry: Entry | None) -> bytes | None:
        raw = entry.encode() if entry is not None else None
        return raw if raw is not None and len(raw) <= self.config.max_entry_bytes else None

    def _write(self, key: str, work: Coroutine[Any, Any, None]) -> None:
        before = self._last_write.get(key)

        async def run() -> None:
            if before is not None:
                await asyncio.wait((before,))
            try:
                await work
            except (RedisError, OSError) as exc:
                self._failed("write", exc)

        task = self._loop.create_task(run())
        self._writes.add(task)
        self._last_write[key] = task
        task.add_done_callback(partial(self._written, key))

    def _written(self, key: str, task: asyncio.Task[None]) -> None:
        self._writes.discard(task)
        if self._last_write.get(key) is task:
            del self._last_write[key]

    async def _renew(self, flight: Flight) -> None:
        loop = self._loop
        deadline = loop.time() + self.config.coalesce_wait_s
        while loop.time() < deadline:
            await asyncio.sleep(self.config.lock_ttl_s / 3)
            try:
                await self._store.renew(flight.key, flight.token, self._lock_ms)
            except (RedisError, OSError) as exc:
                self._failed("renew", exc)
        # The call takes longer than anyone waits: the waiters go their own way.
        self._end(flight, None)

    def _end(self, flight: Flight, outcome: Outcome) -> None:
        if not flight.future.done():
            flight.future.set_result(outcome)
        if self._flights.get(flight.key) is flight:
            del self._flights[flight.key]

    def _failed(self, what: str, exc: BaseException) -> None:
        self._on_error()
        log.warning("response cache: Redis %s failed (%s): served without the cache", what, exc)

    async def drain(self, timeout_s: float) -> None:
        """Let the answers on their way to Redis land (at shutdown)."""
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=timeout_s)


def _call_failed(flight: Flight) -> bool:
    """Whether the flight's call failed: the next request for its key opens another."""
    future = flight.future
    return future.done() and future.result() is Lead.AGAIN
