"""Where teams and keys live: Redis, shared by every replica, read through a short cache.

A key's secret is shown once at creation and stored only as its SHA-256 digest. Replicas cache
what they read for `admission.cache_ttl_s` (1 s by default), which bounds how long a revoked
key keeps working anywhere.

Redis layout (a team's keys share the hash tag {t:<team>} with its admission counters; nothing
is ever written to two slots in one transaction, so the layout works on Redis Cluster):

    {t:<team>}:team         the team record, JSON; its budget is integer micro-dollars
    {t:<team>}:keys         set of the team's key ids
    {t:<team>}:deleted      a deleted team's tombstone, JSON {"deleted_at"}: kept until a
                            team is made under the name again, and only with `inherit`
    gw:teams                set of team names
    gw:key:<id>             the key record, JSON (digest, never the secret)
    gw:keydigest:<sha256>   key id of a usable key; removed when the key is revoked
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any, Generic, TypeVar

import redis.asyncio as redis
import yaml
from redis.exceptions import RedisError

from gateway.config import (
    Config,
    ConfigError,
    Limits,
    check_limits,
    parse_section,
)
from gateway.teams.records import (
    DIGEST,
    FILE_KEY_FIELDS,
    MAX_CACHED,
    SECRET_PREFIX,
    TEAM_NAME,
    TEAMS_INDEX,
    Key,
    Team,
    Tombstone,
    as_text,
    at_path,
    check_team,
    digest_key,
    dump_key,
    dump_team,
    dump_tombstone,
    file_entry_digest,
    inherited_note,
    key_record_key,
    load_key,
    load_team,
    load_tombstone,
    merge_patch,
    parse_team,
    secret_hint,
    team_fields,
    team_key,
    team_keys_key,
    tombstone_key,
    unknown_field,
)
from gateway.wire import errors
from gateway.wire.errors import GatewayError

log = logging.getLogger("gateway.teams.store")
# How long a request waits for the refresh of a key this replica already knows before using
# what it knows (asyncio's TimeoutError is an OSError: handled like a Redis error).
STALE_WAIT_S = 0.05
T = TypeVar("T")
# One step, so that a team deleted meanwhile cannot slip its name past the check: the record is
# written only if there is none, and, unless the caller inherits (ARGV[2] = "1"), only if the
# name has no tombstone; a tombstone inherited goes. {0, ""}: the team exists; {1, tombstone}:
# retired; {2, tombstone or ""}: made. Both keys share the team's hash tag (one Cluster slot).
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, ''} end
local tombstone = redis.call('GET', KEYS[2])
if tombstone and ARGV[2] ~= '1' then return {1, tombstone} end
redis.call('SET', KEYS[1], ARGV[1])
if tombstone then redis.call('DEL', KEYS[2]) end
return {2, tombstone or ''}
"""


def key_digest(key: str) -> str:
    """The only form in which a key is stored and looked up: its SHA-256 digest. A lookup's
    timing then tells an attacker at most something about a hash of the secret."""
    return hashlib.sha256(key.encode()).hexdigest()


def _new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class _FileKey:
    name: str
    sha256: str
    limits: Limits
    expires_at: int | None
    hint: str
    path: str


