"""A tiny stand-in for an Elasticsearch cluster with security, for `[auth] mode = "upstream"`.

A fake is used here only because the real test upstream (OpenSearch 2.19.6, no security plugin)
has no `_has_privileges` API at all; every test that does not need one uses the real node.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from esproxy.settings import Settings
from tests.faulty_upstream import garbage
from tests.sidecar.conftest import index_name, sidecar_settings  # noqa: F401

CHALLENGES = ('Basic realm="security", charset="UTF-8"', 'Bearer realm="security"', "ApiKey")
CHECK = "/_security/user/_has_privileges"


def basic(user: str, password: str = "secret") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


ALICE = basic("alice")
ADMIN = basic("admin")
BOB_WRONG = basic("bob", "wrong")
SERVICE_KEY = "ApiKey " + base64.b64encode(b"key-1:k3y").decode()


@dataclass
class FakeCluster:
    """Users and their cluster privileges, with the odd answers real clusters give.

    `security`: "on"; "off"; "plugin" (OpenSearch's: 401 first, then no route); "anonymous"
    (no route for anonymous callers, 401 for unknown credentials, no route for known ones);
    "authinfo" (no `_security` route for anyone, but OpenSearch's authinfo answers anonymous
    callers). `fault`, when set, is how the privilege check with credentials answers: "403",
    "500", "timeout", "garbage" or "malformed".
    """

    security: str = "on"
    fault: str | None = None
    calls: list[tuple[str, str | None]] = field(default_factory=list)
    users: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            ALICE: {
                "username": "alice",
                "roles": ["viewer", "inference_reader"],
                "authentication_type": "realm",
                "privileges": {"monitor_inference"},
            },
            ADMIN: {
                "username": "admin",
                "roles": ["superuser"],
                "authentication_type": "realm",
                "privileges": {"monitor_inference", "manage_inference"},
            },
            SERVICE_KEY: {
                "username": "svc",
                "roles": [],
                "authentication_type": "api_key",
                "api_key": {"id": "key-1", "name": "reader"},
                "privileges": {"monitor_inference"},
            },
        }
    )

    def checks(self) -> list[str | None]:
        return [auth for path, auth in self.calls if path == CHECK]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization")
        self.calls.append((request.path, authorization))
        if request.path == "/_plugins/_security/authinfo" and self.security == "authinfo":
            return web.json_response({"user_name": "opendistro_security_anonymous"})
        if not request.path.startswith("/_security/") or self.security in ("off", "authinfo"):
            return no_handler(request)
        if self.fault and authorization and request.path == CHECK:
            return await self.misbehave(request)
        user = self.users.get(authorization or "")
        if self.security == "anonymous":
            return (
                no_handler(request)
                if user or not authorization
                else unauthenticated(request, authorization)
            )
        if self.security == "plugin" and user:
            return no_handler(request)  # authenticated by the plugin, then no such route
        if user is None:
            return unauthenticated(request, authorization)
        if request.path == "/_security/_authenticate":
            shown = {k: v for k, v in user.items() if k != "privileges"}
            return web.json_response(shown)
        asked = (await request.json())["cluster"]
        granted = {name: name in user["privileges"] for name in asked}
        return web.json_response(
            {
                "username": user["username"],
                "has_all_requested": all(granted.values()),
                "cluster": granted,
                "index": {},
                "application": {},
            }
        )

    async def misbehave(self, request: web.Request) -> web.StreamResponse:
        if self.fault == "403":
            cause = {"type": "security_exception", "reason": "action [has_privileges] denied"}
            body = {"error": {"root_cause": [cause], **cause}, "status": 403}
            return web.json_response(body, status=403)
        if self.fault == "500":
            cause = {"type": "exception", "reason": "node is shutting down"}
            body = {"error": {"root_cause": [cause], **cause}, "status": 500}
            return web.json_response(body, status=500)
        if self.fault == "timeout":
            await asyncio.Event().wait()
        if self.fault == "garbage":
            return await garbage(request)
        return web.Response(text='{"has_all_requested": "yes"', content_type="application/json")


def no_handler(request: web.Request) -> web.Response:
    text = f"no handler found for uri [{request.path}] and method [{request.method}]"
    return web.json_response({"error": text, "status": 400}, status=400)


def unauthenticated(request: web.Request, authorization: str | None) -> web.Response:
    if authorization is None:
        reason = f"missing authentication credentials for REST request [{request.path}]"
    else:
        reason = f"unable to authenticate user [bob] for REST request [{request.path}]"
    cause = {
        "type": "security_exception",
        "reason": reason,
        "header": {"WWW-Authenticate": list(CHALLENGES)},
    }
    headers = CIMultiDict(("WWW-Authenticate", value) for value in CHALLENGES)
    body = {"error": {"root_cause": [cause], **cause}, "status": 401}
    return web.Response(
        status=401, text=json.dumps(body), content_type="application/json", headers=headers
    )


@pytest.fixture
async def fake_cluster(aiohttp_server: Callable[..., Any]) -> tuple[FakeCluster, TestServer]:
    cluster = FakeCluster()
    server: TestServer = await aiohttp_server(cluster.app())
    return cluster, server


@pytest.fixture
def cluster_settings(
    settings_for: Callable[..., Settings], fake_cluster: tuple[FakeCluster, TestServer]
) -> Callable[..., Settings]:
    """esproxy in front of the fake cluster; endpoints in SQLite, so the fake holds no index."""
    _, server = fake_cluster

    def build(**environ: str) -> Settings:
        upstream = str(server.make_url("")).rstrip("/")
        environ = {"ESPROXY_UPSTREAM": upstream, "ESPROXY_STORAGE_BACKEND": "sqlite", **environ}
        return settings_for(**environ)

    return build
