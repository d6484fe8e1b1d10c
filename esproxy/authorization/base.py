"""The Authorizer protocol: the seam between the access middleware and each `[auth] mode`."""

from __future__ import annotations

from typing import Protocol

from esproxy.authorization.privileges import Credentials, Privilege


class Authorizer(Protocol):
    """Decides whether a caller may use one `_inference` action."""

    async def authorize(self, credentials: Credentials, privilege: Privilege, uri: str) -> None:
        """Return when the caller may go on; raise otherwise.

        Raises `AuthenticationFailed` (401) for missing or unknown credentials, `AccessDenied`
        (403) for known callers without the privilege, and `AuthorizationUnavailable` (503) when
        the answer depends on a cluster that cannot be asked. `uri` is the request target, which
        Elasticsearch quotes in its authentication texts.
        """
        ...
