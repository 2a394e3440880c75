"""Team records checked against the config."""

from __future__ import annotations

import pytest

from tests.conftest import base_config


def test_policy_names_in_team_records_are_checked() -> None:
    from gateway.config import ConfigError
    from gateway.teams.records import check_team, parse_team

    config = base_config()
    team = parse_team({"name": "t", "tier": "tier-5", "routing_policy": "auto-best"})
    check_team(config, team)
    with pytest.raises(ConfigError, match="routing_policy: unknown routing policy 'auto-bset'"):
        check_team(config, parse_team({"name": "t", "tier": "tier-5", "routing_policy": "auto-bset"}))  # fmt: skip
    with pytest.raises(ConfigError, match="routing_policy"):
        parse_team({"name": "t", "tier": "tier-5", "routing_policy": 3})


def test_a_record_from_a_newer_version_still_loads() -> None:
    import orjson

    from gateway.config import Usd
    from gateway.teams.records import Key, Team, dump_key, dump_team, load_key, load_team

    team = Team(name="web", tier="tier-2", budget_usd=Usd(12_500_000))
    newer = {**orjson.loads(dump_team(team)), "next_setting": [1], "other": True}
    assert load_team(orjson.dumps(newer)) == team
    key = Key(id="key_1", team="web", name="ci", sha256="0" * 64, created_at=1)
    assert load_key(orjson.dumps({**orjson.loads(dump_key(key)), "scopes": ["x"]})) == key


def test_a_tombstone_shares_its_teams_hash_tag_and_round_trips() -> None:
    from gateway.teams.records import (
        Tombstone,
        dump_tombstone,
        inherited_note,
        load_tombstone,
        team_key,
        tombstone_key,
    )

    # One Cluster slot: creating a team checks the tombstone in the same script.
    assert tombstone_key("web") == "{t:web}:deleted" and team_key("web").startswith("{t:web}:")
    tombstone = Tombstone("web", 1_790_000_000)
    assert load_tombstone("web", dump_tombstone(tombstone)) == tombstone
    assert inherited_note(tombstone).startswith(
        "team 'web' was deleted through the admin API on 2026-09-21 14:13 UTC; "
    )
