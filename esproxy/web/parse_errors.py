"""aiohttp's server, answering the requests its HTTP parser refuses as Elasticsearch does.

A request aiohttp cannot parse (a line past `max_line_size`, a bad method, invalid header
characters, bad chunked framing) never reaches the middlewares: aiohttp's `RequestHandler` answers
it in `handle_error` with a text/plain 400 and closes the connection. Elasticsearch hands its HTTP
decoder's failures to the REST controller (`RestController.dispatchBadRequest`), which answers 400
with its usual error body. `ElasticServer` builds handlers that do the same, and report each such
answer (the metrics and the access log never see these requests otherwise).

Framing that goes bad in a later packet than the head (a chunk size, say) is refused after the
request went to its handler. aiohttp queues the error as the next request and leaves the first
one's body waiting for bytes that will never be framed (aio-libs/aiohttp#10596), so the handler
would answer only at its body timeout. `ElasticRequestHandler` ends that body with the parser's
error, which the error middleware answers as `MalformedRequest` whoever read the body.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from aiohttp import HttpVersion11, StreamReader, web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import _ErrInfo

from esproxy.errors import MalformedRequest
from esproxy.web.lending import LendableHandler
from esproxy.web.responses import json_response

log = logging.getLogger(__name__)

# Told of each such answer: its status and body size.
Answered = Callable[[int, int], None]

MAX_EXCERPT = 80  # characters of the offending line a reason quotes: the line may be 64 KiB
MAX_REASON = 240
# The start of a request line as aiohttp's pure-Python parser quotes it: a method, a space, then a
# target (a path, `*`, or a scheme or host and a colon). Its C parser quotes the target alone, in a
# bytearray. Header pieces start with a name or a value.
_REQUEST_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ (?:/|\*|[A-Za-z][A-Za-z0-9+.\-]*:)")
_LINE_END = re.compile(r"\\[rn]")
# A method never holds a colon (a header name before its colon does): that tells them apart.
_QUOTED_REQUEST_LINE = re.compile(r"(?P<method>[^\s:]+) (?P<target>\S+) (?P<version>HTTP/\S*)")
# Headers whose values a reason may quote: framing and content negotiation, and what ES echoes
# anyway. Any other header may carry a credential (Authorization, Cookie, an API key of some
# proxy's naming), so a reason names it and withholds its value.
SHOWN_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "expect",
        "host",
        "traceparent",
        "transfer-encoding",
        "user-agent",
        "x-opaque-id",
    }
)


class ElasticRequestHandler(LendableHandler):
    """aiohttp's connection handler, answering parse errors with Elasticsearch's error body."""

    __slots__ = ("_answered", "_last_body")

    def __init__(self, manager: web.Server, *, answered: Answered, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._answered = answered
        self._last_body: StreamReader | None = None  # the body of the last request parsed

    def data_received(self, data: bytes) -> None:
        queued = len(self._messages)
        super().data_received(data)
        if len(self._messages) > queued:
            self._end_refused_body()

    def _end_refused_body(self) -> None:
        """When the parser refused what came after a request whose body was still open, end
        that body: with the error while a handler may read it, so that it answers the 400 at
        once; with its end when the request was answered already and aiohttp is reading the rest
        to discard it (up to 10 s), so that the queued error is answered next. (`_messages`,
        `_current_request` and `_ErrInfo` are aiohttp's own, private: setup.cfg holds aiohttp to
        one minor series for them.)"""
        message, body = self._messages[-1]
        if not isinstance(message, _ErrInfo):
            self._last_body = body if isinstance(body, StreamReader) else None
            return
        last, self._last_body = self._last_body, None
        if last is None or last.is_eof() or not isinstance(message.exc, HttpProcessingError):
            return
        request = self._current_request
        if request is not None and request.content is last:
            last.set_exception(message.exc)
        else:
            last.feed_eof()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # The only way in: parse errors become an `_ErrInfo` message whose handler calls this.
        # Anything else (a 500 when a middleware itself failed, bytes already sent) stays aiohttp's.
        if not isinstance(exc, HttpProcessingError) or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        error = malformed_request(exc)
        log.debug("refused a request from %s: %s", request.remote, error.reason)
        response = json_response(error.to_body(), status=error.status)
        response.force_close()  # the rest of the stream cannot be framed
        # aiohttp answers for a stand-in request of HTTP/1.0, since it could not read the real
        # one; ES's status line says HTTP/1.1, with `Connection: close`.
        request._version = HttpVersion11
        body = response.body
        self._answered(error.status, len(body) if isinstance(body, bytes) else 0)
        return response


class ElasticServer(web.Server):
    """The application's aiohttp server, whose connections get an `ElasticRequestHandler`."""

    def __init__(self, handler: Any, *, answered: Answered, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.answered = answered

    @classmethod
    def like(cls, server: web.Server, answered: Answered) -> ElasticServer:
        """`server` rebuilt with the same handler, request factory and options: aiohttp makes the
        app's server in `Application._make_handler`, which takes no handler class."""
        return cls(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            answered=answered,
            **server._kwargs,
        )

    def __call__(self) -> ElasticRequestHandler:
        return ElasticRequestHandler(self, loop=self._loop, answered=self.answered, **self._kwargs)


def malformed_request(error: HttpProcessingError) -> MalformedRequest:
    """aiohttp's parse error as the ES error for it, with ES's reasons for lines too long."""
    if isinstance(error, LineTooLong):
        piece, limit = error.args[0], error.args[1]
        if is_request_line(piece):
            return MalformedRequest(
                f"An HTTP line is larger than {limit} bytes.",
                error_type="too_long_http_line_exception",
            )
        return MalformedRequest(
            f"HTTP header is larger than {limit} bytes.",
            error_type="too_long_http_header_exception",
        )
    return MalformedRequest(describe(error.message))


def is_request_line(piece: object) -> bool:
    """Whether the start of the line `LineTooLong` quotes is the request line's: aiohttp raises the
    one exception for a request line and for a header field past its limit."""
    if isinstance(piece, bytearray):  # the C parser's target buffer
        return True
    return isinstance(piece, bytes) and _REQUEST_LINE.match(piece) is not None


def describe(message: str) -> str:
    """aiohttp's message on one line: the parser's descriptions, then the start of the line they
    point at. aiohttp quotes the whole line; a reason quotes MAX_EXCERPT characters of it."""
    descriptions: list[str] = []
    excerpt = ""
    for line in message.splitlines():
        text = line.strip()
        if not text or text == "^":
            continue
        if not excerpt and text[:2] in ("b'", 'b"') and text[-1:] == text[1]:
            excerpt = text[2:-1]
        else:
            descriptions.append(text.rstrip(":"))
    reason = ": ".join(descriptions) or "Malformed HTTP request"
    if excerpt:
        reason += f" in [{cut(withhold(excerpt), MAX_EXCERPT)}]"
    return cut(reason, MAX_REASON)


def withhold(excerpt: str) -> str:
    """The quoted line's first line without what may be a secret: a request line's query
    string, or the value of a header not in SHOWN_HEADERS. `excerpt` is escaped as Python
    prints bytes, so line ends show as `\\r` and `\\n`."""
    line = _LINE_END.split(excerpt, maxsplit=1)[0]
    request = _QUOTED_REQUEST_LINE.fullmatch(line)
    if request is not None:
        path, query, _ = request["target"].partition("?")
        return f"{request['method']} {path}{'?...' if query else ''} {request['version']}"
    name, colon, _ = line.partition(":")
    if colon and name.strip().lower() not in SHOWN_HEADERS:
        return f"{name}: (value withheld)"
    return line


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
