from __future__ import annotations

import orjson

from gateway.wire import sse


def test_encode_is_one_data_event() -> None:
    assert sse.encode({"a": 1}) == b'data: {"a":1}\n\n'
    assert sse.comment() == b": keep-alive\n\n"


def test_decoder_joins_events_split_across_reads() -> None:
    stream = sse.encode({"n": 1}) + sse.comment() + sse.encode({"n": 2}) + sse.DONE
    for cut in range(1, len(stream)):
        decoder = sse.Decoder()
        events = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:]) + decoder.flush()
        assert events == [b'{"n":1}', b'{"n":2}', b"[DONE]"], cut


def test_decoder_handles_crlf_multiline_and_missing_final_blank_line() -> None:
    decoder = sse.Decoder()
    events = decoder.feed(b"data: a\r\ndata: b\r\n\r\nevent: x\ndata:c")
    assert events == [b"a\nb"]
    assert decoder.flush() == [b"c"]


def test_decoder_ignores_comment_only_events() -> None:
    decoder = sse.Decoder()
    assert decoder.feed(b": ping\n\n: ping\n\n") == []
    payload = {"choices": [{"delta": {"content": "hi\n\nthere"}}]}
    assert decoder.feed(sse.encode(payload)) == [orjson.dumps(payload)]
