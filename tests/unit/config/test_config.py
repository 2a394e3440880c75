from __future__ import annotations

import pytest

from gateway.config import (
    ConfigError,
    HostedToolsConfig,
    ImageInputTokens,
    load_config,
    usd_to_micros,
)
from tests.conftest import ROOT

SHIPPED = (ROOT / "config" / "gateway.yaml").read_text()


def test_shipped_config_loads_with_prices_in_micro_dollars() -> None:
    config = load_config(SHIPPED, {"OPENAI_API_KEY": "sk-real"})
    o1 = config.models["o1-preview"]
    assert o1.upstream == "o1-preview-2024-09-12"
    assert (o1.price.input, o1.price.cached_input, o1.price.output) == (
        15_000_000,
        7_500_000,
        60_000_000,
    )
    assert config.models["gpt-4o-mini"].price.cached_input == 75_000
    assert o1.capabilities.streaming is False and o1.capabilities.system_messages is False
    assert config.models["gpt-4o"].capabilities.tools is True
    assert config.simulate is False
    # Upstream bills the embedding models and gpt-3.5-turbo-instruct in cl100k tokens.
    assert {name for name, m in config.models.items() if m.tokenizer == "cl100k_base"} == {
        "text-embedding-3-small", "text-embedding-3-large", "gpt-3.5-turbo-instruct",
    }  # fmt: skip
    assert o1.tokenizer == "o200k_base"


def test_image_input_tokens_are_per_model_defaulting_to_gpt_4o() -> None:
    """The hold counts an image at the figures of the model it goes to: gpt-4o-mini's are about
    33 times gpt-4o's (OpenAI's pricing page); a model setting none holds gpt-4o's."""
    config = load_config(SHIPPED, {})
    mini = config.models["gpt-4o-mini"].image_input_tokens
    assert (mini.low, mini.high) == (2_833, 2_833 + 5_667 * 8) == (2_833, 48_169)
    assert config.models["gpt-4o"].image_input_tokens == ImageInputTokens(low=85, high=1_445)
    assert ImageInputTokens() == ImageInputTokens(85, 85 + 170 * 8)
    # Its fine-tunes are billed as the base is.
    assert config.models["gpt-4o-mini"].fine_tuned("ft:x").image_input_tokens == mini
    # A patch-billed model has no cheaper detail: the same figure twice is allowed.
    text = "models: {m: {upstream: x, image_input_tokens: {low: 2489, high: 2489}}}"
    assert load_config(text, {}).models["m"].image_input_tokens == ImageInputTokens(2489, 2489)
    high = load_config("models: {m: {upstream: x, image_input_tokens: {high: 3779}}}", {})
    assert high.models["m"].image_input_tokens == ImageInputTokens(low=85, high=3_779)


def test_no_upstream_key_means_simulate() -> None:
    assert load_config(SHIPPED, {}).simulate is True


def test_well_known_environment_variables_override() -> None:
    env = {
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "OPENAI_API_KEY": "sk-x",
        "REDIS_URL": "redis://r:6379/0",
    }
    config = load_config(SHIPPED, env)
    assert config.upstream.base_url == "http://127.0.0.1:9/v1"
    assert config.upstream.api_key == "sk-x"
    assert config.redis.url == "redis://r:6379/0"


