"""AWS identities for Bedrock calls: endpoint keys, session tokens, assumed roles, default chain.

aiobotocore's own providers fetch every credential (its default chain, its
`AioAssumeRoleCredentialFetcher` over an STS client, `AioRefreshableCredentials`); this module
only decides *when*. Each identity gets one `HeldCredentials`, which the Bedrock client signs
with: a snapshot that a call reads and never refreshes. A `CredentialKeeper` task renews the
snapshot well before it expires, so a refresh under load fails no request and no call waits for
STS. botocore and aiohttp exceptions stop here.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, partial
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig  # type: ignore[import-untyped, unused-ignore]
from aiobotocore.credentials import (  # type: ignore[import-untyped, unused-ignore]
    AioAssumeRoleCredentialFetcher,
    AioCredentialResolver,
    AioCredentials,
    AioRefreshableCredentials,
)
from aiobotocore.session import AioSession  # type: ignore[import-untyped, unused-ignore]
from botocore.credentials import (  # type: ignore[import-untyped, unused-ignore]
    CredentialProvider,
    ReadOnlyCredentials,
)
from botocore.exceptions import (  # type: ignore[import-untyped, unused-ignore]
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from esproxy.errors import BadRequest, ProviderUnavailable, ProxyError, snake_case

log = logging.getLogger(__name__)

ENDPOINT = "endpoint"
DEFAULT = "default"
DEFAULT_SESSION_NAME = "esproxy"
# botocore's refresh windows for long-lived credentials; shorter lives get a share of their life.
ADVISORY_SECONDS = 15 * 60
MANDATORY_SECONDS = 10 * 60
# How often a keeper looks at default-chain credentials whose expiry only botocore knows.
AMBIENT_POLL_SECONDS = 5.0
RETRY_SECONDS = (0.5, 5.0)  # a failed renewal is tried again after this long, growing
# A failed first fetch answers every call for this long, so a broken role is no storm against STS.
FAILURE_HOLD_SECONDS = 2.0
CONNECTION_FAILURES = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    aiohttp.ClientError,
    OSError,
    TimeoutError,
)
NO_ANSWER = (*CONNECTION_FAILURES, BotoCoreError)


@dataclass(frozen=True)
class Identity:
    """As whom an endpoint calls Bedrock; no secret ever shows in its repr."""

    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    role_arn: str | None = None
    external_id: str | None = field(default=None, repr=False)
    role_session_name: str | None = None

    @property
    def has_keys(self) -> bool:
        return bool(self.access_key and self.secret_key)

    @cached_property
    def cache_key(self) -> str:
        """Names the identity without holding or revealing its secrets (kept: every Bedrock call
        looks its client up by it)."""
        parts = (
            self.access_key,
            self.secret_key,
            self.session_token,
            self.role_arn,
            self.external_id,
            self.role_session_name,
        )
        raw = "\0".join(part or "" for part in parts)
        return hashlib.sha256(raw.encode()).hexdigest()

    def base(self) -> Identity:
        """The identity that assumes this one's role: its keys, or the default chain."""
        return Identity(self.access_key, self.secret_key, self.session_token)


@dataclass(frozen=True)
class Egress:
    """How esproxy reaches AWS: a forward proxy, a CA bundle, per-region Bedrock URLs."""

    credentials: str = ENDPOINT
    proxy_url: str | None = None
    ca_bundle: str | None = None
    endpoint_url: str | None = None
    endpoint_urls: Mapping[str, str] = field(default_factory=dict)

    def bedrock_url(self, region: str) -> str | None:
        return self.endpoint_urls.get(region) or self.endpoint_url

    def proxies(self) -> dict[str, str] | None:
        return {"http": self.proxy_url, "https": self.proxy_url} if self.proxy_url else None

    @property
    def verify(self) -> str | None:
        return self.ca_bundle


class CredentialsUnavailable(ProxyError):
    """No credentials could be had for an endpoint; the reason names the STS code or the gap."""


