"""ClusterAuthorizer (`[auth] mode = "upstream"`): the cluster judges each caller's credentials.

It asks `_has_privileges` with the caller's own `Authorization`, passed as is, and caches the
answer briefly. esproxy never goes open by itself: a cluster that shows no security at all leaves
`_inference` open only when the operator set `[auth] allow_unsecured_cluster`, and answers 503
otherwise; a cluster that authenticates callers without that API, or that cannot be asked, means
503 always.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import aiohttp
from multidict import CIMultiDict

from esproxy.authorization.decisions import ALLOWED, Decision, DecisionCache
from esproxy.authorization.privileges import (
    INFER,
    Credentials,
    Privilege,
    describe_subject,
    unauthorized,
)
from esproxy.errors import (
    AccessDenied,
    AuthenticationFailed,
    AuthorizationUnavailable,
    UpstreamUnavailable,
)
from esproxy.upstream import UpstreamForwarder

log = logging.getLogger(__name__)

CHECK_PATH = "/_security/user/_has_privileges"
AUTHENTICATE_PATH = "/_security/_authenticate"
# OpenSearch's security plugin: it answers here (200 to anonymous users, else 401) when present.
OPENSEARCH_AUTHINFO_PATH = "/_plugins/_security/authinfo"
RUN_AS_HEADER = "es-security-runas-user"
# Parts of ES's error object that are not metadata, when a 401 is passed on.
ERROR_FIELDS = frozenset({"root_cause", "type", "reason", "header", "caused_by", "stack_trace"})
# How clusters without (Elasticsearch) security answer: OpenSearch and ES 8+ with security off
# have no such route; ES 7 reads `_security` as an index; older ES says security is off.
NO_ROUTE_TEXTS = ("no handler found", "Incorrect HTTP method")
SECURITY_OFF_TEXTS = ("Security must be explicitly enabled", "Security is not enabled")
# Answers that show a security layer at work.
SECURED_STATUSES = (200, 401, 403)


class Security(StrEnum):
    UNKNOWN = "unknown"  # not asked yet, or no answer so far: every caller is checked
    ENABLED = "enabled"
    # Credentials are checked, but not through `_has_privileges` (OpenSearch's security plugin,
    # or a cluster that refuses made-up credentials yet has no such route): esproxy cannot check.
    UNCHECKABLE = "uncheckable"
    ABSENT = "absent"  # no sign of security by any probe


@dataclass(frozen=True)
class Answer:
    node: str
    status: int
    body: Any
    challenges: tuple[str, ...]


class ClusterAuthorizer:
    """Borrows the forwarder to reach the cluster; `probe()` learns whether it has security."""

    def __init__(
        self,
        forwarder: UpstreamForwarder,
        cache: DecisionCache,
        *,
        timeout: float,
        allow_unsecured: bool = False,
    ) -> None:
        self.forwarder = forwarder
        self.cache = cache
        self.timeout = timeout
        self.allow_unsecured = allow_unsecured
        self.security = Security.UNKNOWN
        self.node: str | None = None  # the node that gave the last verdict

    @property
    def is_open(self) -> bool:
        """True when every caller is let through: only by the operator's explicit choice."""
        return self.security is Security.ABSENT and self.allow_unsecured

    def status(self) -> dict[str, Any]:
        """For `/_esproxy/ready`: what esproxy knows of the cluster's security, and what follows."""
        found: dict[str, Any] = {"mode": "upstream", "cluster_security": str(self.security)}
        if self.is_open:
            found["open"] = True
            found["reason"] = (
                "the cluster shows no security and [auth] allow_unsecured_cluster = true: "
                "_inference is open to every caller"
            )
        elif self.security in (Security.ABSENT, Security.UNCHECKABLE):
            found["ok"] = False
            found["reason"] = self.refusal_reason()
        return found

    async def probe(self) -> Security:
        """Ask without credentials, then with made-up ones, then OpenSearch's plugin route.

        Only when none of them shows a security layer is security taken to be absent: a secured
        cluster may answer an anonymous caller with "no handler found" (OpenSearch's plugin with
        anonymous access). Any probe that fails leaves the verdict as it was: never open.
        """
        try:
            answer = await self.ask("GET", CHECK_PATH, None, check_body(INFER))
            if not lacks_security(answer):
                if answer.status in SECURED_STATUSES:
                    self.note(Security.ENABLED, answer)
                return self.security
            sign = await self.find_other_security()
        except AuthorizationUnavailable as error:
            log.warning("cannot tell whether the cluster has security: %s", error.reason)
            return self.security
        if sign is not None:
            self.note(Security.UNCHECKABLE, sign)
        else:
            self.note(Security.ABSENT, answer)
        return self.security

    async def find_other_security(self) -> Answer | None:
        """An answer that shows credentials being checked without `_has_privileges`, if any."""
        bogus = Credentials(authorization=made_up_basic())
        refused = await self.ask("GET", CHECK_PATH, bogus, check_body(INFER))
        if refused.status in (401, 403):
            return refused
        if not lacks_security(refused):
            raise unusable(refused)  # neither a refusal nor "no such route": cannot be sure
        plugin = await self.ask("GET", OPENSEARCH_AUTHINFO_PATH, None, None)
        if plugin.status in SECURED_STATUSES:
            return plugin
        if plugin.status in (400, 404, 405):
            return None
        raise unusable(plugin)

    def note(self, security: Security, answer: Answer) -> None:
        self.node = answer.node
        if security == self.security:
            return
        self.security = security
        if security is Security.ABSENT and self.allow_unsecured:
            log.warning(
                "the cluster at [%s] shows no security (it answered %s with status [%d]) and "
                "[auth] allow_unsecured_cluster = true: esproxy's _inference API is OPEN to "
                "every caller",
                answer.node,
                CHECK_PATH,
                answer.status,
            )
        elif security in (Security.ABSENT, Security.UNCHECKABLE):
            log.error("%s", self.refusal_reason())
        else:
            log.info(
                "the cluster at [%s] has security: callers' privileges are checked", answer.node
            )

    def refusal_reason(self) -> str:
        node = self.node or "?"
        if self.security is Security.UNCHECKABLE:
            return uncheckable_reason(node)
        return unsecured_reason(node)

    async def authorize(self, credentials: Credentials, privilege: Privilege, uri: str) -> None:
        if self.is_open:
            return
        if self.security in (Security.ABSENT, Security.UNCHECKABLE):
            # Known not to be checkable: answer at once, without a round of cluster calls per
            # request; the refresh loop notices when the cluster changes.
            raise AuthorizationUnavailable(self.refusal_reason())
        key = self.cache.key(credentials, privilege.name)
        decision = self.cache.get(key)
        if decision is None:
            decision = await self.decide(credentials, privilege, uri)
            if decision is None:  # the cluster turned out to have no security, as allowed
                return
            self.cache.put(key, decision)
        if decision.denied is not None:
            raise AccessDenied(unauthorized(privilege, decision.denied))

    async def decide(
        self, credentials: Credentials, privilege: Privilege, uri: str
    ) -> Decision | None:
        answer = await self.ask("GET", CHECK_PATH, credentials, check_body(privilege))
        if lacks_security(answer):
            await self.probe()
            if self.is_open:
                return None
            if self.security is Security.ABSENT:
                raise AuthorizationUnavailable(unsecured_reason(answer.node))
            raise AuthorizationUnavailable(uncheckable_reason(answer.node))
        if answer.status == 401:
            raise authentication_failure(answer, uri)
        if answer.status == 403:
            raise AccessDenied(error_reason(answer.body) or "the cluster refused the check")
        granted = answer.body.get("has_all_requested") if isinstance(answer.body, dict) else None
        if answer.status != 200 or not isinstance(granted, bool):
            raise unusable(answer)
        self.note(Security.ENABLED, answer)
        if granted:
            return ALLOWED
        return Decision(await self.subject(credentials, answer.body.get("username")))

    async def subject(self, credentials: Credentials, username: Any) -> str:
        """ES's denial names the caller's roles, which only `_authenticate` tells."""
        try:
            answer = await self.ask("GET", AUTHENTICATE_PATH, credentials, None)
        except AuthorizationUnavailable:
            answer = None
        found = answer.body if answer is not None and answer.status == 200 else None
        return describe_subject(found if isinstance(found, dict) else None, username)

    async def ask(
        self, method: str, path: str, credentials: Credentials | None, body: bytes | None
    ) -> Answer:
        headers = request_headers(credentials, body is not None)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                node, response = await self.forwarder.send(method, path, headers, body)
                async with response:
                    raw = await response.read()
        except TimeoutError:
            raise AuthorizationUnavailable(
                f"the cluster did not answer [{method} {path}] within {self.timeout:g}s, so "
                "esproxy cannot check the caller's privileges"
            ) from None
        except UpstreamUnavailable as error:
            raise AuthorizationUnavailable(
                f"cannot check the caller's privileges: {error.reason}"
            ) from None
        except (aiohttp.ClientError, OSError) as error:
            raise AuthorizationUnavailable(
                f"cannot check the caller's privileges: [{method} {path}] failed: {error}"
            ) from None
        log.debug(
            "%s %s%s -> %d in %.1f ms",
            method,
            node.url,
            path,
            response.status,
            (time.perf_counter() - started) * 1000,
        )
        challenges = tuple(response.headers.getall("WWW-Authenticate", ()))
        return Answer(node.url, response.status, parse_body(raw), challenges)


