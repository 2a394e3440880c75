"""`o1-gateway teams|keys|usage`: thin clients of the admin API that print readable tables.

The gateway URL and admin key come from --url / --admin-key, else O1GW_URL / GATEWAY_ADMIN_KEY.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx
import orjson

COMMANDS = ("teams", "keys", "usage", "models")
DEFAULT_URL = "http://127.0.0.1:8080"
# On `teams update`, this value drops the team's own setting so the tier's applies again.
TIER = "tier"

Handler = Callable[["httpx.Client", argparse.Namespace], int]


class ApiError(Exception):
    """The gateway answered with an error, or could not be reached; the message says which."""


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"gateway URL (default: $O1GW_URL or {DEFAULT_URL})")
    common.add_argument("--admin-key", help="admin key (default: $GATEWAY_ADMIN_KEY)")

    teams = subparsers.add_parser("teams", help="create, list, show, update and delete teams")
    teams_sub = teams.add_subparsers(dest="action", required=True)
    create = teams_sub.add_parser("create", parents=[common], help="create a team")
    create.add_argument("name")
    create.add_argument("--tier", required=True)
    _team_options(create, update=False)
    create.add_argument(
        "--inherit",
        action="store_true",
        help="take the name of a deleted team, and with it the files, vector stores, batches, "
        "fine-tuning jobs, stored completions and responses and spend still kept under it "
        "(without it such a name is refused)",
    )
    create.set_defaults(handler=teams_create)
    teams_sub.add_parser("list", parents=[common], help="list teams").set_defaults(
        handler=teams_list
    )
    show = teams_sub.add_parser("show", parents=[common], help="show a team and its keys")
    show.add_argument("name")
    show.set_defaults(handler=teams_show)
    update = teams_sub.add_parser(
        "update", parents=[common], help=f"change a team's settings ('{TIER}' resets one)"
    )
    update.add_argument("name")
    update.add_argument("--tier")
    _team_options(update, update=True)
    update.set_defaults(handler=teams_update)
    delete = teams_sub.add_parser(
        "delete", parents=[common],
        help="delete a team and its keys (what it owns stays under its name, so a new team of "
        "that name needs `teams create --inherit`)",
    )  # fmt: skip
    delete.add_argument("name")
    delete.set_defaults(handler=teams_delete)

    keys = subparsers.add_parser("keys", help="create, list and revoke keys")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    key_create = keys_sub.add_parser("create", parents=[common], help="create a key for a team")
    key_create.add_argument("team")
    key_create.add_argument("--name", default="")
    key_create.add_argument("--expires-in-days", type=float)
    key_create.add_argument("--rpm", type=int, help="the key's own requests per minute")
    key_create.add_argument("--tpm", type=int, help="the key's own tokens per minute")
    key_create.set_defaults(handler=keys_create)
    key_list = keys_sub.add_parser("list", parents=[common], help="list a team's keys")
    key_list.add_argument("team")
    key_list.set_defaults(handler=keys_list)
    revoke = keys_sub.add_parser("revoke", parents=[common], help="revoke a key")
    revoke.add_argument("key_id")
    revoke.set_defaults(handler=keys_revoke)

    usage = subparsers.add_parser(
        "usage", parents=[common], help="a team's spend this month, by model, endpoint and key"
    )
    usage.add_argument("team")
    usage.add_argument("--month", help="a past month, YYYY-MM (default: this month)")
    usage.add_argument("--json", action="store_true", help="the admin API's JSON, as it is")
    usage.add_argument("--rows", action="store_true", help="also every (model, endpoint, key) row")
    usage.set_defaults(handler=team_usage)

    models = subparsers.add_parser("models", help="models upstream shuts down soon")
    models_sub = models.add_subparsers(dest="action", required=True)
    retiring = models_sub.add_parser(
        "retiring", parents=[common],
        help="models shutting down within --days (or already shut down), and their successors",
    )  # fmt: skip
    retiring.add_argument(
        "--days", type=int, help="how far ahead to look (default: retirement.notice_days)"
    )
    retiring.add_argument("--json", action="store_true", help="the admin API's JSON, as it is")
    retiring.set_defaults(handler=models_retiring)


def _team_options(parser: argparse.ArgumentParser, update: bool) -> None:
    reset = f"; '{TIER}' = as the tier says" if update else ""
    parser.add_argument("--budget-usd", help=f"monthly budget in USD{reset}")
    parser.add_argument("--rpm", type=_int_or_tier, help=f"requests per minute{reset}")
    parser.add_argument("--tpm", type=_int_or_tier, help=f"tokens per minute{reset}")
    parser.add_argument("--models", help=f"comma-separated models, narrowing the tier's{reset}")
    parser.add_argument("--profile", help=f"limit profile{reset}")
    parser.add_argument(
        "--routing-policy",
        help="the routing policy `model: auto` means for this team ('auto' = the default)",
    )
    parser.add_argument(
        "--upstream-key-env",
        help="the environment variable holding the team's own upstream key ('' = the "
        "gateway's key)",
    )
    parser.add_argument(
        "--cache",
        choices=("on", "off"),
        help="keep the team's chat and Responses answers in the response cache",
    )
    parser.add_argument(
        "--wandb-entity",
        help="the Weights & Biases entity the team's fine-tuning jobs may send metrics to "
        "('' = none: integrations refused)",
    )
    parser.add_argument(
        "--wandb-projects",
        help="comma-separated projects of that entity the jobs may report to ('' = any)",
    )


def _int_or_tier(value: str) -> int | str:
    if value == TIER:
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or '{TIER}'") from None


def run(args: argparse.Namespace) -> int:
    url = args.url or os.environ.get("O1GW_URL") or DEFAULT_URL
    admin_key = args.admin_key or os.environ.get("GATEWAY_ADMIN_KEY", "")
    if not admin_key:
        print("error: no admin key: pass --admin-key or set GATEWAY_ADMIN_KEY", file=sys.stderr)
        return 1
    import httpx  # here: the gateway process itself never needs it

    handler: Handler = args.handler
    # The tables are the output; a log line per HTTP request would only clutter them.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        with httpx.Client(
            base_url=url.rstrip("/") + "/admin",
            headers={"authorization": f"Bearer {admin_key}"},
            timeout=30.0,
            # A gateway started a moment ago (`o1-gateway serve &`, then a command) is not
            # listening yet: retry connecting for about 7 s. Only connecting is retried, so a
            # command never runs twice.
            transport=httpx.HTTPTransport(retries=5),
            event_hooks={"response": [MemoryNote()]},
        ) as client:
            return handler(client, args)
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"error: cannot reach the gateway at {url}: {exc}", file=sys.stderr)
        return 1


class MemoryNote:
    """Says once per command that what it made will not outlive the gateway, when the gateway
    keeps its store in its own memory (its answers carry `x-gateway-store: memory`)."""

    def __init__(self) -> None:
        self.said = False

    def __call__(self, response: httpx.Response) -> None:
        if self.said or response.headers.get("x-gateway-store") != "memory":
            return
        self.said = True
        print(MEMORY_NOTE, file=sys.stderr)


MEMORY_NOTE = (
    "note: this gateway keeps teams, keys and spend in its own memory (no REDIS_URL, no "
    "redis-server): what you make here is lost when it stops."
)


def call(client: httpx.Client, method: str, path: str, body: Any = None) -> Any:
    response = client.request(method, path, json=body)
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.is_error:
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict) and error.get("message"):
            raise ApiError(str(error["message"]))
        raise ApiError(f"HTTP {response.status_code}: {response.text[:200]}")
    return data


# -- teams ----------------------------------------------------------------------------------------


def teams_create(client: httpx.Client, args: argparse.Namespace) -> int:
    body = {"name": args.name, "tier": args.tier, **_team_patch(args)}
    if args.inherit:
        body["inherit"] = True
    team = call(client, "POST", "/teams", {k: v for k, v in body.items() if v is not None})
    print(f"Created team {team['name']}.")
    if team.get("inherited"):
        print(
            f"It inherits what the team {team['name']} deleted on "
            f"{when(team['inherited']['deleted_at'])} left under the name: its objects and spend."
        )
    print()
    print(describe_team(team))
    return 0


def teams_update(client: httpx.Client, args: argparse.Namespace) -> int:
    patch = _team_patch(args)
    if args.tier is not None:
        patch["tier"] = args.tier
    if not patch:
        raise ApiError(
            "nothing to update: give --tier, --budget-usd, --rpm, --tpm, --models, --profile, "
            "--routing-policy, --upstream-key-env, --cache, --wandb-entity or --wandb-projects"
        )
    team = call(client, "PATCH", f"/teams/{args.name}", patch)
    print(f"Updated team {team['name']}.\n")
    print(describe_team(team))
    return 0


def _team_patch(args: argparse.Namespace) -> dict[str, Any]:
    """A JSON merge patch: a value sets, None (from 'tier') drops the team's own setting."""
    patch: dict[str, Any] = {}
    if args.budget_usd is not None:
        # The amount travels as text so the gateway parses it exactly, without float rounding.
        patch["budget_usd"] = None if args.budget_usd == TIER else args.budget_usd
    if args.models is not None:
        patch["models"] = (
            None
            if args.models == TIER
            else [m.strip() for m in args.models.split(",") if m.strip()]
        )
    if args.routing_policy is not None:
        patch["routing_policy"] = (
            None if args.routing_policy in ("", "auto") else args.routing_policy
        )
    if args.upstream_key_env is not None:
        patch["upstream_key_env"] = args.upstream_key_env or None
    if args.cache is not None:
        patch["cache"] = args.cache == "on"
    if args.wandb_entity is not None:
        patch["wandb_entity"] = args.wandb_entity or None
        if not args.wandb_entity:
            patch["wandb_projects"] = None  # no entity, none of its projects
    if args.wandb_projects is not None:
        patch["wandb_projects"] = [p.strip() for p in args.wandb_projects.split(",") if p.strip()]
    limits = {
        name: None if value == TIER else value
        for name, value in (
            ("requests_per_minute", args.rpm),
            ("tokens_per_minute", args.tpm),
            ("profile", args.profile),
        )
        if value is not None
    }
    if limits:
        patch["limits"] = limits
    return patch


