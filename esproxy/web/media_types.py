"""Elasticsearch's media types: the plain JSON ones and the `compatible-with=N` vendor types.

A request that asks for a compatible version gets its answers in that vendor type, as ES does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from esproxy.errors import PlainError, ProxyError, StatusError

SUPPORTED_VERSIONS = frozenset({7, 8, 9})
JSON = "application/json"
YAML = "application/yaml"
_VENDOR = re.compile(r"application/vnd\.elasticsearch\+(json|x-ndjson)", re.IGNORECASE)
_VERSION = re.compile(r"compatible-with\s*=\s*\"?(\d{1,3})\"?(?![\d])", re.IGNORECASE)
_BODY_TYPES = frozenset({"application/json", "application/x-ndjson"})


@dataclass(frozen=True)
class MediaType:
    essence: str  # type/subtype, lower case
    version: int | None


def parse_media_type(header: str | None, name: str) -> MediaType | None:
    """The first entry of an Accept or Content-Type header, with its compatible version."""
    if not header or not header.strip():
        return None
    first = header.split(",")[0]
    essence = first.split(";")[0].strip().lower()
    vendor = _VENDOR.fullmatch(essence)
    if vendor is None:
        return MediaType(essence, None)
    found = _VERSION.search(first)
    if found is None or int(found.group(1)) not in SUPPORTED_VERSIONS:
        raise invalid_header(name, header)
    return MediaType(f"application/{vendor.group(1)}", int(found.group(1)))


def negotiate(accept: str | None, content_type: str | None, has_body: bool) -> str:
    """The Content-Type of our answer; raises ES's errors for unusable headers."""
    accepted = parse_media_type(accept, "Accept")
    sent = parse_media_type(content_type, "Content-Type") if has_body else None
    if has_body:
        check_body_type(content_type, sent)
    versions = {m.version for m in (accepted, sent) if m is not None}
    if len(versions - {None}) > 1 or (None in versions and len(versions) > 1 and sent):
        raise StatusError(
            "A compatible version is required on both Content-Type and Accept headers if either "
            "one has requested a compatible version and the compatible versions must match. "
            f"Accept={accept}, Content-Type={content_type}",
            status=400,
        )
    version = next((v for v in versions if v is not None), None)
    if version is None and accepted is not None and accepted.essence == YAML:
        return YAML  # ES answers in the format the client accepts
    return JSON if version is None else vendor_json(version)


def vendor_json(version: int) -> str:
    return f"application/vnd.elasticsearch+json;compatible-with={version}"


def check_body_type(header: str | None, parsed: MediaType | None) -> None:
    if parsed is None:
        raise PlainError("Content-Type header is missing", status=406)
    if parsed.essence not in _BODY_TYPES:
        raise PlainError(f"Content-Type header [{header}] is not supported", status=406)


def invalid_header(name: str, value: str) -> ProxyError:
    cause = StatusError(
        f"{name} version must be one of {sorted(SUPPORTED_VERSIONS)}, but found [{value}]",
        status=400,
    )
    return ProxyError(
        f"Invalid media-type value on headers [{name}]",
        status=400,
        error_type="media_type_header_exception",
        caused_by=cause,
    )