def uncheckable_reason(node: str) -> str:
    return (
        f"the cluster at [{node}] authenticates callers but has no Elasticsearch {CHECK_PATH} "
        "API, so esproxy cannot check privileges and its _inference API answers 503; set [auth] "
        'mode = "api_keys"'
    )


def unsecured_reason(node: str) -> str:
    return (
        f"the cluster at [{node}] shows no security (no {CHECK_PATH} API), so esproxy cannot "
        'check callers and its _inference API answers 503; set [auth] mode = "api_keys", or '
        "[auth] allow_unsecured_cluster = true to leave it open"
    )


def made_up_basic() -> str:
    """Credentials no cluster can know: only a cluster that checks credentials refuses them."""
    user = "esproxy-probe-" + secrets.token_hex(8)
    token = base64.b64encode(f"{user}:{secrets.token_urlsafe(24)}".encode()).decode()
    return f"Basic {token}"


def check_body(privilege: Privilege) -> bytes:
    return json.dumps({"cluster": [privilege.name]}).encode()


def request_headers(credentials: Credentials | None, has_body: bool) -> CIMultiDict[str]:
    headers = CIMultiDict({"Accept": "application/json", "Accept-Encoding": "identity"})
    if has_body:
        headers["Content-Type"] = "application/json"
    if credentials is not None:
        if credentials.authorization is not None:
            headers["Authorization"] = credentials.authorization
        if credentials.run_as is not None:
            headers[RUN_AS_HEADER] = credentials.run_as
    return headers


