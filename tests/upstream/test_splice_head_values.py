"""The exact bytes the splicer sends on, and the exact framing and errors it reads from answers.

These are unit tests of esproxy/splice/heads.py, fast enough for `scripts/mutate heads`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esproxy.splice import heads
from esproxy.splice.heads import (
    InvalidResponse,
    RequestHead,
    error_head,
    parse_request_head,
    parse_request_lines,
    parse_response_head,
    read_response_head,
)

LINE = b"POST /logs/_doc?refresh=true HTTP/1.1"


def upstream(head: RequestHead | None) -> bytes:
    assert head is not None
    return head.for_upstream(b"", b"node:9200")


@pytest.mark.parametrize(
    ("head", "sent", "length"),
    [
        # the request line alone
        (LINE, b"POST /logs/_doc?refresh=true HTTP/1.1\r\nHost: node:9200\r\n\r\n", 0),
        # Host first, in the middle, last, absent; Content-Length last, with blanks around it
        (
            LINE + b"\r\nHost: es\r\nX-A: 1\r\nContent-Length:\t 12 ",
            b"%s\r\nHost: node:9200\r\nX-A: 1\r\nContent-Length:\t 12 \r\n\r\n" % LINE,
            12,
        ),
        (
            LINE + b"\r\nX-A: 1\r\nhOsT: es\r\ncontent-length: 000000000000007\r\nX-B: 2",
            b"%s\r\nHost: node:9200\r\nX-A: 1\r\ncontent-length: 000000000000007\r\nX-B: 2"
            b"\r\n\r\n" % LINE,
            7,
        ),
        (
            LINE + b"\r\nX-A: 1\r\nContent-Length: 3\r\nHost: es:9200",
            b"%s\r\nHost: node:9200\r\nX-A: 1\r\nContent-Length: 3\r\n\r\n" % LINE,
            3,
        ),
        (
            LINE + b"\r\nContent-Length:11\r\nX-A: 1\r\nX-B: 2\r\nHost:es",
            b"%s\r\nHost: node:9200\r\nContent-Length:11\r\nX-A: 1\r\nX-B: 2\r\n\r\n" % LINE,
            11,
        ),
        (
            LINE + b"\r\nHost: es\r\nContent-Length:11",
            b"%s\r\nHost: node:9200\r\nContent-Length:11\r\n\r\n" % LINE,
            11,
        ),
        (  # an empty Host: only that line goes
            LINE + b"\r\nHost:\r\nX-A: 1",
            b"%s\r\nHost: node:9200\r\nX-A: 1\r\n\r\n" % LINE,
            0,
        ),
        (
            LINE + b"\r\nX-Host: h\r\nX-Content-Length: 5",
            b"%s\r\nHost: node:9200\r\nX-Host: h\r\nX-Content-Length: 5\r\n\r\n" % LINE,
            0,
        ),
    ],
)
def test_plain_heads_reach_the_node_with_its_host_and_their_length(
    head: bytes, sent: bytes, length: int
) -> None:
    parsed = parse_request_head(head)
    assert upstream(parsed) == sent
    assert parsed is not None
    assert (parsed.method, parsed.content_length, parsed.close, parsed.expect) == (
        b"POST",
        length,
        False,
        False,
    )


@pytest.mark.parametrize(
    ("target", "path"),
    [
        (b"/_inference/x?a=b?c", b"/_inference/x"),
        (b"/logs/_search", b"/logs/_search"),
        (b"/?", b"/"),
    ],
)
def test_the_path_a_request_is_routed_by_ends_at_the_first_question_mark(
    target: bytes, path: bytes
) -> None:
    for extra in (b"", b"\r\nConnection: close"):
        head = parse_request_head(b"GET %s HTTP/1.1\r\nHost: es%s" % (target, extra))
        assert head is not None
        assert (head.target, head.path) == (target, path)


@pytest.mark.parametrize(
    "head",
    [
        b"GET  /x HTTP/1.1\r\nHost: es",  # two spaces
        b"GET\t/x HTTP/1.1\r\nHost: es",
        b"GET /x\tHTTP/1.1\r\nHost: es",
        b"GET /x HTTP/1.1\r\nHost: es\r\nContent-Length: 1234567890123456",  # 16 digits
        b"GET /x HTTP/1.1\r\nContent-Length: 1\r\nHost: es\r\ncontent-length: 1",
        b"GET /x HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nhost: b",  # two Host headers
        b"GET /x HTTP/1.1\r\nContent-Length: 12\r\nConnection: close\r\nContent-Length: 12",
        b"GET /x HTTP/1.1\r\nConnection: close\r\nContent-Length: 1234567890123456",
        b"GET /x HTTP/1.1\r\nConnection: close\r\nContent-Length: 1x",
        b"GET /x HTTP/1.1\r\nConnection: close\r\nTransfer-Encoding: chunked",
        b"GET /x HTTP/1.1\r\nUpgrade: h2c:1",
        b"GET /x HTTP/1.1\r\nConnection: keep-alive, Upgrade",
        b"GET /x HTTP/1.1\r\nConnection: keep-alive,upgrade",
        b"GET /x HTTP/1.1\r\nConnection: keep-alive, host",
        b"GET /x HTTP/1.1\r\nExpect: 100-continue-and-more",
        b"GET /x HTTP/1.1\r\nExpect: 100-continue\x0b",
        b"GET /x HTTP/1.1\r\nExpect: 100-continueX",
        # Only blanks and tabs surround a length: anything else is for aiohttp to judge.
        b"GET /x HTTP/1.1\r\nHost: es\r\nContent-Length: 5\x0b",
        b"GET /x HTTP/1.1\r\nHost: es\r\nContent-Length: 5X",
        b"GET /x HTTP/1.1\r\nConnection: close\r\nContent-Length: 5\x0c",
        b"GET /x HTTP/1.1\r\nConnection: close\r\nContent-Length: 5X",
        b"GET /x HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\nContent-Length: 5",
        b"\r\nGET /x HTTP/1.1\r\nHost: es",
        b"GET /x HTTP/1.1 extra\r\nHost: es",
        b"GET /x HTTP/2\r\nHost: es",
        b"G3T /x HTTP/1.1\r\nHost: es",
        b"GET  HTTP/1.1\r\nHost: es",
    ],
)
def test_heads_with_doubtful_framing_or_hosts_are_left_to_aiohttp(head: bytes) -> None:
    assert parse_request_head(head) is None


@pytest.mark.parametrize(
    ("extra", "sent", "close", "expect"),
    [
        (b"Connection: close", b"", True, False),
        (b"Connection: Keep-Alive ,\tCLOSE", b"", True, False),
        (b"Connection: keep-alive", b"", False, False),
        (b"Expect: 100-Continue\t", b"", False, True),
        (b"Expect: 100-continue\r\nConnection: close", b"", True, True),
        # A listed name is per-hop as well; the rest stays, in order.
        (
            b"Connection: close, X-Hop\r\nX-Hop: 1\r\nX-Time: 12:00\r\nKeep-Alive: 5",
            b"\r\nX-Time: 12:00",
            True,
            False,
        ),
        (b"Connection: close\r\nHost: es:9200\r\nTE: trailers", b"", True, False),
        (b"Connection: close\r\nProxy-Authorization: a\r\nPROXY-X: b", b"", True, False),
        # The names that stay: `Connection: close, keep-alive` lists no other header.
        (
            b"Connection: close, keep-alive, ,\r\nClose: 1\r\nX-A: 1",
            b"\r\nClose: 1\r\nX-A: 1",
            True,
            False,
        ),
    ],
)
def test_per_hop_headers_are_dropped_and_read_on_the_line_by_line_path(
    extra: bytes, sent: bytes, close: bool, expect: bool
) -> None:
    head = parse_request_head(LINE + b"\r\nContent-Length:  15 \r\n" + extra)
    assert upstream(head) == (
        b"%s\r\nHost: node:9200\r\nContent-Length:  15 %s\r\n\r\n" % (LINE, sent)
    )
    assert head is not None
    assert (head.method, head.content_length, head.close, head.expect) == (
        b"POST",
        15,
        close,
        expect,
    )


def test_a_line_by_line_head_without_a_length_has_none() -> None:
    head = parse_request_head(b"GET /x HTTP/1.1\r\nConnection: close")
    assert head is not None and head.content_length == 0
    head = parse_request_head(b"GET /x HTTP/1.1\r\nConnection: close\r\nContent-Length: 0")
    assert head is not None and head.content_length == 0
    head = parse_request_head(
        b"GET /x HTTP/1.1\r\nConnection: close\r\nContent-Length: 999999999999999"
    )
    assert head is not None and head.content_length == 999999999999999


NAMES = st.sampled_from(
    [b"Host", b"hOST", b"Content-Length", b"content-LENGTH", b"X-A", b"Accept", b"X-Host"]
)
VALUES = st.sampled_from([b"", b" 1", b"1", b"\t12 ", b" es:9200", b" a b", b" 00"])


@given(st.lists(st.tuples(NAMES, VALUES), max_size=6))
def test_the_fast_path_reads_a_head_as_the_line_by_line_path_does(
    headers: list[tuple[bytes, bytes]],
) -> None:
    lines = [name + b":" + value for name, value in headers]
    head = b"\r\n".join([b"PUT /a/_doc/1 HTTP/1.1", *lines])
    fast = parse_request_head(head)
    slow = parse_request_lines(b"PUT", b"/a/_doc/1", lines)
    if fast is None:
        lower = [name.lower() for name, _ in headers]
        assert lower.count(b"host") > 1 or b"content-length" in lower
        return
    assert slow is not None
    assert (upstream(fast), fast.content_length, fast.close, fast.expect) == (
        upstream(slow),
        slow.content_length,
        slow.close,
        slow.expect,
    )


@pytest.fixture
def no_remembered_answers() -> Iterator[None]:
    """Answer heads are remembered process-wide; these tests start from none."""
    heads._answers.clear()
    yield
    heads._answers.clear()


# head, HEAD request, client closes -> status, head out, length, chunked, close, close client
ANSWERS = [
    (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length:  42 ",
        False,
        False,
        (200, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length:  42 ", 42),
        (False, False, False),
    ),
    (
        b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 300 + b"\r\nContent-Length:11\r\nX-A: 1\r\nX-B: 2",
        False,
        False,
        (
            200,
            b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 300 + b"\r\nContent-Length:11\r\nX-A: 1"
            b"\r\nX-B: 2",
            11,
        ),
        (False, False, False),
    ),
    (
        b"HTTP/1.1 200 OK\r\nContent-Length:11",
        False,
        False,
        (200, b"HTTP/1.1 200 OK\r\nContent-Length:11", 11),
        (False, False, False),
    ),
    (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding:chunked",
        False,
        False,
        (200, b"HTTP/1.1 200 OK\r\nTransfer-Encoding:chunked", -1),
        (True, False, False),
    ),
    (
        b"HTTP/1.1 200 OK\r\nX-A: 1",
        False,
        False,
        (200, b"HTTP/1.1 200 OK\r\nX-A: 1\r\nConnection: close", -1),
        (False, True, True),
    ),
    (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding:chunked\r\nX-A: 1\r\nX-B: 2",
        False,
        False,
        (200, b"HTTP/1.1 200 OK\r\nTransfer-Encoding:chunked\r\nX-A: 1\r\nX-B: 2", -1),
        (True, False, False),
    ),
    (
        b"HTTP/1.1 201 Created\r\ncontent-length: 7\r\nX-A: b",
        False,
        True,
        (201, b"HTTP/1.1 201 Created\r\ncontent-length: 7\r\nX-A: b\r\nConnection: close", 7),
        (False, False, True),
    ),
    (
        b"HTTP/1.0 200 OK\r\nContent-Length: 3",
        False,
        False,
        (200, b"HTTP/1.0 200 OK\r\nContent-Length: 3", 3),
        (False, True, False),
    ),
    (
        b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 3",
        False,
        False,
        (200, b"HTTP/1.0 200 OK\r\nContent-Length: 3", 3),
        (False, False, False),
    ),
    (
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive,close",
        False,
        False,
        (200, b"HTTP/1.1 200 OK\r\nContent-Length: 3", 3),
        (False, True, False),
    ),
    (
        b"HTTP/1.1 200 OK\r\nCONNECTION: X-A\r\nKeep-Alive: 5\r\nProxy-Connection: x\r\n"
        b"Upgrade: h2c\r\nContent-Length: 3",
        False,
        False,
        (200, b"HTTP/1.1 200 OK\r\nContent-Length: 3", 3),
        (False, False, False),
    ),
    (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding:  gzip, Chunked \r\nContent-Length: 3",
        False,
        False,
        (200, b"HTTP/1.1 200 OK\r\nTransfer-Encoding:  gzip, Chunked \r\nContent-Length: 3", -1),
        (True, False, False),
    ),
    (
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\ntransfer-encoding: chunked",
        False,
        False,
        (200, b"HTTP/1.1 200 OK\r\nX-A: 1\r\ntransfer-encoding: chunked", -1),
        (True, False, False),
    ),
    (
        b"HTTP/1.1 204 No Content\r\nContent-Length: 12",
        False,
        False,
        (204, b"HTTP/1.1 204 No Content\r\nContent-Length: 12", 0),
        (False, False, False),
    ),
    (
        b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked",
        False,
        False,
        (304, b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked", 0),
        (False, False, False),
    ),
    (
        b"HTTP/1.1 205 Reset Content\r\nContent-Length: 12",
        False,
        False,
        (205, b"HTTP/1.1 205 Reset Content\r\nContent-Length: 12", 12),
        (False, False, False),
    ),
    (
        b"HTTP/1.1 200 OK\r\nContent-Length: 12",
        True,
        False,
        (200, b"HTTP/1.1 200 OK\r\nContent-Length: 12", 0),
        (False, False, False),
    ),
    (
        b"HTTP/1.1 503",
        True,
        False,
        (503, b"HTTP/1.1 503", 0),
        (False, False, False),
    ),
    (
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=b\r\nContent-Length: 4",
        False,
        False,
        (200, b"HTTP/1.1 200 OK\r\nSet-Cookie: a=b\r\nContent-Length: 4", 4),
        (False, False, False),
    ),
]


@pytest.mark.usefixtures("no_remembered_answers")
@pytest.mark.parametrize(("head", "head_request", "close_client", "sent", "framing"), ANSWERS)
def test_answers_are_framed_and_passed_on_exactly(
    head: bytes,
    head_request: bool,
    close_client: bool,
    sent: tuple[int, bytes, int],
    framing: tuple[bool, bool, bool],
) -> None:
    for _ in range(2):  # the second time from what was remembered
        answer = parse_response_head(head, head_request=head_request, close_client=close_client)
        assert (answer.status, answer.head, answer.content_length) == (
            sent[0],
            sent[1] + b"\r\n\r\n",
            sent[2],
        )
        assert (answer.chunked, answer.close, answer.close_client) == framing


@pytest.mark.usefixtures("no_remembered_answers")
@pytest.mark.parametrize(
    ("first", "then", "sent", "length"),
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nX-A: 1",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nX-A: 1\r\n\r\n",
            1234,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length:11",
            b"HTTP/1.1 200 OK\r\nContent-Length:15",
            b"HTTP/1.1 200 OK\r\nContent-Length:15\r\n\r\n",
            15,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5",
            b"HTTP/1.1 200 OK\r\nContent-Length:  60 ",
            b"HTTP/1.1 200 OK\r\nContent-Length:  60 \r\n\r\n",
            60,
        ),
        (
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\nX-A: 1",
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 77\r\nX-A: 1",
            b"HTTP/1.1 200 OK\r\nContent-Length: 77\r\nX-A: 1\r\n\r\n",
            77,
        ),
    ],
)
def test_a_remembered_answer_head_carries_the_new_length(
    first: bytes, then: bytes, sent: bytes, length: int
) -> None:
    parse_response_head(first, head_request=False, close_client=False)
    answer = parse_response_head(then, head_request=False, close_client=False)
    assert (answer.head, answer.content_length, answer.close) == (sent, length, False)
    for bad in (b"6X", b"6\x0b"):
        with pytest.raises(InvalidResponse, match=r"bad Content-Length"):
            parse_response_head(
                then.replace(b"%d" % length, bad), head_request=False, close_client=False
            )


@pytest.mark.usefixtures("no_remembered_answers")
def test_remembering_answers_is_bounded_and_stays_right() -> None:
    for n in range(heads.CACHED_ANSWERS + 3):
        head = b"HTTP/1.1 200 OK\r\nX-N: %d\r\nContent-Length: %d" % (n, n)
        again = parse_response_head(head, head_request=False, close_client=False)
        assert (again.head, again.content_length) == (head + b"\r\n\r\n", n)
        assert len(heads._answers) <= heads.CACHED_ANSWERS


@pytest.mark.usefixtures("no_remembered_answers")
@given(
    st.sampled_from(
        [
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d",
            b"HTTP/1.1 201 Created\r\nConnection: keep-alive\r\ncontent-length:  %d \r\nX-A: b",
            b"HTTP/1.0 404 Not Found\r\nContent-Length: %d\r\nTransfer-Encoding: chunked",
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: %d",
            b"HTTP/1.1 204 No Content\r\nContent-Length: %d",
        ]
    ),
    st.lists(st.integers(min_value=0, max_value=10**12), min_size=2, max_size=4),
    st.booleans(),
    st.booleans(),
)
def test_remembered_heads_read_as_fresh_ones_from_an_empty_memory(
    shape: bytes, lengths: list[int], head_request: bool, close_client: bool
) -> None:
    for length in lengths:
        head = shape % length
        got = parse_response_head(head, head_request=head_request, close_client=close_client)
        fresh = read_response_head(head, head_request=head_request, close_client=close_client)
        assert (got.status, got.head, got.content_length) == (
            fresh.status,
            fresh.head,
            fresh.content_length,
        )
        assert (got.chunked, got.close, got.close_client) == (
            fresh.chunked,
            fresh.close,
            fresh.close_client,
        )


@pytest.mark.usefixtures("no_remembered_answers")
@pytest.mark.parametrize(
    ("head", "problem"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\nX: 1\r\nY: 2", "bad status line [SSH-2.0-OpenSSH_9.6]"),
        (b"\r\nHTTP/1.1 200 OK", "bad status line []"),
        (b"HTTP/1.1 200XOK", "bad status line [HTTP/1.1 200XOK]"),
        (b"HTTP/1.1 20x OK", "bad status line [HTTP/1.1 20x OK]"),
        (b"HTTP/1.1 2000 OK", "bad status line [HTTP/1.1 2000 OK]"),
        (b"HTTP/1.1 200\tOK", "bad status line [HTTP/1.1 200\\tOK]"),
        (b"HTTP/2 200 OK", "bad status line [HTTP/2 200 OK]"),
        (b"HTTP/1.1 200 OK\r\nX: 1\r\nbad header\r\nY: 2", "bad header line [bad header]"),
        (b"HTTP/1.1 200 OK\r\nX: 1\nY: 2", "bad header line [X: 1\\nY: 2]"),
        (b"HTTP/1.1 200 OK\r\nA: 1\r\nX: 1\rY: 2\r\nZ: 3", "bad header line [X: 1\\rY: 2]"),
        (b"HTTP/1.1 200 OK\n", "bad header line [HTTP/1.1 200 OK\\n]"),
        (b"HTTP/1.1 200 OK\r\nContent-Length:\r\nX: 1", "bad Content-Length []"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\x0c", "bad Content-Length [5\\x0c]"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5X", "bad Content-Length [5X]"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5x", "bad Content-Length [5x]"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\nX: 1", "bad Content-Length [-1]"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 5", "repeated Content-Length"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\nX: 1",
            "unsupported Transfer-Encoding [chunked, gzip]",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
            "unsupported Transfer-Encoding [chunked]",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked",
            "unsupported Transfer-Encoding [gzip]",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\nX: chunked",
            "unsupported Transfer-Encoding []",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\x0b",
            "unsupported Transfer-Encoding [chunked\\x0b]",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity",
            "unsupported Transfer-Encoding [identity]",
        ),
        # a long line is described cut at 80 bytes, escaped
        (b"HTTP/1.1 200 OK\r\n" + b"\xe9" * 100, "bad header line [" + "\\xe9" * 80 + "]"),
    ],
)
def test_answers_that_cannot_be_framed_say_why(head: bytes, problem: str) -> None:
    with pytest.raises(InvalidResponse) as raised:
        parse_response_head(head, head_request=False, close_client=False)
    assert str(raised.value) == problem


@pytest.mark.parametrize(
    ("status", "close", "head"),
    [
        (
            502,
            True,
            b"HTTP/1.1 502 Bad Gateway\r\nX-elastic-product: Elasticsearch\r\n"
            b"Content-Type: application/json\r\nContent-Length: 10\r\nConnection: close\r\n\r\n",
        ),
        (
            504,
            False,
            b"HTTP/1.1 504 Gateway Timeout\r\nX-elastic-product: Elasticsearch\r\n"
            b"Content-Type: application/json\r\nContent-Length: 10\r\n\r\n",
        ),
    ],
)
def test_esproxy_s_own_error_heads_carry_the_product_header(
    status: int, close: bool, head: bytes
) -> None:
    assert error_head(status, 10, close=close) == head


@pytest.mark.usefixtures("no_remembered_answers")
def test_answers_that_set_cookies_are_not_remembered() -> None:
    """Cookies are credentials: like request heads, they are never kept past their answer."""
    for length in (5, 6):
        head = b"HTTP/1.1 200 OK\r\nSet-Cookie: session=s3cret\r\nContent-Length: %d" % length
        answer = parse_response_head(head, head_request=False, close_client=False)
        assert answer.head == head + b"\r\n\r\n"
    assert b"s3cret" not in repr(heads._answers).encode()
    parse_response_head(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5", head_request=False, close_client=False
    )
    assert len(heads._answers) == 1
