"""LeanSigV4Auth signs every request exactly as botocore's SigV4Auth does.

Hypothesis builds requests over the space botocore's signer sees (methods, URLs with ports,
userinfo, IPv6 hosts, dot segments and encoded paths, queries, repeated and blacklisted headers,
str and bytes bodies, session tokens) and the cases the fast path hands back to botocore (query
parameters as a mapping, a Date header, unsigned payloads). Both signers sign a copy each; the
headers they leave, in order, and the request context must be identical.
"""

from __future__ import annotations

import copy
from typing import Any

from botocore.auth import SigV4Auth  # type: ignore[import-untyped, unused-ignore]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped, unused-ignore]
from botocore.credentials import ReadOnlyCredentials  # type: ignore[import-untyped, unused-ignore]
from hypothesis import given, note, settings
from hypothesis import strategies as st

from esproxy.integrations.amazonbedrock.signing import LeanSigV4Auth

SEGMENT = st.text(alphabet="abcXYZ019-_.~:%@!$'()*+,;= é", max_size=8)
PATH = st.one_of(
    st.just(""),
    st.lists(st.one_of(SEGMENT, st.sampled_from([".", "..", "", "%3A", "%2F"])), max_size=5).map(
        lambda parts: "/" + "/".join(parts)
    ),
)
HOST = st.sampled_from(
    [
        "bedrock-runtime.us-east-1.amazonaws.com",
        "Bedrock-Runtime.EU-West-1.amazonaws.com",
        "127.0.0.1",
        "[::1]",
        "[2001:DB8::1]",
        "user:secret@localhost",
        "localhost",
    ]
)
PORT = st.sampled_from(["", ":80", ":443", ":8443"])
QUERY = st.lists(
    st.tuples(st.text("abXY0-_%", min_size=1, max_size=4), st.text("ab0=%-", max_size=4)),
    max_size=3,
).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))
HEADER_NAMES = st.sampled_from(
    [
        "Content-Type",
        "content-type",
        "Accept",
        "X-Amz-Date",
        "Authorization",
        "X-Amz-Security-Token",
        "User-Agent",
        "X-Amzn-Trace-Id",
        "Expect",
        "X-Amzn-Bedrock-Trace",
        "Host",
        "Date",
        "X-Amz-Content-SHA256",
    ]
)
HEADER_VALUE = st.text(alphabet="ab /;=\t0-", max_size=12)
BODY = st.one_of(st.none(), st.just(b""), st.binary(max_size=64), st.text(max_size=32))
CREDENTIALS = st.builds(
    ReadOnlyCredentials,
    st.sampled_from(["AKIDEXAMPLE", "ASIAEXAMPLE"]),
    st.sampled_from(["wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "other-secret"]),
    st.sampled_from([None, "", "session-token/with+chars="]),
)


@st.composite
def requests(draw: Any) -> AWSRequest:
    scheme = draw(st.sampled_from(["http", "https"]))
    query = draw(QUERY)
    url = f"{scheme}://{draw(HOST)}{draw(PORT)}{draw(PATH)}" + (f"?{query}" if query else "")
    headers = draw(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUE), max_size=6))
    request = AWSRequest(
        method=draw(st.sampled_from(["POST", "GET", "post", "DELETE"])),
        url=url,
        data=draw(BODY),
        params=draw(st.sampled_from([{}, {}, {"b": "2 3", "a": "x/y"}])),
    )
    for name, value in headers:
        request.headers[name] = value
    request.context.update(draw(st.sampled_from([{}, {}, {"payload_signing_enabled": False}])))
    return request


def signed_by(signer: type[SigV4Auth], request: AWSRequest, credentials: Any) -> AWSRequest:
    signed = copy.deepcopy(request)
    signer(credentials, "bedrock", "us-east-1").add_auth(signed)
    return signed


@settings(max_examples=1000, deadline=None, database=None)
@given(requests(), CREDENTIALS)
def test_lean_signing_equals_botocore(request: AWSRequest, credentials: Any) -> None:
    headers = list(request.headers.items())
    note(f"{request.method} {request.url} {request.data!r} {request.params} {headers}")
    note(f"context {request.context}")
    for _ in range(3):  # both must sign in the same second; retried if the clock ticks between
        expected = signed_by(SigV4Auth, request, credentials)
        got = signed_by(LeanSigV4Auth, request, credentials)
        if got.context["timestamp"] == expected.context["timestamp"]:
            break
    assert list(got.headers.items()) == list(expected.headers.items())
    assert got.context == expected.context
    assert got.url == expected.url
