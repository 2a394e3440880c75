from __future__ import annotations

from pathlib import Path

import orjson

from gateway.observability.audit import AuditLog, audit_line, key_fingerprint

SECRET = "adm-0123456789-0123456789-0123456789"


def test_a_line_names_the_credential_by_fingerprint_never_by_itself() -> None:
    line = audit_line(
        0.0, key_fingerprint(SECRET), "10.0.0.7", "key.revoke", "key_0123", "success",
        team="research", key_id="key_0123", error="",
    )  # fmt: skip
    assert line == {
        "time": "1970-01-01T00:00:00.000+00:00",
        "log": "audit",
        "admin": key_fingerprint(SECRET),
        "client": "10.0.0.7",
        "action": "key.revoke",
        "target": "key_0123",
        "outcome": "success",
        "team": "research",
        "key_id": "key_0123",
    }
    assert SECRET not in orjson.dumps(line).decode()
    assert key_fingerprint(SECRET).startswith("sha256:") and len(key_fingerprint(SECRET)) == 23


def test_a_caller_chosen_target_is_cut_short() -> None:
    line = audit_line(0.0, None, "10.0.0.7", "authenticate", "GET /admin/" + "x" * 5000, "denied")
    assert len(line["target"]) == 200


def test_lines_are_appended_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"earlier": true}\n')
    log = AuditLog(str(path))
    log.write({"action": "team.create"})
    log.write({"action": "team.delete"})
    log.close()
    lines = [orjson.loads(line) for line in path.read_text().splitlines()]
    assert lines == [{"earlier": True}, {"action": "team.create"}, {"action": "team.delete"}]
