"""Encoding of `application/vnd.amazon.eventstream` frames (prelude, string headers, CRC-32s).

Only the encoder lives here; clients decode with botocore. Bedrock sends string headers only.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping, Sequence

STRING_TYPE = b"\x07"


def encode_headers(headers: Sequence[tuple[str, str]]) -> bytes:
    out = bytearray()
    for name, value in headers:
        raw_name, raw_value = name.encode(), value.encode()
        out += bytes([len(raw_name)]) + raw_name + STRING_TYPE
        out += struct.pack("!H", len(raw_value)) + raw_value
    return bytes(out)


def encode_message(headers: Sequence[tuple[str, str]], payload: bytes) -> bytes:
    header_block = encode_headers(headers)
    total = 12 + len(header_block) + len(payload) + 4
    prelude = struct.pack("!II", total, len(header_block))
    message = prelude + struct.pack("!I", zlib.crc32(prelude)) + header_block + payload
    return message + struct.pack("!I", zlib.crc32(message))


def encode_json(body: Mapping[str, object]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def encode_event(event_type: str, body: Mapping[str, object]) -> bytes:
    """An event frame; the payload is the event structure itself, never wrapped in its name."""
    headers = [
        (":event-type", event_type),
        (":content-type", "application/json"),
        (":message-type", "event"),
    ]
    return encode_message(headers, encode_json(body))


def encode_exception(exception_type: str, body: Mapping[str, object]) -> bytes:
    """A modelled exception frame; `exception_type` is the union member name (lower camel case)."""
    headers = [
        (":exception-type", exception_type),
        (":content-type", "application/json"),
        (":message-type", "exception"),
    ]
    return encode_message(headers, encode_json(body))


def encode_error(code: str, message: str) -> bytes:
    """An unmodelled error frame; botocore reads the code and text from the headers."""
    headers = [(":message-type", "error"), (":error-code", code), (":error-message", message)]
    return encode_message(headers, b"")
