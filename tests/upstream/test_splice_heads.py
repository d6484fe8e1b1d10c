"""Request heads the splicer forwards as they are, and the ones it leaves to aiohttp to judge."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esproxy.splice.chunks import ChunkedScanner
from esproxy.splice.heads import (
    InvalidResponse,
    parse_request_head,
    parse_response_head,
)

PLAIN = (
    b"POST /logs/_doc HTTP/1.1\r\nHost: es\r\nContent-Type: application/json\r\nContent-Length: 12"
)


def test_a_plain_head_is_parsed_and_rewritten_for_the_node() -> None:
    head = parse_request_head(
        PLAIN + b"\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nProxy-Authorization: x"
        b"\r\nX-Opaque-Id: job-1"
    )
    assert head is not None
    assert head.content_length == 12 and not head.close and not head.expect
    assert head.for_upstream(b"/prefix", b"node:9200") == (
        b"POST /prefix/logs/_doc HTTP/1.1\r\nHost: node:9200\r\nContent-Type: application/json"
        b"\r\nContent-Length: 12\r\nX-Opaque-Id: job-1\r\n\r\n"
    )


@pytest.mark.parametrize(
    "head",
    [
        PLAIN + b"\r\nContent-Length: 12",  # repeated, even when equal
        PLAIN + b"\r\nTransfer-Encoding: chunked",
        PLAIN.replace(b"Content-Length: 12", b"Content-Length: +12"),
        PLAIN.replace(b"Content-Length:", b"Content-Length :"),
        PLAIN + b"\r\n continued",  # obsolete line folding
        PLAIN.replace(b"\r\nHost", b"\nHost"),  # bare LF
        PLAIN.replace(b"HTTP/1.1", b"HTTP/1.0"),
        PLAIN + b"\r\nUpgrade: websocket\r\nConnection: upgrade",
        PLAIN + b"\r\nExpect: something-else",
        PLAIN + b"\r\nConnection: content-length",
        b"post /x HTTP/1.1\r\nHost: es",
        b"GET /a b HTTP/1.1\r\nHost: es",
        b"GET  /a HTTP/1.1\r\nHost: es",  # two spaces
        b"GET /a HTTP/1.1 \r\nHost: es",
        b"G3T /a HTTP/1.1\r\nHost: es",
        b"GET /a\rb HTTP/1.1\r\nHost: es",  # bare CR in the target
        PLAIN + b"\r\nX-A: b\rc",  # bare CR in a value
        PLAIN + b"\r\nX-A\t: b",
        PLAIN + b"\r\n: b",  # no name
        PLAIN + b"\r\nno colon at all",
        PLAIN + b"\r\nX-\xe9: b",  # not a token
        PLAIN + b"\r\nhost: again",
    ],
)
def test_anything_parsers_could_read_differently_is_not_spliced(head: bytes) -> None:
    assert parse_request_head(head) is None


TOKEN = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def plain_line_by_line(head: bytes) -> bool:
    """The rules the splicer's one-pass check stands for, read the slow way."""
    lines = head.split(b"\r\n")
    if any(b"\r" in line or b"\n" in line for line in lines):
        return False
    request_line = lines[0].split(b" ")
    if len(request_line) != 3:
        return False
    method, target, version = request_line
    if not (method.isalpha() and method.isupper()) or not target or version != b"HTTP/1.1":
        return False
    for line in lines[1:]:
        name, colon, _ = line.partition(b":")
        if not colon or not name or name.translate(None, TOKEN):
            return False
    return True


FRAGMENTS = [
    *(b"GET", b"get", b"POST", b" ", b"/i/_search?q=a b", b"/x", b"HTTP/1.1", b"HTTP/1.0"),
    *(b"\r\n", b"\r\n", b"\r", b"\n", b"\t", b":", b"\x00", b"\xe9", b"X-A", b"Accept"),
    *(b"Authorization: ApiKey a:b", b" folded", b"X A"),
]


@given(st.lists(st.sampled_from(FRAGMENTS), max_size=14))
def test_a_request_head_is_spliced_only_when_every_line_reads_plainly(parts: list[bytes]) -> None:
    head = b"GET /x HTTP/1.1" + b"".join(parts) if len(parts) % 2 else b"".join(parts)
    assert (parse_request_head(head) is not None) == plain_line_by_line(head)


def test_answers_keep_their_framing_and_lose_per_hop_headers() -> None:
    answer = parse_response_head(
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
        b"Transfer-Encoding: chunked",
        head_request=False,
        close_client=True,
    )
    assert answer.chunked and not answer.close and answer.close_client
    assert answer.head == (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )


def test_an_answer_without_a_length_ends_both_connections() -> None:
    answer = parse_response_head(b"HTTP/1.1 200 OK", head_request=False, close_client=False)
    assert answer.close and answer.close_client
    assert answer.head == b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
    to_head = parse_response_head(
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 60", head_request=True, close_client=False
    )
    assert to_head.content_length == 0 and not to_head.close


@pytest.mark.parametrize(
    "head",
    [
        b"SSH-2.0-OpenSSH_9.6",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5x",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip",
        b"HTTP/1.1 200 OK\r\nbad header",
    ],
)
def test_answers_that_cannot_be_framed_are_refused(head: bytes) -> None:
    with pytest.raises(InvalidResponse):
        parse_response_head(head, head_request=False, close_client=False)


CHUNKED = b"5\r\nhello\r\n1a;name=value\r\n" + b"z" * 26 + b"\r\n0\r\nTrailer: yes\r\n\r\n"


@given(st.lists(st.integers(min_value=1, max_value=len(CHUNKED)), max_size=12))
def test_the_end_of_a_chunked_body_is_found_however_it_is_split(cuts: list[int]) -> None:
    data = CHUNKED + b"GET /next"
    scanner = ChunkedScanner()
    offsets = sorted({0, *cuts, len(data)})
    for start, stop in itertools.pairwise(offsets):
        end = scanner.feed(data[start:stop])
        if end >= 0:
            assert start + end == len(CHUNKED)
            return
    raise AssertionError("the end was never found")


@pytest.mark.parametrize("size", [b"-5", b"0x5", b"1_0", b"", b"zz"])
def test_bad_chunk_sizes_are_refused(size: bytes) -> None:
    with pytest.raises(InvalidResponse):
        ChunkedScanner().feed(size + b"\r\nhello\r\n")
