"""What every spliced connection of one server shares: where requests go, and how to get there."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable

from esproxy.errors import UpstreamUnavailable
from esproxy.guard import Guard
from esproxy.observability.access_log import AccessLog
from esproxy.observability.events import ForwardRecorder, NoForwardRecording
from esproxy.splice.backends import NodeTarget, close_idle
from esproxy.splice.client_side import SplicedClient
from esproxy.splice.heads import RequestHead
from esproxy.upstream import cannot_connect
from esproxy.upstream_nodes import NodePool, UpstreamNode, is_nodes_info
from esproxy.web.lending import LendableHandler

KEEPALIVE_SECONDS = 75.0  # an idle client connection is closed after this, as aiohttp does
# Characters aiohttp decodes or normalises in a path, so that its router may read the path as one
# of esproxy's own routes: such requests are left to aiohttp to route.
_ODD_PATH = re.compile(rb"%|/\.|//|#|\\")


class Splicer:
    def __init__(
        self,
        *,
        nodes: NodePool,
        targets: dict[str, NodeTarget],
        make_handler: Callable[[], LendableHandler],
        connect_timeout: float,
        read_timeout: float,
        guard: Guard | None,
    ) -> None:
        self.nodes = nodes
        self.targets = targets
        self.make_handler = make_handler  # aiohttp's handler, for connections lent or handed over
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.keepalive_seconds = KEEPALIVE_SECONDS
        self.guard = guard
        # Observability, set by app.py: forwarded exchanges are counted and logged here.
        self.recorder: ForwardRecorder = NoForwardRecording()
        self.access: AccessLog | None = None
        self.clients: set[SplicedClient] = set()
        self.closing = False
        self.drained = asyncio.Event()

    def lends(self, head: RequestHead) -> bool:
        """Whether aiohttp answers this request on the client's connection itself (what esproxy
        answers or aiohttp must judge), rather than the splicer forwarding it as bytes."""
        path = head.path
        if head.target[:1] != b"/" or _ODD_PATH.search(path) is not None:
            return True
        if path.startswith(b"/_inference") and (len(path) == 11 or path[11:12] == b"/"):
            # Streamed chat's first delta is latency-bound: relaying it costs ~0.3 ms a request.
            return True
        if path.startswith(b"/_esproxy") and (len(path) == 9 or path[9:10] == b"/"):
            # So that the app sees the caller's address: readiness details go to loopback callers
            # when no one can be authenticated.
            return True
        if path.startswith(b"/_nodes") and is_nodes_info(
            head.method.decode(), head.target.decode("latin-1")
        ):
            return True  # its addresses are rewritten
        # The app answers with the guard's 403, or reads the body the guard must check.
        guard = self.guard
        target = head.target.decode("latin-1")
        return guard is not None and guard.check(head.method.decode(), target) is not None

    def connect_error(self, node: UpstreamNode, error: BaseException) -> UpstreamUnavailable:
        return cannot_connect(f"upstream [{node.url}]", error, self.connect_timeout)

    def close_idle(self) -> None:
        """Stop taking requests: idle clients are closed now, busy ones after their answer."""
        self.closing = True
        for client in list(self.clients):
            client.close_if_idle()
        for target in self.targets.values():
            close_idle(target.idle)

    def forget(self, client: SplicedClient) -> None:
        self.clients.discard(client)
        if self.closing and not self.clients:
            self.drained.set()

    async def drain(self, seconds: float | None) -> None:
        """Wait for the exchanges in flight, at most `seconds`, then cut what is left."""
        if self.clients:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self.drained.wait()
        for client in list(self.clients):
            client.transport.close()
        self.clients.clear()
