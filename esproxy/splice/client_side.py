"""What a backend connection and the splicer ask of a client connection.

`ClientConnection` uses both, so they know it by this protocol rather than by importing it.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

# Why reading from the client is paused: bits of `ClientConnection.paused`.
BACKEND_FULL, PIPELINE_FULL = 1, 2


class SplicedClient(Protocol):
    transport: asyncio.Transport

    def backend_data(self, data: bytes) -> None: ...

    def backend_lost(self, exc: Exception | None) -> None: ...

    def pause(self, reason: int) -> None: ...

    def resume(self, reason: int) -> None: ...

    def close_if_idle(self) -> None: ...
