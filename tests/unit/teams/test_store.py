"""The team and key store on fakeredis, as replicas share it."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import fakeredis
import orjson
import pytest
import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.config import AdmissionConfig, Config, ConfigError, Limits, ModelLimits, Usd
from gateway.teams.records import Key, Team, Tombstone, load_tombstone, merge_patch, tombstone_key
from gateway.teams.store import TeamStore, key_digest
from gateway.wire.errors import GatewayError
from tests.conftest import ROOT, base_config

pytestmark = pytest.mark.anyio
CONFIG = base_config()
DIGEST = hashlib.sha256(b"sk-gw-notebook").hexdigest()


def config_with(**admission: Any) -> Config:
    return dataclasses.replace(CONFIG, admission=AdmissionConfig(**admission))


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    """fakeredis: tests/redis/teams/test_store.py runs the same tests on a real redis-server."""
    yield fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())


@pytest.fixture
async def store(client: redis.Redis) -> AsyncIterator[TeamStore]:
    yield TeamStore(client, CONFIG)
    await client.aclose()


async def raw_dump(client: redis.Redis) -> dict[str, bytes]:
    """Every key and value in the store, to check what is (and is not) written."""
    out: dict[str, bytes] = {}
    for name in await client.keys("*"):
        kind = await client.type(name)
        if kind == b"string":
            out[name.decode()] = await client.get(name)
        else:
            out[name.decode()] = b" ".join(sorted(await client.smembers(name)))
    return out


async def tombstone(client: redis.Redis, name: str) -> Tombstone | None:
    """The tombstone a deleted team left under `name`, as the store keeps it."""
    raw = await client.get(tombstone_key(name))
    return None if raw is None else load_tombstone(name, raw)


# -- teams ----------------------------------------------------------------------------------------


async def test_team_round_trips_through_redis_exactly(
    store: TeamStore, client: redis.Redis
) -> None:
    team = Team(
        "research",
        "tier-5",
        budget_usd=Usd(1_234_567_891),  # $1,234.567891: money stays integer micro-dollars
        limits=Limits(
            profile="chatgpt-plus",
            requests_per_minute=60,
            models={"o1-mini": ModelLimits(messages_per_week=7)},
        ),
        models=("o1-mini", "gpt-4o"),
    )
    created, _ = await store.make_team(team)
    assert created.created_at > 0
    assert await store.get_team("research") == created
    assert await store.list_teams() == [created]
    stored = orjson.loads(await client.get("{t:research}:team"))
    assert stored["budget_micros"] == 1_234_567_891 and "budget_usd" not in stored
    assert await client.smembers("gw:teams") == {b"research"}


async def test_creating_an_existing_team_is_a_conflict(store: TeamStore) -> None:
    await store.make_team(Team("web", "tier-1"))
    with pytest.raises(GatewayError) as err:
        await store.make_team(Team("web", "tier-2"))
    assert (err.value.status, err.value.code) == (409, "conflict")
    assert (await store.get_team("web")) is not None
    assert (await store.get_team("web")).tier == "tier-1"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("team", "param", "message"),
    [
        (Team("t", "tier-9"), "tier", "unknown tier 'tier-9'"),
        (Team("t", "tier-1", models=("gpt-5",)), "models[0]", "unknown model 'gpt-5'"),
        (Team("t", "tier-1", limits=Limits(profile="nope")), "limits.profile", "unknown limit"),
        (Team("t", "tier-1", limits=Limits(tokens_per_minute=0)), "limits.tokens_per_minute", ""),
        (Team("t{x}", "tier-1"), "name", "Team names"),
    ],
)
async def test_invalid_teams_are_400_naming_the_field(
    store: TeamStore, team: Team, param: str, message: str
) -> None:
    with pytest.raises(GatewayError) as err:
        await store.make_team(team)
    assert (err.value.status, err.value.code, err.value.param) == (400, "invalid_value", param)
    assert message in err.value.message
    assert await store.list_teams() == []


async def test_update_changes_only_what_the_patch_gives(store: TeamStore) -> None:
    await store.make_team(
        Team("web", "tier-2", budget_usd=Usd(250_500_000), limits=Limits(requests_per_minute=100))
    )
    team = await store.update_team("web", {"limits": {"tokens_per_minute": 9000}})
    assert team.limits == Limits(requests_per_minute=100, tokens_per_minute=9000)
    assert team.budget_usd == 250_500_000 and team.tier == "tier-2"

    team = await store.update_team("web", {"budget_usd": "0.000001", "tier": "tier-3"})
    assert (team.budget_usd, team.tier) == (1, "tier-3")
    assert team.limits.tokens_per_minute == 9000

    # null resets to the tier's, field by field inside limits too.
    team = await store.update_team(
        "web", {"budget_usd": None, "limits": {"requests_per_minute": None}}
    )
    assert team.budget_usd is None
    assert team.limits == Limits(tokens_per_minute=9000)
    assert await store.get_team("web") == team


async def test_update_keeps_large_budgets_exact(store: TeamStore) -> None:
    # 2^53 + 1 micro-dollars has no exact float: the merge must not go through one.
    await store.make_team(Team("big", "tier-5", budget_usd=Usd(2**53 + 1)))
    team = await store.update_team("big", {"models": ["gpt-4o"]})
    assert team.budget_usd == 2**53 + 1


async def test_update_refuses_bad_patches(store: TeamStore) -> None:
    await store.make_team(Team("web", "tier-2"))
    for patch, param in [
        ({"tier": "gold"}, "tier"),
        ({"name": "other"}, "name"),
        ({"colour": "blue"}, "colour"),
        ({"budget_usd": -1}, "budget_usd"),
        ({"tier": None}, "tier"),
    ]:
        with pytest.raises(GatewayError) as err:
            await store.update_team("web", patch)
        assert (err.value.status, err.value.param) == (400, param), patch
    assert (await store.get_team("web")) is not None
    assert (await store.get_team("web")).tier == "tier-2"  # type: ignore[union-attr]
    with pytest.raises(GatewayError) as missing:
        await store.update_team("nobody", {"tier": "tier-1"})
    assert (missing.value.status, missing.value.code) == (404, "not_found")


def test_merge_patch_follows_rfc_7396() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    assert merge_patch(target, {"a": "z", "c": {"f": None}, "l": [3]}) == {
        "a": "z",
        "c": {"d": "e"},
        "l": [3],
    }
    assert target["c"] == {"d": "e", "f": "g"}  # the target is not modified


async def test_delete_team_removes_its_keys_and_index_entries(
    store: TeamStore, client: redis.Redis
) -> None:
    await store.make_team(Team("gone", "tier-1"))
    await store.make_team(Team("kept", "tier-1"))
    _, secret = await store.create_key("gone", "a")
    _, kept_secret = await store.create_key("kept", "b")
    assert await store.authenticate(key_digest(secret)) is not None
    await store.delete_team("gone")
    assert await store.get_team("gone") is None
    assert await store.authenticate(key_digest(secret)) is None
    # Of the team, only the tombstone of its name is left.
    left = [name for name in await raw_dump(client) if "gone" in name or secret in name]
    assert left == ["{t:gone}:deleted"]
    assert await store.authenticate(key_digest(kept_secret)) is not None
    # A team made again under the old name, inheriting, does not inherit the old keys.
    await store.make_team(Team("gone", "tier-1"), inherit=True)
    assert await store.list_keys("gone") == []
    with pytest.raises(GatewayError) as err:
        await store.delete_team("nobody")
    assert err.value.status == 404


async def test_a_deleted_teams_name_is_refused_unless_the_new_team_inherits(
    client: redis.Redis,
) -> None:
    # What the team owned stays under its name; a new team of that name would get it.
    now = [1_790_000_000.0]
    store = TeamStore(client, CONFIG, clock=lambda: now[0])
    await store.make_team(Team("old", "tier-5"))
    assert await tombstone(client, "old") is None
    await store.delete_team("old")
    assert await tombstone(client, "old") == Tombstone("old", 1_790_000_000)
    assert orjson.loads(await client.get("{t:old}:deleted")) == {"deleted_at": 1_790_000_000}
    now[0] += 60
    with pytest.raises(GatewayError) as refused:
        await store.make_team(Team("old", "tier-1"))
    assert (refused.value.status, refused.value.code, refused.value.param) == (
        409, "team_name_retired", "name",
    )  # fmt: skip
    assert "deleted on 2026-09-21 " in refused.value.message
    assert await store.get_team("old") is None
    assert "old" not in [t.name for t in await store.list_teams()]

    made, inherited = await store.make_team(Team("old", "tier-1"), inherit=True)
    assert inherited == Tombstone("old", 1_790_000_000)
    assert (made.tier, made.created_at) == ("tier-1", 1_790_000_060)
    assert await store.get_team("old") == made
    assert await tombstone(client, "old") is None
    # `inherit` allows, it does not demand: a free name is made as ever, with no tombstone.
    assert await store.make_team(Team("new", "tier-1"), inherit=True) == (
        await store.get_team("new"), None,
    )  # fmt: skip
    # An existing team is the plain conflict, flag or not, and the tombstone is not touched.
    await store.delete_team("new")
    for inherit in (False, True):
        with pytest.raises(GatewayError) as exists:
            await store.make_team(Team("old", "tier-1"), inherit=inherit)
        assert exists.value.code == "conflict"
    assert await tombstone(client, "new") is not None


async def test_the_teams_file_brings_a_deleted_team_back_with_what_it_left(
    store: TeamStore, client: redis.Redis
) -> None:
    # The file is the operator's own declaration: a team it declares is the same team.
    await store.load_file(EXAMPLE, {})
    await store.delete_team("research")
    warnings = await store.load_file(EXAMPLE, {})
    [note] = [w for w in warnings if "'research'" in w]
    assert note.startswith("team 'research' was deleted through the admin API on ")
    assert "inherits the objects and spend kept under its name" in note
    assert await store.get_team("research") is not None
    assert await tombstone(client, "research") is None
    assert len(await store.list_keys("research")) == 1  # the file's key, imported again
    assert not [w for w in await store.load_file(EXAMPLE, {}) if "deleted" in w]


async def test_ensure_team_creates_once_and_never_overrides(store: TeamStore) -> None:
    await store.ensure_team(Team("sandbox", "tier-5"))
    await store.update_team("sandbox", {"budget_usd": 5})
    await store.ensure_team(Team("sandbox", "tier-5"))
    team = await store.get_team("sandbox")
    assert team is not None and team.budget_usd == 5_000_000
    # The config declares it: deleted through the admin API, it comes back as the same team.
    await store.delete_team("sandbox")
    inherited = await store.ensure_team(Team("sandbox", "tier-5"))
    assert inherited is not None and inherited.name == "sandbox"
    assert await store.get_team("sandbox") is not None
    assert await store.ensure_team(Team("sandbox", "tier-5")) is None


# -- keys -----------------------------------------------------------------------------------------


async def test_created_key_is_stored_only_as_its_digest(
    store: TeamStore, client: redis.Redis
) -> None:
    await store.make_team(Team("web", "tier-2"))
    key, secret = await store.create_key("web", "ci", Limits(requests_per_minute=5))
    assert re.fullmatch(r"sk-gw-[A-Za-z0-9_-]{40}", secret)
    assert re.fullmatch(r"key_[0-9a-f]{16}", key.id)
    assert key.sha256 == hashlib.sha256(secret.encode()).hexdigest()
    assert key.hint == f"{secret[:6]}…{secret[-4:]}"
    everything = await raw_dump(client)
    assert not any(secret[6:-4].encode() in value for value in everything.values())
    assert everything[f"gw:keydigest:{key.sha256}"] == key.id.encode()
    assert everything["{t:web}:keys"] == key.id.encode()
    found = await store.authenticate(key.sha256)
    assert found is not None
    assert found[0] == key and found[1].name == "web"
    assert await store.list_keys("web") == [key]


async def test_keys_need_an_existing_team_and_valid_settings(store: TeamStore) -> None:
    with pytest.raises(GatewayError) as err:
        await store.create_key("nobody")
    assert (err.value.status, err.value.code) == (404, "not_found")
    await store.make_team(Team("web", "tier-2"))
    with pytest.raises(GatewayError) as bad:
        await store.create_key("web", limits=Limits(models={"gpt-5": ModelLimits()}))
    assert (bad.value.status, bad.value.param) == (400, "limits.models.gpt-5")
    with pytest.raises(GatewayError) as past:
        await store.create_key("web", expires_at=int(time.time()) - 1)
    assert (past.value.status, past.value.param) == (400, "expires_at")
    assert await store.list_keys("web") == []


async def test_revoked_key_is_refused_and_leaves_the_index(
    store: TeamStore, client: redis.Redis
) -> None:
    await store.make_team(Team("web", "tier-2"))
    key, _ = await store.create_key("web")
    assert await store.authenticate(key.sha256) is not None
    revoked = await store.revoke_key(key.id)
    assert revoked.revoked
    # The revoking replica forgets its cached copy at once.
    assert await store.authenticate(key.sha256) is None
    assert await client.get(f"gw:keydigest:{key.sha256}") is None
    assert [k.revoked for k in await store.list_keys("web")] == [True]
    assert (await store.revoke_key(key.id)).revoked  # revoking twice is harmless
    with pytest.raises(GatewayError) as err:
        await store.revoke_key("key_0000000000000000")
    assert err.value.status == 404


async def test_revocation_reaches_another_replica_once_its_cache_expires(
    client: redis.Redis,
) -> None:
    config = config_with(cache_ttl_s=0.3)
    admin, replica = TeamStore(client, config), TeamStore(client, config)
    await admin.make_team(Team("web", "tier-2"))
    key, _ = await admin.create_key("web")
    assert await replica.authenticate(key.sha256) is not None  # now cached by the replica
    await admin.revoke_key(key.id)
    # Polls for 2 s at least, well past the 0.3 s cache: a busy machine only makes it later.
    for _ in range(200):
        if await replica.authenticate(key.sha256) is None:
            break
        await asyncio.sleep(0.01)
    assert await replica.authenticate(key.sha256) is None
    await client.aclose()


async def test_each_replica_asks_redis_once_per_key_per_ttl(client: redis.Redis) -> None:
    store = TeamStore(client, config_with(cache_ttl_s=60))
    await store.make_team(Team("web", "tier-2"))
    key, _ = await store.create_key("web")
    gets: list[str] = []
    real_get = client.get

    async def counting_get(name: str) -> Any:
        gets.append(name)
        return await real_get(name)

    client.get = counting_get  # type: ignore[method-assign]
    # Fifty concurrent requests with one key share one lookup (digest, key, team: 3 GETs).
    results = await asyncio.gather(*(store.authenticate(key.sha256) for _ in range(50)))
    assert all(r is not None and r[0].id == key.id for r in results)
    assert len(gets) == 3
    # Unknown keys are cached too, so a stream of bad keys costs one GET per TTL.
    for _ in range(5):
        assert await store.authenticate("0" * 64) is None
    assert len(gets) == 4
    await client.aclose()


async def test_expired_keys_are_refused_even_when_cached(client: redis.Redis) -> None:
    now = [1_000_000_000.0]
    store = TeamStore(client, config_with(cache_ttl_s=60), clock=lambda: now[0])
    await store.make_team(Team("web", "tier-2"))
    key, _ = await store.create_key("web", expires_at=1_000_000_100)
    assert await store.authenticate(key.sha256) is not None
    now[0] = 1_000_000_099.9
    assert await store.authenticate(key.sha256) is not None
    now[0] = 1_000_000_100.0
    assert await store.authenticate(key.sha256) is None
    await client.aclose()


async def test_a_key_whose_team_is_gone_is_refused(store: TeamStore, client: redis.Redis) -> None:
    await store.make_team(Team("web", "tier-2"))
    key, _ = await store.create_key("web")
    await client.delete("{t:web}:team")  # as a crash half-way through deleting the team leaves it
    assert await store.authenticate(key.sha256) is None


async def test_known_keys_keep_working_while_redis_is_unreachable() -> None:
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    store = TeamStore(client, config_with(cache_ttl_s=0))
    await store.make_team(Team("web", "tier-2"))
    key, _ = await store.create_key("web")
    assert await store.authenticate(key.sha256) is not None

    async def unreachable(name: str) -> Any:
        raise RedisConnectionError("connection refused")

    client.get = unreachable  # type: ignore[method-assign]
    found = await store.authenticate(key.sha256)
    assert found is not None and found[0].id == key.id
    with pytest.raises(RedisConnectionError):
        await store.authenticate("1" * 64)  # never seen: nothing to fall back on


# -- the teams file -------------------------------------------------------------------------------


EXAMPLE = (ROOT / "config" / "teams.yaml").read_text()


async def test_the_example_teams_file_loads(store: TeamStore) -> None:
    ci_key = "sk-gw-platform-ci-0123456789abcdef"
    warnings = await store.load_file(EXAMPLE, {"O1GW_PLATFORM_CI_KEY": ci_key})
    assert warnings == []
    platform, research = await store.list_teams()
    assert (platform.name, platform.tier, platform.budget_usd) == (
        "platform",
        "tier-5",
        2_000_000_000,
    )
    assert research.limits.profile == "chatgpt-plus" and research.budget_usd is None
    found = await store.authenticate(key_digest(ci_key))
    assert found is not None and (found[0].name, found[1].name) == ("ci", "platform")
    assert found[0].hint == "sk-gw-…cdef"
    [notebook] = await store.list_keys("research")
    assert notebook.sha256 == "d11b0c06778501122da0ecc043fefb90845ee45168bc7c28673549c9cc541737"


async def test_an_unset_key_variable_skips_the_key_with_a_warning(store: TeamStore) -> None:
    warnings = await store.load_file(EXAMPLE, {})
    assert warnings == [
        "teams[0].keys[0]: environment variable O1GW_PLATFORM_CI_KEY is not set; key skipped"
    ]
    assert await store.list_keys("platform") == []
    assert len(await store.list_keys("research")) == 1


async def test_reloading_the_file_is_idempotent_and_applies_changes(store: TeamStore) -> None:
    env = {"O1GW_PLATFORM_CI_KEY": "sk-gw-platform-ci-0123456789abcdef"}
    await store.load_file(EXAMPLE, env)
    before = {t.name: await store.list_keys(t.name) for t in await store.list_teams()}
    await store.load_file(EXAMPLE, env)
    after = {t.name: await store.list_keys(t.name) for t in await store.list_teams()}
    assert after == before and sum(len(k) for k in after.values()) == 2
    # An edited file updates the team in place, keeping its creation time and its keys.
    platform = await store.get_team("platform")
    await store.load_file(EXAMPLE.replace("budget_usd: 2000", "budget_usd: 2500.25"), env)
    edited = await store.get_team("platform")
    assert edited is not None and platform is not None
    assert edited.budget_usd == 2_500_250_000 and edited.created_at == platform.created_at
    assert await store.list_keys("platform") == before["platform"]


async def test_an_admin_change_survives_the_unchanged_file_until_its_entry_is_edited(
    store: TeamStore,
) -> None:
    await store.load_file(EXAMPLE, {})
    await store.update_team("platform", {"budget_usd": "1.5"})
    # A replica (re)starting loads the same file: the admin's budget stays.
    await store.load_file(EXAMPLE, {})
    platform = await store.get_team("platform")
    assert platform is not None and platform.budget_usd == 1_500_000
    # The entry edited: the file applies again, and is noted as applied.
    edited = EXAMPLE.replace("budget_usd: 2000", "budget_usd: 2500.25")
    await store.load_file(edited, {})
    platform = await store.get_team("platform")
    assert platform is not None and platform.budget_usd == 2_500_250_000
    await store.update_team("platform", {"budget_usd": "3"})
    await store.load_file(edited, {})
    platform = await store.get_team("platform")
    assert platform is not None and platform.budget_usd == 3_000_000


async def test_replicas_loading_one_file_at_once_agree_on_the_keys(client: redis.Redis) -> None:
    replicas = [TeamStore(client, CONFIG) for _ in range(4)]
    await asyncio.gather(*(r.load_file(EXAMPLE, {}) for r in replicas))
    keys = await replicas[0].list_keys("research")
    assert len(keys) == 1
    assert await client.get(f"gw:keydigest:{keys[0].sha256}") == keys[0].id.encode()
    await client.aclose()


async def test_a_key_revoked_by_the_admin_stays_revoked_on_reload(store: TeamStore) -> None:
    await store.load_file(EXAMPLE, {})
    [notebook] = await store.list_keys("research")
    await store.revoke_key(notebook.id)
    warnings = await store.load_file(EXAMPLE, {})
    assert f"teams[1].keys[0]: key {notebook.id} was revoked; it stays revoked" in warnings
    assert [k.revoked for k in await store.list_keys("research")] == [True]
    assert await store.authenticate(notebook.sha256) is None


async def test_file_keys_carry_limits_and_expiry(store: TeamStore) -> None:
    text = f"""
