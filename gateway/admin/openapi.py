"""The admin API described as OpenAPI 3.1, served at GET /admin/openapi.json (admin key needed).

Written by hand as a plain dict next to what `gateway.admin.api` and `gateway.teams.records`
accept, so the description is reviewed with the code; the test suite fuzzes the running API
against it with schemathesis. Request schemas list every field the code accepts and forbid the
rest, because the code refuses unknown fields too.
"""

from __future__ import annotations

import copy
from typing import Any

from gateway.config import Config
from gateway.objects.ownership import ASSIGNABLE_KINDS

VERSION = "1.0.0"
# A trillion dollars: far beyond any real budget, and its micro-dollars still fit in 63 bits
# (gateway.admin.api refuses more).
MAX_BUDGET_USD = 10**12

TEAM_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": _json(schema)}


def _error(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/responses/{name}"}


_POSITIVE = {"type": "integer", "minimum": 1}
_OPTIONAL_POSITIVE = {"type": ["integer", "null"], "minimum": 1}
_USD_IN = {
    "description": "USD, at most 6 decimals (whole micro-dollars); a decimal string keeps it exact.",
    "anyOf": [
        {"type": "number", "minimum": 0, "maximum": MAX_BUDGET_USD},
        {"type": "string", "pattern": r"^[0-9]{1,12}(\.[0-9]{1,6})?$"},
    ],
}
_USD_OUT = {"type": ["number", "null"], "description": "USD; null: no budget of its own."}

_MODEL_LIMITS = {
    "type": "object",
    "description": "Limits on one model (a name from the gateway's `models`).",
    "additionalProperties": False,
    "properties": {
        "requests_per_minute": _OPTIONAL_POSITIVE,
        "tokens_per_minute": _OPTIONAL_POSITIVE,
        "messages_per_week": _OPTIONAL_POSITIVE,
    },
}

_LIMITS = {
    "type": "object",
    "description": "Overrides of the tier's limits; absent fields: as the tier (or profile) says.",
    "additionalProperties": False,
    "properties": {
        "profile": {"type": "string", "description": "A `limit_profiles` name of the config."},
        "requests_per_minute": _OPTIONAL_POSITIVE,
        "tokens_per_minute": _OPTIONAL_POSITIVE,
        "models": {"type": "object", "additionalProperties": _ref("ModelLimits")},
    },
}

# In a merge patch null removes a field (back to the tier's), so every field may be null.
_LIMITS_PATCH = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "profile": {"type": ["string", "null"]},
        "requests_per_minute": _OPTIONAL_POSITIVE,
        "tokens_per_minute": _OPTIONAL_POSITIVE,
        "models": {
            "type": ["object", "null"],
            "additionalProperties": _nullable(_ref("ModelLimits")),
        },
    },
}

_TEAM_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "pattern": TEAM_NAME_PATTERN},
    "tier": {"type": "string", "minLength": 1, "description": "A `tiers` name of the config."},
    "budget_usd": _nullable(_USD_IN),
    "limits": _nullable(_ref("Limits")),
    "models": {
        "type": ["array", "null"],
        "items": {"type": "string"},
        "description": "Narrows the tier's models; null: every model the tier allows.",
    },
    "strict": {
        "type": "boolean",
        "description": "Pass-through without compatibility patches.",
    },
    "routing_policy": {
        "type": "string",
        "description": "What `model: auto` means for this team; '' = the configured default.",
    },
    "upstream_key_env": {
        "type": "string",
        "pattern": "^([A-Z_][A-Z0-9_]{0,127})?$",
        "description": "The environment variable holding the team's own upstream key (its "
        "own OpenAI project); '' = the gateway's key.",
    },
    "cache": {
        "type": "boolean",
        "description": "Answers to the team's chat and Responses requests are kept in the "
        "response cache.",
    },
    "wandb_entity": {
        "type": "string",
        "description": "The Weights & Biases entity the team's fine-tuning jobs may send "
        "their metrics to (an `integrations` entry of type `wandb` must name it); '' = "
        "integrations refused.",
    },
    "wandb_projects": {
        "type": "array",
        "items": {"type": "string", "minLength": 1},
        "description": "The entity's projects those jobs may report to; [] = any of them.",
    },
}