def teams_list(client: httpx.Client, args: argparse.Namespace) -> int:
    teams = call(client, "GET", "/teams")["data"]
    if not teams:
        print("No teams.")
        return 0
    rows = [
        [
            team["name"],
            team["tier"],
            _budget(team),
            count(team["effective"]["limits"].get("requests_per_minute")),
            count(team["effective"]["limits"].get("tokens_per_minute")),
            "(tier's)" if team["models"] is None else ", ".join(team["models"]) or "(none)",
        ]
        for team in teams
    ]
    print(table(["NAME", "TIER", "BUDGET/MONTH", "RPM", "TPM", "MODELS"], rows, right={3, 4}))
    return 0


def teams_show(client: httpx.Client, args: argparse.Namespace) -> int:
    team = call(client, "GET", f"/teams/{args.name}")
    keys = call(client, "GET", f"/teams/{args.name}/keys")["data"]
    print(describe_team(team))
    print()
    print(keys_table(keys) if keys else "No keys.")
    return 0


def teams_delete(client: httpx.Client, args: argparse.Namespace) -> int:
    call(client, "DELETE", f"/teams/{args.name}")
    print(f"Deleted team {args.name} and its keys.")
    print(
        f"Its objects and spend stay under the name: a new team {args.name} takes them over "
        "only with `teams create --inherit`."
    )
    return 0


