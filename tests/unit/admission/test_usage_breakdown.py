from __future__ import annotations

from gateway.admission.usage_breakdown import (
    UNKNOWN,
    breakdown,
    label_with_model,
    parse_label,
    rows,
    usage_label,
)

CHAT_A = usage_label("gpt-4o", "chat", "key_a")
CHAT_B = usage_label("gpt-4o", "chat", "key_b")
EMBED_A = usage_label("text-embedding-3-small", "embeddings", "key_a")
FIELDS = {
    f"cost:{CHAT_A}": 500,
    f"requests:{CHAT_A}": 2,
    f"prompt:{CHAT_A}": 20,
    f"completion:{CHAT_A}": 40,
    f"cached:{CHAT_A}": 5,
    f"reasoning:{CHAT_A}": 3,
    f"cost:{CHAT_B}": 250,
    f"requests:{CHAT_B}": 1,
    f"expired:{CHAT_B}": 1,
    f"cost:{EMBED_A}": 7,
    f"requests:{EMBED_A}": 3,
    f"prompt:{EMBED_A}": 300,
}


def test_a_label_names_model_endpoint_and_key_and_reads_back() -> None:
    assert CHAT_A == "gpt-4o\tchat\tkey_a"
    assert parse_label(CHAT_A) == ("gpt-4o", "chat", "key_a")
    assert parse_label(usage_label("", "files", "")) == ("", "files", "")
    # Split from the right: a model whose name holds the separator still reads whole.
    assert parse_label(usage_label("odd\tname", "chat", "k")) == ("odd\tname", "chat", "k")


def test_a_label_with_another_model_keeps_endpoint_and_key() -> None:
    assert (
        label_with_model(usage_label("", "threads", "key_a"), "gpt-4o") == "gpt-4o\tthreads\tkey_a"
    )


def test_old_fields_without_endpoint_or_key_read_as_unknown() -> None:
    assert parse_label("o1-preview") == ("o1-preview", UNKNOWN, UNKNOWN)
    view = breakdown({"cost:o1-preview": 9, "requests:o1-preview": 1, f"cost:{CHAT_A}": 1})
    assert view["by_endpoint"]["unknown"]["cost_micros"] == 9
    assert view["by_key"]["unknown"]["requests"] == 1
    assert view["by_model"]["o1-preview"]["cost_micros"] == 9


def test_each_breakdown_sums_the_rows_of_its_names() -> None:
    view = breakdown(FIELDS)
    assert view["by_model"]["gpt-4o"] == {
        "requests": 3,
        "prompt_tokens": 20,
        "completion_tokens": 40,
        "cached_tokens": 5,
        "reasoning_tokens": 3,
        "expired_holds": 1,
        "cost_micros": 750,
        "cost_usd": 0.00075,
    }
    assert {k: v["cost_micros"] for k, v in view["by_endpoint"].items()} == {
        "chat": 750,
        "embeddings": 7,
    }
    assert {k: v["cost_micros"] for k, v in view["by_key"].items()} == {"key_a": 507, "key_b": 250}
    assert {k: v["requests"] for k, v in view["by_key"].items()} == {"key_a": 5, "key_b": 1}
    # Every breakdown adds up to the same totals.
    for dimension in ("by_model", "by_endpoint", "by_key"):
        assert sum(v["cost_micros"] for v in view[dimension].values()) == 757
        assert sum(v["prompt_tokens"] for v in view[dimension].values()) == 320


def test_rows_are_every_label_sorted_with_its_counts() -> None:
    view = breakdown(FIELDS)
    assert [(r["model"], r["endpoint"], r["key"], r["cost_micros"]) for r in view["rows"]] == [
        ("gpt-4o", "chat", "key_a", 500),
        ("gpt-4o", "chat", "key_b", 250),
        ("text-embedding-3-small", "embeddings", "key_a", 7),
    ]
    assert view["rows"][2]["prompt_tokens"] == 300 and view["rows"][2]["cost_usd"] == 0.000007


def test_an_empty_month_and_unknown_kinds() -> None:
    assert breakdown({}) == {"by_model": {}, "by_endpoint": {}, "by_key": {}, "rows": []}
    # A kind the views do not know (written by a later version) is left out, not misread.
    assert rows({f"future:{CHAT_A}": 3}) == {}
