"""`o1-gateway teams|keys|usage` against a running gateway, in-process."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import httpx
import openai
import pytest

from gateway.cli.admin import MEMORY_NOTE
from gateway.cli.main import main
from tests.conftest import CLIENT_KEY, GatewayFactory, ServerThread, free_port

ADMIN_KEY = "adm-cli-key-0123456789-0123456789"
Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def gateway(start_gateway: GatewayFactory) -> ServerThread:
    return start_gateway(server={"admin_key": ADMIN_KEY})


@pytest.fixture
def cli(gateway: ServerThread, capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run one CLI command against the gateway; returns (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([*argv, "--url", gateway.url, "--admin-key", ADMIN_KEY])
        out, err = capsys.readouterr()
        # This gateway's store is in its memory, which each command that reaches it notes
        # first (tests/server/cli/test_main.py checks the note).
        return code, out, err.removeprefix(MEMORY_NOTE + "\n")

    return run


def columns(header: str, row: str) -> dict[str, str]:
    """Cells of a table row, cut at the header's column starts (left-aligned columns)."""
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    ends = [*starts[1:], None]
    return {name: row[s:e].strip() for name, s, e in zip(names, starts, ends, strict=True)}


def test_teams_create_list_show_update_delete(cli: Cli) -> None:
    code, out, _ = cli(
        "teams", "create", "web", "--tier", "tier-2", "--budget-usd", "250.5",
        "--rpm", "100", "--models", "gpt-4o-mini, gpt-4o",
    )  # fmt: skip
    assert code == 0
    assert "Created team web." in out
    assert re.search(r"budget\s+\$250\.50 per month", out)
    assert re.search(r"models\s+gpt-4o, gpt-4o-mini", out)  # in the config's order

    code, out, _ = cli("teams", "list")
    header, *rows = out.strip().splitlines()
    assert header.split() == ["NAME", "TIER", "BUDGET/MONTH", "RPM", "TPM", "MODELS"]
    by_name = {r.split()[0]: r for r in rows}
    assert set(by_name) == {"test", "web"}
    # Columns line up: each cell starts where its header does.
    assert header.index("TIER") == by_name["web"].index("tier-2") == by_name["test"].index("tier-5")
    budget = header.index("BUDGET/MONTH")
    assert by_name["web"][budget:].startswith("$250.50 ")
    assert by_name["test"][budget:].startswith("$50,000.00 (tier) ")
    # Numbers align right, under the end of their header.
    rpm_end, tpm_end = header.index("RPM") + 3, header.index("TPM") + 3
    assert by_name["web"][:rpm_end].endswith(" 100") and by_name["test"][:rpm_end].endswith(
        "10,000"
    )
    assert by_name["web"][:tpm_end].endswith(" 450,000")

    code, out, _ = cli("teams", "update", "web", "--budget-usd", "tier", "--tpm", "9000")
    assert code == 0
    assert re.search(r"budget\s+\$500\.00 \(tier\) per month", out)
    assert "100 RPM; 9,000 TPM" in out

    code, out, _ = cli("teams", "show", "web")
    assert code == 0 and "tier-2" in out and "No keys." in out
    assert re.search(r"upstream key\s+the gateway's", out)

    code, out, _ = cli("teams", "update", "web", "--upstream-key-env", "WEB_OPENAI_KEY")
    assert code == 0 and re.search(r"upstream key\s+\$WEB_OPENAI_KEY", out)
    code, _, err = cli("teams", "update", "web", "--upstream-key-env", "sk-not-a-name")
    assert code == 1 and "upstream_key_env" in err
    code, out, _ = cli("teams", "update", "web", "--upstream-key-env", "")
    assert code == 0 and re.search(r"upstream key\s+the gateway's", out)

    code, out, _ = cli("teams", "delete", "web")
    assert code == 0 and out.startswith("Deleted team web and its keys.\n")
    assert "only with `teams create --inherit`" in out
    code, _, err = cli("teams", "show", "web")
    assert (code, err.strip()) == (1, "error: Team 'web' was not found.")


def test_a_teams_wandb_entity_and_projects_are_set_and_cleared(cli: Cli) -> None:
    """Where a team's fine-tuning jobs may send their metrics: none unless the admin allows
    an entity; projects of no entity are refused."""
    code, out, _ = cli("teams", "create", "ml", "--tier", "tier-2")
    assert code == 0 and re.search(r"W&B integrations\s+refused", out)
    code, _, err = cli("teams", "update", "ml", "--wandb-projects", "parrots")
    assert code == 1 and "set wandb_entity too" in err
    code, out, _ = cli(
        "teams", "update", "ml", "--wandb-entity", "ml-pirates", "--wandb-projects", "a, b"
    )
    assert code == 0 and re.search(r"W&B integrations\s+entity ml-pirates, projects a, b", out)
    code, out, _ = cli("teams", "update", "ml", "--wandb-projects", "")
    assert code == 0 and re.search(r"W&B integrations\s+entity ml-pirates, any project", out)
    code, out, _ = cli("teams", "update", "ml", "--wandb-entity", "")
    assert code == 0 and re.search(r"W&B integrations\s+refused", out)