_TEAM_CREATE = {
    "type": "object",
    "required": ["name", "tier"],
    "additionalProperties": False,
    "properties": {
        **_TEAM_FIELDS,
        "inherit": {
            "type": "boolean",
            "default": False,
            "description": "Take the name of a deleted team. What that team owned (files, "
            "vector stores, batches, fine-tuning jobs, stored chat completions and responses, "
            "cached answers) and its spend are kept under its name, so the new team gets them; "
            "without this such a name is refused with 409 `team_name_retired`. A name never "
            "used needs nothing.",
        },
    },
}

_TEAM_PATCH = {
    "type": "object",
    "description": "RFC 7396 JSON merge patch: null resets a field to the tier's; `limits` "
    "merges field by field. `name` may be given but must be the team's own (no renames).",
    "additionalProperties": False,
    "properties": {
        **_TEAM_FIELDS,
        "budget_usd": _nullable(_USD_IN),
        "limits": _nullable(_ref("LimitsPatch")),
        "strict": {"type": ["boolean", "null"]},
        "routing_policy": {"type": ["string", "null"]},
        "upstream_key_env": {"type": ["string", "null"]},
        "cache": {"type": ["boolean", "null"]},
        "wandb_entity": {"type": ["string", "null"]},
        "wandb_projects": {"type": ["array", "null"], "items": {"type": "string", "minLength": 1}},
    },
}

_TEAM = {
    "type": "object",
    "required": [
        "object",
        "name",
        "tier",
        "budget_usd",
        "limits",
        "models",
        "strict",
        "routing_policy",
        "upstream_key_env",
        "cache",
        "wandb_entity",
        "wandb_projects",
        "created_at",
        "effective",
    ],
    "properties": {
        "object": {"const": "team"},
        "name": {"type": "string"},
        "tier": {"type": "string"},
        "budget_usd": _USD_OUT,
        "limits": _ref("Limits"),
        "models": {"type": ["array", "null"], "items": {"type": "string"}},
        "strict": {"type": "boolean"},
        "routing_policy": {"type": "string"},
        "upstream_key_env": {"type": "string"},
        "cache": {"type": "boolean"},
        "wandb_entity": {"type": "string"},
        "wandb_projects": {"type": "array", "items": {"type": "string"}},
        "created_at": {"type": "integer", "description": "Unix seconds."},
        "effective": {
            "type": "object",
            "description": "What applies once the tier is taken into account.",
            "required": ["budget_usd", "limits", "models"],
            "properties": {
                "budget_usd": _USD_OUT,
                "limits": _ref("Limits"),
                "models": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
}

_TEAM_CREATED = {
    "allOf": [
        _ref("Team"),
        {
            "type": "object",
            "properties": {
                "inherited": {
                    "type": "object",
                    "description": "Only when the team took a deleted team's name (`inherit`): "
                    "that team's, whose objects and spend it now has.",
                    "required": ["deleted_at"],
                    "properties": {
                        "deleted_at": {"type": "integer", "description": "Unix seconds."}
                    },
                }
            },
        },
    ]
}

_KEY_CREATE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "maxLength": 128},
        "limits": _nullable(_ref("Limits")),
        "expires_at": {
            "type": ["integer", "null"],
            "description": "Unix seconds, in the future; null: never expires.",
        },
    },
}

_KEY = {
    "type": "object",
    "description": "A key never shows its secret; only the 201 answer of its creation does.",
    "required": [
        "object",
        "id",
        "team",
        "name",
        "hint",
        "status",
        "limits",
        "expires_at",
        "revoked",
        "created_at",
    ],
    "properties": {
        "object": {"const": "key"},
        "id": {"type": "string"},
        "team": {"type": "string"},
        "name": {"type": "string"},
        "hint": {"type": "string"},
        "status": {"enum": ["active", "expired", "revoked"]},
        "limits": _ref("Limits"),
        "expires_at": {"type": ["integer", "null"]},
        "revoked": {"type": "boolean"},
        "created_at": {"type": "integer"},
    },
}

_KEY_CREATED = {
    "allOf": [
        _ref("Key"),
        {
            "type": "object",
            "required": ["key"],
            "properties": {"key": {"type": "string", "description": "The secret, shown once."}},
        },
    ]
}

