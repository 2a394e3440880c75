"""The corked transport under the HTTP protocol: one write per response head and body."""

from __future__ import annotations

import asyncio


def test_corked_writes_keep_order_and_close_after_the_last_byte() -> None:
    from gateway.server.protocol import CorkedTransport

    class Recorder:
        def __init__(self) -> None:
            self.events: list[object] = []
            self.closing = False

        def write(self, data: bytes) -> None:
            self.events.append(data)

        def close(self) -> None:
            self.closing = True
            self.events.append("close")

        def is_closing(self) -> bool:
            return self.closing

        def get_extra_info(self, name: str) -> str:
            return f"info:{name}"

    async def run() -> list[object]:
        raw = Recorder()
        corked = CorkedTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
        corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
        corked.write(b"body")
        assert raw.events == []  # held until the end of the tick
        await asyncio.sleep(0)
        assert raw.events == [b"HTTP/1.1 200 OK\r\n\r\nbody"]  # one write
        corked.write(b"chunk")  # the response's stream: straight out, no callback
        assert raw.events[-1] == b"chunk"
        corked.uncork()  # the response is complete: the next one is corked again
        corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
        assert raw.events[-1] == b"chunk"
        corked.write(b"last")
        corked.close()  # flushes first
        assert corked.get_extra_info("peername") == "info:peername"
        await asyncio.sleep(0)
        return raw.events

    assert asyncio.run(run()) == [
        b"HTTP/1.1 200 OK\r\n\r\nbody",
        b"chunk",
        b"HTTP/1.1 200 OK\r\n\r\nlast",
        "close",
    ]
