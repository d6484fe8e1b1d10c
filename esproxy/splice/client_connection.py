"""One client's connection: request heads parsed, bodies and answers spliced as bytes, in order."""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter
from urllib.parse import parse_qsl

from esproxy.errors import PlainError, ProxyError, UpstreamUnavailable
from esproxy.observability import events
from esproxy.splice.backends import Backend, take_idle
from esproxy.splice.chunks import ChunkedScanner
from esproxy.splice.client_side import PIPELINE_FULL
from esproxy.splice.heads import (
    MAX_HEAD,
    InvalidResponse,
    RequestHead,
    ResponseHead,
    error_head,
    parse_request_head,
    parse_response_head,
)
from esproxy.splice.splicer import Splicer
from esproxy.upstream import broke_off, fell_silent, sent_invalid_answer
from esproxy.upstream_nodes import UpstreamNode
from esproxy.web.lending import LendableHandler
from esproxy.web.responses import to_json

# Forwarded requests log under the forwarder's name, whichever path carried them.
log = logging.getLogger("esproxy.upstream")

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
PIPELINE_LIMIT = 65536  # bytes held while no backend can take them (connecting, or pipelined)
# Loop turns a lent handler may take to settle after its last answer (a body it never read is
# drained first) before the connection is left to it for good.
SETTLE_TURNS = 64