_COUNT = {"type": "integer", "minimum": 0}
_USAGE_COUNTS_PROPERTIES = {
    "requests": _COUNT,
    "prompt_tokens": _COUNT,
    "completion_tokens": _COUNT,
    "cached_tokens": _COUNT,
    "reasoning_tokens": _COUNT,
    "expired_holds": {**_COUNT, "description": "Holds never settled, charged their reserve."},
    "cost_micros": {"type": "integer", "description": "Charged, in micro-dollars."},
    "cost_usd": {"type": "number"},
}
_USAGE_COUNTS = {
    "type": "object",
    "required": list(_USAGE_COUNTS_PROPERTIES),
    "properties": _USAGE_COUNTS_PROPERTIES,
}


def _usage_by(what: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": f"The month's counts by {what}.",
        "additionalProperties": _USAGE_COUNTS,
    }


_USAGE_ROW = {
    "type": "object",
    "required": ["model", "endpoint", "key", *_USAGE_COUNTS_PROPERTIES],
    "properties": {
        "model": {"type": "string"},
        "endpoint": {"type": "string"},
        "key": {"type": "string"},
        **_USAGE_COUNTS_PROPERTIES,
    },
}
_USAGE = {
    "type": "object",
    "required": [
        "team",
        "period",
        "resets_at",
        "budget_usd",
        "spent_usd",
        "held_usd",
        "remaining_usd",
        "spent_micros",
        "held_micros",
        "by_model",
        "by_endpoint",
        "by_key",
        "rows",
    ],
    "properties": {
        "team": {"type": "string"},
        "period": {"type": "string", "description": "The UTC month, e.g. 2024-09."},
        "resets_at": {"type": "string", "format": "date-time"},
        "budget_usd": _USD_OUT,
        "spent_usd": {"type": "number"},
        "held_usd": {"type": "number", "description": "Reserved by requests in flight."},
        "remaining_usd": {"type": ["number", "null"]},
        "spent_micros": _COUNT,
        "held_micros": _COUNT,
        "by_model": _usage_by("model (a pass-through call's: the model it named or answered)"),
        "by_endpoint": _usage_by(
            "endpoint (chat, responses, embeddings, ...; unknown: counted before endpoints were)"
        ),
        "by_key": _usage_by(
            'key id (as the keys list shows it; "": the anonymous team\'s callers; unknown: '
            "counted before keys were)"
        ),
        "rows": {
            "type": "array",
            "description": "Every (model, endpoint, key) counted, sorted by them.",
            "items": _USAGE_ROW,
        },
    },
}

_RETIRING = {
    "type": "object",
    "required": ["object", "today", "within_days", "shield", "data"],
    "properties": {
        "object": {"const": "list"},
        "today": {"type": "string", "format": "date", "description": "The day judged by."},
        "within_days": _COUNT,
        "shield": {
            "type": "boolean",
            "description": "retirement.shield: false substitutes nothing (every successor null).",
        },
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["model", "shutdown", "days_left", "successor"],
                "additionalProperties": False,
                "properties": {
                    "model": {"type": "string"},
                    "shutdown": {"type": "string", "format": "date"},
                    "days_left": {"type": "integer", "description": "0 or less: shut down."},
                    "successor": {
                        "type": ["string", "null"],
                        "description": "The model serving it from its shutdown day, today's "
                        "once that day has come (null: none, requests naming it are refused, "
                        "by the gateway or, with the shield off, upstream).",
                    },
                },
            },
        },
    },
}

_ERROR = {
    "type": "object",
    "description": "OpenAI's error shape.",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}


def _list_of(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["object", "data"],
        "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": _ref(name)}},
    }


_TEAM_PARAM = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": TEAM_NAME_PATTERN},
}
_KEY_PARAM = {
    "name": "key_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1},
}
# Every operation can answer these.
_ALWAYS = {
    "401": _error("Unauthorized"),
    "429": _error("TooManyFailedKeys"),
    "503": _error("StoreUnavailable"),
}
_WITH_BODY = {"400": _error("BadRequest"), "413": _error("TooLarge")}


