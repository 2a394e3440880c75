"""The cache's Redis side: one entry key an answer, and beside it (same hash tag, so each script
runs on one node of a Redis Cluster) the lock that says which replica calls upstream for it.

`lookup` is the one round trip that decides: the entry if there is one, else the lock taken for
the caller (it leads), else who holds it (another replica leads, or `DONE`: the leader ended
without an answer to keep, and the waiters go their own way). A leader whose call failed `free`s
the lock: the next lookup takes it, and its caller leads in its place. A lookup that waits on
another replica's call also marks the key awaited for a while by each team waiting there, in the
name of the replica that polls (`awaited`): a leader whose own client leaves reads on for such
waiters of its team on other replicas; its own replica's marks, made while it polled before it
took the lock, say nothing its flight does not count better (its waiters here), so they never
keep it calling. A mark is a member of a sorted set scored by when it lapses, on Redis's clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

import redis.asyncio as redis

DONE = b"done"

_LOOKUP = """
local entry = redis.call('GET', KEYS[1])
if entry then return {1, entry} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2, ''} end
local lock = redis.call('GET', KEYS[2]) or ''
if lock ~= 'done' then
  local now = redis.call('TIME')
  local ms = now[1] * 1000 + math.floor(now[2] / 1000)
  for i = 3, #KEYS do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ms)
    redis.call('ZADD', KEYS[i], ms + tonumber(ARGV[3]), ARGV[4])
    redis.call('PEXPIRE', KEYS[i], ARGV[3])
  end
end
return {0, lock}
"""
# Whether a replica other than the caller's marked the key awaited, its mark not lapsed.
_AWAITED = """
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
local marks = redis.call('ZCOUNT', KEYS[1], '(' .. ms, '+inf')
local own = redis.call('ZSCORE', KEYS[1], ARGV[1])
if own and tonumber(own) > ms then marks = marks - 1 end
return marks
"""
# The entry, and the lock given up if it is still the caller's.
_PUT = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
"""
# No answer to keep: the lock says so for a while, so that waiters stop waiting.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], 'done', 'PX', ARGV[2]) end
return 1
"""
# The call failed: the lock is given up if it is still the caller's, for a waiter to take.
_FREE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class Found(Enum):
    ENTRY = 1
    LEADS = 2  # the caller took the lock
    WAITS = 0  # another holds it


def entry_key(key: str) -> str:
    return "gw:cache:{" + key + "}:e"


def lock_key(key: str) -> str:
    return "gw:cache:{" + key + "}:l"


def awaited_key(key: str, team: str) -> str:
    # Not the `:w:` strings replicas before marks were sets wrote: neither errs on the other's.
    return "gw:cache:{" + key + "}:p:" + team


class CacheStore:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._lookup = client.register_script(_LOOKUP)
        self._put = client.register_script(_PUT)
        self._release = client.register_script(_RELEASE)
        self._free = client.register_script(_FREE)
        self._renew = client.register_script(_RENEW)
        self._awaited = client.register_script(_AWAITED)

    async def lookup(
        self,
        key: str,
        token: str,
        lock_ms: int,
        awaited_ms: int,
        teams: Iterable[str],
        replica: str,
    ) -> tuple[Found, bytes]:
        """(ENTRY, the entry), (LEADS, b""), or (WAITS, the lock's value; the key marked
        awaited by `teams` for `awaited_ms`, in the name of `replica`)."""
        kind, value = await self._lookup(
            keys=[entry_key(key), lock_key(key), *(awaited_key(key, team) for team in teams)],
            args=[token, lock_ms, awaited_ms, replica],
        )
        return Found(int(kind)), bytes(value)

    async def awaited(self, key: str, team: str, replica: str) -> bool:
        """Whether a lookup of `team`'s on a replica other than `replica` waited on the key's
        call lately."""
        return int(await self._awaited(keys=[awaited_key(key, team)], args=[replica])) > 0

    async def put(self, key: str, raw: bytes, ttl_ms: int, token: str = "") -> None:
        await self._put(keys=[entry_key(key), lock_key(key)], args=[raw, ttl_ms, token])

    async def release(self, key: str, token: str, done_ms: int) -> None:
        await self._release(keys=[lock_key(key)], args=[token, done_ms])

    async def free(self, key: str, token: str) -> None:
        await self._free(keys=[lock_key(key)], args=[token])

    async def renew(self, key: str, token: str, lock_ms: int) -> None:
        await self._renew(keys=[lock_key(key)], args=[token, lock_ms])
