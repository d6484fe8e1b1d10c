"""A scripted stand-in for the forwarder, for unit tests of `ClusterAuthorizer` without sockets.

`ClusterAuthorizer` only calls `forwarder.send(method, path, headers, body)` and reads the status,
headers and body of the answer. The tests over real sockets (test_cluster_checks.py) start a
proxy and a stand-in cluster per test, which is too slow for mutation testing; these answer each
question from a function instead and record what esproxy asked.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict

NODE_URL = "http://node-1:9200"


@dataclass(frozen=True)
class Node:
    url: str = NODE_URL


class Reply:
    """What a node answers: a status, headers and body bytes (a dict or list is sent as JSON)."""

    def __init__(self, status: int, body: Any = None, headers: list[tuple[str, str]] = ()):
        self.status = status
        self.headers = CIMultiDict(headers)
        if isinstance(body, dict | list):
            body = json.dumps(body).encode()
        self._raw = body if isinstance(body, bytes) else (body or "").encode()
        self.closed = False

    async def __aenter__(self) -> Reply:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.closed = True

    async def read(self) -> bytes:
        return self._raw

    async def json(self, content_type: str | None = "application/json") -> Any:
        return json.loads(self._raw)


@dataclass(frozen=True)
class Asked:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or None


Answer = Callable[[Asked], Reply | BaseException | None]


@dataclass
class ScriptedCluster:
    """`answer(asked)` gives a Reply, an exception to raise, or None to never answer."""

    answer: Answer
    asked: list[Asked] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)

    async def send(
        self, method: str, path: str, headers: CIMultiDict[str], data: bytes | None
    ) -> tuple[Node, Reply]:
        asked = Asked(method, path, dict(headers), json.loads(data) if data else None)
        self.asked.append(asked)
        outcome = self.answer(asked)
        if outcome is None:
            await asyncio.Event().wait()
        if isinstance(outcome, BaseException):
            raise outcome
        assert isinstance(outcome, Reply)
        self.replies.append(outcome)
        return Node(), outcome

    def paths(self) -> list[str]:
        return [asked.path for asked in self.asked]


def no_handler(asked: Asked) -> Reply:
    text = f"no handler found for uri [{asked.path}] and method [{asked.method}]"
    return Reply(400, {"error": text, "status": 400})


def security_error(status: int, reason: str, **extra: Any) -> dict[str, Any]:
    cause = {"type": "security_exception", "reason": reason, **extra}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


def granted(username: str, allowed: bool) -> Reply:
    return Reply(200, {"username": username, "has_all_requested": allowed, "cluster": {}})
