"""The record of model calls received, served by `GET /_emulator/requests`; never holds secrets."""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field


@dataclass
class RecordedRequest:
    """One model call: `body` is the decoded JSON (or the text when it is not JSON).

    `at` is when it arrived (Unix time) and `throttled` whether the quota refused it, so tests
    can count calls and throttles per window.
    """

    operation: str
    model: str
    body: object
    signature_verified: bool
    access_key: str | None
    at: float = field(default_factory=time.time)
    throttled: bool = False


class RequestLog:
    """The newest `limit` calls, oldest first, and how many calls of each operation there were
    since the last clear (so that long runs can be counted past the limit)."""

    def __init__(self, limit: int) -> None:
        self._requests: deque[RecordedRequest] = deque(maxlen=max(limit, 1))
        self._counts: Counter[str] = Counter()

    def record(self, request: RecordedRequest) -> None:
        self._requests.append(request)
        self._counts[request.operation] += 1

    def clear(self) -> None:
        self._requests.clear()
        self._counts.clear()

    def to_json(self) -> dict[str, object]:
        return {
            "requests": [asdict(request) for request in self._requests],
            "counts": dict(sorted(self._counts.items())),
        }


def decode_body(raw: bytes) -> object:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return raw.decode(errors="replace")