class HeldCredentials(AioCredentials):  # type: ignore[misc]
    """What a Bedrock client signs with: one frozen snapshot, swapped whole by its keeper."""

    def __init__(self, frozen: ReadOnlyCredentials, method: str) -> None:
        super().__init__(frozen.access_key, frozen.secret_key, frozen.token, method=method)
        self._frozen = frozen

    def __repr__(self) -> str:
        return f"HeldCredentials(method={self.method!r})"

    def hold(self, frozen: ReadOnlyCredentials) -> None:
        self.access_key, self.secret_key, self.token = frozen[:3]
        self._frozen = frozen

    async def get_frozen_credentials(self) -> ReadOnlyCredentials:
        return self._frozen


class HeldProvider(CredentialProvider):  # type: ignore[misc]
    """Hands a session one `HeldCredentials`, so that its clients sign with the kept snapshot."""

    METHOD = "esproxy-held"

    def __init__(self, held: HeldCredentials) -> None:
        super().__init__()
        self._held = held

    async def load(self) -> HeldCredentials:
        return self._held


@dataclass
class KeeperStats:
    refreshes: int = 0
    failures: int = 0


class CredentialKeeper:
    """Renews one identity's snapshot from an aiobotocore credentials object, off the call path.

    `expiry` tells when the snapshot expires, when this keeper knows it (assumed roles);
    default-chain credentials are polled instead, and botocore refreshes them in its own windows.
    """

    def __init__(
        self,
        name: str,
        source: Any,
        held: HeldCredentials,
        expiry: Callable[[], float | None],
        advisory: Callable[[], float],
        stats: KeeperStats,
    ) -> None:
        self.name = name
        self._source = source
        self.held = held
        self._expiry = expiry
        self._advisory = advisory
        self._stats = stats
        self.failing = False  # the latest renewal attempt failed
        self._task = asyncio.create_task(self._run(), name=f"credential keeper {name}")

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def _wait(self, failures: int) -> float:
        expiry = self._expiry()
        if failures:
            delay = min(RETRY_SECONDS[0] * 2.0 ** (failures - 1), RETRY_SECONDS[1])
            return delay if expiry is None else min(delay, max(expiry - time.time(), 0.1) / 4)
        if expiry is None:
            return AMBIENT_POLL_SECONDS
        # A little inside the advisory window, where botocore agrees a refresh is due.
        return max(expiry - self._advisory() - time.time() + 0.05, 0.05)

    async def _run(self) -> None:
        failures = 0
        while True:
            await asyncio.sleep(self._wait(failures))
            before = self.held._frozen
            try:
                frozen = await self._source.get_frozen_credentials()
            except Exception as error:  # every failure is retried; the snapshot stays meanwhile
                self.failing = True
                failures += 1
                self._stats.failures += 1
                log.warning(
                    "renewing AWS credentials for %s failed (%s); retrying",
                    self.name,
                    describe_failure(error),
                )
                continue
            if frozen is None or frozen == before:
                if self._expiry() is not None:
                    # botocore swallowed an advisory refresh failure (and logged it): try again.
                    self.failing = True
                    failures += 1
                    self._stats.failures += 1
                continue
            failures = 0
            self.failing = False
            self.held.hold(frozen)
            self._stats.refreshes += 1
            log.info("renewed AWS credentials for %s", self.name)


