"""Only the one spelling of a path is accepted."""

from __future__ import annotations

import pytest

from gateway.wire.paths import is_canonical


@pytest.mark.parametrize(
    "path",
    [
        b"/v1/chat/completions",
        b"/v1/responses/resp_67cc/input_items",
        b"/v1/files/file-abc123/content",
        b"/v1/models/ft:gpt-4o-mini-2024-07-18:org:suffix:7p4lURel",
        b"/v1/models/gpt-4o-2024-08-06",
    ],
)
def test_canonical_paths_pass(path: bytes) -> None:
    assert is_canonical(path)


@pytest.mark.parametrize(
    "path",
    [
        b"/v1//chat/completions",
        b"//v1/chat/completions",
        b"/v1/chat/completions/",
        b"/v1/./chat/completions",
        b"/v1/x/../organization/usage",
        b"/v1/..",
        b"/v1/%2e%2e/organization",
        b"/v1/files%2Ffile-1",
        b"/v1/chat/completions%00",
        b"/v1/chat/completions;x=1",
        b"/v1\\organization",
        b"/v1/chat completions",
        b"/v1/caf\xc3\xa9",
        b"",
        b"/",
        b"v1/models",
    ],
)
def test_every_other_spelling_is_refused(path: bytes) -> None:
    assert not is_canonical(path)
