"""Connections to where spliced requests go: the upstream nodes."""

from __future__ import annotations

import asyncio
import ssl

from yarl import URL

from esproxy.splice.client_side import BACKEND_FULL, SplicedClient

IDLE_PER_TARGET = 256  # kept-alive connections per node; more are closed once answered


class Backend(asyncio.Protocol):
    """One keep-alive connection; while a client's exchange uses it, its bytes go to that client."""

    def __init__(self, idle: list[Backend]) -> None:
        self.idle = idle  # where it waits between exchanges
        self.transport: asyncio.Transport | None = None
        self.client: SplicedClient | None = None
        self.reused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is not None:
            client.backend_data(data)
        elif self.transport is not None:
            self.transport.close()  # bytes nobody asked for: the connection is not reusable

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self in self.idle:
            self.idle.remove(self)
        client = self.client
        if client is not None:
            self.client = None
            client.backend_lost(exc)

    def pause_writing(self) -> None:
        if self.client is not None:
            self.client.pause(BACKEND_FULL)

    def resume_writing(self) -> None:
        if self.client is not None:
            self.client.resume(BACKEND_FULL)

    def release(self) -> None:
        """Back to the idle list after a complete exchange, or closed when that is full."""
        self.client = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if len(self.idle) >= IDLE_PER_TARGET:
            transport.close()
            return
        self.reused = True
        self.idle.append(self)

    def discard(self) -> None:
        self.client = None
        if self.transport is not None:
            self.transport.close()


def take_idle(idle: list[Backend]) -> Backend | None:
    while idle:
        backend = idle.pop()
        if backend.transport is not None and not backend.transport.is_closing():
            return backend
    return None


class NodeTarget:
    """How to reach one upstream node, and its idle connections."""

    def __init__(self, url: str, host_header: str, tls: ssl.SSLContext | None) -> None:
        parsed = URL(url)
        self.url = url
        self.host = parsed.host or "localhost"
        self.port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self.tls = tls if parsed.scheme == "https" else None
        self.prefix = parsed.raw_path.rstrip("/").encode()  # a node URL may name a path prefix
        self.host_header = host_header.encode()
        self.idle: list[Backend] = []

    async def open(self, connect_seconds: float) -> Backend:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(connect_seconds):
            _, backend = await loop.create_connection(
                lambda: Backend(self.idle),
                self.host,
                self.port,
                ssl=self.tls,
                server_hostname=self.host if self.tls else None,
            )
        return backend


def close_idle(idle: list[Backend]) -> None:
    for backend in list(idle):
        backend.discard()
    idle.clear()