class BedrockCredentials:
    """The credentials room: one held snapshot (and keeper) per identity, shared by endpoints."""

    def __init__(self, egress: Egress) -> None:
        self.egress = egress
        self._config = AioConfig(
            proxies=egress.proxies(),
            retries={"total_max_attempts": 2, "mode": "standard"},
            connect_timeout=10,
            read_timeout=30,
        )
        self._held: dict[str, HeldCredentials] = {}
        self._keepers: dict[str, CredentialKeeper] = {}
        self._opening: dict[str, asyncio.Task[HeldCredentials]] = {}
        self._failed: dict[str, tuple[float, ProxyError]] = {}
        self._ambient_session: AioSession | None = None
        self._loader_session = AioSession()
        self.stats = KeeperStats()

    async def session_for(self, held: HeldCredentials) -> AioSession:
        """A session whose clients sign with `held`; it shares the service models already loaded.

        Built in a worker thread: botocore spends ~15 ms of CPU setting up a session.
        """
        return await asyncio.to_thread(self._new_session, held)

    def _new_session(self, held: HeldCredentials) -> AioSession:
        session = AioSession()
        loader = self._loader_session.get_component("data_loader")
        session.register_component("data_loader", loader)
        resolver = AioCredentialResolver([HeldProvider(held)])
        session.register_component("credential_provider", resolver)
        return session

    async def held_for(self, identity: Identity, region: str) -> HeldCredentials:
        """The identity's snapshot, fetched on first use only; concurrent first uses share it."""
        self.check_allowed(identity)
        key = identity.cache_key
        held = self._held.get(key)
        if held is not None:
            return held
        failed = self._failed.get(key)
        if failed is not None:
            if time.monotonic() < failed[0]:
                raise failed[1].with_traceback(None)
            del self._failed[key]
        task = self._opening.get(key)
        if task is None:
            task = asyncio.create_task(self._open(key, identity, region))
            task.add_done_callback(mark_retrieved)
            self._opening[key] = task
        return await asyncio.shield(task)

    def check_allowed(self, identity: Identity) -> None:
        if not identity.has_keys and self.egress.credentials != DEFAULT:
            # Fail closed: a keyless endpoint stored under `default` does not reach the ambient
            # identity once the operator turned it off.
            raise BadRequest(
                "This inference endpoint has no [access_key] and [secret_key]; calls without keys "
                "use the default AWS credential chain, which needs [bedrock] credentials = "
                '"default" (ESPROXY_BEDROCK_CREDENTIALS=default)'
            )

    async def _open(self, key: str, identity: Identity, region: str) -> HeldCredentials:
        try:
            held = await self._fetch(key, identity, region)
        except ProxyError as error:
            self._failed[key] = (time.monotonic() + FAILURE_HOLD_SECONDS, error)
            raise
        finally:
            del self._opening[key]
        self._held[key] = held
        return held

    async def _fetch(self, key: str, identity: Identity, region: str) -> HeldCredentials:
        if identity.role_arn:
            return await self._assume_role(key, identity, region)
        if identity.has_keys:
            frozen = ReadOnlyCredentials(
                identity.access_key, identity.secret_key, identity.session_token
            )
            return HeldCredentials(frozen, "endpoint-keys")
        return await self._ambient(key)

    async def _ambient(self, key: str) -> HeldCredentials:
        if self._ambient_session is None:
            session = await asyncio.to_thread(AioSession)
            session.set_default_client_config(self._config)
            if self.egress.ca_bundle:
                session.set_config_variable("ca_bundle", self.egress.ca_bundle)
            self._ambient_session = self._ambient_session or session
        try:
            source = await self._ambient_session.get_credentials()
            frozen = None if source is None else await source.get_frozen_credentials()
        except ClientError as error:
            raise sts_refusal(error, "the default AWS credential chain") from error
        except CONNECTION_FAILURES as error:
            raise sts_unreachable(error, "the default AWS credential chain") from error
        except BotoCoreError as error:
            # A misconfigured chain (a missing profile, a partial set of variables): botocore's
            # messages name the setting, never a secret.
            raise CredentialsUnavailable(
                f"The default AWS credential chain failed: {error}",
                status=502,
                caused_by={"type": snake_case(type(error).__name__), "reason": str(error)},
            ) from error
        if frozen is None or not frozen.access_key:
            raise CredentialsUnavailable(
                "No AWS credentials were found in the default credential chain (environment, "
                "shared credentials and config files, web identity, container, instance "
                "metadata); give the endpoint keys or run esproxy with an AWS identity",
                status=400,
                error_type="status_exception",
            )
        method = str(getattr(source, "method", "default-chain"))
        held = HeldCredentials(frozen, method)
        if isinstance(source, AioRefreshableCredentials):
            self._keepers[key] = CredentialKeeper(
                f"the default chain ({method})",
                source,
                held,
                lambda: None,
                lambda: ADVISORY_SECONDS,
                self.stats,
            )
        return held

    async def _assume_role(self, key: str, identity: Identity, region: str) -> HeldCredentials:
        base = await self.held_for(identity.base(), region)
        extra: dict[str, str] = {
            "RoleSessionName": identity.role_session_name or DEFAULT_SESSION_NAME
        }
        if identity.external_id:
            extra["ExternalId"] = identity.external_id
        fetcher = AioAssumeRoleCredentialFetcher(
            client_creator=partial(self._sts_client, region),
            source_credentials=base,
            role_arn=identity.role_arn,
            extra_args=extra,
            # The keeper decides when to renew; the fetcher's own cache would hand back the very
            # credentials being replaced, so it is always treated as stale.
            expiry_window_seconds=10**9,
        )
        lifetime = Lifetime()

        async def fetch() -> dict[str, Any]:
            try:
                metadata: dict[str, Any] = await fetcher.fetch_credentials()
            except ClientError as error:
                raise sts_refusal(error, f"role [{identity.role_arn}]") from error
            except NO_ANSWER as error:
                raise sts_unreachable(error, f"role [{identity.role_arn}]") from error
            lifetime.renewed(metadata["expiry_time"])
            return metadata

        metadata = await fetch()
        # Fixed at the first lifetime, for botocore and the keeper alike, so that both always
        # agree on when a renewal is due.
        advisory = lifetime.advisory()
        source = AioRefreshableCredentials.create_from_metadata(
            metadata,
            refresh_using=fetch,
            method="assume-role",
            advisory_timeout=advisory,
            mandatory_timeout=lifetime.mandatory(),
        )
        frozen = await source.get_frozen_credentials()
        held = HeldCredentials(frozen, "assume-role")
        self._keepers[key] = CredentialKeeper(
            f"role [{identity.role_arn}]",
            source,
            held,
            lambda: lifetime.expires_at,
            lambda: advisory,
            self.stats,
        )
        return held

    def _sts_client(self, region: str, service: str, **kwargs: Any) -> Any:
        session = self._ambient_session or self._loader_session
        return session.create_client(
            service, region_name=region, config=self._config, verify=self.egress.verify, **kwargs
        )

    async def close(self) -> None:
        for task in list(self._opening.values()):
            task.cancel()
        await asyncio.gather(*self._opening.values(), return_exceptions=True)
        await asyncio.gather(*(keeper.close() for keeper in self._keepers.values()))
        self._keepers.clear()
        self._held.clear()

    def snapshot(self) -> dict[str, Any]:
        """Numbers for /_esproxy/ready and, later, metrics; never a key or an ARN."""
        failing = sum(keeper.failing for keeper in self._keepers.values())
        return {
            "ok": failing == 0,
            "mode": self.egress.credentials,
            "identities": len(self._held),
            "failing": failing,
            "renewing": len(self._keepers),
            "renewals": self.stats.refreshes,
            "renewal_failures": self.stats.failures,
        }


