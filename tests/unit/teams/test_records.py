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