def describe_team(team: dict[str, Any]) -> str:
    effective = team["effective"]
    own = describe_limits(team["limits"])
    rows = [
        ["name", team["name"]],
        ["tier", team["tier"]],
        ["budget", _budget(team) + " per month"],
        ["limits", describe_limits(effective["limits"]) + (f"  (own: {own})" if own else "")],
        ["models", ", ".join(effective["models"]) or "(none)"],
        ["routing", f"model auto -> policy {team.get('routing_policy') or 'auto'}"],
        [
            "upstream key",
            f"${team['upstream_key_env']}" if team.get("upstream_key_env") else "the gateway's",
        ],
        ["response cache", "on" if team.get("cache") else "off"],
        ["W&B integrations", _wandb(team)],
        ["created", when(team.get("created_at"))],
    ]
    return table([], rows)


def _wandb(team: dict[str, Any]) -> str:
    entity = team.get("wandb_entity")
    if not entity:
        return "refused"
    projects = team.get("wandb_projects") or []
    return f"entity {entity}, " + (f"projects {', '.join(projects)}" if projects else "any project")


def _budget(team: dict[str, Any]) -> str:
    if team["budget_usd"] is not None:
        return money(team["budget_usd"])
    return money(team["effective"]["budget_usd"]) + " (tier)"