class Lifetime:
    """When an assumed role's credentials expire, and the refresh windows that fit their life."""

    def __init__(self) -> None:
        self.expires_at = 0.0
        self.life = float(ADVISORY_SECONDS * 4)

    def renewed(self, expiry: str) -> None:
        expires_at = datetime.fromisoformat(expiry.replace("Z", "+00:00"))
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        self.expires_at = expires_at.timestamp()
        self.life = max(self.expires_at - time.time(), 1.0)

    def advisory(self) -> float:
        # Renew at half-life at the latest: a 20 s credential is replaced after 10 s.
        return min(ADVISORY_SECONDS, self.life / 2)

    def mandatory(self) -> float:
        return min(MANDATORY_SECONDS, self.life / 4)


def sts_refusal(error: ClientError, what: str) -> CredentialsUnavailable:
    details = error.response.get("Error", {})
    code = str(details.get("Code") or "Unknown")
    message = str(details.get("Message") or "")
    return CredentialsUnavailable(
        f"Could not get AWS credentials for {what}: STS answered [{code}]: {message}",
        status=400,
        error_type="status_exception",
        caused_by={"type": snake_case(code), "reason": message},
    )


def sts_unreachable(error: BaseException, what: str) -> ProviderUnavailable:
    return ProviderUnavailable(
        f"Could not get AWS credentials for {what}: no answer from the credential service",
        caused_by={"type": snake_case(type(error).__name__), "reason": str(error)},
    )


def describe_failure(error: BaseException) -> str:
    if isinstance(error, ProxyError):
        return error.reason
    return type(error).__name__


def mark_retrieved(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()
