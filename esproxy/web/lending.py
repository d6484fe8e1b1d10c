"""aiohttp's connection handler, lent a connection that the splicer owns and later takes back.

The splicer (`esproxy/splice/`) relays forwarded requests as bytes. What esproxy answers itself
(`_inference`, `/_esproxy`, node info, the guard's refusals) or aiohttp must judge (odd paths)
is served by aiohttp on the client's own connection: the splicer lends it the connection, still
feeding it the bytes, and takes it back at the next request bound upstream. It takes it back
only when the handler is idle: every request it was fed answered, nothing buffered, nothing
paused. The state read here is aiohttp's own and private: setup.cfg holds aiohttp to one minor
series for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

AfterAnswer = Callable[[], None]


class LendableHandler(web.RequestHandler):
    """A request handler that can tell when it is idle, and let go of its connection."""

    __slots__ = ("_after_answer",)

    def __init__(self, manager: web.Server, **kwargs: object) -> None:
        super().__init__(manager, **kwargs)  # type: ignore[arg-type]
        self._after_answer: AfterAnswer | None = None

    def after_each_answer(self, callback: AfterAnswer | None) -> None:
        """Call `callback` once each answer is written and the handler has moved on: to wait for
        the next request when there is none queued."""
        self._after_answer = callback

    async def _handle_request(
        self,
        request: web.BaseRequest,
        start_time: float | None,
        request_handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
    ) -> tuple[web.StreamResponse, bool]:
        try:
            return await super()._handle_request(request, start_time, request_handler)
        finally:
            callback = self._after_answer
            task = asyncio.current_task()
            if callback is not None and task is not None:
                # `start()` awaits this task, so its wake-up is the task's first done callback:
                # this one runs after `start()` has settled the answer and gone back to waiting.
                task.add_done_callback(lambda _: callback())

    def is_busy(self) -> bool:
        """A request is being answered, or waits its turn."""
        return bool(self._messages) or self._request_in_progress

    def is_idle(self) -> bool:
        """Waiting for a request, with nothing of the stream held: no request queued or in
        progress, no body or tail buffered, reading not paused, and not closing."""
        waiter = self._waiter
        return (
            waiter is not None
            and not waiter.done()
            and self.transport is not None
            and not self._messages
            and not self._request_in_progress
            and not (self._force_close or self._close)
            and not (self._reading_paused or self._buffer_paused)
            and self._payload_parser is None
            and not self._upgraded
            and not self._message_tail
        )

    def is_closing(self) -> bool:
        return self.transport is None or self._force_close or self._close

    def let_go(self) -> None:
        """Stop serving the connection without closing it."""
        self.transport = None  # so that the cleanup below cannot close it
        self._after_answer = None
        self.connection_lost(None)
