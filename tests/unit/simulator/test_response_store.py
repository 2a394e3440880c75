"""Stored responses: key isolation, the LRU bound, and background progress by polling."""

from __future__ import annotations

from gateway.simulator.response_store import QUEUED, ResponseStore, Stored

FINAL = {"id": "resp_1", "status": "completed", "completed_at": 5, "output": [1], "usage": {}}


def test_keys_see_only_their_own_and_the_oldest_go_first() -> None:
    store = ResponseStore(2)
    store.put("a", Stored(FINAL, [], []))
    assert store.get("b", "resp_1") is None and store.get("a", "resp_1") is not None
    store.put("a", Stored({**FINAL, "id": "resp_2"}, [], []))
    store.get("a", "resp_1")  # used: now the newest
    store.put("a", Stored({**FINAL, "id": "resp_3"}, [], []))
    assert store.get("a", "resp_2") is None and store.get("a", "resp_1") is not None
    assert store.delete("a", "resp_1") and not store.delete("a", "resp_1")


def test_background_advances_one_step_per_poll() -> None:
    stored = Stored(FINAL, [], [], background=True, stage=QUEUED)
    assert stored.view()["status"] == "queued" and stored.view()["output"] == []
    assert stored.poll(9)["status"] == "in_progress"
    done = stored.poll(9)
    assert done["status"] == "completed" and done["completed_at"] == 9 and done["output"] == [1]
    assert stored.cancel()["status"] == "completed"


def test_cancel_before_the_end() -> None:
    stored = Stored(FINAL, [], [], background=True, stage=QUEUED)
    assert stored.cancel()["status"] == "cancelled"
    assert stored.poll(9)["status"] == "cancelled" and stored.view()["usage"] is None


def test_a_stored_item_is_found_by_its_id_for_its_key_only_while_its_response_is_kept() -> None:
    store = ResponseStore(2)
    given = {"id": "msg_in", "type": "message", "role": "user", "content": "Hi"}
    said = {"id": "msg_out", "type": "message", "role": "assistant", "content": []}
    store.put("a", Stored({**FINAL, "output": [said]}, [given], []))
    assert store.item("a", "msg_in") == given and store.item("a", "msg_out") == said
    assert store.item("b", "msg_out") is None and store.item("a", "msg_other") is None
    store.delete("a", "resp_1")
    assert store.item("a", "msg_out") is None
    store.put("a", Stored({**FINAL, "output": [said]}, [], []))
    store.put("a", Stored({**FINAL, "id": "resp_2"}, [], []))
    store.put("a", Stored({**FINAL, "id": "resp_3"}, [], []))  # resp_1 goes, its items with it
    assert store.item("a", "msg_out") is None
