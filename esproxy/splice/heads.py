"""Request and response heads: parsed only as far as routing and framing need, rewritten as bytes.

Parsing is strict on purpose. Anything this parser and the upstream's could read differently
(repeated or odd Content-Length, Transfer-Encoding on a request, bare LF, whitespace in a name) is
not spliced: the request goes to aiohttp's own parser, which judges it, so nothing can be smuggled.
"""

from __future__ import annotations

import re
from http import HTTPStatus

from esproxy.web.media_types import JSON
from esproxy.web.responses import PRODUCT_HEADERS

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

CRLF = b"\r\n"
MAX_HEAD = 65536 + 4096  # aiohttp's limits here are 64 KiB a line; a head this long goes to it


class InvalidResponse(Exception):
    """The upstream's answer is not HTTP/1.1 this proxy can frame."""


class RequestHead:
    __slots__ = ("close", "content_length", "expect", "method", "path", "rest", "target")

    def __init__(
        self,
        method: bytes,
        target: bytes,
        rest: bytes,
        content_length: int,
        close: bool,
        expect: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.path = target.partition(b"?")[0]
        self.rest = rest  # the header lines a node gets, each after a CRLF: no Host, no per-hop
        self.content_length = content_length
        self.close = close
        self.expect = expect

    def for_upstream(self, prefix: bytes, host: bytes) -> bytes:
        """The head as a node gets it: its own Host, no per-hop headers, target under its prefix."""
        return b"%s %s%s HTTP/1.1\r\nHost: %s%s\r\n\r\n" % (
            self.method,
            prefix,
            self.target,
            host,
            self.rest,
        )


# A line start that is not a token and a colon: folding, whitespace before the colon, a line
# without a name. With the CR/LF counts, this validates a head in a few C-level scans.
_BAD_LINE = re.compile(rb"\r\n(?![!#$%&'*+\-.^_`|~0-9A-Za-z]+:)")
# Request headers that need the line-by-line path: per-hop ones, and framing not spliced.
_REQUEST_SPECIAL = re.compile(
    rb"\r\n(?:connection|keep-alive|te|trailer|upgrade|expect|transfer-encoding|proxy-)"
)
_RESPONSE_PER_HOP = re.compile(
    rb"\r\n(?:connection|keep-alive|proxy-connection|upgrade):[^\r\n]*", re.IGNORECASE
)
_PER_HOP_NAME = re.compile(rb"\r\n(?:connection|keep-alive|proxy-connection|upgrade):")
_CONNECTION = re.compile(rb"\r\nconnection:([^\r\n]*)")


def is_plain(head: bytes) -> bool:
    """No bare CR or LF, and every header line a token name and a colon."""
    lines = head.count(b"\r\n")
    return (
        head.count(b"\n") == lines and head.count(b"\r") == lines and _BAD_LINE.search(head) is None
    )


# A whole plain request head in one C-level match: an upper-case method, a target without spaces,
# HTTP/1.1, then header lines that are each a token name and a colon, with no bare CR or LF
# anywhere. The same rules as `is_plain` and the request line's checks, in one pass instead of six.
_PLAIN_REQUEST = re.compile(
    rb"([A-Z]+) ([^ \r\n]+) HTTP/1\.1((?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n]*)*)"
)


def parse_request_head(head: bytes) -> RequestHead | None:
    """`head` without its blank line; None for anything that is not plain HTTP/1.1."""
    plain = _PLAIN_REQUEST.fullmatch(head)
    if plain is None:
        return None
    method, target = plain.group(1, 2)
    eol = plain.start(3)
    lower = head.lower()
    if _REQUEST_SPECIAL.search(lower, eol) is not None:
        return parse_request_lines(method, target, head[eol + 2 :].split(b"\r\n"))
    content_length = 0
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.find(b"\r\n", at + 17)
        value = (head[at + 17 : end] if end >= 0 else head[at + 17 :]).strip(b" \t")
        if (
            not value.isdigit()
            or len(value) > 15
            or lower.find(b"\r\ncontent-length:", at + 17) >= 0
        ):
            return None
        content_length = int(value)
    at = lower.find(b"\r\nhost:")
    if at < 0:
        return RequestHead(method, target, head[eol:], content_length, False, False)
    end = lower.find(b"\r\n", at + 7)
    if end < 0:
        return RequestHead(method, target, head[eol:at], content_length, False, False)
    if lower.find(b"\r\nhost:", end) >= 0:
        return None  # two Host headers
    headers = head[eol:at] + head[end:]
    return RequestHead(method, target, headers, content_length, False, False)


def parse_request_lines(method: bytes, target: bytes, lines: list[bytes]) -> RequestHead | None:
    """The line-by-line path, for heads with per-hop headers, Expect or unsplicable framing."""
    content_length, close, expect = -1, False, False
    connection_listed: list[bytes] = []
    for line in lines:
        name, _, value = line.partition(b":")
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
    dropped = set(_REQUEST_DROPPED)
    if connection_listed:  # names `Connection` lists are per-hop too
        listed = set(connection_listed) - {b"close", b"keep-alive", b""}
        if b"content-length" in listed or b"host" in listed:
            return None
        dropped |= listed
    kept = b"".join(
        b"\r\n" + line
        for line in lines
        if line.partition(b":")[0].lower() not in dropped and line[:6].lower() != b"proxy-"
    )
    return RequestHead(method, target, kept, max(content_length, 0), close, expect)


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


def read_response_head(head: bytes, *, head_request: bool, close_client: bool) -> ResponseHead:
    """`head` without its blank line; a final answer (the caller passes 1xx ones on as they are).

    Adds `Connection: close` when the client's connection ends with this answer: because it asked,
    or because the body runs until the node closes.
    """
    eol = head.find(b"\r\n")
    if eol < 0:
        eol = len(head)
    version, _, rest = head[:eol].partition(b" ")
    code = rest[:3]
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or not code.isdigit() or rest[3:4] not in b" ":
        raise InvalidResponse(f"bad status line [{describe_bytes(head[:eol])}]")
    if not is_plain(head):
        bad = _BAD_LINE.search(head)
        line = (head[bad.start() + 2 :] if bad is not None else head[eol:]).split(CRLF)[0]
        raise InvalidResponse(f"bad header line [{describe_bytes(line)}]")
    lower = head.lower()
    close = version == b"HTTP/1.0"
    content_length = -1
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.find(b"\r\n", at + 17)
        value = (head[at + 17 : end] if end >= 0 else head[at + 17 :]).strip(b" \t")
        if not value.isdigit():
            raise InvalidResponse(f"bad Content-Length [{describe_bytes(value)}]")
        content_length = int(value)
        if end >= 0 and b"\r\ncontent-length:" in lower[end:]:
            raise InvalidResponse("repeated Content-Length")
    chunked = False
    at = lower.find(b"\r\ntransfer-encoding:")
    if at >= 0:
        end = lower.find(b"\r\n", at + 20)
        value = (lower[at + 20 : end] if end >= 0 else lower[at + 20 :]).strip(b" \t")
        chunked = value.endswith(b"chunked")
        if not chunked or lower.count(b"\r\ntransfer-encoding:") > 1:
            raise InvalidResponse(f"unsupported Transfer-Encoding [{describe_bytes(value)}]")
    per_hop = _PER_HOP_NAME.search(lower) is not None
    if per_hop:
        for connection in _CONNECTION.finditer(lower):
            tokens = {t.strip(b" \t") for t in connection.group(1).split(b",")}
            close = b"close" in tokens or (close and b"keep-alive" not in tokens)
    status = int(code)
    if head_request or status in (204, 304):
        content_length, chunked = 0, False  # no body, whatever the framing headers say
    elif chunked:
        content_length = -1  # RFC 9112 6.3: chunked framing wins
    elif content_length < 0:
        close = True  # the body ends when the node closes, and so must the client's connection
        close_client = True
    if per_hop:
        head = _RESPONSE_PER_HOP.sub(b"", head)
    if close_client:
        head += b"\r\nConnection: close"
    return ResponseHead(status, head + b"\r\n\r\n", content_length, chunked, close, close_client)


# Answers repeat: a node answers with the same headers, and mostly only Content-Length differs.
# So each parsed answer head is kept under the head with that value cut out; a head that matches
# differs from the parsed one only in a number, which is checked. (Request heads are not kept:
# they carry the callers' credentials.)
CACHED_ANSWERS = 512
_answers: dict[tuple[bytes, bytes, bool, bool], tuple[ResponseHead, bytes, bytes, bool]] = {}


def parse_response_head(head: bytes, *, head_request: bool, close_client: bool) -> ResponseHead:
    """`read_response_head`, remembered for heads that differ only in their Content-Length."""
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0 or b"\r\nset-cookie:" in lower:
        return read_response_head(head, head_request=head_request, close_client=close_client)
    at += 17
    end = head.find(b"\r\n", at)
    if end < 0:
        end = len(head)
    value = head[at:end]
    key = (head[:at], head[end:], head_request, close_client)
    known = _answers.get(key)
    if known is not None:
        digits = value.strip(b" \t")
        if digits.isdigit():
            template, before, after, sized = known
            return ResponseHead(
                template.status,
                before + value + after,
                int(digits) if sized else template.content_length,
                template.chunked,
                template.close,
                template.close_client,
            )
    parsed = read_response_head(head, head_request=head_request, close_client=close_client)
    out = parsed.head
    cut = out.lower().find(b"\r\ncontent-length:") + 17
    if cut >= 17 and out[cut : cut + len(value)] == value:
        if len(_answers) >= CACHED_ANSWERS:
            _answers.clear()  # a node whose heads never repeat: start over, no ages to track
        sized = not (head_request or parsed.status in (204, 304) or parsed.chunked)
        _answers[key] = (parsed, out[:cut], out[cut + len(value) :], sized)
    return parsed


def error_head(status: int, length: int, *, close: bool) -> bytes:
    """The head of an answer esproxy writes itself, with the headers its aiohttp answers carry."""
    headers = {**PRODUCT_HEADERS, "Content-Type": JSON, "Content-Length": str(length)}
    if close:
        headers["Connection"] = "close"
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n{lines}\r\n".encode()


def describe_bytes(data: bytes) -> str:
    return data[:80].decode("latin-1").encode("unicode_escape").decode()
