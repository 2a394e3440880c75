"""The admin API under /admin: teams, their keys and their usage, for operators and the CLI.

Authenticated with `Authorization: Bearer <server.admin_key>` (GATEWAY_ADMIN_KEY). Without an
admin key configured the API does not exist: every /admin path answers 404, whatever the method.
`guard` checks the key and writes every change to the audit log.

Money is a JSON number of USD with at most 6 decimals (exact micro-dollars); requests may also
give it as a string ("12.50"). Teams show their own overrides (null: as the tier says) and,
under `effective`, what applies once the tier is taken into account. Key objects never carry
the secret; only the 201 answer of key creation has it, in `key`.

    POST   /admin/teams                  {"name", "tier", "budget_usd"?, "limits"?, "models"?,
                                         "inherit"?}: a deleted team's name is 409 unless
                                         `inherit` (the new team gets what the name kept)
    GET    /admin/teams
    GET    /admin/teams/{name}
    PATCH  /admin/teams/{name}           JSON merge patch: null resets a field to the tier's
    DELETE /admin/teams/{name}           and its keys; the name is retired (a tombstone)
    POST   /admin/teams/{name}/keys      {"name"?, "limits"?, "expires_at"? (Unix seconds)}
    GET    /admin/teams/{name}/keys
    DELETE /admin/keys/{id}              revokes; every replica refuses it within cache_ttl_s
    GET    /admin/teams/{name}/usage     a month's spend, remaining budget, counts by model,
                                         endpoint and key (?month=YYYY-MM)
    GET    /admin/openapi.json           this API as OpenAPI 3.1 (gateway.admin.openapi)
"""

from __future__ import annotations

import dataclasses
import re
import time
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, Router

from gateway.admin.guard import AdminGuard, note
from gateway.admin.memory_note import InMemoryNote
from gateway.admin.openapi import MAX_BUDGET_USD, admin_openapi
from gateway.admission.plan import model_allowed, team_budget, team_limits
from gateway.config import ConfigError, Limits, parse_section
from gateway.objects.ownership import ASSIGNABLE_KINDS
from gateway.routing.retirement import retiring
from gateway.server.body import json_problem
from gateway.server.entry import exchange_of, gateway_of
from gateway.teams.records import (
    Key,
    Team,
    key_status,
    limits_fields,
    parse_team,
    team_fields,
)
from gateway.wire import errors

KEY_FIELDS = ("name", "limits", "expires_at")
MAX_KEY_NAME_CHARS = 128


