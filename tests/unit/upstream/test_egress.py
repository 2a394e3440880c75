"""Which proxy a client takes, from `upstream.proxy` and the environment."""

from __future__ import annotations

import pytest

from gateway.upstream.egress import bypassed, parse_proxy, proxy_for, tls_context

HTTPS = "https://api.openai.com/v1"


def test_the_environment_by_the_upstreams_scheme_lower_case_first() -> None:
    env = {"HTTPS_PROXY": "http://upper:3128", "https_proxy": "http://lower:3128",
           "HTTP_PROXY": "http://plain:8080"}  # fmt: skip
    found = proxy_for(HTTPS, "", env)
    assert found is not None and (found.host, found.port) == ("lower", 3128)
    plain = proxy_for("http://10.0.0.5:8000/v1", "", env)
    assert plain is not None and plain.host == "plain"
    assert proxy_for(HTTPS, "", {"HTTP_PROXY": "http://plain:8080"}) is None
    assert proxy_for(HTTPS, "", {}) is None


def test_the_config_key_wins_and_no_proxy_applies_to_both() -> None:
    found = proxy_for(HTTPS, "http://egress:3128", {"HTTPS_PROXY": "http://other:1"})
    assert found is not None and found.host == "egress"
    assert proxy_for(HTTPS, "http://egress:3128", {"NO_PROXY": ".openai.com"}) is None
    assert proxy_for(HTTPS, "", {"HTTPS_PROXY": "http://p:1", "no_proxy": "*"}) is None


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "direct"),
    [
        ("api.openai.com", 443, "openai.com", True),
        ("api.openai.com", 443, ".openai.com", True),
        ("api.openai.com", 443, "*.openai.com", True),
        ("notopenai.com", 443, "openai.com", False),
        ("api.openai.com", 443, "api.openai.com:443", True),
        ("api.openai.com", 443, "api.openai.com:8443", False),
        ("10.1.2.3", 80, "localhost, 10.0.0.0/8", True),
        ("11.1.2.3", 80, "10.0.0.0/8", False),
        ("::1", 80, "[::1]", True),
        ("api.openai.com", 443, "", False),
    ],
)
def test_no_proxy_entries(host: str, port: int, no_proxy: str, direct: bool) -> None:
    assert bypassed(host, port, no_proxy) is direct


def test_proxy_urls() -> None:
    proxy = parse_proxy("http://al%40ice:s3cret@proxy.corp:3128")
    assert (proxy.host, proxy.port) == ("proxy.corp", 3128)
    assert proxy.authorization == "Basic YWxAaWNlOnMzY3JldA=="  # al@ice:s3cret
    assert parse_proxy("proxy.corp").port == 80 and parse_proxy("proxy.corp").authorization == ""
    for unsupported in ("https://proxy.corp:443", "socks5://proxy.corp:1080"):
        with pytest.raises(ValueError, match="http:// proxy"):
            parse_proxy(unsupported)


def test_a_ca_file_that_cannot_be_read_is_named() -> None:
    with pytest.raises(ValueError, match=r"upstream\.ca_file: cannot load '/nonexistent.pem'"):
        tls_context("/nonexistent.pem")
