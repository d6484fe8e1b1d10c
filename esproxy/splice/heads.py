"""Request and response heads: parsed only as far as routing and framing need, rewritten as bytes.

Parsing is strict on purpose. Anything this parser and the upstream's could read differently
(repeated or odd Content-Length, Transfer-Encoding on a request, bare LF, whitespace in a name) is
not spliced: the request goes to aiohttp's own parser, which judges it, so nothing can be smuggled.
"""

from __future__ import annotations

from http import HTTPStatus

# RFC 9110 token characters: a header name holding anything else is not spliced.
_TOKEN = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Never forwarded as they came: per-hop headers (RFC 9110 7.6.1), and the ones set per node.
_REQUEST_DROPPED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"upgrade",
        b"host",
        b"expect",
    }
)
# An answer's framing (Transfer-Encoding) passes through untouched, with its body bytes.
_RESPONSE_DROPPED = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"upgrade"})

MAX_HEAD = 65536 + 4096  # aiohttp's limits here are 64 KiB a line; a head this long goes to it


class InvalidResponse(Exception):
    """The upstream's answer is not HTTP/1.1 this proxy can frame."""


class RequestHead:
    __slots__ = ("close", "content_length", "expect", "lines", "method", "path", "target")

    def __init__(
        self,
        method: bytes,
        target: bytes,
        lines: list[bytes],
        content_length: int,
        close: bool,
        expect: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.path = target.partition(b"?")[0]
        self.lines = lines  # header lines as sent, without their CRLF
        self.content_length = content_length
        self.close = close
        self.expect = expect

    def for_upstream(self, prefix: bytes, host: bytes) -> bytes:
        """The head as a node gets it: its own Host, no per-hop headers, target under its prefix."""
        kept = [
            line
            for line in self.lines
            if line.partition(b":")[0].lower() not in _REQUEST_DROPPED
            and line[:6].lower() != b"proxy-"
        ]
        return (
            b"\r\n".join(
                [self.method + b" " + prefix + self.target + b" HTTP/1.1", b"Host: " + host, *kept]
            )
            + b"\r\n\r\n"
        )


def parse_request_head(head: bytes) -> RequestHead | None:
    """`head` without its blank line; None for anything that is not plain HTTP/1.1."""
    lines = head.split(b"\r\n")
    if head.count(b"\n") != len(lines) - 1 or head.count(b"\r") != len(lines) - 1:
        return None  # a bare LF or CR: parsers disagree on those
    method, _, rest = lines[0].partition(b" ")
    target, _, version = rest.partition(b" ")
    if version != b"HTTP/1.1" or not method.isalpha() or not method.isupper() or not target:
        return None
    if b" " in target:
        return None
    content_length, close, expect = -1, False, False
    headers = lines[1:]
    connection_listed: list[bytes] = []
    for line in headers:
        name, colon, value = line.partition(b":")
        if not colon or not name or name.translate(None, _TOKEN):
            return None
        lower = name.lower()
        if lower == b"content-length":
            value = value.strip(b" \t")
            if content_length >= 0 or not value.isdigit() or len(value) > 15:
                return None
            content_length = int(value)
        elif lower == b"transfer-encoding" or lower == b"upgrade":
            return None
        elif lower == b"connection":
            tokens = [t.strip(b" \t").lower() for t in value.split(b",")]
            if b"upgrade" in tokens:
                return None
            close = close or b"close" in tokens
            connection_listed.extend(tokens)
        elif lower == b"expect":
            if value.strip(b" \t").lower() != b"100-continue":
                return None
            expect = True
    if connection_listed:  # names `Connection` lists are per-hop too
        dropped = set(connection_listed) - {b"close", b"keep-alive", b""}
        if b"content-length" in dropped or b"host" in dropped:
            return None
        headers = [h for h in headers if h.partition(b":")[0].lower() not in dropped]
    return RequestHead(method, target, headers, max(content_length, 0), close, expect)


class ResponseHead:
    __slots__ = ("chunked", "close", "close_client", "content_length", "head", "status")

    def __init__(
        self,
        status: int,
        head: bytes,
        content_length: int,
        chunked: bool,
        close: bool,
        close_client: bool,
    ) -> None:
        self.status = status
        self.head = head  # as the client gets it, blank line included
        self.content_length = content_length  # -1: none; 0 also for answers without a body
        self.chunked = chunked
        self.close = close  # the node closes its connection after this answer
        self.close_client = close_client  # so must esproxy, the client's


def parse_response_head(head: bytes, *, head_request: bool, close_client: bool) -> ResponseHead:
    """`head` without its blank line; a final answer (the caller passes 1xx ones on as they are).

    Adds `Connection: close` when the client's connection ends with this answer: because it asked,
    or because the body runs until the node closes.
    """
    lines = head.split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code = rest[:3]
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or not code.isdigit() or rest[3:4] not in b" ":
        raise InvalidResponse(f"bad status line [{describe_bytes(lines[0])}]")
    close = version == b"HTTP/1.0"
    content_length, chunked, rewrite = -1, False, close_client
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name.translate(None, _TOKEN):
            raise InvalidResponse(f"bad header line [{describe_bytes(line)}]")
        lower = name.lower()
        if lower == b"content-length":
            value = value.strip(b" \t")
            if not value.isdigit() or (content_length >= 0 and int(value) != content_length):
                raise InvalidResponse(f"bad Content-Length [{describe_bytes(value)}]")
            content_length = int(value)
        elif lower == b"transfer-encoding":
            chunked = value.strip(b" \t").lower().endswith(b"chunked")
            if not chunked:
                raise InvalidResponse(f"unsupported Transfer-Encoding [{describe_bytes(value)}]")
        elif lower in _RESPONSE_DROPPED:
            rewrite = True
            if lower == b"connection":
                tokens = {t.strip(b" \t").lower() for t in value.split(b",")}
                close = b"close" in tokens or (close and b"keep-alive" not in tokens)
    status = int(code)
    if head_request or status in (204, 304):
        content_length, chunked = 0, False  # no body, whatever the framing headers say
    elif chunked:
        content_length = -1  # RFC 9112 6.3: chunked framing wins
    elif content_length < 0:
        close = True  # the body ends when the node closes, and so must the client's connection
        close_client = rewrite = True
    if rewrite:
        kept = [
            line for line in lines[1:] if line.partition(b":")[0].lower() not in _RESPONSE_DROPPED
        ]
        if close_client:
            kept.append(b"Connection: close")
        head = b"\r\n".join([lines[0], *kept])
    return ResponseHead(status, head + b"\r\n\r\n", content_length, chunked, close, close_client)


def error_head(status: int, length: int, *, close: bool) -> bytes:
    """The head of an answer esproxy writes itself: ES's product header and JSON."""
    reason = HTTPStatus(status).phrase.encode()
    return (
        b"HTTP/1.1 %d %s\r\nX-elastic-product: Elasticsearch\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
        % (status, reason, length, b"Connection: close\r\n" if close else b"")
    )


def describe_bytes(data: bytes) -> str:
    return data[:80].decode("latin-1").encode("unicode_escape").decode()