class _ReadThrough(Generic[T]):
    """What Redis says about one name, remembered for a TTL: concurrent requests for one name
    share one lookup, so each replica asks Redis at most once per name per TTL."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._known: dict[str, tuple[float, T]] = {}
        self._inflight: dict[str, asyncio.Future[T]] = {}

    def fresh(self, name: str) -> tuple[float, T] | None:
        """What is known of `name` (its expiry, then it) while it is fresh: the request path
        asks this first, and awaits `get` only when it is not (no coroutine on a hit)."""
        cached = self._known.get(name)
        return cached if cached is not None and cached[0] > time.monotonic() else None

    async def get(self, name: str, lookup: Callable[[], Awaitable[T]]) -> T:
        """What Redis says of `name` (`lookup` asks it) once its TTL ran out, or what was known
        while Redis is slow or away."""
        cached = self._known.get(name)
        # The lookup is a task of its own: a caller that disconnects must not cancel it for
        # the others.
        pending = self._inflight.get(name)
        if pending is None:
            pending = asyncio.ensure_future(lookup())
            self._inflight[name] = pending
            pending.add_done_callback(partial(self._landed, name))
        try:
            if cached is None:
                return await asyncio.shield(pending)
            # A name this replica knows does not wait out a slow Redis here: the admission right
            # after would wait too, doubling the delay. The lookup goes on and lands for the
            # next request.
            return await asyncio.wait_for(asyncio.shield(pending), STALE_WAIT_S)
        except (RedisError, OSError):
            # Keep serving what this replica already knew while Redis is away; nothing can
            # be revoked meanwhile anyway, since revoking writes to Redis.
            if cached is not None:
                return cached[1]
            raise

    def _landed(self, name: str, lookup: asyncio.Future[T]) -> None:
        del self._inflight[name]
        if lookup.cancelled():
            return
        if len(self._known) >= MAX_CACHED:
            self._known.clear()
        error = lookup.exception()
        if error is None:
            self._known[name] = (time.monotonic() + self._ttl, lookup.result())
        elif name in self._known:
            # Retry a lost Redis once per TTL, not on every request.
            self._known[name] = (time.monotonic() + self._ttl, self._known[name][1])

    def forget(self, name: str) -> None:
        self._known.pop(name, None)


class TeamStore:
    """Teams and keys in Redis, with a short per-process cache on the request path.

    Admin operations use plain commands, never a transaction across keys: a team's record and
    the global key index live in different Redis Cluster slots. Writes are ordered so that a
    crash half-way never makes a key usable that should not be.
    """

    def __init__(
        self, client: redis.Redis, config: Config, clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = client
        self._config = config
        self.clock = clock
        self._ttl = config.admission.cache_ttl_s
        self._keys: _ReadThrough[tuple[Key, Team] | None] = _ReadThrough(self._ttl)
        self._teams: _ReadThrough[Team | None] = _ReadThrough(self._ttl)
        self._create = client.register_script(_CREATE)

    # -- the request path -------------------------------------------------------------------------

    async def authenticate(self, digest: str) -> tuple[Key, Team] | None:
        """The key with this digest and its team, if the key is usable now."""
        known = self._keys.fresh(digest)
        found = known[1] if known else await self._keys.get(digest, partial(self._lookup, digest))
        # Expiry is checked on every call: a cached key must not outlive its expiry by a TTL.
        if found is None or (
            found[0].expires_at is not None and found[0].expires_at <= self.clock()
        ):
            return None
        return found

    async def cached_team(self, name: str) -> Team | None:
        """The team of this name, read through the same cache as the keys' teams: what serves
        callers without a key (the anonymous team), whose budget, limits, models and deletion
        must reach every replica within the TTL as a key's team's do."""
        known = self._teams.fresh(name)
        return known[1] if known else await self._teams.get(name, partial(self.get_team, name))

    async def _lookup(self, digest: str) -> tuple[Key, Team] | None:
        key_id = await self._redis.get(digest_key(digest))
        if key_id is None:
            return None
        raw_key = await self._redis.get(key_record_key(as_text(key_id)))
        if raw_key is None:
            return None
        key = load_key(raw_key)
        if key.revoked:
            return None
        raw_team = await self._redis.get(team_key(key.team))
        return (key, load_team(raw_team)) if raw_team is not None else None

    def _forget(self, digest: str) -> None:
        # This replica sees its own revocations at once; others within their TTL.
        self._keys.forget(digest)

    # -- teams ------------------------------------------------------------------------------------

    async def get_team(self, name: str) -> Team | None:
        if not TEAM_NAME.match(name):  # never build a key (or a hash tag) from a bad name
            return None
        raw = await self._redis.get(team_key(name))
        return load_team(raw) if raw is not None else None

    async def list_teams(self) -> list[Team]:
        names = sorted(as_text(n) for n in await self._redis.smembers(TEAMS_INDEX))
        teams = [await self.get_team(name) for name in names]
        return [team for team in teams if team is not None]

    async def make_team(self, team: Team, inherit: bool = False) -> tuple[Team, Tombstone | None]:
        """Create the team; with it, the tombstone of the deleted team whose name it took over
        (None: the name was free). A deleted team's name is refused (409 team_name_retired)
        unless `inherit`: the new team would get what is still kept under the name."""
        self._check(team)
        team = dataclasses.replace(team, created_at=int(self.clock()))
        outcome, raw = await self._create(
            keys=[team_key(team.name), tombstone_key(team.name)],
            args=[dump_team(team), "1" if inherit else "0"],
        )
        if int(outcome) == 0:
            raise errors.team_exists(team.name)
        if int(outcome) == 1:
            raise errors.team_name_retired(team.name, load_tombstone(team.name, raw).deleted_at)
        await self._redis.sadd(TEAMS_INDEX, team.name)
        self._teams.forget(team.name)
        return team, load_tombstone(team.name, raw) if raw else None

    async def ensure_team(self, team: Team) -> Tombstone | None:
        """Create the team unless it exists (whatever its settings). The operator's config
        declares it (`admission.anonymous_team`), so a team of that name deleted through the
        admin API is the same team: it is made again and inherits; returns the tombstone."""
        if await self.get_team(team.name) is None:
            try:
                return (await self.make_team(team, inherit=True))[1]
            except GatewayError as exc:
                if exc.status != 409:  # 409: another replica created it first, which is fine
                    raise
        return None

    async def update_team(self, name: str, patch: Mapping[str, Any]) -> Team:
        """Change the fields `patch` gives, as a JSON merge patch: null resets a field to the
        tier's, and `limits` merges field by field."""
        current = await self.get_team(name)
        if current is None:
            raise errors.team_not_found(name)
        if patch.get("name", name) != name:
            raise errors.team_rename_refused()
        base = team_fields(current)
        del base["created_at"]
        if current.budget_usd is not None:
            # Exact decimal text: a float would round-trip the money through binary.
            base["budget_usd"] = str(Decimal(int(current.budget_usd)).scaleb(-6))
        try:
            team = parse_team(merge_patch(base, {**patch, "name": name}))
        except ConfigError as exc:
            raise errors.invalid_setting(str(exc)) from exc
        # The file entry that set the team stays noted: an unchanged file does not undo this.
        return await self._put_team(
            dataclasses.replace(team, created_at=current.created_at, file_entry=current.file_entry)
        )

    async def _put_team(self, team: Team) -> Team:
        self._check(team)
        await self._redis.set(team_key(team.name), dump_team(team))
        await self._redis.sadd(TEAMS_INDEX, team.name)
        self._teams.forget(team.name)  # this replica sees its own change at once
        return team

    async def delete_team(self, name: str) -> None:
        """Delete the team and its keys, leaving a tombstone under its name.

        What the team owns stays under its name: its objects' owner records, stored responses,
        cache entries (none of which can all be found by team to purge) and spend counters (on
        purpose: a team deleted and made again this month keeps what it spent). The tombstone
        keeps the name from passing to a new team unnoticed (`make_team`). It has no expiry:
        owner records have none either.
        """
        if await self.get_team(name) is None:
            raise errors.team_not_found(name)
        # First: once the record goes, a create must already find the name retired.
        tombstone = Tombstone(name, int(self.clock()))
        await self._redis.set(tombstone_key(name), dump_tombstone(tombstone))
        # Keys first: a crash half-way must not leave keys that a re-created team would revive.
        for key in await self.list_keys(name):
            await self._redis.delete(digest_key(key.sha256))
            await self._redis.delete(key_record_key(key.id))
            self._forget(key.sha256)
        await self._redis.delete(team_keys_key(name))
        await self._redis.delete(team_key(name))
        await self._redis.srem(TEAMS_INDEX, name)
        self._teams.forget(name)

    def _check(self, team: Team) -> None:
        if not TEAM_NAME.match(team.name):
            raise errors.invalid_team_name()
        try:
            check_team(self._config, team)
        except ConfigError as exc:
            raise errors.invalid_setting(str(exc)) from exc

    # -- keys -------------------------------------------------------------------------------------

    async def create_key(
        self, team: str, name: str = "", limits: Limits | None = None, expires_at: int | None = None
    ) -> tuple[Key, str]:
        """A new key and its secret; the secret is not stored and cannot be shown again."""
        if await self.get_team(team) is None:
            raise errors.team_not_found(team)
        self._check_key(limits or Limits(), expires_at)
        secret = SECRET_PREFIX + secrets.token_urlsafe(30)  # 40 characters, 240 random bits
        key = Key(
            id=_new_key_id(),
            team=team,
            sha256=key_digest(secret),
            name=name,
            limits=limits or Limits(),
            expires_at=expires_at,
            created_at=int(self.clock()),
            hint=secret_hint(secret),
        )
        await self._redis.set(key_record_key(key.id), dump_key(key))
        await self._redis.sadd(team_keys_key(team), key.id)
        # The index last: the key becomes usable only once its record is complete.
        await self._redis.set(digest_key(key.sha256), key.id)
        return key, secret

    async def import_key(
        self,
        team: str,
        name: str,
        sha256: str,
        limits: Limits | None = None,
        expires_at: int | None = None,
        hint: str = "",
    ) -> Key:
        """Register a key known only by its digest (from a teams file); idempotent by digest.

        A key the admin API revoked stays revoked: re-reading the file does not revive it.
        """
        if not DIGEST.match(sha256):
            raise errors.invalid_digest()
        if await self.get_team(team) is None:
            raise errors.team_not_found(team)
        self._check_key(limits or Limits(), None)
        for key in await self.list_keys(team):
            if key.sha256 == sha256 and key.revoked:
                return key
        # Claiming the digest first makes replicas that load one file at once agree on one id.
        claimed = _new_key_id()
        if await self._redis.set(digest_key(sha256), claimed, nx=True):
            key_id, current = claimed, None
        else:
            key_id = as_text(await self._redis.get(digest_key(sha256)) or claimed)
            raw = await self._redis.get(key_record_key(key_id))
            current = load_key(raw) if raw is not None else None
        if current is not None and current.revoked:
            return current
        key = Key(
            id=key_id,
            team=team,
            sha256=sha256,
            name=name,
            limits=limits or Limits(),
            expires_at=expires_at,
            created_at=current.created_at if current is not None else int(self.clock()),
            hint=hint or (current.hint if current is not None else ""),
        )
        if current is not None and current.team != team:
            await self._redis.srem(team_keys_key(current.team), key_id)
        await self._redis.set(key_record_key(key_id), dump_key(key))
        await self._redis.sadd(team_keys_key(team), key_id)
        return key

    def _check_key(self, limits: Limits, expires_at: int | None) -> None:
        try:
            check_limits(limits, self._config, "limits")
        except ConfigError as exc:
            raise errors.invalid_setting(str(exc)) from exc
        if expires_at is not None and expires_at <= self.clock():
            raise errors.expires_at_in_past()

    async def list_keys(self, team: str) -> list[Key]:
        if await self.get_team(team) is None:
            raise errors.team_not_found(team)
        ids = [as_text(i) for i in await self._redis.smembers(team_keys_key(team))]
        raws = [await self._redis.get(key_record_key(key_id)) for key_id in ids]
        keys = [load_key(raw) for raw in raws if raw is not None]
        return sorted(keys, key=lambda k: (k.created_at, k.id))

    async def revoke_key(self, key_id: str) -> Key:
        """Mark the key revoked and drop it from the digest index; revoking twice is harmless."""
        raw = await self._redis.get(key_record_key(key_id))
        if raw is None:
            raise errors.key_not_found(key_id)
        key = dataclasses.replace(load_key(raw), revoked=True)
        # The record first: a crash before the index goes still leaves the key refused.
        await self._redis.set(key_record_key(key_id), dump_key(key))
        await self._redis.delete(digest_key(key.sha256))
        self._forget(key.sha256)
        return key

    # -- the teams file ---------------------------------------------------------------------------

    async def load_file(self, text: str, env: Mapping[str, str]) -> list[str]:
        """Upsert the teams and import the keys of a teams file; returns warnings.

        An entry is authoritative for the fields a team has (an omitted budget means the
        tier's) when it is new or edited: a team whose record an unchanged entry already set
        keeps what the admin API changed since, so a replica (re)starting never silently undoes
        an admin change. Teams and keys missing from the file are left alone. The whole file is
        checked before anything is written. A team the admin API deleted is made again if the
        file still declares it, inheriting what its name kept (a warning says so).
        """
        warnings: list[str] = []
        entries = self._parse_file(text, env, warnings)
        for team, keys in entries:
            team = dataclasses.replace(team, file_entry=file_entry_digest(team))
            existing = await self.get_team(team.name)
            if existing is None:
                try:
                    # The file declares the team: the same team, whatever the admin API deleted.
                    _, inherited = await self.make_team(team, inherit=True)
                    if inherited is not None:
                        warnings.append(inherited_note(inherited))
                except GatewayError as exc:
                    if exc.status != 409:  # 409: another replica loading the same file won
                        raise
                    await self._put_team(team)
            elif existing.file_entry != team.file_entry:
                await self._put_team(dataclasses.replace(team, created_at=existing.created_at))
            for spec in keys:
                key = await self.import_key(
                    team.name, spec.name, spec.sha256, spec.limits, spec.expires_at, spec.hint
                )
                if key.revoked:
                    warnings.append(f"{spec.path}: key {key.id} was revoked; it stays revoked")
        return warnings

    def _parse_file(
        self, text: str, env: Mapping[str, str], warnings: list[str]
    ) -> list[tuple[Team, list[_FileKey]]]:
        try:
            raw = yaml.safe_load(text) if text.strip() else {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"teams file: not valid YAML: {exc}") from exc
        raw = raw or {}
        if not isinstance(raw, dict):
            raise ConfigError("teams file: the top level must be a mapping with a `teams` list")
        for name in raw:
            if name != "teams":
                raise unknown_field("", name, ("teams",))
        teams = raw.get("teams") or []
        if not isinstance(teams, list):
            raise ConfigError("teams: expected a list of teams")
        entries: list[tuple[Team, list[_FileKey]]] = []
        seen: set[str] = set()
        for i, entry in enumerate(teams):
            path = f"teams[{i}]"
            if not isinstance(entry, dict):
                raise ConfigError(f"{path}: expected a mapping, got {type(entry).__name__}")
            fields = dict(entry)
            key_specs = fields.pop("keys", None) or []
            team = parse_team(fields, path)
            check_team(self._config, team, path)
            if team.name in seen:
                raise ConfigError(f"{path}.name: team {team.name!r} appears twice")
            seen.add(team.name)
            if not isinstance(key_specs, list):
                raise ConfigError(f"{path}.keys: expected a list of keys")
            keys = [
                parsed
                for j, spec in enumerate(key_specs)
                if (parsed := self._parse_file_key(spec, f"{path}.keys[{j}]", env, warnings))
            ]
            entries.append((team, keys))
        return entries

    def _parse_file_key(
        self, spec: Any, path: str, env: Mapping[str, str], warnings: list[str]
    ) -> _FileKey | None:
        if not isinstance(spec, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(spec).__name__}")
        if "key" in spec:
            raise ConfigError(
                f"{path}.key: plaintext keys are not allowed in a teams file (it would put the "
                "secret in the repository); give `sha256` (from `o1-gateway hash-key KEY`) or "
                "`key_env` (the name of an environment variable holding the key)"
            )
        for name in spec:
            if name not in FILE_KEY_FIELDS:
                raise unknown_field(path, name, FILE_KEY_FIELDS)
        if ("sha256" in spec) == ("key_env" in spec):
            raise ConfigError(f"{path}: give exactly one of `sha256` or `key_env`")
        name = spec.get("name", "")
        if not isinstance(name, str):
            raise ConfigError(f"{at_path(path, 'name')}: expected a string, got {name!r}")
        limits = spec.get("limits")
        parsed_limits = parse_section(Limits, {} if limits is None else limits, f"{path}.limits")
        check_limits(parsed_limits, self._config, f"{path}.limits")
        expires_at = _expires_at(spec.get("expires_at"), f"{path}.expires_at")
        if "sha256" in spec:
            digest = spec["sha256"]
            if not isinstance(digest, str) or not DIGEST.match(digest):
                raise ConfigError(f"{path}.sha256: expected a lowercase hex SHA-256 digest")
            return _FileKey(name, digest, parsed_limits, expires_at, "", path)
        variable = spec["key_env"]
        if not isinstance(variable, str) or not variable:
            raise ConfigError(f"{path}.key_env: expected the name of an environment variable")
        secret = env.get(variable, "")
        if not secret:
            warnings.append(f"{path}: environment variable {variable} is not set; key skipped")
            return None
        return _FileKey(
            name, key_digest(secret), parsed_limits, expires_at, secret_hint(secret), path
        )


def _expires_at(value: Any, path: str) -> int | None:
    """Unix seconds, or a YAML date / timestamp (UTC unless it says otherwise)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return int(stamp.timestamp())
    if isinstance(value, dt.date):
        return int(dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp())
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ConfigError(f"{path}: expected Unix seconds or a date like 2025-01-31, got {value!r}")
