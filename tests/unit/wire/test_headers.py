from __future__ import annotations

import pytest

from gateway.wire.headers import (
    client_response_headers,
    encoded,
    go_duration,
    unread_coding,
    upstream_request_headers,
)


def test_client_credentials_never_go_upstream() -> None:
    client = [
        (b"authorization", b"Bearer sk-gw-client"),
        (b"openai-organization", b"org-client"),
        (b"openai-project", b"proj-client"),
        (b"content-type", b"application/json"),
        (b"x-stainless-lang", b"python"),
        (b"openai-beta", b"assistants=v2"),
        (b"cookie", b"session=1"),
        (b"x-sim-fault", b"500"),
    ]
    out = upstream_request_headers(client, "sk-upstream", organization="org-gw")
    assert out["authorization"] == "Bearer sk-upstream"
    assert out["openai-organization"] == "org-gw"
    assert "openai-project" not in out
    assert out["x-stainless-lang"] == "python"
    assert out["openai-beta"] == "assistants=v2"
    assert "cookie" not in out and "x-sim-fault" not in out
    assert upstream_request_headers(client, "k", extra_prefixes=("x-sim-",))["x-sim-fault"] == "500"


def test_the_content_type_the_body_was_read_by_goes_upstream() -> None:
    client = [
        (b"content-type", b"text/plain"),
        (b"Content-Type", b"multipart/form-data; boundary=B"),
    ]
    assert upstream_request_headers(client, "k")["content-type"] == "text/plain"


def test_a_json_body_goes_upstream_said_to_be_utf8_as_the_gateway_read_and_wrote_it() -> None:
    # A charset sent on would have a parser that honours it (aiohttp, Django REST framework)
    # read the UTF-8 the gateway wrote as other text: `+AG0-odel` is `model` in UTF-7.
    for declared in ("application/json; charset=utf-7", "Application/JSON;charset=UTF-16"):
        out = upstream_request_headers([(b"content-type", declared.encode())], "k")
        assert out["content-type"] == "application/json"
    form = "multipart/form-data; boundary=B"
    assert upstream_request_headers([(b"content-type", form.encode())], "k")["content-type"] == form


def test_a_header_given_twice_goes_upstream_as_the_gateway_read_it() -> None:
    client = [
        (b"content-type", b"multipart/form-data; boundary=AAA"),
        (b"content-type", b"multipart/form-data; boundary=BBB"),
    ]
    out = upstream_request_headers(client, "k")
    assert out["content-type"] == "multipart/form-data; boundary=AAA"


def test_a_dedup_key_goes_upstream_as_its_teams_own_or_not_at_all() -> None:
    client = [(b"idempotency-key", b"k1"), (b"x-idempotency-key", b"k1")]

    def sent(team: str, salt: str = "s") -> dict[str, str]:
        return upstream_request_headers(client, "k", extra_prefixes=("x-",), team=team, salt=salt)

    a, b = sent("a"), sent("b")
    assert a["idempotency-key"] == sent("a")["idempotency-key"] != b["idempotency-key"]
    assert a["x-idempotency-key"] == a["idempotency-key"] != "k1"
    assert sent("a", "other salt")["idempotency-key"] != a["idempotency-key"]
    # On no team's behalf there is nothing to scope it to.
    assert "idempotency-key" not in sent("") and "x-idempotency-key" not in sent("")


@pytest.mark.parametrize(
    ("headers", "found"),
    [
        ([(b"content-encoding", b"gzip")], ("content-encoding", "gzip")),
        ([(b"content-encoding", b"identity, br")], ("content-encoding", "br")),
        ([(b"transfer-encoding", b"gzip, chunked")], ("transfer-encoding", "gzip")),
        ([(b"content-encoding", b"Identity"), (b"transfer-encoding", b"chunked")], None),
        ([(b"content-type", b"application/json")], None),
    ],
)
def test_a_body_coding_the_gateway_does_not_undo_is_named(
    headers: list[tuple[bytes, bytes]], found: tuple[str, str] | None
) -> None:
    assert unread_coding(headers) == found


def test_upstream_rate_limits_are_renamed_and_request_id_kept() -> None:
    # As the upstream clients hand them over: raw, names lower-cased.
    upstream = [
        (b"content-type", b"application/json"),
        (b"x-request-id", b"req_abc"),
        (b"openai-processing-ms", b"12"),
        (b"x-ratelimit-remaining-requests", b"99"),
        (b"x-ratelimit-reset-tokens", b"6m0s"),
        (b"openai-organization", b"org-gateway-secret"),
        (b"set-cookie", b"__cf_bm=1"),
    ]
    assert dict(client_response_headers(upstream)) == {
        b"content-type": b"application/json", b"x-request-id": b"req_abc",
        b"openai-processing-ms": b"12",
    }  # fmt: skip
    names = dict(client_response_headers(upstream, upstream_limits=True))
    assert names[b"x-request-id"] == b"req_abc"
    assert names[b"content-type"] == b"application/json"
    assert names[b"x-upstream-ratelimit-remaining-requests"] == b"99"
    assert names[b"x-upstream-ratelimit-reset-tokens"] == b"6m0s"
    assert not any(name.startswith(b"x-ratelimit-") for name in names)
    assert b"openai-organization" not in names and b"set-cookie" not in names
    assert names[b"openai-processing-ms"] == b"12"


def test_gateway_adds_a_request_id_when_upstream_gave_none() -> None:
    out = client_response_headers([(b"content-type", b"application/json")])
    request_id = dict(out)[b"x-request-id"]
    assert request_id.startswith(b"req_") and len(request_id) == 36


def test_own_headers_are_encoded_raw() -> None:
    assert encoded([("x-ratelimit-limit-requests", "500")]) == [
        (b"x-ratelimit-limit-requests", b"500")
    ]


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.02, "20ms"),
        (1, "1s"),
        (360, "6m0s"),
        (692.334, "11m32.334s"),
        (5776.107, "1h36m16.107s"),
        (1.5, "1.5s"),
        (0.999, "999ms"),
        (59.9999, "1m0s"),
        (3600, "1h0m0s"),
        (0, "0s"),
        (-3, "0s"),
        (float("nan"), "0s"),
        (0.0001, "1ms"),
    ],
)
def test_go_duration(seconds: float, expected: str) -> None:
    assert go_duration(seconds) == expected
