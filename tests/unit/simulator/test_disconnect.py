"""Which requests the simulator finishes, and bills, when their client leaves: as OpenAI, every
answer but a stream."""

from __future__ import annotations

from gateway.simulator.disconnect import finished_when_left

FORM = "multipart/form-data; boundary=b"


def form(stream: str | None) -> bytes:
    parts = [b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n']
    if stream is not None:
        parts.append(
            b'--b\r\nContent-Disposition: form-data; name="stream"\r\n\r\n' + stream.encode()
            + b"\r\n"
        )  # fmt: skip
    return b"".join(parts) + b"--b--\r\n"


def test_a_whole_answer_is_finished_and_a_stream_is_not() -> None:
    assert finished_when_left("POST", b'{"model": "gpt-4o", "messages": []}', "application/json")
    assert finished_when_left("POST", b'{"stream": false}', "")
    assert not finished_when_left("POST", b'{"stream": true}', "application/json")
    # Speech's event stream, and a transcription form asking for one.
    assert not finished_when_left("POST", b'{"stream_format": "sse"}', "application/json")
    assert finished_when_left("POST", b'{"stream_format": "audio"}', "application/json")
    assert not finished_when_left("POST", form("true"), FORM)
    assert finished_when_left("POST", form("false"), FORM)
    assert finished_when_left("POST", form(None), FORM)


def test_what_is_no_json_object_is_answered_whole_and_only_a_post_goes_on() -> None:
    assert finished_when_left("POST", b"not json", "application/json")
    assert finished_when_left("POST", b"[1, 2]", "application/json")
    assert not finished_when_left("GET", b"", "")
    assert not finished_when_left("DELETE", b"", "")
