"""What an endpoint module needs of the simulator that routes to it (`app.Simulator`).

A Protocol so the feature modules (Responses API, files, batches, media...) take the host
without importing the app that imports them.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol

from gateway.simulator.bill import Charge
from gateway.simulator.call import Call, Header
from gateway.simulator.openai_errors import SimError
from gateway.simulator.prompt_cache import PromptCache
from gateway.simulator.stream_bill import StreamBill


class Host(Protocol):
    prompt_cache: PromptCache

    async def body_or_answered(self, call: Call) -> dict[str, Any] | None: ...

    async def fault(self, call: Call, body: dict[str, Any]) -> bool: ...

    def today(self, call: Call) -> date: ...

    def admit(self, call: Call, tokens: int) -> list[Header]: ...

    async def reply(self, call: Call, payload: bytes, rates: list[Header]) -> None: ...

    async def reply_raw(
        self, call: Call, content_type: bytes, payload: bytes, rates: list[Header]
    ) -> None: ...

    async def reply_error(self, call: Call, error: SimError, rates: list[Header]) -> None: ...

    async def stream(
        self,
        call: Call,
        frames: list[bytes],
        rates: list[Header],
        *,
        last: bytes,
        failure: bytes,
        bill: StreamBill | None = None,
    ) -> None: ...

    def draw_seed(self) -> int: ...

    def charge(self, key: str, charge: Charge) -> None: ...

    def answer_line(
        self, endpoint: str, body: dict[str, Any], key: str
    ) -> tuple[int, dict[str, Any], Charge | None]:
        """One batch line answered as its endpoint would (status, body), billed at batch price
        (the charge is returned, not added: the batch adds it on completion)."""
        ...