def test_a_deleted_teams_name_is_taken_again_only_with_inherit(cli: Cli) -> None:
    assert cli("teams", "create", "web", "--tier", "tier-2")[0] == 0
    assert cli("teams", "delete", "web")[0] == 0
    code, out, err = cli("teams", "create", "web", "--tier", "tier-1")
    assert (code, out) == (1, "")
    assert err.startswith("error: The name 'web' belonged to a team deleted on ")
    assert "--inherit" in err
    assert cli("teams", "show", "web")[0] == 1  # nothing was made
    code, out, _ = cli("teams", "create", "web", "--tier", "tier-1", "--inherit")
    assert code == 0
    assert re.match(
        r"Created team web\.\nIt inherits what the team web deleted on \d{4}-\d\d-\d\d "
        r"\d\d:\d\d UTC left under the name: its objects and spend\.\n\n",
        out,
    ), out
    assert re.search(r"tier\s+tier-1", out)
    # A name never used needs no flag, and the flag asks for nothing there.
    code, out, _ = cli("teams", "create", "fresh", "--tier", "tier-1", "--inherit")
    assert code == 0 and out.startswith("Created team fresh.\n\n")


def test_keys_create_prints_the_secret_once(cli: Cli, gateway: ServerThread) -> None:
    code, out, _ = cli(
        "keys", "create", "test", "--name", "ci", "--expires-in-days", "30", "--rpm", "5"
    )
    assert code == 0
    [secret] = re.findall(r"sk-gw-[A-Za-z0-9_-]{40}", out)
    assert out.count(secret) == 1
    assert "will not be shown again" in out
    key_id = re.search(r"Created key (key_[0-9a-f]{16}) for team test", out)
    assert key_id is not None
    models = httpx.get(f"{gateway.url}/v1/models", headers={"authorization": f"Bearer {secret}"})
    assert models.status_code == 200

    code, out, _ = cli("keys", "list", "test")
    assert code == 0 and secret[6:-4] not in out
    header, *rows = out.strip().splitlines()
    assert header.split() == ["ID", "NAME", "KEY", "STATUS", "CREATED", "EXPIRES", "LIMITS"]
    [row] = [r for r in rows if r.startswith(key_id[1])]
    cells = columns(header, row)
    assert (cells["NAME"], cells["STATUS"], cells["LIMITS"]) == ("ci", "active", "5 RPM")
    assert cells["KEY"] == f"{secret[:6]}…{secret[-4:]}"
    assert cells["EXPIRES"].endswith("UTC")

    code, out, _ = cli("keys", "revoke", key_id[1])
    assert (code, out.strip()) == (0, f"Revoked key {key_id[1]} of team test.")
    _, out, _ = cli("keys", "list", "test")
    assert "revoked" in next(r for r in out.splitlines() if r.startswith(key_id[1]))


def test_usage_prints_the_budget_and_a_table(cli: Cli) -> None:
    code, out, _ = cli("usage", "test")
    assert code == 0
    assert out.startswith("Team test, ")
    assert re.search(r"budget\s+\$50,000\.00", out)
    assert re.search(r"remaining\s+\$", out)
    code, out, _ = cli("usage", "test", "--month", "2025-02", "--json")
    assert code == 0 and json.loads(out)["period"] == "2025-02"


def test_usage_breaks_spend_down_by_model_endpoint_and_key(cli: Cli, gateway: ServerThread) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    client.embeddings.create(model="text-embedding-3-small", input="Hi")
    code, out, _ = cli("usage", "test", "--json")
    usage = json.loads(out)
    (key_id,) = usage["by_key"]
    code, out, _ = cli("usage", "test", "--rows")
    assert code == 0
    tables = out.strip().split("\n\n")[2:]  # after the title and the summary
    assert [t.split()[0] for t in tables] == ["MODEL", "ENDPOINT", "KEY", "MODEL"]
    by_endpoint = tables[1].splitlines()
    assert by_endpoint[0].split() == [
        "ENDPOINT", "REQUESTS", "PROMPT", "CACHED", "COMPLETION", "REASONING", "EXPIRED", "COST",
    ]  # fmt: skip
    assert [line.split()[:2] for line in by_endpoint[1:]] == [["chat", "1"], ["embeddings", "1"]]
    assert tables[2].splitlines()[1].split()[:2] == [key_id, "2"]
    rows = [line.split()[:4] for line in tables[3].splitlines()[1:]]
    assert rows == [
        ["gpt-4o", "chat", key_id, "1"],
        ["text-embedding-3-small", "embeddings", key_id, "1"],
    ]