def _operation(
    summary: str, responses: dict[str, Any], body: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": {**responses, **_ALWAYS}}
    if body is not None:
        operation["requestBody"] = body
        operation["responses"].update(_WITH_BODY)
    operation.update(extra)
    return operation


def _body(name: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": _json(_ref(name))}


def admin_openapi(config: Config | None = None) -> dict[str, Any]:
    """The description; with `config`, names that must exist in it (tiers, models, limit
    profiles, routing policies) are listed as enums, so clients and fuzzers can see them."""
    spec = _spec()
    if config is not None:
        _name_the_choices(spec["components"]["schemas"], config)
    return spec


def _name_the_choices(schemas: dict[str, Any], config: Config) -> None:
    models = {"enum": list(config.models)}
    policies = ["", *config.routing.policies]
    for name in ("TeamCreate", "TeamPatch"):
        # The module's dicts are shared between specs: change copies only.
        schema = schemas[name] = copy.deepcopy(schemas[name])
        fields = schema["properties"]
        fields["tier"] = {**fields["tier"], "enum": list(config.tiers)}
        fields["models"] = {**fields["models"], "items": models}
        fields["routing_policy"] = {**fields["routing_policy"], "enum": policies}
    for name in ("Limits", "LimitsPatch"):
        schema = schemas[name] = copy.deepcopy(schemas[name])
        fields = schema["properties"]
        fields["profile"] = {**fields["profile"], "enum": ["", *config.limit_profiles]}
        fields["models"]["propertyNames"] = models


def _spec() -> dict[str, Any]:
    not_found = _error("NotFound")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "o1-gateway admin API",
            "version": VERSION,
            "description": "Teams, their keys and their usage. Off unless the gateway has an "
            "admin key (server.admin_key / GATEWAY_ADMIN_KEY, at least 32 characters); then "
            "every request needs `Authorization: Bearer <admin key>`. Wrong keys are slowed per "
            "client address, and every change is written to the audit log.",
        },
        "security": [{"adminKey": []}],
        "paths": {
            "/admin/teams": {
                "get": _operation(
                    "List teams",
                    {"200": _answer("The teams.", _list_of("Team"))},
                    operationId="listTeams",
                ),
                "post": _operation(
                    "Create a team",
                    {
                        "201": _answer("The new team.", _ref("TeamCreated")),
                        "409": _error("Conflict"),
                    },
                    _body("TeamCreate"),
                    operationId="createTeam",
                ),
            },
            "/admin/teams/{name}": {
                "parameters": [_TEAM_PARAM],
                "get": _operation(
                    "Show a team",
                    {"200": _answer("The team.", _ref("Team")), "404": not_found},
                    operationId="getTeam",
                ),
                "patch": _operation(
                    "Change a team (JSON merge patch)",
                    {"200": _answer("The changed team.", _ref("Team")), "404": not_found},
                    {
                        "required": True,
                        "content": {
                            "application/merge-patch+json": {"schema": _ref("TeamPatch")},
                            **_json(_ref("TeamPatch")),
                        },
                    },
                    operationId="updateTeam",
                ),
                "delete": _operation(
                    "Delete a team and its keys",
                    {"200": _answer("Deleted.", _ref("TeamDeleted")), "404": not_found},
                    operationId="deleteTeam",
                    description="What the team owned (objects, stored responses, cached "
                    "answers, spend) stays under its name, which the deletion retires: a team "
                    "created under it later must say `inherit`. A teams-file entry still "
                    "declaring the team makes it again, inheriting, when a replica starts.",
                ),
            },
            "/admin/teams/{name}/keys": {
                "parameters": [_TEAM_PARAM],
                "get": _operation(
                    "List a team's keys",
                    {"200": _answer("The keys.", _list_of("Key")), "404": not_found},
                    operationId="listKeys",
                ),
                "post": _operation(
                    "Create a key",
                    {
                        "201": _answer(
                            "The key, with its secret (shown once).", _ref("KeyCreated")
                        ),
                        "404": not_found,
                    },
                    _body("KeyCreate", required=False),
                    operationId="createKey",
                ),
            },
            "/admin/teams/{name}/usage": {
                "parameters": [
                    _TEAM_PARAM,
                    {
                        "name": "month",
                        "in": "query",
                        "required": False,
                        "description": "A past month, YYYY-MM (default: this month).",
                        "schema": {"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"},
                    },
                ],
                "get": _operation(
                    "A month's spend, remaining budget and counts by model, endpoint and key",
                    {"200": _answer("The usage.", _ref("Usage")), "404": not_found},
                    operationId="teamUsage",
                ),
            },
            "/admin/keys/{key_id}": {
                "parameters": [_KEY_PARAM],
                "delete": _operation(
                    "Revoke a key (every replica refuses it within admission.cache_ttl_s)",
                    {"200": _answer("The revoked key.", _ref("Key")), "404": not_found},
                    operationId="revokeKey",
                ),
            },
            "/admin/objects/{kind}/{object_id}": {
                "parameters": [
                    {
                        "name": "kind",
                        "in": "path",
                        "required": True,
                        "schema": {"enum": list(ASSIGNABLE_KINDS)},
                    },
                    {
                        "name": "object_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
                    },
                ],
                "post": _operation(
                    "Give an object upstream holds (one the gateway did not make) to a team",
                    {"200": _answer("Its owner now.", _ref("Owner")), "404": not_found},
                    _body("OwnerAssign"),
                    operationId="assignObject",
                ),
            },
            "/admin/models/retiring": {
                "parameters": [
                    {
                        "name": "within_days",
                        "in": "query",
                        "required": False,
                        "description": "How far ahead to look (default: retirement.notice_days).",
                        "schema": {"type": "integer", "minimum": 0, "maximum": 36500},
                    },
                ],
                "get": _operation(
                    "Configured models shutting down within so many days, or already shut down",
                    {
                        "200": _answer("The models, soonest first.", _ref("Retiring")),
                        "400": _error("BadRequest"),
                    },
                    operationId="retiringModels",
                ),
            },
            "/admin/openapi.json": {
                "get": _operation(
                    "This description",
                    {"200": _answer("OpenAPI 3.1.", {"type": "object"})},
                    operationId="openapi",
                ),
            },
        },
        "components": {
            "securitySchemes": {
                "adminKey": {"type": "http", "scheme": "bearer", "description": "The admin key."}
            },
            "schemas": {
                "Error": _ERROR,
                "Limits": _LIMITS,
                "LimitsPatch": _LIMITS_PATCH,
                "ModelLimits": _MODEL_LIMITS,
                "TeamCreate": _TEAM_CREATE,
                "TeamPatch": _TEAM_PATCH,
                "Team": _TEAM,
                "TeamCreated": _TEAM_CREATED,
                "TeamDeleted": {
                    "type": "object",
                    "required": ["object", "name", "deleted"],
                    "properties": {
                        "object": {"const": "team"},
                        "name": {"type": "string"},
                        "deleted": {"const": True},
                    },
                },
                "KeyCreate": _KEY_CREATE,
                "Key": _KEY,
                "KeyCreated": _KEY_CREATED,
                "Usage": _USAGE,
                "Retiring": _RETIRING,
                "OwnerAssign": {
                    "type": "object",
                    "required": ["team"],
                    "additionalProperties": False,
                    "properties": {"team": {"type": "string"}},
                },
                "Owner": {
                    "type": "object",
                    "required": ["object", "kind", "id", "team"],
                    "properties": {
                        "object": {"const": "owner"},
                        "kind": {"type": "string"},
                        "id": {"type": "string"},
                        "team": {"type": "string"},
                    },
                },
            },
            "responses": {
                "BadRequest": _answer("Invalid body; `param` names the field.", _ref("Error")),
                "Unauthorized": _answer("Missing or wrong admin key.", _ref("Error")),
                "TooManyFailedKeys": _answer(
                    "Too many wrong admin keys from this address wait their turn; see retry-after.",
                    _ref("Error"),
                ),
                "NotFound": _answer("No such team or key.", _ref("Error")),
                "Conflict": _answer(
                    "The team exists already (`conflict`), or the name was a deleted team's "
                    "and the request did not say `inherit` (`team_name_retired`).",
                    _ref("Error"),
                ),
                "TooLarge": _answer("Body above server.max_body_bytes.", _ref("Error")),
                "StoreUnavailable": _answer("Redis cannot be reached; retry.", _ref("Error")),
            },
        },
    }
