"""Teams and their keys: the records, and how they are written, read and validated. Pure.

`gateway.teams.store` keeps them in Redis.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.config import (
    Config,
    ConfigError,
    Limits,
    Usd,
    check_limits,
    parse_section,
    usd_to_micros,
)


@dataclass(frozen=True, slots=True)
class Team:
    name: str
    tier: str
    # Overrides of the tier's budget and limits; None / empty means "as the tier says".
    budget_usd: Usd | None = None
    limits: Limits = field(default_factory=Limits)
    # Narrows the tier's models; None means every model the tier allows.
    models: tuple[str, ...] | None = None
    # Strict pass-through: no compatibility patches, upstream errors returned as they are.
    strict: bool = False
    # The routing policy `model: "auto"` means for this team ("" = the configured `auto`).
    routing_policy: str = ""
    created_at: int = 0
    # The environment variable holding the team's own upstream key (its own OpenAI project):
    # the strongest isolation, upstream keeps its objects apart too. "" = the gateway's key.
    upstream_key_env: str = ""
    # Answers to the team's chat and Responses requests are kept in the response cache.
    cache: bool = False
    # The digest of the teams-file entry that last set this record (`file_entry_digest`), ""
    # if none did. A replica loading the file applies an entry only when it differs from this:
    # an unchanged file never undoes what the admin API changed since.
    file_entry: str = ""
    # Where its fine-tuning jobs may send their metrics (a Weights & Biases integration): the
    # team's W&B entity, and its projects there (none listed: any). "" = integrations refused:
    # the upstream account's W&B key reaches every entity of the account, other teams' too.
    wandb_entity: str = ""
    wandb_projects: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Tombstone:
    """What is left of a deleted team's name: when it was deleted. Everything the team owned
    (objects, stored responses, cache entries, spend) is kept under its name and cannot all be
    found to purge, so a team made under the name later would inherit it; the tombstone makes
    that a choice (`inherit`) instead of an accident."""

    name: str
    deleted_at: int  # Unix seconds


@dataclass(frozen=True, slots=True)
class Key:
    id: str
    team: str
    sha256: str
    name: str = ""
    # The key's own limits, applied on top of the team's.
    limits: Limits = field(default_factory=Limits)
    expires_at: int | None = None  # Unix seconds
    revoked: bool = False
    created_at: int = 0
    # "sk-gw-…wxyz": enough to tell keys apart in a list, far too little to use. "" if unknown.
    hint: str = ""


# \Z, not $: `$` also matches before a final line break, which would let "search\n" through as
# a second team that prints as "search" (and a digest no key ever has).
TEAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
DIGEST = re.compile(r"^[0-9a-f]{64}\Z")
TEAMS_INDEX = "gw:teams"
SECRET_PREFIX = "sk-gw-"
TEAM_FIELDS = (
    "name", "tier", "budget_usd", "limits", "models", "strict", "routing_policy",
    "upstream_key_env", "cache", "wandb_entity", "wandb_projects",
)  # fmt: skip
# An environment variable's name: the key itself never enters config, Redis or the admin API.
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
FILE_KEY_FIELDS = ("name", "sha256", "key_env", "limits", "expires_at")
# A flood of random keys must not grow a replica's memory without bound.
MAX_CACHED = 100_000


def tag(team: str) -> str:
    """The Redis Cluster hash tag every key of one team shares."""
    return "{t:" + team + "}"


def team_key(name: str) -> str:
    return tag(name) + ":team"


def team_keys_key(name: str) -> str:
    return tag(name) + ":keys"


def tombstone_key(name: str) -> str:
    # The team record's hash tag: creating a team checks both in one script, on one node.
    return tag(name) + ":deleted"


def key_record_key(key_id: str) -> str:
    return f"gw:key:{key_id}"


def digest_key(digest: str) -> str:
    return f"gw:keydigest:{digest}"


# -- storage form ---------------------------------------------------------------------------------
# parse_section reads Usd fields as USD amounts, so the stored budget goes under its own name.


def dump_team(team: Team) -> bytes:
    data = dataclasses.asdict(team)
    budget = data.pop("budget_usd")
    data["budget_micros"] = None if budget is None else int(budget)
    return orjson.dumps(data)


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """A stored record's fields this version knows: one written by a newer replica (a rolling
    upgrade, or its rollback) still loads, its new settings left to the replicas that know them."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {name: value for name, value in data.items() if name in names}