def test_api_errors_exit_1_with_the_message(cli: Cli) -> None:
    code, _, err = cli("teams", "create", "x", "--tier", "gold")
    assert code == 1
    assert err.startswith("error: tier: unknown tier 'gold'")
    code, _, err = cli("teams", "update", "test")
    assert code == 1 and err.startswith("error: nothing to update")
    code, _, err = cli("keys", "revoke", "key_0000000000000000")
    assert (code, err.strip()) == (1, "error: Key 'key_0000000000000000' was not found.")


def test_url_and_admin_key_come_from_the_environment(
    gateway: ServerThread, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("O1GW_URL", gateway.url)
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", ADMIN_KEY)
    assert main(["teams", "list"]) == 0
    assert "test" in capsys.readouterr().out
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", "wrong")
    assert main(["teams", "list"]) == 1
    assert capsys.readouterr().err.strip() == "error: Incorrect admin key provided."
    monkeypatch.delenv("GATEWAY_ADMIN_KEY")
    assert main(["teams", "list"]) == 1
    assert "GATEWAY_ADMIN_KEY" in capsys.readouterr().err


def test_an_unreachable_gateway_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["teams", "list", "--url", url, "--admin-key", "k"]) == 1
    assert capsys.readouterr().err.startswith(f"error: cannot reach the gateway at {url}")


def test_models_retiring_lists_shutdowns_within_the_notice_and_their_successors(
    start_gateway: GatewayFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    server = start_gateway(server={"admin_key": ADMIN_KEY}, retirement={"today": "2026-12-05"})
    common = ["--url", server.url, "--admin-key", ADMIN_KEY]
    assert main(["models", "retiring", *common]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "Models shutting down within 90 days of 2026-12-05:"
    rows = {columns(lines[2], line)["MODEL"]: columns(lines[2], line) for line in lines[3:]}
    assert rows["gpt-4o"] == {
        "MODEL": "gpt-4o", "SHUTDOWN": "2027-01-14", "DAYS": "40 left", "SUCCESSOR": "gpt-6-luna"
    }  # fmt: skip
    assert (rows["o1-preview"]["DAYS"], rows["o1-preview"]["SUCCESSOR"]) == (
        "shut down", "gpt-6.2-astra"
    )  # fmt: skip
    assert rows["dall-e-3"]["SUCCESSOR"] == "none: refused from then"
    # Soonest first; models with no shutdown, or one further off, are not listed.
    assert list(rows)[:2] == ["o1-preview", "o1-mini"]
    assert "gpt-6-luna" not in rows and "tts-1" not in rows
    # Transcription ends with no successor named.
    assert rows["whisper-1"] == {
        "MODEL": "whisper-1", "SHUTDOWN": "2027-02-26", "DAYS": "83 left",
        "SUCCESSOR": "none: refused from then",
    }  # fmt: skip
    assert main(["models", "retiring", "--days", "0", "--json", *common]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["within_days"] == 0 and found["today"] == "2026-12-05"
    assert "gpt-4o" not in [m["model"] for m in found["data"]]
    assert {"model": "o1-mini", "shutdown": "2025-10-27", "days_left": -404,
            "successor": "gpt-6.1-sol"} in found["data"]  # fmt: skip


def test_models_retiring_names_no_successor_with_the_shield_off(
    start_gateway: GatewayFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing is substituted: requests naming o1-preview go upstream as named, which refuses
    # them, so no successor is said to serve it; its day is still shown.
    server = start_gateway(
        server={"admin_key": ADMIN_KEY}, retirement={"today": "2026-12-05", "shield": False}
    )
    common = ["--url", server.url, "--admin-key", ADMIN_KEY]
    assert main(["models", "retiring", *common]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    rows = {columns(lines[2], line)["MODEL"]: columns(lines[2], line) for line in lines[3:-2]}
    assert rows["o1-preview"] == {
        "MODEL": "o1-preview", "SHUTDOWN": "2025-07-28", "DAYS": "shut down",
        "SUCCESSOR": "none: shield off",
    }  # fmt: skip
    assert {row["SUCCESSOR"] for row in rows.values()} == {"none: shield off"}
    assert lines[-1] == (
        "retirement.shield is off: no successor stands in; requests naming these models go"
        " upstream as named, which refuses them from their shutdown day."
    )
    assert main(["models", "retiring", "--json", *common]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["shield"] is False
    assert {"model": "gpt-4o", "shutdown": "2027-01-14", "days_left": 40,
            "successor": None} in found["data"]  # fmt: skip


def test_models_retiring_says_a_model_is_shut_down_on_its_day(
    start_gateway: GatewayFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    # From 2027-01-14 itself requests naming gpt-4o are served by gpt-6-luna: no day is left.
    server = start_gateway(server={"admin_key": ADMIN_KEY}, retirement={"today": "2027-01-14"})
    assert main(["models", "retiring", "--url", server.url, "--admin-key", ADMIN_KEY]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {columns(lines[2], line)["MODEL"]: columns(lines[2], line) for line in lines[3:]}
    assert rows["gpt-4o"]["DAYS"] == "shut down"
