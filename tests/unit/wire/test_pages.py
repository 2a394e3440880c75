"""List pages as OpenAI cuts them."""

from __future__ import annotations

import pytest

from gateway.wire.errors import GatewayError
from gateway.wire.pages import page

ITEMS = [{"id": f"msg_{i}"} for i in range(5)]


def ids(answer: dict[str, object]) -> list[str]:
    data = answer["data"]
    assert isinstance(data, list)
    return [item["id"] for item in data]


def test_newest_first_by_default_and_twenty_at_most() -> None:
    answer = page(ITEMS, {})
    assert ids(answer) == ["msg_4", "msg_3", "msg_2", "msg_1", "msg_0"]
    assert answer == {
        "object": "list", "data": answer["data"], "first_id": "msg_4", "last_id": "msg_0",
        "has_more": False,
    }  # fmt: skip
    many = [{"id": f"m{i}"} for i in range(30)]
    assert len(ids(page(many, {}))) == 20 and page(many, {})["has_more"] is True


def test_a_cursor_walks_the_list_in_either_order() -> None:
    first = page(ITEMS, {"limit": "2", "order": "asc"})
    assert ids(first) == ["msg_0", "msg_1"] and first["has_more"] is True
    rest = page(ITEMS, {"limit": "2", "order": "asc", "after": "msg_1"})
    assert ids(rest) == ["msg_2", "msg_3"]
    last = page(ITEMS, {"limit": "2", "order": "asc", "after": "msg_3"})
    assert ids(last) == ["msg_4"] and last["has_more"] is False
    assert page(ITEMS, {"after": "msg_unknown"}) == {
        "object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"limit": "0"}, "integer_below_min_value"),
        ({"limit": "101"}, "integer_above_max_value"),
        ({"limit": "ten"}, "invalid_type"),
        ({"order": "newest"}, "invalid_value"),
    ],
)
def test_bad_page_parameters_are_400s(query: dict[str, str], code: str) -> None:
    with pytest.raises(GatewayError) as caught:
        page(ITEMS, query)
    assert caught.value.status == 400 and caught.value.code == code
