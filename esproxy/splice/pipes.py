"""An in-process connection between the splicer and esproxy's own aiohttp server.

It replaced a socket pair. Each answer byte aiohttp wrote went into the kernel and came back out
on a later turn of the loop, so a stream's head, role chunk and first delta left esproxy together,
one poll late (docs/benchmarks.md, "First delta"). Here a write hands its bytes to the other end's
protocol: the answer at once, so each write reaches the client as aiohttp makes it; the request
on the loop's next turn, so that aiohttp never runs inside a write of its own or of the splicer.
Flow control and closing work as a socket's do: a paused reader makes the writer's protocol pause
writing past HIGH_WATER, and a close is seen after the bytes written before it.
"""

from __future__ import annotations

import asyncio
from typing import Any

HIGH_WATER = 65536  # bytes held for a paused reader before its writer is paused, as asyncio's

# What the other side asks its transport about, as the socket pair answered (an unnamed AF_UNIX
# socket has empty addresses and no TLS). There is no socket, so aiohttp sets no socket options.
_EXTRA: dict[str, Any] = {"peername": "", "sockname": "", "sslcontext": None}


class PipeEnd(asyncio.Transport):
    """One end: its protocol reads what the other end writes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, deferred: bool) -> None:
        super().__init__()
        self.loop = loop
        self.deferred = deferred  # bytes reach this end's protocol on the loop's next turn
        self.protocol: asyncio.Protocol = None  # type: ignore[assignment]
        self.peer: PipeEnd = None  # type: ignore[assignment]
        self.pending: list[bytes] = []  # for this end's protocol, not delivered yet
        self.pending_size = 0
        self.scheduled = False
        self.reading_paused = False
        self.writer_paused = False  # the peer's protocol was told to pause writing
        self.closing = False  # this end was closed: it writes and delivers nothing more
        self.peer_gone = False  # the peer closed: lost once `pending` is delivered
        self.lost = False

    def __repr__(self) -> str:
        return f"PipeEnd(deferred={self.deferred}, pending={self.pending_size}, lost={self.lost})"

    # -- the asyncio.Transport surface ------------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return _EXTRA.get(name, default)

    def is_closing(self) -> bool:
        # A peer's close counts too: a kept-alive end whose peer is gone is never reused.
        return self.closing or self.peer_gone

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.protocol

    def is_reading(self) -> bool:
        return not self.reading_paused

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        if self.reading_paused:
            self.reading_paused = False
            if self.pending or self.peer_gone:
                self.schedule()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closing or not data:
            return
        self.peer.receive(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self.peer.pending_size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (HIGH_WATER // 4, HIGH_WATER)

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        self.peer.on_peer_closed()
        self.loop.call_soon(self.lose)

    def abort(self) -> None:
        self.close()

    # -- delivery ---------------------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """Bytes the peer wrote, for this end's protocol."""
        if self.lost or self.closing:
            return
        if self.deferred or self.reading_paused or self.pending:
            self.pending.append(data)
            self.pending_size += len(data)
            if not self.reading_paused:
                self.schedule()
            elif self.pending_size > HIGH_WATER and not self.writer_paused:
                self.writer_paused = True
                self.peer.protocol.pause_writing()
            return
        self.protocol.data_received(data)

    def schedule(self) -> None:
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.deliver)

    def deliver(self) -> None:
        self.scheduled = False
        while self.pending and not (self.reading_paused or self.lost or self.closing):
            data = b"".join(self.pending) if len(self.pending) > 1 else self.pending[0]
            self.pending.clear()
            self.pending_size = 0
            self.protocol.data_received(data)
        if self.writer_paused and not self.pending and not self.peer.lost:
            self.writer_paused = False
            self.peer.protocol.resume_writing()
        if self.peer_gone and not self.pending:
            self.lose()

    def on_peer_closed(self) -> None:
        self.peer_gone = True
        if not self.pending:
            self.loop.call_soon(self.lose)

    def lose(self) -> None:
        if self.lost:
            return
        self.lost = self.closing = True
        self.pending.clear()
        self.pending_size = 0
        self.protocol.connection_lost(None)
        if not self.peer.lost and not self.peer.peer_gone:
            self.peer.on_peer_closed()


def connect(
    loop: asyncio.AbstractEventLoop, ours: asyncio.Protocol, theirs: asyncio.Protocol
) -> None:
    """Join two protocols: `theirs` (aiohttp's server) gets `ours`' bytes on the next turn, and
    `ours` (the splicer's) gets theirs at once."""
    our_end, their_end = PipeEnd(loop, deferred=False), PipeEnd(loop, deferred=True)
    our_end.peer, their_end.peer = their_end, our_end
    our_end.protocol, their_end.protocol = ours, theirs
    theirs.connection_made(their_end)
    ours.connection_made(our_end)