def load_team(raw: bytes | str) -> Team:
    data = orjson.loads(raw)
    budget = data.pop("budget_micros", None)
    data = _known(Team, data)
    models = data.pop("models", None)
    limits = parse_section(Limits, data.pop("limits", None) or {}, "limits")
    projects = data.pop("wandb_projects", None) or ()
    return Team(
        **data,
        budget_usd=None if budget is None else Usd(budget),
        models=None if models is None else tuple(models),
        limits=limits,
        wandb_projects=tuple(projects),
    )


def file_entry_digest(team: Team) -> str:
    """What identifies a teams-file entry: the digest of the team it describes, as stored."""
    entry = dataclasses.replace(team, created_at=0, file_entry="")
    return hashlib.sha256(dump_team(entry)).hexdigest()


def dump_tombstone(tombstone: Tombstone) -> bytes:
    return orjson.dumps({"deleted_at": tombstone.deleted_at})


def load_tombstone(name: str, raw: bytes | str) -> Tombstone:
    return Tombstone(name, int(orjson.loads(raw)["deleted_at"]))


def inherited_note(tombstone: Tombstone) -> str:
    """What the log says when the operator's own declaration brings a deleted team back."""
    when = datetime.fromtimestamp(tombstone.deleted_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"team {tombstone.name!r} was deleted through the admin API on {when}; it is declared "
        "here, so it is made again and inherits the objects and spend kept under its name "
        "(its keys stay deleted unless declared here)"
    )


def dump_key(key: Key) -> bytes:
    return orjson.dumps(dataclasses.asdict(key))


def load_key(raw: bytes | str) -> Key:
    data = _known(Key, orjson.loads(raw))
    limits = parse_section(Limits, data.pop("limits", None) or {}, "limits")
    return Key(**data, limits=limits)


def as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# -- the external form: admin API JSON and teams-file entries --------------------------------------


def team_fields(team: Team) -> dict[str, Any]:
    """A team as the admin API shows it: the budget in USD, limits without empty fields."""
    return {
        "name": team.name,
        "tier": team.tier,
        "budget_usd": None if team.budget_usd is None else int(team.budget_usd) / 1_000_000,
        "limits": limits_fields(team.limits),
        "models": None if team.models is None else list(team.models),
        "strict": team.strict,
        "routing_policy": team.routing_policy,
        "upstream_key_env": team.upstream_key_env,
        "cache": team.cache,
        "wandb_entity": team.wandb_entity,
        "wandb_projects": list(team.wandb_projects),
        "created_at": team.created_at,
    }


def limits_fields(limits: Limits) -> dict[str, Any]:
    data: dict[str, Any] = {
        name: value
        for name, value in (
            ("profile", limits.profile),
            ("requests_per_minute", limits.requests_per_minute),
            ("tokens_per_minute", limits.tokens_per_minute),
        )
        if value not in (None, "")
    }
    if limits.models:
        data["models"] = {
            model: {k: v for k, v in dataclasses.asdict(per_model).items() if v is not None}
            for model, per_model in limits.models.items()
        }
    return data


def key_status(key: Key, now: float) -> str:
    if key.revoked:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


def secret_hint(secret: str) -> str:
    # A short secret's last four characters would give away too much of it.
    return f"{secret[:6]}…{secret[-4:]}" if len(secret) >= 24 else ""