class ClientConnection(asyncio.Protocol):
    """Serves one exchange at a time; later pipelined requests wait in `buffer`.

    An exchange: the request head is parsed, rewritten and sent to a node, the body follows by its
    Content-Length as it arrives, and the answer comes back by its own framing. The backend
    connection then returns to its idle list.

    What esproxy answers itself, or aiohttp must judge, is not relayed: the connection is lent to
    an aiohttp handler, which answers on it directly. This protocol still reads the requests,
    feeding them to the handler and following their framing, and takes the connection back
    before the next request bound upstream, once the handler has answered all it was fed.
    """

    def __init__(self, splicer: Splicer) -> None:
        self.splicer = splicer
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.buffer = bytearray()  # received, not yet sent on
        self.request: RequestHead | None = None  # the exchange in flight
        self.node: UpstreamNode | None = None  # its node, once a connection to it is had
        self.backend: Backend | None = None
        self.upstream_head = b""  # the head as sent, kept for a retry on a fresh connection
        self.reused = self.retried = False
        self.body_left = 0  # request body bytes not yet sent on
        self.answer: ResponseHead | None = None
        self.answer_head = b""  # an answer head still incomplete
        self.answer_left = 0
        self.scanner: ChunkedScanner | None = None
        self.close_after = False
        self.request_bytes = self.answer_bytes = 0
        self.paused = 0
        self.backend_paused = False
        self.activity = self.loop.time()
        self.started = 0.0  # perf_counter() at each head: uvloop's clock ticks in whole ms
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0  # when `timer` fires: kept here, read on every exchange
        self.closed = False
        self.writing_paused = False  # the transport's flow control, as last told
        self.lent: LendableHandler | None = None  # serves requests while the connection is lent
        self.taking_back = False  # a request bound upstream waits until the lent handler is done
        self.settle_turns = 0

    # -- the client's side --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.splicer.clients.add(self)
        self.arm_timer(self.splicer.keepalive_seconds)

    def data_received(self, data: bytes) -> None:
        self.activity = self.loop.time()
        if self.lent is not None:
            self.feed_lent(data)
            return
        if self.request is None:
            if self.buffer:  # the rest of a head that came in pieces
                self.buffer += data
                data = bytes(self.buffer)
                self.buffer.clear()
            self.start_next(data)
            return
        if self.body_left and self.backend is not None and not self.buffer:
            left = self.body_left
            write = self.backend.transport.write  # type: ignore[union-attr]
            if len(data) <= left:
                write(data)
                self.body_left = left - len(data)
                return
            write(data[:left])
            self.body_left = 0
            data = data[left:]
        self.buffer += data
        if len(self.buffer) > PIPELINE_LIMIT:  # body bytes waiting on a connect count too
            self.pause(PIPELINE_FULL)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.splicer.forget(self)
        if self.timer is not None:
            self.timer.cancel()
        lent, self.lent = self.lent, None
        if lent is not None:
            lent.connection_lost(exc)
        backend, self.backend = self.backend, None
        if backend is not None:
            backend.discard()  # mid-exchange: its state is unknown, so it is never reused
        self.request = None

    def pause_writing(self) -> None:
        self.writing_paused = True
        if self.lent is not None:
            self.lent.pause_writing()
            return
        # The client reads slower than the backend answers: stop reading the backend.
        if self.backend is not None and self.backend.transport is not None:
            self.backend.transport.pause_reading()
            self.backend_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.lent is not None:
            self.lent.resume_writing()
            return
        if self.backend_paused and self.backend is not None and self.backend.transport is not None:
            self.backend.transport.resume_reading()
        self.backend_paused = False

    def pause(self, reason: int) -> None:
        if not self.paused and not self.closed:
            self.transport.pause_reading()
        self.paused |= reason

    def resume(self, reason: int) -> None:
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused and not self.closed:
                self.transport.resume_reading()

    def close_if_idle(self) -> None:
        self.close_after = True
        if self.request is None:
            self.transport.close()

    # -- starting an exchange -----------------------------------------------------------------

    def start_next(self, data: bytes) -> None:
        """`data`: all that was received and not yet handled (`buffer` is empty)."""
        end = data.find(b"\r\n\r\n")
        if end < 0:
            self.buffer += data
            # A head ended by bare LFs never gets its CRLF pair: aiohttp judges it (a 400).
            if len(data) > MAX_HEAD or b"\n\n" in data:
                self.hand_over()
            return
        head = parse_request_head(data[:end])
        if head is None:
            self.buffer += data
            self.hand_over()
            return
        if self.splicer.lends(head):
            self.lend(data, head.content_length, end + 4)
            return
        rest = data[end + 4 :]  # body bytes, then perhaps pipelined requests
        self.request = head
        self.body_left = head.content_length
        self.answer, self.answer_head, self.scanner = None, b"", None
        self.close_after = head.close or self.splicer.closing
        self.retried = False
        self.started = perf_counter()
        self.request_bytes = end + 4 + head.content_length
        self.answer_bytes = 0
        splicer = self.splicer
        if self.timer is None or splicer.read_timeout < splicer.keepalive_seconds:
            self.arm_timer(splicer.read_timeout)
        if head.expect and head.content_length:
            self.transport.write(CONTINUE)  # the node gets no Expect: esproxy answers it
        node = splicer.nodes.select()
        target = splicer.targets[node.url]
        backend = take_idle(target.idle)
        if backend is None:
            self.buffer += rest
            self.loop.create_task(self.connect_upstream(node))
        else:
            self.node = node
            self.attach(backend, head.for_upstream(target.prefix, target.host_header), rest)

    def start_buffered(self) -> None:
        data = bytes(self.buffer)
        self.buffer.clear()
        self.start_next(data)

    def hand_over(self) -> None:
        """Give the whole connection to aiohttp, from this request on (it is never handed back):
        for what this parser does not read (aiohttp judges it)."""
        self.closed = True  # to this protocol
        self.splicer.forget(self)
        self.splicer.recorder.handoff(events.KEPT)
        if self.timer is not None:
            self.timer.cancel()
        handler = self.splicer.make_handler()
        transport = self.transport
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if self.paused:
            transport.resume_reading()
        if self.buffer:
            handler.data_received(bytes(self.buffer))
        self.buffer.clear()

    # -- lending the connection to aiohttp -----------------------------------------------------

    def lend(self, data: bytes, body: int, fed: int) -> None:
        """Serve from this request on with an aiohttp handler, fed `data` (this request, whose
        head ends at `fed` and whose body is `body` bytes, then what followed it) and what comes
        next, until a request bound upstream."""
        self.splicer.forget(self)  # the app's server owns it now: its shutdown closes it
        if self.timer is not None:  # aiohttp keeps its own keep-alive time
            self.timer.cancel()
            self.timer = None
        handler = self.splicer.make_handler()
        self.lent = handler
        self.splicer.recorder.handoff(events.LENT)
        handler.connection_made(self.transport)
        if self.writing_paused:
            handler.pause_writing()
        if self.paused:
            self.paused = 0
            self.transport.resume_reading()
        self.body_left = body
        self.feed_lent(data, fed)

    def feed_lent(self, data: bytes, fed: int = 0) -> None:
        """Feed the lent handler whole requests: each head once it is all here (so that aiohttp
        never holds part of one), and its body by Content-Length. A request bound upstream, and
        all after it, wait in `buffer` while the handler finishes. `data[:fed]` is framed already
        (the request `lend` was called for)."""
        handler = self.lent
        assert handler is not None
        if self.taking_back:
            self.buffer += data
            if len(self.buffer) > PIPELINE_LIMIT:
                # Not `pause()`: the handler may have resumed reading since, for its own reasons.
                self.paused |= PIPELINE_FULL
                self.transport.pause_reading()
            return
        if self.buffer:  # the start of a head that came in pieces
            self.buffer += data
            data = bytes(self.buffer)
            self.buffer.clear()
        while fed < len(data):  # data[:fed] goes to the handler
            if self.body_left:
                step = min(self.body_left, len(data) - fed)
                self.body_left -= step
                fed += step
                continue
            end = data.find(b"\r\n\r\n", fed)
            if end < 0:
                rest = data[fed:]
                if len(rest) <= MAX_HEAD and b"\n\n" not in rest:
                    self.buffer += rest
                    break
                head = None  # aiohttp judges it, as without lending
            else:
                head = parse_request_head(data[fed:end])
            # Requests already framed go first, on their own: aiohttp drops the messages parsed
            # with one that fails to parse.
            if head is None or not self.splicer.lends(head):
                if fed:
                    handler.data_received(data[:fed])
                if head is None:
                    self.give_lent(data[fed:])
                else:
                    self.buffer += data[fed:]
                    self.take_back()
                return
            self.body_left = head.content_length
            fed = end + 4
        if fed:
            handler.data_received(data[:fed] if fed < len(data) else data)

    def give_lent(self, data: bytes) -> None:
        """Leave the connection to the lent handler for good, with `data` and all that follows."""
        handler = self.lent
        assert handler is not None
        self.lent = None
        self.closed = True  # to this protocol
        self.splicer.recorder.handoff(events.KEPT)
        self.transport.set_protocol(handler)
        if self.paused:
            self.paused = 0
            self.transport.resume_reading()
        handler.data_received(data)

    def take_back(self) -> None:
        handler = self.lent
        assert handler is not None
        self.taking_back = True
        self.settle_turns = 0
        handler.after_each_answer(self.try_take_back)
        self.try_take_back()

    def try_take_back(self) -> None:
        handler = self.lent
        if handler is None or not self.taking_back:
            return
        if handler.is_idle():
            self.resume_splicing(handler)
        elif handler.is_busy() or handler.is_closing():
            return  # called again after its next answer; or aiohttp closes the connection
        elif self.settle_turns < SETTLE_TURNS:
            self.settle_turns += 1
            self.loop.call_soon(self.try_take_back)
        else:
            log.debug("a lent connection did not settle: it stays with aiohttp")
            data = bytes(self.buffer)
            self.buffer.clear()
            self.taking_back = False
            self.give_lent(data)

    def resume_splicing(self, handler: LendableHandler) -> None:
        self.lent = None
        self.taking_back = False
        handler.let_go()
        self.splicer.recorder.handoff(events.TAKEN_BACK)
        if self.splicer.closing:
            self.transport.close()
            return
        self.splicer.clients.add(self)
        self.arm_timer(self.splicer.keepalive_seconds)
        self.start_buffered()

    async def connect_upstream(self, node: UpstreamNode) -> None:
        pool = self.splicer.nodes
        error: BaseException | None = None
        for attempt in range(len(pool)):
            if attempt:
                node = pool.select()
            target = self.splicer.targets[node.url]
            try:
                backend = await target.open(self.splicer.connect_timeout)
            except (OSError, TimeoutError) as failure:
                # Nothing reached this node, and the body is still unsent: another node may take it.
                pool.mark_dead(node)
                error = failure
                continue
            if node.failures:
                pool.mark_alive(node)
            if self.closed or self.request is None:
                backend.release()
                return
            self.node = node
            self.attach(backend, self.request.for_upstream(target.prefix, target.host_header))
            return
        assert error is not None
        reason = events.CONNECT_TIMEOUT if isinstance(error, TimeoutError) else events.CONNECT
        self.fail(self.splicer.connect_error(node, error), reason)

    def attach(self, backend: Backend, head: bytes, rest: bytes = b"") -> None:
        """Send the head, and the body bytes already here: from `rest`, else from `buffer`."""
        backend.client = self
        self.backend = backend
        if self.writing_paused and backend.transport is not None:
            backend.transport.pause_reading()  # the client is not reading what came before
            self.backend_paused = True
        self.reused = backend.reused
        self.upstream_head = head
        left = self.body_left
        if rest:
            if len(rest) <= left:
                head += rest
                self.body_left = left - len(rest)
            else:
                head += rest[:left]
                self.body_left = 0
                self.buffer += rest[left:]
        elif left and self.buffer:
            sent = min(left, len(self.buffer))
            head += self.buffer[:sent]
            del self.buffer[:sent]
            self.body_left = left - sent
        backend.transport.write(head)  # type: ignore[union-attr]
        if self.paused & PIPELINE_FULL and len(self.buffer) <= PIPELINE_LIMIT:
            self.resume(PIPELINE_FULL)

    # -- the answer ---------------------------------------------------------------------------

    def backend_data(self, data: bytes) -> None:
        self.activity = self.loop.time()
        self.answer_bytes += len(data)
        prefix = b""
        end = 0
        if self.answer is None:
            data = self.answer_head + data if self.answer_head else data
            while True:
                end = data.find(b"\r\n\r\n")
                if end < 0:
                    if len(data) > MAX_HEAD:
                        self.fail_answer(InvalidResponse("the answer's head is too long"))
                    else:
                        self.answer_head = data
                    return
                if data[9:10] == b"1" and data[:7] == b"HTTP/1.":  # 1xx: an interim answer
                    if data[9:12] == b"101":
                        self.fail_answer(InvalidResponse("a protocol switch nobody asked for"))
                        return
                    self.transport.write(data[: end + 4])
                    data = data[end + 4 :]
                    continue
                break
            self.answer_head = b""
            assert self.request is not None
            head_request = self.request.method == b"HEAD"
            try:
                answer = parse_response_head(
                    data[:end], head_request=head_request, close_client=self.close_after
                )
            except InvalidResponse as error:
                self.fail_answer(error)
                return
            self.answer = answer
            self.close_after = answer.close_client
            self.answer_left = answer.content_length
            if answer.chunked:
                self.scanner = ChunkedScanner()
            prefix, data = answer.head, data[end + 4 :]
            self.answer_bytes += len(prefix) - end - 4  # the head as the client gets it
        if self.scanner is not None:
            try:
                end = self.scanner.feed(data)
            except InvalidResponse as error:
                self.transport.write(prefix)
                self.abort(self.describe_answer_error(error), events.INVALID_ANSWER)
                return
            if end < 0:
                self.transport.write(prefix + data if prefix else data)
                return
            self.transport.write(prefix + data[:end])
            self.finish(len(data) - end)
        elif self.answer_left >= 0:
            left = self.answer_left
            if len(data) < left:
                self.transport.write(prefix + data if prefix else data)
                self.answer_left = left - len(data)
                return
            self.transport.write(prefix + data[:left] if prefix else data[:left])
            self.finish(len(data) - left)
        else:  # until the node closes
            self.transport.write(prefix + data if prefix else data)

    def backend_lost(self, exc: Exception | None) -> None:
        """The backend closed its connection in the middle of an exchange."""
        self.backend = None
        answer = self.answer
        if answer is not None:
            if answer.content_length < 0 and not answer.chunked:
                self.finish(0)  # the close ends a body framed by it
            else:
                self.abort(self.describe_lost(exc, "sent an incomplete body"), events.CLOSED)
            return
        request = self.request
        if request is None or self.closed:
            return
        if self.reused and not self.retried and not request.content_length and not self.answer_head:
            # A kept-alive connection the other side closed as it was reused: nothing was read,
            # and there is no body to resend, so a fresh connection gets the request.
            self.retried = True
            assert self.node is not None  # a reused connection came from its node's idle list
            self.loop.create_task(self.connect_upstream(self.node))
            return
        if self.answer_head:
            self.fail_answer(InvalidResponse("the connection closed inside the answer's head"))
            return
        self.fail(self.describe_lost(exc, "closed the connection before answering"), events.CLOSED)

    def describe_lost(self, exc: Exception | None, what: str) -> UpstreamUnavailable:
        if isinstance(exc, OSError):
            return broke_off(self.where(), exc)
        return UpstreamUnavailable(f"{self.where()} {what}")

    def describe_answer_error(self, error: InvalidResponse) -> UpstreamUnavailable:
        return sent_invalid_answer(self.where(), error)

    def where(self) -> str:
        return "upstream" if self.node is None else f"upstream [{self.node.url}]"

    def finish(self, extra: int) -> None:
        """The answer is complete; `extra` bytes came after it (the backend is not reused then)."""
        backend, self.backend = self.backend, None
        answer, request = self.answer, self.request
        assert answer is not None and request is not None
        if backend is not None:
            if self.backend_paused and backend.transport is not None:
                backend.transport.resume_reading()
            self.backend_paused = False
            if extra or answer.close or self.body_left:
                backend.discard()
            else:
                backend.release()
        self.record(answer.status, self.answer_bytes - extra)
        if log.isEnabledFor(logging.DEBUG) and self.node is not None:
            log.debug(
                "%s %s -> %d in %.2f ms from %s",
                request.method.decode(),
                request.target.decode("latin-1"),
                answer.status,
                (perf_counter() - self.started) * 1000,
                self.node.url,
            )
        self.end_exchange()

    def end_exchange(self) -> None:
        if self.body_left:
            # Answered before its body was all sent: the rest is still on the wire, unframed.
            self.close_after = True
        self.request, self.answer, self.scanner = None, None, None
        if self.close_after or self.closed:
            self.transport.close()
            return
        splicer = self.splicer
        if self.timer is None or splicer.keepalive_seconds < splicer.read_timeout:
            self.arm_timer(splicer.keepalive_seconds)
        if self.paused & PIPELINE_FULL:
            self.resume(PIPELINE_FULL)
        if self.buffer:
            self.start_buffered()

    # -- failures -----------------------------------------------------------------------------

    def record(self, status: int, bytes_out: int) -> None:
        """Count and log the forwarded exchange in flight, as the client got it. With the access
        log on, its entry is all: the log counts it for the metrics a batch at a time."""
        splicer, request = self.splicer, self.request
        access = splicer.access
        if access is not None and request is not None:
            access.forwarded(
                (
                    perf_counter(),
                    self.started,
                    request.method,
                    request.path,
                    status,
                    self.request_bytes,
                    bytes_out,
                    request.rest,
                )
            )
        else:
            splicer.recorder.forwarded(status, self.request_bytes, bytes_out)

    def fail(self, error: ProxyError, reason: str | None = None) -> None:
        """Answer with an ES error; nothing of the backend's answer has reached the client.

        `reason`: why the node failed, for `esproxy_upstream_errors_total`; None when it did not.
        """
        request = self.request
        if request is None or self.closed:
            return
        backend, self.backend = self.backend, None
        if backend is not None:
            backend.discard()
        unsent = min(self.body_left, len(self.buffer))
        if unsent and backend is None:  # a body never sent on: skip it, the connection lives on
            del self.buffer[:unsent]
            self.body_left -= unsent
        pretty = b"pretty" in request.target and wants_pretty(request.target)
        body = to_json(error.to_body(), pretty=pretty)
        close = self.close_after or self.body_left > 0
        head = error_head(error.status, len(body), close=close)
        self.transport.write(head + body)
        if reason is not None:
            self.splicer.recorder.upstream_error(reason)
        self.record(error.status, len(head) + len(body))
        log.warning(
            "%s %s -> %s %s",
            request.method.decode(),
            request.path.decode("latin-1"),
            error.status,
            error.reason,
        )
        self.close_after = close
        self.end_exchange()

    def fail_answer(self, error: InvalidResponse) -> None:
        self.fail(self.describe_answer_error(error), events.INVALID_ANSWER)

    def abort(self, error: ProxyError, reason: str) -> None:
        """Cut the client's connection: the status line is out, so an error body cannot follow."""
        request = self.request
        if request is not None:
            self.splicer.recorder.upstream_error(reason)
            answer = self.answer
            self.record(error.status if answer is None else answer.status, self.answer_bytes)
        if request is not None:
            log.warning(
                "%s %s: %s; closing the client connection mid-response",
                request.method.decode(),
                request.target.decode("latin-1"),
                error.reason,
            )
        backend, self.backend = self.backend, None
        if backend is not None:
            backend.discard()
        self.request = None
        self.transport.close()

    # -- time -----------------------------------------------------------------------------------

    def arm_timer(self, seconds: float) -> None:
        """One lazy timer per connection: it fires no later than the nearest deadline."""
        deadline = self.activity + seconds
        timer = self.timer
        if timer is not None:
            if self.timer_at <= deadline:
                return
            timer.cancel()
        self.timer = self.loop.call_at(deadline, self.check_time)
        self.timer_at = deadline

    def check_time(self) -> None:
        self.timer = None
        if self.closed:
            return
        now = self.loop.time()
        if self.request is None:
            seconds = self.splicer.keepalive_seconds
            if now >= self.activity + seconds:
                self.transport.close()
                return
        else:
            seconds = self.splicer.read_timeout
            if now >= self.activity + seconds and self.node is not None:
                self.time_out()
                if self.closed or self.request is None:
                    return
        self.timer_at = max(self.activity + seconds, now + 0.01)
        self.timer = self.loop.call_at(self.timer_at, self.check_time)

    def time_out(self) -> None:
        seconds = self.splicer.read_timeout
        if self.answer is not None:
            self.abort(fell_silent(self.where(), seconds), events.READ_TIMEOUT)
        elif self.backend is None:
            return  # still connecting: the connect timeout decides
        elif self.body_left:
            self.close_after = True
            self.fail(PlainError(f"the client sent no body bytes for {seconds:g}s", status=408))
        else:
            self.fail(fell_silent(self.where(), seconds), events.READ_TIMEOUT)


def wants_pretty(target: bytes) -> bool:
    query = target.partition(b"?")[2].decode("latin-1")
    return any(name == "pretty" for name, _ in parse_qsl(query, keep_blank_values=True))
