"""What the README and the shipped config's comments tell an operator, held to what the code
does (they are what a user reads and deploys from)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

from gateway.admin.openapi import admin_openapi
from gateway.admission.pricing import cost_micros
from gateway.cli.admin import keys_table
from gateway.cli.main import main as cli_main
from gateway.compat.patches import _adapt_roles
from gateway.config import load_config
from gateway.config.schema import AdmissionConfig, Capabilities
from gateway.teams.records import FILE_KEY_FIELDS, TEAM_FIELDS
from gateway.wire.usage import Usage
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def _table_row(first_cell: str) -> str:
    (row,) = [line for line in README.splitlines() if line.startswith(f"| {first_cell} |")]
    return row


def test_the_keys_list_comment_names_only_what_the_command_prints() -> None:
    # It promised a key's "last use", which nothing records.
    (line,) = [line for line in README.splitlines() if line.startswith("o1-gateway keys list ")]
    promised = line.split("# each key's ", 1)[1]
    key = {
        "id": "key_1", "name": "n", "hint": "sk-gw-…abcd", "status": "active",
        "created_at": 0, "expires_at": None, "limits": {},
    }  # fmt: skip
    header = keys_table([key]).splitlines()[0].lower().split()
    aliases = {"expiry": "expires", "hint": "key", "created": "created"}
    for field in re.split(r",\s*", promised.strip()):
        word = re.sub(r"\s*\(.*\)$", "", field)
        assert aliases.get(word, word) in header, f"README promises {field!r}; keys list: {header}"


def test_readiness_is_described_as_it_is_with_the_default_fail_open_limits() -> None:
    # /readyz stays 200 without Redis unless rate limits fail closed (gateway.endpoints.health):
    # the endpoint table and the GatewayRedisDown alert said a replica without Redis is unready.
    assert AdmissionConfig().rate_limits_on_redis_error == "open"
    for row in (_table_row("`GET /readyz`"), _table_row("`GatewayRedisDown`")):
        assert "rate_limits_on_redis_error" in row, row
        assert "the replica is unready;" not in row, row
    assert "Redis answers and the upstream pool is usable (503 otherwise)" not in README


def test_the_shipped_config_says_the_anonymous_team_serves_only_callers_without_a_key() -> None:
    # It said "serve unknown keys as this team": a key that is sent and fails is always 401
    # (gateway.server.caller; tests/server/server/test_caller.py), as the README says.
    for path in ("config/gateway.yaml", "deploy/k8s/configmap.yaml"):
        text = (ROOT / path).read_text()
        start = text.index("anonymous_team:")
        comment = text[start : text.index("\n\n", start)]
        assert "unknown keys" not in comment, path
        assert "no key" in comment and "a key that fails: 401" in comment, path


def _options(parser: argparse.ArgumentParser, command: str) -> Iterator[tuple[str, str]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, f"{command} {name}".strip())
        for option in action.option_strings:
            if option.startswith("--") and option != "--help":
                yield command, option


def test_every_command_line_option_is_in_the_readme(monkeypatch: pytest.MonkeyPatch) -> None:
    # serve --log-level, the simulator's options and most of the admin commands' were only in
    # --help.
    built: list[argparse.ArgumentParser] = []

    def capture(parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        built.append(parser)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(SystemExit):
        cli_main([])
    missing = [f"{command} {option}" for command, option in _options(built[0], "")]
    missing = [entry for entry in missing if entry.split()[-1] not in README]
    assert not missing, f"options the README never names: {missing}"


def test_every_field_a_teams_file_takes_is_documented() -> None:
    # A key's `expires_at` and own `limits` in the teams file were named nowhere.
    shipped = (ROOT / "config" / "teams.yaml").read_text()
    for field in (*TEAM_FIELDS, "keys", *FILE_KEY_FIELDS):
        assert f"`{field}`" in README, field
        assert field in shipped, field


def test_the_admin_api_create_bodies_are_listed_whole() -> None:
    # POST /admin/teams listed 6 of its 10 fields, and a key's body none.
    spec = admin_openapi()["components"]["schemas"]
    start = README.index("Admin API (`Authorization: Bearer $GATEWAY_ADMIN_KEY`)")
    text = README[start : README.index("and its OpenAPI description", start)]
    for schema, after in (("TeamCreate", "`POST /admin/teams`"), ("KeyCreate", "/keys`")):
        body = text[text.index(after) :]
        body = body[: body.index("}`") + 2]
        for field in spec[schema]["properties"]:
            assert f'"{field}"' in body, (schema, field)


def test_the_shipped_config_says_long_prompts_are_charged_as_they_are() -> None:
    # It said OpenAI's long-context rate (2x input, 1.5x output over 272K input tokens) was
    # "not modelled here", next to the long_context_above that charges it.
    config = load_config((ROOT / "config" / "gateway.yaml").read_text(), {})
    long = [name for name, model in config.models.items() if model.price.long_context_above]
    assert long
    price = config.models[long[0]].price
    above = price.long_context_above
    short = cost_micros(price, Usage(prompt_tokens=above, completion_tokens=1000))
    longer = cost_micros(price, Usage(prompt_tokens=above + 1, completion_tokens=1000))
    assert longer > 1.4 * short  # the whole call at the long-context rate
    for path in ("config/gateway.yaml", "deploy/k8s/configmap.yaml"):
        text = (ROOT / path).read_text()
        assert "not modelled here" not in text, path
        assert "(price.long_context_above)" in text, path


def test_the_shipped_config_says_where_a_folded_system_message_goes() -> None:
    # It said "merged into the first user message": one mid-conversation goes into the next
    # user message after it (gateway.compat.patches), as the README says.
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "system", "content": "RULE"},
        {"role": "user", "content": "second"},
    ]
    folded, _ = _adapt_roles(messages, Capabilities(system_messages=False))
    assert folded[0]["content"] == "first" and "RULE" in folded[-1]["content"]
    assert "into the next user\n  message" in README
    for path in ("config/gateway.yaml", "deploy/k8s/configmap.yaml"):
        assert "merged into the next user message" in (ROOT / path).read_text(), path