teams:
  - name: ops
    tier: tier-1
    keys:
      - name: cron
        sha256: {DIGEST}
        limits: {{requests_per_minute: 2}}
        expires_at: 2999-01-31
"""
    await store.load_file(text, {})
    [key] = await store.list_keys("ops")
    assert key.limits == Limits(requests_per_minute=2)
    assert key.expires_at == 32474736000  # 2999-01-31T00:00:00Z


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "teams:\n  - {name: a, tier: tier-1, keys: [{name: k, key: sk-gw-plaintext}]}",
            "teams[0].keys[0].key: plaintext keys are not allowed in a teams file",
        ),
        (
            f"teams:\n  - {{name: a, tier: tier-1}}\n  - {{name: b, tier: tier-1, keys: [{{sha256: {DIGEST}}}, {{sha256: ABC}}]}}",
            "teams[1].keys[1].sha256: expected a lowercase hex SHA-256 digest",
        ),
        (
            f"teams:\n  - {{name: a, tier: tier-1, keys: [{{sha256: {DIGEST.upper()}}}]}}",
            "teams[0].keys[0].sha256: expected a lowercase hex SHA-256 digest",
        ),
        (
            f"teams:\n  - {{name: a, tier: tier-1, keys: [{{sha256: {DIGEST}, key_env: K}}]}}",
            "teams[0].keys[0]: give exactly one of `sha256` or `key_env`",
        ),
        (
            "teams:\n  - {name: a, tier: tier-1, keys: [{name: k}]}",
            "teams[0].keys[0]: give exactly",
        ),
        (
            "teams:\n  - {name: a, tier: tier-1, keys: [{key_env: K, expires: 1}]}",
            "teams[0].keys[0].expires: unknown field (did you mean 'expires_at'?)",
        ),
        ("teams:\n  - {name: a, tier: gold}", "teams[0].tier: unknown tier 'gold'"),
        ("teams:\n  - {name: a, tier: tier-1, budget: 5}", "teams[0].budget: unknown field"),
        ("teams:\n  - {name: a, tier: tier-1, budget_usd: -5}", "teams[0].budget_usd:"),
        (
            "teams:\n  - {name: a, tier: tier-1, models: [gpt-5]}",
            "teams[0].models[0]: unknown model",
        ),
        (
            "teams:\n  - {name: a, tier: tier-1, limits: {rpm: 5}}",
            "teams[0].limits.rpm: unknown key",
        ),
        (
            "teams:\n  - {name: a, tier: tier-1}\n  - {name: a, tier: tier-2}",
            "teams[1].name: team 'a' appears twice",
        ),
        ("teams:\n  - {name: 'a b', tier: tier-1}", "teams[0].name: required"),
        ("teams: {a: 1}", "teams: expected a list of teams"),
        ("team: []", "team: unknown field (did you mean 'teams'?)"),
        ("teams: [", "teams file: not valid YAML"),
    ],
)
async def test_bad_files_are_refused_naming_the_path_and_write_nothing(
    store: TeamStore, client: redis.Redis, text: str, error: str
) -> None:
    with pytest.raises(ConfigError) as err:
        await store.load_file(text, {"K": "sk-gw-from-the-environment-123456"})
    assert str(err.value).startswith(error)
    assert await raw_dump(client) == {}


async def test_keys_listed_in_the_file_are_not_kept_by_other_teams(store: TeamStore) -> None:
    await store.load_file(
        f"teams:\n  - {{name: a, tier: tier-1, keys: [{{sha256: {DIGEST}}}]}}", {}
    )
    [moved] = await store.list_keys("a")
    await store.load_file(
        f"teams:\n  - {{name: a, tier: tier-1}}\n  - {{name: b, tier: tier-1, keys: [{{sha256: {DIGEST}}}]}}",
        {},
    )
    assert await store.list_keys("a") == []
    [key] = await store.list_keys("b")
    assert key.id == moved.id
    found = await store.authenticate(DIGEST)
    assert found is not None and found[1].name == "b"


def test_key_records_keep_their_fields() -> None:
    # The admission code reads these records; the fields it relies on must stay.
    names = [f.name for f in dataclasses.fields(Key)]
    assert names[:8] == [
        "id",
        "team",
        "sha256",
        "name",
        "limits",
        "expires_at",
        "revoked",
        "created_at",
    ]
    assert [f.name for f in dataclasses.fields(Team)] == [
        "name", "tier", "budget_usd", "limits", "models", "strict", "routing_policy",
        "created_at", "upstream_key_env", "cache", "file_entry", "wandb_entity", "wandb_projects",
    ]  # fmt: skip


async def test_a_file_digest_with_a_line_break_is_refused(store: TeamStore) -> None:
    # It would be stored as given and never match a key: the key silently unusable.
    digest = hashlib.sha256(b"sk-gw-a-key").hexdigest()
    text = f"""
teams:
  - name: a
    tier: tier-1
    keys:
      - sha256: "{digest}\\n"
"""
    with pytest.raises(ConfigError, match=r"teams\[0\]\.keys\[0\]\.sha256"):
        await store.load_file(text, {})
    with pytest.raises(GatewayError):
        await store.import_key("test", "", digest + "\n")
