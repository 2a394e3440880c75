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


def test_decoder_reads_every_split_of_crlf_and_cr_line_ends() -> None:
    """However a stream is cut, CRLF, CR and LF line ends read the same events, a CRLF cut
    between its CR and its LF included."""
    for end in (b"\r\n", b"\r", b"\n"):
        stream = end.join([b"data: a", b"data: b", b"", b": note", b"", b"data: c", b"", b""])
        for cut in range(1, len(stream)):
            for second in range(cut, len(stream)):
                decoder = sse.Decoder()
                parts = (stream[:cut], stream[cut:second], stream[second:])
                events = [e for part in parts for e in decoder.feed(part)] + decoder.flush()
                assert events == [b"a\nb", b"c"], (end, cut, second)


def test_an_event_over_many_reads_is_whole_once_it_ends() -> None:
    decoder = sse.Decoder()
    body = b"x" * 10_000
    stream = b"data: " + body + b"\n\ndata: next\n\n"
    reads = [stream[i : i + 7] for i in range(0, len(stream), 7)]
    events = [e for read in reads for e in decoder.feed(read)]
    assert events == [body, b"next"]
    assert decoder.pending() == b"" and decoder.flush() == []
    decoder.feed(b"data: half")
    assert decoder.pending() == b"data: half"
