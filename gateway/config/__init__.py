"""Gateway configuration: typed dataclasses loaded from YAML plus environment overrides.

Rule: pure, and at the bottom of the layers with `gateway.wire`: it imports nothing from the
gateway. `load_config` takes the YAML text and an environment mapping; it reads no files and no
process state, so every rule here is testable without a filesystem. Errors name the bad key.

The sections' schema is `schema`; `values` reads dates and money; `loading` makes the sections
from YAML and the environment; `checks` holds the rules across sections.
"""

from gateway.config.checks import check_limits, lineups
from gateway.config.loading import load_config, parse_section
from gateway.config.schema import (
    DEFAULT_BASE_URL,
    EFFORTS,
    GPT_4O,
    MIN_SECRET_CHARS,
    NO_MONEY,
    O1_2024,
    O1_MINI,
    O1_PREVIEW,
    ROLES,
    AdmissionConfig,
    AllowedPath,
    BatchesConfig,
    CacheConfig,
    Capabilities,
    CompatConfig,
    Config,
    ConfigError,
    DeploymentConfig,
    FineTuningConfig,
    FineTuningPrice,
    HostedToolsConfig,
    ImageInputTokens,
    Limits,
    Lineup,
    LineupRole,
    ModelConfig,
    ModelLimits,
    ObservabilityConfig,
    PassthroughConfig,
    Price,
    RedisConfig,
    ResponsesConfig,
    RetirementConfig,
    RoutingConfig,
    RoutingPolicy,
    ServerConfig,
    SimulatorConfig,
    TierConfig,
    UpstreamConfig,
    Usd,
)  # fmt: skip
from gateway.config.values import iso_date, usd_to_micros

__all__ = [
    "DEFAULT_BASE_URL", "EFFORTS", "GPT_4O", "MIN_SECRET_CHARS", "NO_MONEY", "O1_2024", "O1_MINI",
    "O1_PREVIEW", "ROLES", "AdmissionConfig", "AllowedPath", "BatchesConfig", "CacheConfig",
    "Capabilities", "CompatConfig", "Config", "ConfigError", "DeploymentConfig",
    "FineTuningConfig", "FineTuningPrice", "HostedToolsConfig", "ImageInputTokens", "Limits",
    "Lineup", "LineupRole", "ModelConfig", "ModelLimits", "ObservabilityConfig",
    "PassthroughConfig", "Price", "RedisConfig", "ResponsesConfig", "RetirementConfig",
    "RoutingConfig", "RoutingPolicy", "ServerConfig", "SimulatorConfig", "TierConfig",
    "UpstreamConfig", "Usd", "check_limits", "iso_date", "lineups", "load_config", "parse_section",
    "usd_to_micros",
]  # fmt: skip