def describe_limits(limits: dict[str, Any]) -> str:
    parts = []
    if limits.get("profile"):
        parts.append(f"profile {limits['profile']}")
    if limits.get("requests_per_minute") is not None:
        parts.append(f"{count(limits['requests_per_minute'])} RPM")
    if limits.get("tokens_per_minute") is not None:
        parts.append(f"{count(limits['tokens_per_minute'])} TPM")
    for model, per_model in (limits.get("models") or {}).items():
        caps = [
            f"{count(per_model[name])} {label}"
            for name, label in (
                ("requests_per_minute", "RPM"),
                ("tokens_per_minute", "TPM"),
                ("messages_per_week", "messages/week"),
            )
            if per_model.get(name) is not None
        ]
        if caps:
            parts.append(f"{model}: {', '.join(caps)}")
    return "; ".join(parts)


# -- keys -----------------------------------------------------------------------------------------


def keys_create(client: httpx.Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.name}
    if args.expires_in_days is not None:
        if args.expires_in_days <= 0:
            raise ApiError("--expires-in-days must be positive")
        body["expires_at"] = int(time.time() + args.expires_in_days * 86_400)
    limits = {
        name: value
        for name, value in (("requests_per_minute", args.rpm), ("tokens_per_minute", args.tpm))
        if value is not None
    }
    if limits:
        body["limits"] = limits
    key = call(client, "POST", f"/teams/{args.team}/keys", body)
    print(f"Created key {key['id']} for team {key['team']}.\n")
    print(f"    {key['key']}\n")
    print("Copy it now: it is stored only as a hash and will not be shown again.")
    return 0


def keys_list(client: httpx.Client, args: argparse.Namespace) -> int:
    keys = call(client, "GET", f"/teams/{args.team}/keys")["data"]
    print(keys_table(keys) if keys else f"Team {args.team} has no keys.")
    return 0


def keys_revoke(client: httpx.Client, args: argparse.Namespace) -> int:
    key = call(client, "DELETE", f"/keys/{args.key_id}")
    print(f"Revoked key {key['id']} of team {key['team']}.")
    return 0


def keys_table(keys: Sequence[dict[str, Any]]) -> str:
    rows = [
        [
            key["id"],
            key["name"] or "-",
            key["hint"] or "-",
            key["status"],
            when(key["created_at"]),
            when(key["expires_at"]) if key["expires_at"] else "never",
            describe_limits(key["limits"]) or "-",
        ]
        for key in keys
    ]
    return table(["ID", "NAME", "KEY", "STATUS", "CREATED", "EXPIRES", "LIMITS"], rows)


# -- usage ----------------------------------------------------------------------------------------