def test_generic_environment_overrides_are_typed() -> None:
    env = {
        "O1GW__SERVER__MAX_BODY_BYTES": "1024",
        "O1GW__MODELS__O1-MINI__CAPABILITIES__STREAMING": "true",
        "O1GW__SIMULATOR__API_KEYS": "sk-a,sk-b",
    }
    config = load_config(SHIPPED, env)
    assert config.server.max_body_bytes == 1024
    assert config.models["o1-mini"].capabilities.streaming is True
    assert config.models["o1-preview"].capabilities.streaming is False
    assert config.simulator.api_keys == ("sk-a", "sk-b")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("server: {max_body_bytes: lots}", "server.max_body_bytes: expected an integer"),
        ("server: {body_timeout_s: 0}\nmodels: {m: {upstream: x}}", "server.body_timeout_s: must"),
        ("server: {max_connections: -1}\nmodels: {m: {upstream: x}}", "server.max_connections"),
        ("server: {max_upload_bytes: 0}\nmodels: {m: {upstream: x}}", "server.max_upload_bytes"),
        ("upstream: {timout: 3}", "upstream.timout: unknown key"),
        ("upstream: {read_timeout: 3}", "did you mean 'read_timeout_s'"),
        (
            "models: {m: {upstream: x, price: {input: abc}}}",
            "models.m.price.input: expected a USD amount",
        ),
        ("models: {m: {upstream: x, price: {inptu: 1}}}", "models.m.price.inptu: unknown key"),
        ("models: {m: {price: {input: 1}}}", "models.m.upstream: required"),
        (
            "models: {m: {upstream: x, capabilities: {streaming: maybe}}}",
            "models.m.capabilities.streaming",
        ),
        ("models: {m: {upstream: x, max_output: 0}}", "models.m.max_output"),
        (
            "models: {m: {upstream: x, price: {input: 1, audio_input: 6}}}",
            "models.m.audio_tokens_per_minute: required with price.audio_input",
        ),
        (
            "models: {m: {upstream: x, price: {input: 1, audio_output: 12}}}",
            "models.m.audio_tokens_per_character: required with price.audio_output",
        ),
        (
            "models: {m: {upstream: x, tokenizer: p50k_base}}",
            "models.m.tokenizer: expected one of o200k_base, cl100k_base, got 'p50k_base'",
        ),
        (
            "models: {m: {upstream: x, image_input_tokens: {low: 0}}}",
            "models.m.image_input_tokens.low: must be a positive number of tokens",
        ),
        (
            "models: {m: {upstream: x, image_input_tokens: {low: 1, high: -5}}}",
            "models.m.image_input_tokens.high: must be a positive number of tokens",
        ),
        (
            "models: {m: {upstream: x, image_input_tokens: {low: 2833, high: 1445}}}",
            "models.m.image_input_tokens.low: at most high (1445",
        ),
        (
            "models: {m: {upstream: x, image_input_tokens: {low: 2000}}}",  # above the default high
            "models.m.image_input_tokens.low: at most high (1445",
        ),
        (
            "models: {m: {upstream: x, image_input_tokens: {high: 2488.32}}}",
            "models.m.image_input_tokens.high: expected an integer",
        ),
        (
            "models: {m: {upstream: x, image_input_tokens: {low: true}}}",
            "models.m.image_input_tokens.low: expected an integer",
        ),
        (
            "models: {m: {upstream: x, image_input_tokens: {hihg: 3000}}}",
            "models.m.image_input_tokens.hihg: unknown key (did you mean 'high'",
        ),
        ("models: {m: {upstream: x, image_input_tokens: 48169}}", "expected a mapping"),
        ("models: {}", "models: at least one model"),
        ("upstream: {client: curl}\nmodels: {m: {upstream: x}}", "upstream.client"),
        ("- a list", "top level must be a mapping"),
        ("server: [1, 2]", "server: expected a mapping"),
        ("a: b: c", "not valid YAML"),
        (
            "models: {m: {upstream: x, fine_tuning: {training_price: 3}}}",
            "models.m.fine_tuning.price: required with a training_price",
        ),
        ("fine_tuning: {auto_epochs: 0}\nmodels: {m: {upstream: x}}", "fine_tuning.auto_epochs"),
        ("fine_tuning: {hold_s: 0}\nmodels: {m: {upstream: x}}", "fine_tuning.hold_s"),
        (
            "observability: {otel_sample_ratio: 1.5}\nmodels: {m: {upstream: x}}",
            "observability.otel_sample_ratio",
        ),
        (
            "observability: {otlp_endpoint: collector:4318}\nmodels: {m: {upstream: x}}",
            "observability.otlp_endpoint: expected an http",
        ),
        (
            "passthrough: {allow: [{path: /v1/evals, charge: free, hold_usd: 1}]}\n"
            "models: {m: {upstream: x}}",
            "hold_usd: a free path holds nothing",
        ),
        (
            "admission: {left_stream_margin_tokens: -1}\nmodels: {m: {upstream: x}}",
            "admission.left_stream_margin_tokens",
        ),
        (
            "hosted_tools: {default_max_tool_calls: 0}\nmodels: {m: {upstream: x}}",
            "hosted_tools.default_max_tool_calls",
        ),
        (
            "hosted_tools: {web_serach: 0.01}\nmodels: {m: {upstream: x}}",
            "did you mean 'web_search'",
        ),
    ],
)
def test_invalid_config_names_the_bad_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(text, {})


def test_operator_keys_are_long_and_the_metrics_port_its_own() -> None:
    with pytest.raises(ConfigError, match=r"server\.admin_key \(GATEWAY_ADMIN_KEY\): at least 32"):
        load_config(SHIPPED, {"GATEWAY_ADMIN_KEY": "x" * 31})
    with pytest.raises(ConfigError, match=r"server\.metrics_key \(GATEWAY_METRICS_KEY\)"):
        load_config(SHIPPED, {"GATEWAY_METRICS_KEY": "short"})
    with pytest.raises(ConfigError, match=r"server\.metrics_port: must differ"):
        load_config(SHIPPED, {"O1GW__SERVER__METRICS_PORT": "8080"})
    with pytest.raises(ConfigError, match=r"server\.metrics_port: expected a port"):
        load_config(SHIPPED, {"O1GW__SERVER__METRICS_PORT": "70000"})
    config = load_config(SHIPPED, {"GATEWAY_ADMIN_KEY": "x" * 32, "GATEWAY_METRICS_KEY": "y" * 32})
    assert (config.server.admin_key, config.server.metrics_key) == ("x" * 32, "y" * 32)
    # Safe by default: no metrics key and no metrics port, so /metrics is served nowhere.
    shipped = load_config(SHIPPED, {}).server
    assert (shipped.admin_key, shipped.metrics_key, shipped.metrics_port) == ("", "", 0)


