"""Loading: YAML text and environment overrides made into the typed sections of `schema`,
each value checked against its field's type (an unknown key named with the closest known one),
then the whole checked (`checks`)."""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, Union

import yaml

from gateway.config.checks import check, resolve_policies
from gateway.config.schema import Config, ConfigError, Price, Usd
from gateway.config.values import usd_to_micros

# Well-known variables users already set for OpenAI SDKs; everything else uses O1GW__SECTION__KEY.
_ENV_ALIASES: dict[str, tuple[str, ...]] = {
    "OPENAI_BASE_URL": ("upstream", "base_url"),
    "OPENAI_API_KEY": ("upstream", "api_key"),
    "OPENAI_ORG_ID": ("upstream", "organization"),
    "OPENAI_PROJECT_ID": ("upstream", "project"),
    "REDIS_URL": ("redis", "url"),
    "GATEWAY_ADMIN_KEY": ("server", "admin_key"),
    "GATEWAY_METRICS_KEY": ("server", "metrics_key"),
}
_ENV_PREFIX = "O1GW__"


def load_config(text: str, env: Mapping[str, str], source: str = "config") -> Config:
    """Parse YAML text, apply environment overrides, validate, and build a Config."""
    try:
        raw = yaml.safe_load(text) if text.strip() else {}
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: an impossible date
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    raw = _unshare(raw)
    _apply_env(raw, env)
    config = resolve_policies(_build(Config, raw, ""))
    check(config)
    if not config.upstream.api_key:
        # No upstream key means nobody can be served for real: serve from the simulator.
        config = dataclasses.replace(config, simulate=True)
    return config


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, path in _ENV_ALIASES.items():
        value = env.get(name)
        if value:
            _set_path(raw, path, value)
    for name, value in env.items():
        if name.startswith(_ENV_PREFIX):
            path = tuple(part.lower() for part in name[len(_ENV_PREFIX) :].split("__"))
            _set_path(raw, path, _env_value(value))


def _env_value(value: str) -> Any:
    """YAML parsing gives "5" -> 5, "true" -> True, "[a, b]" -> list, like the file would; what
    YAML cannot read (an impossible date) stays text, for the checks to name."""
    try:
        return yaml.safe_load(value) if value else ""
    except (yaml.YAMLError, ValueError):
        return value


def _unshare(node: Any) -> Any:
    """Copy without YAML anchor sharing, so an override of one model's aliased table stays local."""
    if isinstance(node, dict):
        return {key: _unshare(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_unshare(value) for value in node]
    return node


def _set_path(raw: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = raw
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


T = TypeVar("T")


def parse_section(cls: type[T], raw: Any, path: str = "") -> T:
    """Validate and build one dataclass (a team, a key, limits) from parsed YAML or JSON."""
    return _build(cls, raw, path)


def _build(cls: type[T], raw: Any, path: str) -> T:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{key_path}: unknown key{hint}")
        kwargs[key] = _convert(hints[key], value, key_path)
    return cls(**kwargs)


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return None
        return _convert(next(a for a in typing.get_args(tp) if a is not type(None)), value, path)
    if tp is Price:
        return _price(value, path)
    if tp is Usd:
        return Usd(usd_to_micros(value, path))
    if dataclasses.is_dataclass(tp):
        return _build(tp, value if value is not None else {}, path)  # type: ignore[arg-type]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        _, vtype = typing.get_args(tp)
        return {str(k): _convert(vtype, v, f"{path}.{k}") for k, v in value.items()}
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
        (item,) = typing.get_args(tp)[:1]
        return tuple(_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, datetime.date):  # YAML reads an unquoted 2025-07-28 as a date
            return value.isoformat()
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{path}: unsupported type {tp!r}")  # pragma: no cover - schema bug


def _price(value: Any, path: str) -> Price:
    if not isinstance(value, dict):
        raise ConfigError(
            f"{path}: expected a mapping of input/cached_input/cache_write/output/audio_input/"
            "audio_output USD per 1M tokens (and long_context_above)"
        )
    allowed = {
        "input", "cached_input", "cache_write", "output", "audio_input", "audio_output",
        "long_context_above",
    }  # fmt: skip
    for key in value:
        if key not in allowed:
            raise ConfigError(f"{path}.{key}: unknown key (expected one of {sorted(allowed)})")
    inp = usd_to_micros(value.get("input", 0), f"{path}.input")
    # Cached input defaults to half price, as OpenAI bills it.
    cached = (
        usd_to_micros(value["cached_input"], f"{path}.cached_input")
        if "cached_input" in value
        else inp // 2
    )
    # Prompt-cache writes cost the input price unless the model bills them apart.
    write = (
        usd_to_micros(value["cache_write"], f"{path}.cache_write")
        if "cache_write" in value
        else inp
    )
    out = usd_to_micros(value.get("output", 0), f"{path}.output")
    audio = {
        kind: usd_to_micros(value.get(kind, 0), f"{path}.{kind}")
        for kind in ("audio_input", "audio_output")
    }
    above = value.get("long_context_above", 0)
    if isinstance(above, bool) or not isinstance(above, int) or above < 0:
        raise ConfigError(f"{path}.long_context_above: expected a number of input tokens")
    return Price(
        input=inp,
        cached_input=cached,
        output=out,
        long_context_above=above,
        cache_write=write,
        **audio,
    )