def team_usage(client: httpx.Client, args: argparse.Namespace) -> int:
    query = f"?month={args.month}" if args.month else ""
    usage = call(client, "GET", f"/teams/{args.team}/usage{query}")
    if args.json:
        print(orjson.dumps(usage, option=orjson.OPT_INDENT_2).decode())
        return 0
    budget = usage.get("budget_usd")
    remaining = usage.get("remaining_usd")
    print(f"Team {usage.get('team', args.team)}, {usage.get('period', 'this period')}\n")
    summary = [
        ["budget", "unlimited" if budget is None else money(budget)],
        ["spent", money(usage.get("spent_usd", 0))],
        ["held", money(usage.get("held_usd", 0)) + "  (requests in flight)"],
        ["remaining", "unlimited" if remaining is None else money(remaining)],
        ["resets", str(usage.get("resets_at", "-"))],
    ]
    print(table([], summary))
    rows: list[dict[str, Any]] = usage.get("rows") or []
    if not rows:
        print("\nNo requests this period.")
        return 0
    for title, dimension in (("MODEL", "model"), ("ENDPOINT", "endpoint"), ("KEY", "key")):
        by: dict[str, dict[str, Any]] = usage.get(f"by_{dimension}") or {}
        print()
        print(usage_table([title], [([shown(dimension, name)], by[name]) for name in by]))
    if args.rows:
        print()
        print(
            usage_table(
                ["MODEL", "ENDPOINT", "KEY"],
                [([shown(d, row[d]) for d in ("model", "endpoint", "key")], row) for row in rows],
            )
        )
    return 0


def models_retiring(client: httpx.Client, args: argparse.Namespace) -> int:
    query = f"?within_days={args.days}" if args.days is not None else ""
    found = call(client, "GET", f"/models/retiring{query}")
    if args.json:
        print(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode())
        return 0
    within, today = found.get("within_days"), found.get("today")
    models: list[dict[str, Any]] = found.get("data") or []
    if not models:
        print(f"No model shuts down within {within} days of {today}.")
        return 0
    print(f"Models shutting down within {within} days of {today}:\n")
    # With the shield off nothing is substituted: upstream refuses each from its day. (A
    # gateway that does not say runs the shield, as every one did before it said.)
    shield = found.get("shield", True)
    nobody = "none: refused from then" if shield else "none: shield off"
    rows = [
        [m["model"], m["shutdown"], _days_left(m["days_left"]), m["successor"] or nobody]
        for m in models
    ]
    print(table(["MODEL", "SHUTDOWN", "DAYS", "SUCCESSOR"], rows))
    if not shield:
        print(
            "\nretirement.shield is off: no successor stands in; requests naming these models"
            " go upstream as named, which refuses them from their shutdown day."
        )
    return 0


def _days_left(days: int) -> str:
    # On its day (0 left) a model is shut down already: its successor serves it.
    return f"{days} left" if days > 0 else "shut down"


USAGE_COLUMNS = (
    ("REQUESTS", "requests"),
    ("PROMPT", "prompt_tokens"),
    ("CACHED", "cached_tokens"),
    ("COMPLETION", "completion_tokens"),
    ("REASONING", "reasoning_tokens"),
    ("EXPIRED", "expired_holds"),
)


def usage_table(names: list[str], counted: Sequence[tuple[list[str], dict[str, Any]]]) -> str:
    """One line per name (or names): its counts and its cost."""
    lines = [
        [*label, *(count(counts.get(field, 0)) for _, field in USAGE_COLUMNS),
         money(counts.get("cost_usd", 0))]
        for label, counts in counted
    ]  # fmt: skip
    headers = [*names, *(title for title, _ in USAGE_COLUMNS), "COST"]
    return table(headers, lines, right=set(range(len(names), len(headers))))


def shown(dimension: str, name: str) -> str:
    """A breakdown's name as the table shows it: the anonymous team's key and a call that
    named no model have none."""
    if name:
        return name
    return "(anonymous)" if dimension == "key" else "-"


# -- formatting -----------------------------------------------------------------------------------


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Collection[int] = ()
) -> str:
    """Columns padded to their widest cell, two spaces apart; `right` columns align right."""
    lines = [list(headers), *map(list, rows)] if headers else [list(r) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))] if lines else []
    return "\n".join(
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ).rstrip()
        for line in lines
    )


def money(usd: float | int | None) -> str:
    if usd is None:
        return "-"
    # repr() of the API's float is its exact decimal (at most 6 places): no rounding here.
    amount = Decimal(repr(usd))
    cents = amount.quantize(Decimal("0.01"))
    return f"${cents:,.2f}" if cents == amount else f"${amount:,f}"


def count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def when(stamp: int | None) -> str:
    if not stamp:
        return "-"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