def test_invalid_environment_override_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"server\.port: expected an integer"):
        load_config(SHIPPED, {"O1GW__SERVER__PORT": "eighty"})


def test_usd_amounts_are_exact_integers() -> None:
    assert usd_to_micros(0.1, "p") == 100_000
    assert usd_to_micros("0.075", "p") == 75_000
    assert usd_to_micros(50_000, "p") == 50_000_000_000
    with pytest.raises(ConfigError, match="whole micro-dollars"):
        usd_to_micros("0.0000001", "p")
    with pytest.raises(ConfigError):
        usd_to_micros(-1, "p")
    with pytest.raises(ConfigError):
        usd_to_micros(True, "p")


def test_hosted_tools_ship_unpriced_and_take_exact_prices() -> None:
    shipped = load_config(SHIPPED, {})
    assert shipped.hosted_tools == HostedToolsConfig()  # no prices: every hosted tool refused
    assert shipped.hosted_tools.web_search is None
    config = load_config(
        SHIPPED,
        {"O1GW__HOSTED_TOOLS__FILE_SEARCH": "0.0025", "O1GW__HOSTED_TOOLS__WEB_SEARCH": "0"},
    )
    assert config.hosted_tools.file_search == 2_500
    assert config.hosted_tools.web_search == 0  # configured free, not unset
    assert config.hosted_tools.default_max_tool_calls == 8


def test_cached_input_defaults_to_half_the_input_price() -> None:
    config = load_config("models: {m: {upstream: x, price: {input: 3, output: 12}}}", {})
    assert config.models["m"].price.cached_input == 1_500_000


def test_cache_writes_default_to_the_input_price_and_ship_for_todays_models() -> None:
    config = load_config("models: {m: {upstream: x, price: {input: 3, output: 12}}}", {})
    assert config.models["m"].price.cache_write == 3_000_000
    shipped = load_config(SHIPPED, {}).models
    assert shipped["gpt-6-luna"].price.cache_write == 125_000
    assert shipped["gpt-6.1-sol"].price.cache_write == 2_500_000
    assert shipped["gpt-4o"].price.cache_write == shipped["gpt-4o"].price.input


def test_routing_aliases_are_policies_over_configured_models() -> None:
    config = load_config(SHIPPED, {})
    assert set(config.routing.policies) == {"auto", "auto-cheap", "auto-best"}
    assert config.routing.policies["auto-cheap"].preview_model == "o1-mini"
    with pytest.raises(
        ConfigError, match=r"routing\.policies\.cheap\.preview_model: unknown model"
    ):
        load_config(SHIPPED, {"O1GW__ROUTING__POLICIES": "{cheap: {preview_model: o1}}"})
    with pytest.raises(
        ConfigError, match=r"routing\.policies\.gpt-4o: the name of a configured model"
    ):
        load_config(SHIPPED, {"O1GW__ROUTING__POLICIES": "{gpt-4o: {}}"})


def test_fine_tunable_models_carry_their_training_and_fine_tuned_prices() -> None:
    config = load_config(SHIPPED, {})
    mini = config.models["gpt-4o-mini"]
    assert mini.fine_tuning.training_price == 3_000_000  # $3 per 1M trained tokens
    assert mini.fine_tuning.price.cached_input == 150_000
    assert config.models["gpt-4o"].fine_tuning.training_price == 25_000_000
    assert not config.models["o1-mini"].fine_tuning.training_price  # not fine-tuned
    assert config.fine_tuning.auto_epochs == 10
    name = "ft:gpt-4o-mini-2024-07-18:org:demo:abc123"
    tuned = mini.fine_tuned(name)
    assert tuned.upstream == name and tuned.price == mini.fine_tuning.price
    assert tuned.fallbacks == () and tuned.max_output == mini.max_output
    assert not tuned.fine_tuning.training_price


def test_audio_tokens_are_priced_apart_from_text_tokens() -> None:
    config = load_config(SHIPPED, {})
    tts = config.models["gpt-4o-mini-tts"]
    assert (tts.price.input, tts.price.output, tts.price.audio_output) == (600_000, 0, 12_000_000)
    assert tts.audio_tokens_per_character == 3 and tts.priced
    for name, text, audio, out in (
        ("gpt-4o-transcribe", 2_500_000, 6_000_000, 10_000_000),
        ("gpt-4o-mini-transcribe", 1_250_000, 3_000_000, 5_000_000),
    ):
        model = config.models[name]
        assert (model.price.input, model.price.audio_input, model.price.output) == (
            text,
            audio,
            out,
        )
        assert model.audio_tokens_per_minute == 1000 and model.max_audio_minutes == 30
    assert config.models["whisper-1"].price.audio_input == 0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"O1GW__SERVER__MAX_JSON_DEPTH": "255"}, "server.max_json_depth: from 1 to 254"),
        ({"O1GW__ADMISSION__SERVICE_TIERS": '{"default": 100}'}, "must price 'auto'"),
        ({"O1GW__ADMISSION__SERVICE_TIERS": '{"auto": 0}'}, "service_tiers.auto: a whole"),
    ],
)
def test_limits_the_gateway_cannot_honour_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(SHIPPED, env)
