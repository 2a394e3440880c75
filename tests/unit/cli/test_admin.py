"""How `o1-gateway teams|keys|usage` lays out what it prints: tables and money."""

from __future__ import annotations

import pytest

from gateway.cli.admin import money, table


def test_table_pads_columns_and_aligns_numbers_right() -> None:
    text = table(["NAME", "N"], [["a", "5"], ["long-name", "1,000"]], right={1})
    assert text.splitlines() == [
        "NAME           N",
        "a              5",
        "long-name  1,000",
    ]


@pytest.mark.parametrize(
    ("usd", "shown"),
    [
        (2000, "$2,000.00"),
        (250.5, "$250.50"),
        (0.000001, "$0.000001"),
        (1234.567891, "$1,234.567891"),
    ],
)
def test_money_is_shown_without_rounding(usd: float, shown: str) -> None:
    assert money(usd) == shown