def lacks_security(answer: Answer) -> bool:
    text = error_reason(answer.body) or ""
    if answer.status in (400, 404, 405):
        return any(part in text for part in NO_ROUTE_TEXTS) or (
            error_type(answer.body) == "invalid_index_name_exception"
        )
    return answer.status == 500 and any(part in text for part in SECURITY_OFF_TEXTS)


def authentication_failure(answer: Answer, uri: str) -> AuthenticationFailed:
    """The cluster's 401, naming the caller's request rather than esproxy's check."""
    error = answer.body.get("error") if isinstance(answer.body, dict) else None
    reason = error_reason(answer.body) or "unable to authenticate"
    reason = reason.replace(f"[{CHECK_PATH}]", f"[{uri}]")
    metadata: Mapping[str, Any] = {}
    challenges = answer.challenges
    if isinstance(error, dict):
        metadata = {k: v for k, v in error.items() if k not in ERROR_FIELDS}
        header = error.get("header")
        listed = header.get("WWW-Authenticate") if isinstance(header, dict) else None
        if not challenges and isinstance(listed, list):
            challenges = tuple(str(value) for value in listed)
    return AuthenticationFailed(reason, challenges=challenges, metadata=metadata)


def unusable(answer: Answer) -> AuthorizationUnavailable:
    cause = {"type": error_type(answer.body) or "exception", "reason": error_reason(answer.body)}
    return AuthorizationUnavailable(
        f"the cluster at [{answer.node}] answered the privilege check with status "
        f"[{answer.status}], so esproxy cannot check the caller's privileges",
        caused_by=cause if cause["reason"] else None,
    )


def error_reason(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):
        return error
    reason = error.get("reason") if isinstance(error, dict) else None
    return reason if isinstance(reason, str) else None


def error_type(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    return kind if isinstance(kind, str) else None


def parse_body(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None
