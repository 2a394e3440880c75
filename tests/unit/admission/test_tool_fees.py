"""Hosted tools' fees: refused unpriced, held at `max_tool_calls` calls at the dearest price
(plus a container), charged the calls made, never more than held."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pytest

from gateway.admission.tool_fees import NO_FEES, ToolFees, search_fees, tool_fees, with_fees
from gateway.config import HostedToolsConfig, Usd
from gateway.wire.errors import GatewayError

PRICES = HostedToolsConfig(
    web_search=Usd(10_000), web_search_preview=Usd(25_000), file_search=Usd(2_500),
    code_interpreter=Usd(30_000), shell=Usd(30_000), image_generation=Usd(250_000),
    container_memory_prices={"4g": Usd(120_000)},
)  # fmt: skip
CONTAINER: dict[str, Any] = {"type": "code_interpreter", "container": {"type": "auto"}}


def test_a_request_without_hosted_tools_owes_nothing() -> None:
    fees = tool_fees({"tools": [{"type": "function", "name": "f"}]}, HostedToolsConfig())
    assert fees == NO_FEES and fees.worst_case == 0 and not fees.injected
    assert search_fees({"messages": []}, HostedToolsConfig()) == NO_FEES


@pytest.mark.parametrize(
    ("tool", "key"),
    [
        ("web_search_2025_08_26", "hosted_tools.web_search"),
        ("web_search_preview_2025_03_11", "hosted_tools.web_search_preview"),
        ("file_search", "hosted_tools.file_search"),
        ("code_interpreter", "hosted_tools.code_interpreter"),
    ],
)
def test_an_unpriced_tool_is_refused_naming_the_key(tool: str, key: str) -> None:
    body = {"tools": [{"type": "function", "name": "f"}, {"type": tool}]}
    with pytest.raises(GatewayError) as info:
        tool_fees(
            body, HostedToolsConfig(web_search=Usd(1)) if "web" not in tool else HostedToolsConfig()
        )
    exc = info.value
    assert (exc.status, exc.code, exc.param) == (400, "tool_not_priced", "tools[1].type")
    assert f"`{key}`" in exc.message


def test_the_hold_is_max_tool_calls_at_the_dearest_call_plus_one_container() -> None:
    body = {"tools": [{"type": "web_search"}, {"type": "file_search"}, CONTAINER]}
    fees = tool_fees(body, PRICES)
    assert fees.injected and fees.max_calls == 8
    assert fees.worst_case == 8 * 10_000 + 30_000
    given = tool_fees({**body, "max_tool_calls": 2}, PRICES)
    assert not given.injected and given.worst_case == 2 * 10_000 + 30_000
    assert tool_fees({**body, "max_tool_calls": 0}, PRICES).worst_case == 0
    alone = tool_fees({"tools": [CONTAINER]}, PRICES)
    assert alone.worst_case == 30_000  # code runs are billed by the container, not the call


def test_a_search_both_tools_make_is_charged_at_the_dearer() -> None:
    body = {"tools": [{"type": "web_search"}, {"type": "web_search_preview"}]}
    fees = tool_fees(body, PRICES)
    assert fees.charged({"web_search_call": 1}) == 25_000


def test_the_charge_counts_the_calls_made_and_never_passes_the_hold() -> None:
    body = {"tools": [{"type": "web_search"}, {"type": "file_search"}, CONTAINER]}
    fees = tool_fees({**body, "max_tool_calls": 3}, PRICES)
    made = {"web_search_call": 1, "file_search_call": 2, "code_interpreter_call": 4}
    assert fees.charged(made) == 10_000 + 2 * 2_500 + 30_000
    assert fees.charged({}) == 0
    assert fees.charged({"web_search_call": 50}) == fees.worst_case == 3 * 10_000 + 30_000
    assert ToolFees.from_record(fees.record()) == ToolFees(fees.per_call, fees.containers, 3)
    assert ToolFees.from_record(None) == NO_FEES


def test_fees_never_take_a_charge_past_its_hold() -> None:
    assert with_fees(100, 0, 50) == 100  # tokens alone are charged as reported
    assert with_fees(100, 30, 1_000) == 130
    assert with_fees(100, 30, 120) == 120
    assert with_fees(200, 30, 120) == 200  # the fees never lower it either


def test_chat_web_search_options_hold_and_charge_one_search() -> None:
    fees = search_fees({"web_search_options": {}}, PRICES)
    assert fees.worst_case == 10_000 and fees.charged({"web_search_call": 1}) == 10_000
    with pytest.raises(GatewayError) as info:
        search_fees({"web_search_options": {}}, HostedToolsConfig())
    assert (info.value.code, info.value.param) == ("tool_not_priced", "web_search_options")


def test_a_container_is_priced_by_its_memory() -> None:
    big = {"type": "code_interpreter", "container": {"type": "auto", "memory_limit": "4g"}}
    assert tool_fees({"tools": [big]}, PRICES).worst_case == 120_000
    huge = {"type": "code_interpreter", "container": {"type": "auto", "memory_limit": "64g"}}
    with pytest.raises(GatewayError) as info:
        tool_fees({"tools": [huge]}, PRICES)
    assert "`hosted_tools.container_memory_prices.64g`" in info.value.message
    default = {"type": "code_interpreter", "container": {"type": "auto", "memory_limit": "1g"}}
    assert tool_fees({"tools": [default]}, PRICES).worst_case == 30_000


def test_a_hosted_shell_pays_its_container_and_a_local_one_nothing() -> None:
    hosted: dict[str, Any] = {"type": "shell", "environment": {"type": "container_auto"}}
    local: dict[str, Any] = {"type": "shell", "environment": {"type": "local"}}
    assert tool_fees({"tools": [local]}, HostedToolsConfig()) == NO_FEES
    with pytest.raises(GatewayError) as info:
        tool_fees({"tools": [local, hosted]}, HostedToolsConfig())
    assert info.value.param == "tools[1].type"
    assert "`hosted_tools.shell`" in info.value.message
    fees = tool_fees({"tools": [hosted, CONTAINER]}, PRICES)
    assert fees.worst_case == 60_000  # a container each
    assert fees.charged({"shell_call": 3}) == 30_000


def test_a_stored_prompt_may_bring_any_tool_when_upstream_reads_it() -> None:
    """Every tool is held (containers at the dearest memory priced); nothing when the client
    allows no calls, or when no model reading the template serves it (it is refused there)."""
    body: dict[str, Any] = {"prompt": {"id": "pmpt_1"}, "tools": [{"type": "web_search"}]}
    assert tool_fees(body, PRICES).worst_case == 8 * 10_000  # its own tools only
    fees = tool_fees(body, PRICES, stored_prompt=True)
    assert fees.injected and fees.worst_case == 8 * 250_000 + 2 * 120_000  # eight images
    assert fees.charged({"file_search_call": 2, "shell_call": 1}) == 2 * 2_500 + 120_000
    assert fees.charged({"image_generation_call": 3}) == 3 * 250_000
    assert tool_fees({**body, "max_tool_calls": 0}, PRICES, stored_prompt=True).worst_case == 0
    with pytest.raises(GatewayError) as info:
        tool_fees({"prompt": {"id": "pmpt_1"}}, HostedToolsConfig(web_search=Usd(1)), True)
    exc = info.value
    assert (exc.status, exc.code, exc.param) == (400, "tool_not_priced", "prompt")
    assert "`hosted_tools.web_search_preview`" in exc.message
    without_images = HostedToolsConfig(**{**asdict(PRICES), "image_generation": None})
    with pytest.raises(GatewayError) as unpriced:
        tool_fees({"prompt": {"id": "pmpt_1"}}, without_images, True)
    assert "`hosted_tools.image_generation`" in unpriced.value.message


def test_a_remote_mcp_server_is_bounded_and_its_passes_held() -> None:
    """An MCP server's calls cost no fee, but each result is read in another pass over the
    conversation: the calls are bounded (`max_tool_calls` added) and those passes held."""
    body: dict[str, Any] = {"tools": [{"type": "mcp", "server_label": "x", "server_url": "u"}]}
    fees = tool_fees(body, HostedToolsConfig())
    assert fees.injected and fees.max_calls == 8 and fees.worst_case == 0
    assert fees.passes_tokens(128_000) == 8 * 128_000
    assert tool_fees({**body, "max_tool_calls": 0}, HostedToolsConfig()).passes_tokens(128_000) == 0
