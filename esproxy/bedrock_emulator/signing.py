"""SigV4 verification of incoming calls, recomputed with hashlib/hmac the way botocore signs them.

With no keys configured every caller is accepted; `signature_verified` then only says whether the
`Authorization` header parsed as a well-formed SigV4 header for the `bedrock` signing name.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from aiohttp import web
from multidict import CIMultiDictProxy

from esproxy.bedrock_emulator.errors import BedrockError
from esproxy.bedrock_emulator.identities import TemporaryCredentials

ALGORITHM = "AWS4-HMAC-SHA256"
SIGNING_NAME = "bedrock"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
AUTHORIZATION_PATTERN = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<access_key>[^/]+)/(?P<day>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request,\s*SignedHeaders=(?P<signed>[^,\s]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS "
    "Secret Access Key and signing method. Consult the service documentation for details."
)


@dataclass(frozen=True)
class Authorization:
    """The parts of a SigV4 `Authorization` header."""

    access_key: str
    day: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str = field(repr=False)

    @property
    def scope(self) -> str:
        return f"{self.day}/{self.region}/{self.service}/aws4_request"


@dataclass(frozen=True)
class SignedCall:
    """What the verifier needs from an HTTP request; `raw_path` is still percent-encoded."""

    method: str
    raw_path: str
    raw_query: str
    headers: CIMultiDictProxy[str]
    body: bytes = field(repr=False)

    @classmethod
    def of(cls, request: web.Request, body: bytes) -> SignedCall:
        return cls(
            request.method,
            request.rel_url.raw_path,
            request.rel_url.raw_query_string,
            request.headers,
            body,
        )


@dataclass(frozen=True)
class SignatureCheck:
    """Who called and whether the signature held; `error` is set when the call must be refused."""

    access_key: str | None
    signature_verified: bool
    error: BedrockError | None = None


def parse_authorization(header: str) -> Authorization | None:
    match = AUTHORIZATION_PATTERN.fullmatch(header.strip())
    if match is None:
        return None
    return Authorization(
        access_key=match["access_key"],
        day=match["day"],
        region=match["region"],
        service=match["service"],
        signed_headers=tuple(match["signed"].split(";")),
        signature=match["signature"],
    )


def check_signature(
    call: SignedCall,
    keys: Mapping[str, str],
    clock_skew_s: float,
    *,
    temporary: Callable[[str], TemporaryCredentials | None] = lambda _: None,
    service: str = SIGNING_NAME,
) -> SignatureCheck:
    """Verify a call signed with a base key pair or with temporary credentials the emulator issued.

    Issued credentials are always verified, with their session token and expiry, even when no
    base keys are configured.
    """
    header = call.headers.get("Authorization", "")
    auth = parse_authorization(header)
    issued = temporary(auth.access_key) if auth is not None else None
    if not keys and issued is None:
        well_formed = auth is not None and auth.service == service
        return SignatureCheck(auth.access_key if auth else None, well_formed)
    if not header:
        return refuse(None, BedrockError("MissingAuthenticationTokenException"))
    if auth is None:
        return refuse(None, incomplete_signature(header))
    if issued is not None:
        token = call.headers.get("X-Amz-Security-Token", "")
        if not hmac.compare_digest(token.encode(), issued.session_token.encode()):
            return refuse(auth.access_key, BedrockError("UnrecognizedClientException"))
        if issued.expired():
            return refuse(auth.access_key, BedrockError("ExpiredTokenException"))
        secret = issued.secret_key
    elif auth.access_key in keys:
        secret = keys[auth.access_key]
    else:
        return refuse(auth.access_key, BedrockError("UnrecognizedClientException"))
    problem = scope_problem(call, auth, clock_skew_s, service)
    if problem is not None:
        return refuse(auth.access_key, problem)
    canonical = canonical_request(call, auth.signed_headers)
    to_sign = string_to_sign(call.headers["X-Amz-Date"], auth.scope, canonical)
    expected = sign(secret, auth, to_sign)
    if not hmac.compare_digest(expected, auth.signature):
        return refuse(auth.access_key, signature_mismatch(canonical, to_sign))
    return SignatureCheck(auth.access_key, True)


def refuse(access_key: str | None, error: BedrockError) -> SignatureCheck:
    return SignatureCheck(access_key, False, error)


def incomplete_signature(header: str) -> BedrockError:
    if header.startswith("Bearer "):
        return BedrockError("UnrecognizedClientException")
    return BedrockError(
        "IncompleteSignatureException",
        f"Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters. "
        f"Authorization={header.split(' ', 1)[0]}",
    )


def scope_problem(
    call: SignedCall, auth: Authorization, clock_skew_s: float, service: str = SIGNING_NAME
) -> BedrockError | None:
    amz_date = call.headers.get("X-Amz-Date", "")
    try:
        signed_at = datetime.strptime(amz_date, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return BedrockError(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )
    if auth.service != service:
        return BedrockError(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{service}'.",
        )
    if auth.day != amz_date[:8]:
        return BedrockError(
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
            f"HTTP: '{auth.day}' != '{amz_date[:8]}', from '{amz_date}'.",
        )
    return clock_problem(signed_at, clock_skew_s)


def clock_problem(signed_at: datetime, clock_skew_s: float) -> BedrockError | None:
    now = datetime.now(UTC)
    skew = timedelta(seconds=clock_skew_s)
    minutes = f"{clock_skew_s / 60:g} min."
    stamp = signed_at.strftime(AMZ_DATE_FORMAT)
    if signed_at < now - skew:
        earliest = (now - skew).strftime(AMZ_DATE_FORMAT)
        return BedrockError(
            "InvalidSignatureException",
            f"Signature expired: {stamp} is now earlier than {earliest} "
            f"({now.strftime(AMZ_DATE_FORMAT)} - {minutes})",
        )
    if signed_at > now + skew:
        latest = (now + skew).strftime(AMZ_DATE_FORMAT)
        return BedrockError(
            "InvalidSignatureException",
            f"Signature not yet current: {stamp} is still later than {latest} "
            f"({now.strftime(AMZ_DATE_FORMAT)} + {minutes})",
        )
    return None


def signature_mismatch(canonical: str, to_sign: str) -> BedrockError:
    # AWS appends both strings it computed, which is what makes its mismatch errors debuggable.
    return BedrockError(
        "InvalidSignatureException",
        f"{SIGNATURE_MISMATCH}\n\nThe Canonical String for this request should have been\n"
        f"'{canonical}'\n\nThe String-to-Sign should have been\n'{to_sign}'\n",
    )


def canonical_request(call: SignedCall, signed_headers: tuple[str, ...]) -> str:
    header_lines = "".join(
        f"{name}:{canonical_header_value(call.headers, name)}\n" for name in signed_headers
    )
    payload_hash = call.headers.get("X-Amz-Content-SHA256") or hashlib.sha256(call.body).hexdigest()
    return "\n".join(
        [
            call.method.upper(),
            canonical_uri(call.raw_path),
            canonical_query(call.raw_query),
            header_lines,
            ";".join(signed_headers),
            payload_hash,
        ]
    )


def canonical_header_value(headers: CIMultiDictProxy[str], name: str) -> str:
    return ",".join(" ".join(value.split()) for value in headers.getall(name, []))


def canonical_uri(raw_path: str) -> str:
    """The already-encoded path with dot and empty segments removed, percent-encoded again."""
    segments: list[str] = []
    for segment in raw_path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    trailing = "/" if raw_path.endswith("/") and segments else ""
    return quote("/" + "/".join(segments) + trailing, safe="/~")


def canonical_query(raw_query: str) -> str:
    if not raw_query:
        return ""
    pairs = sorted(pair.partition("=")[::2] for pair in raw_query.split("&"))
    return "&".join(f"{key}={value}" for key, value in pairs)


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return "\n".join([ALGORITHM, amz_date, scope, digest])


def sign(secret_key: str, auth: Authorization, to_sign: str) -> str:
    key = ("AWS4" + secret_key).encode()
    for part in (auth.day, auth.region, auth.service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return hmac.new(key, to_sign.encode(), "sha256").hexdigest()