def at_path(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def unknown_field(path: str, name: Any, known: tuple[str, ...]) -> ConfigError:
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(f"{at_path(path, str(name))}: unknown field{hint}")


def parse_team(raw: Any, path: str = "") -> Team:
    """A team from admin API JSON or a teams-file entry; ConfigError messages name the field."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path or 'team'}: expected a mapping, got {type(raw).__name__}")
    for name in raw:
        if name not in TEAM_FIELDS:
            raise unknown_field(path, name, TEAM_FIELDS)
    name, tier = raw.get("name"), raw.get("tier")
    if not isinstance(name, str) or not TEAM_NAME.match(name):
        raise ConfigError(
            f"{at_path(path, 'name')}: required: 1-64 letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit, got {name!r}"
        )
    if not isinstance(tier, str) or not tier:
        raise ConfigError(f"{at_path(path, 'tier')}: required: the name of a tier, got {tier!r}")
    budget = raw.get("budget_usd")
    limits = raw.get("limits")
    models = raw.get("models")
    if models is not None and (
        not isinstance(models, list) or not all(isinstance(m, str) for m in models)
    ):
        raise ConfigError(f"{at_path(path, 'models')}: expected a list of model names")
    strict, cache = (_flag(raw, name, path) for name in ("strict", "cache"))
    policy = raw.get("routing_policy", "")
    if not isinstance(policy, str):
        raise ConfigError(
            f"{at_path(path, 'routing_policy')}: expected the name of a routing policy"
        )
    key_env = raw.get("upstream_key_env", "")
    if not isinstance(key_env, str) or (key_env and not ENV_NAME.fullmatch(key_env)):
        raise ConfigError(
            f"{at_path(path, 'upstream_key_env')}: expected the name of an environment "
            "variable (A-Z, 0-9, _) holding the team's upstream key"
        )
    entity, projects = _wandb(raw, path)
    return Team(
        strict=strict,
        cache=cache,
        routing_policy=policy,
        upstream_key_env=key_env,
        wandb_entity=entity,
        wandb_projects=projects,
        name=name,
        tier=tier,
        budget_usd=None
        if budget is None
        else Usd(usd_to_micros(budget, at_path(path, "budget_usd"))),
        limits=parse_section(Limits, {} if limits is None else limits, at_path(path, "limits")),
        models=None if models is None else tuple(models),
    )


def _wandb(raw: Mapping[str, Any], path: str) -> tuple[str, tuple[str, ...]]:
    """The W&B entity a team's fine-tuning jobs may report to, and its projects."""
    entity = raw.get("wandb_entity", "")
    if not isinstance(entity, str):
        raise ConfigError(f"{at_path(path, 'wandb_entity')}: expected the name of a W&B entity")
    projects = raw.get("wandb_projects", ())
    if not isinstance(projects, list | tuple) or not all(
        isinstance(p, str) and p for p in projects
    ):
        raise ConfigError(f"{at_path(path, 'wandb_projects')}: expected a list of W&B projects")
    if projects and not entity:
        raise ConfigError(
            f"{at_path(path, 'wandb_projects')}: projects of no entity: set wandb_entity too"
        )
    return entity, tuple(projects)


def _flag(raw: Mapping[str, Any], name: str, path: str) -> bool:
    value = raw.get(name, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{at_path(path, name)}: expected true or false, got {value!r}")
    return value


def check_team(config: Config, team: Team, path: str = "") -> None:
    """What a team names must exist in the config."""
    if team.tier not in config.tiers:
        raise ConfigError(
            f"{at_path(path, 'tier')}: unknown tier {team.tier!r} "
            f"(one of {', '.join(config.tiers) or 'none: the config has no tiers'})"
        )
    for i, model in enumerate(team.models or ()):
        if model not in config.models:
            raise ConfigError(f"{at_path(path, 'models')}[{i}]: unknown model {model!r}")
    if team.routing_policy and team.routing_policy not in config.routing.policies:
        raise ConfigError(
            f"{at_path(path, 'routing_policy')}: unknown routing policy {team.routing_policy!r} "
            f"(one of {', '.join(config.routing.policies) or 'none'})"
        )
    check_limits(team.limits, config, at_path(path, "limits"))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: mappings merge key by key, null removes, the rest replaces."""
    if not isinstance(patch, Mapping):
        return patch
    result = dict(target) if isinstance(target, Mapping) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


def safety_identifier(salt: str, team: str, given: str | None = None) -> str:
    """What tells a team apart upstream (OpenAI's `safety_identifier`): a keyed hash of the
    team's name, never the name; a caller's own identifier (an end user of the team) is hashed
    in, so end users stay apart within the team and teams stay apart from each other."""
    message = team if given is None else f"{team}\x00{given}"
    digest = hmac.new(salt.encode(), message.encode(), hashlib.sha256).hexdigest()
    return "o1gw-" + digest[:40]
