"""The listening side: a runner whose protocol factory splices, with aiohttp's server behind it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from esproxy.splice.client_connection import ClientConnection
from esproxy.splice.splicer import Splicer

BuildSplicer = Callable[[web.Application, web.Server], Awaitable[Splicer | None]]
# What the app's own aiohttp server becomes before anything listens with it.
WrapServer = Callable[[web.Application, web.Server], web.Server]


class SplicingServer(web.Server):
    """What the listening socket's connections start with: a ClientConnection each.

    It only wraps the application's own server (which serves what is handed to it), so it skips
    `web.Server.__init__`.
    """

    def __init__(self, app_server: web.Server, splicer: Splicer) -> None:
        self.app_server = app_server
        self.splicer = splicer

    def __call__(self) -> ClientConnection:  # type: ignore[override]
        return ClientConnection(self.splicer)

    @property
    def connections(self) -> list[Any]:
        return [*self.app_server.connections, *self.splicer.clients]

    @property
    def requests_count(self) -> int:  # type: ignore[override]
        return self.app_server.requests_count

    def pre_shutdown(self) -> None:
        self.splicer.close_idle()
        self.app_server.pre_shutdown()

    async def shutdown(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self.splicer.drain(timeout)  # aiohttp's own signature, kept
        await self.app_server.shutdown(timeout)


class SplicingRunner(web.AppRunner):
    """An AppRunner whose server splices forwarded requests, once the app has started."""

    def __init__(
        self, app: web.Application, *, build: BuildSplicer, wrap: WrapServer, **kwargs: Any
    ) -> None:
        super().__init__(app, **kwargs)
        self._build = build
        self._wrap = wrap

    async def _make_server(self) -> web.Server:
        # Both ways in (handed over by the splicer, or taken directly) use the wrapped server.
        app_server = self._wrap(self.app, await super()._make_server())
        splicer = await self._build(self.app, app_server)
        return app_server if splicer is None else SplicingServer(app_server, splicer)