def admin_routes() -> list[BaseRoute]:
    # The names of the routes that change something are their actions in the audit log.
    routes = [
        Route("/teams", list_teams, methods=["GET"]),
        Route("/teams", create_team, methods=["POST"], name="team.create"),
        Route("/teams/{name}", get_team, methods=["GET"]),
        Route("/teams/{name}", update_team, methods=["PATCH"], name="team.update"),
        Route("/teams/{name}", delete_team, methods=["DELETE"], name="team.delete"),
        Route("/teams/{name}/keys", list_keys, methods=["GET"]),
        Route("/teams/{name}/keys", create_key, methods=["POST"], name="key.create"),
        Route("/teams/{name}/usage", team_usage, methods=["GET"]),
        Route("/keys/{key_id}", revoke_key, methods=["DELETE"], name="key.revoke"),
        Route("/objects/{kind}/{object_id}", assign_object, methods=["POST"], name="object.assign"),
        Route("/models/retiring", retiring_models, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
    ]
    router = Router(routes=routes, middleware=[Middleware(InMemoryNote)])
    return [Mount("/admin", app=AdminGuard(router))]


# -- teams ----------------------------------------------------------------------------------------


async def list_teams(request: Request) -> Response:
    gw = gateway_of(request)
    teams = await gw.teams.list_teams()
    return json({"object": "list", "data": [team_view(request, t) for t in teams]})


async def create_team(request: Request) -> Response:
    """A new team. `"inherit": true` lets it take a deleted team's name, and with it what the
    name still holds (objects, stored responses, spend); the answer and the audit line say
    when that team was deleted."""
    gw = gateway_of(request)
    body = await json_body(request)
    inherit = body.pop("inherit", False)
    if not isinstance(inherit, bool):
        raise errors.invalid_setting(f"inherit: expected true or false, got {repr(inherit)[:40]}")
    check_budget(body)
    try:
        team = parse_team(body)
    except ConfigError as exc:
        raise errors.invalid_setting(str(exc)) from exc
    exchange_of(request.scope).team = team.name
    made, inherited = await gw.teams.make_team(team, inherit)
    view = team_view(request, made)
    if inherited is not None:
        view["inherited"] = {"deleted_at": inherited.deleted_at}
        note(request.scope, inherited=view["inherited"])
    return json(view, 201)


async def get_team(request: Request) -> Response:
    return json(team_view(request, await find_team(request)))


async def update_team(request: Request) -> Response:
    gw = gateway_of(request)
    patch = await json_body(request)
    check_budget(patch)
    team = await gw.teams.update_team(request.path_params["name"], patch)
    return json(team_view(request, team))


async def delete_team(request: Request) -> Response:
    name = request.path_params["name"]
    await gateway_of(request).teams.delete_team(name)
    return json({"object": "team", "name": name, "deleted": True})


async def team_usage(request: Request) -> Response:
    """This month's usage, or a past month's (`?month=YYYY-MM`)."""
    gw = gateway_of(request)
    team = await find_team(request)
    when = datetime.now(UTC)
    month = request.query_params.get("month")
    if month is not None:
        found = MONTH.fullmatch(month)
        # Year 0 is no date, nor the month after 9999-12 (the answer's `resets_at`).
        if found is None or not 1 <= int(found[1]) < 9999:
            raise errors.invalid_setting("month: expected YYYY-MM, e.g. 2026-11")
        when = datetime(int(found[1]), int(found[2]), 1, tzinfo=UTC)
    usage = await gw.admission.usage(team.name, team_budget(gw.config, team), when)
    return json(usage)


MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


async def retiring_models(request: Request) -> Response:
    """Configured models shutting down within `?within_days=` (default: the configured notice),
    and those already shut down: what needs a successor before its day."""
    gw = gateway_of(request)
    given = request.query_params.get("within_days")
    within = gw.config.retirement.notice_days
    if given is not None:
        # ASCII digits only: `isdigit` is true of `²` too, which `int` refuses.
        if not (given.isascii() and given.isdigit()) or int(given) > MAX_DAYS:
            raise errors.invalid_setting(f"within_days: expected 0 to {MAX_DAYS}")
        within = int(given)
    today, shield = gw.today(), gw.config.retirement.shield
    found = [
        {**dataclasses.asdict(r), "successor": r.successor or None}
        for r in retiring(gw.config.models, today, within, shield)
    ]
    answer = {"object": "list", "today": today, "within_days": within, "shield": shield}
    return json({**answer, "data": found})


MAX_DAYS = 36500


def check_budget(body: dict[str, Any]) -> None:
    """Refuse budgets that parse as numbers but are none: NaN, infinities and amounts whose
    micro-dollars overflow the 64-bit integers they are stored as (a 500 otherwise)."""
    value = body.get("budget_usd")
    if value is None or isinstance(value, bool) or not isinstance(value, int | float | str):
        return  # parse_team names what is wrong with it
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return
    if not amount.is_finite() or abs(amount) > MAX_BUDGET_USD:
        raise errors.budget_too_large(value, MAX_BUDGET_USD)


async def find_team(request: Request) -> Team:
    name = request.path_params["name"]
    team = await gateway_of(request).teams.get_team(name)
    if team is None:
        raise errors.team_not_found(name)
    return team


def team_view(request: Request, team: Team) -> dict[str, Any]:
    config = gateway_of(request).config
    budget = team_budget(config, team)
    return {
        "object": "team",
        **team_fields(team),
        "effective": {
            "budget_usd": None if budget is None else budget / 1_000_000,
            "limits": limits_fields(team_limits(config, team)),
            "models": [m for m in config.models if model_allowed(config, team, m)],
        },
    }


# -- keys -----------------------------------------------------------------------------------------


async def create_key(request: Request) -> Response:
    gw = gateway_of(request)
    body = await json_body(request, empty_ok=True)
    for field in body:
        if field not in KEY_FIELDS:
            raise errors.unknown_key_field(field, KEY_FIELDS)
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > MAX_KEY_NAME_CHARS:
        raise errors.key_name_invalid(MAX_KEY_NAME_CHARS)
    expires_at = body.get("expires_at")
    if expires_at is not None and (isinstance(expires_at, bool) or not isinstance(expires_at, int)):
        raise errors.expires_at_invalid()
    try:
        limits = parse_section(Limits, body.get("limits") or {}, "limits")
    except ConfigError as exc:
        raise errors.invalid_setting(str(exc)) from exc
    key, secret = await gw.teams.create_key(request.path_params["name"], name, limits, expires_at)
    exchange_of(request.scope).key_id = key.id
    return json({**key_view(request, key), "key": secret}, 201)


async def list_keys(request: Request) -> Response:
    keys = await gateway_of(request).teams.list_keys(request.path_params["name"])
    return json({"object": "list", "data": [key_view(request, k) for k in keys]})


async def revoke_key(request: Request) -> Response:
    key = await gateway_of(request).teams.revoke_key(request.path_params["key_id"])
    exchange_of(request.scope).team = key.team
    return json(key_view(request, key))


async def assign_object(request: Request) -> Response:
    """`POST /admin/objects/{kind}/{id}` `{"team": name}`: the object is that team's from now
    on, and no longer another's (a response, whose records are kept per team, is added to the
    team's)."""
    gw = gateway_of(request)
    kind, object_id = request.path_params["kind"], request.path_params["object_id"]
    if kind not in ASSIGNABLE_KINDS:
        raise errors.invalid_setting(
            f"kind: expected one of {', '.join(ASSIGNABLE_KINDS)}, got {kind!r}"
        )
    if len(object_id) > MAX_OBJECT_ID:
        raise errors.invalid_setting(f"id: at most {MAX_OBJECT_ID} characters")
    body = await json_body(request)
    unknown = [field for field in body if field != "team"]
    if unknown:
        raise errors.unknown_key_field(unknown[0], ("team",))
    name = body.get("team")
    exchange_of(request.scope).team = str(name)
    if not isinstance(name, str) or await gw.teams.get_team(name) is None:
        raise errors.team_not_found(str(name))
    if kind == "response":
        await gw.responses.own_now(name, object_id)
    else:
        await gw.owners.assign(kind, name, object_id, time.time())
    return json({"object": "owner", "kind": kind, "id": object_id, "team": name})


MAX_OBJECT_ID = 128


def key_view(request: Request, key: Key) -> dict[str, Any]:
    # Not the digest either: nothing a caller needs, and one thing less to leak.
    return {
        "object": "key",
        "id": key.id,
        "team": key.team,
        "name": key.name,
        "hint": key.hint,
        "status": key_status(key, gateway_of(request).teams.clock()),
        "limits": limits_fields(key.limits),
        "expires_at": key.expires_at,
        "revoked": key.revoked,
        "created_at": key.created_at,
    }


async def openapi_json(request: Request) -> Response:
    return json(admin_openapi(gateway_of(request).config))


# -- JSON in and out ------------------------------------------------------------------------------


async def json_body(request: Request, empty_ok: bool = False) -> dict[str, Any]:
    limit = gateway_of(request).config.server.max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise errors.body_too_large(limit)
    body = await request.body()
    if len(body) > limit:
        raise errors.body_too_large(limit)
    if not body.strip():
        if empty_ok:
            return {}
        raise errors.invalid_json("the body is empty")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.invalid_json(json_problem(body, exc)) from exc
    if not isinstance(data, dict):
        raise errors.admin_body_not_object()
    return data


def json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")
