"""Values the configuration is written in: dates and USD amounts, read exactly."""

from __future__ import annotations

import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.config.schema import ConfigError


def iso_date(text: str) -> datetime.date:
    """A `YYYY-MM-DD` date; ValueError for anything else (fromisoformat alone takes more forms)."""
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise ValueError("expected YYYY-MM-DD")
    return datetime.date.fromisoformat(text)


def usd_to_micros(value: Any, path: str) -> int:
    """Parse a USD amount exactly (no float rounding) into integer micro-dollars."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{path}: expected a USD amount, got {value!r}")
    try:
        # str() first: Decimal(0.1) would carry the float's binary error into the money.
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise ConfigError(f"{path}: expected a USD amount, got {value!r}") from exc
    micros = amount * 1_000_000
    if amount < 0 or micros != micros.to_integral_value():
        raise ConfigError(f"{path}: {value!r} is not a non-negative amount in whole micro-dollars")
    return int(micros)
