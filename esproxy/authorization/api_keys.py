"""ApiKeyAuthorizer: callers send `Authorization: ApiKey <key>`; esproxy keeps only key digests.

Keys are random tokens made by `generate_api_key`, so a plain SHA-256 digest is enough to store
them (no password-style stretching); every stored digest is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

from esproxy.authorization.privileges import (
    UNABLE_TO_AUTHENTICATE,
    Credentials,
    Privilege,
    missing_credentials,
)
from esproxy.errors import AuthenticationFailed

SCHEME = "apikey"  # compared case-insensitively, as ES does
CHALLENGES = ("ApiKey",)
KEY_BYTES = 32


def generate_api_key() -> str:
    return secrets.token_urlsafe(KEY_BYTES)


def hash_api_key(key: str) -> str:
    """The digest `[auth] api_keys` lists for `key`."""
    return digest_of(key).hex()


def digest_of(key: str) -> bytes:
    # surrogateescape: aiohttp hands over undecodable header bytes that way.
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def presented_key(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, key = authorization.strip().partition(" ")
    key = key.strip()
    return key if scheme.lower() == SCHEME and key else None


class ApiKeyAuthorizer:
    """Any listed key may do everything; there are no per-key privileges."""

    def __init__(self, digests: Sequence[str]) -> None:
        if not digests:
            raise ValueError("api_keys mode needs at least one key digest")
        self._digests = tuple(bytes.fromhex(digest) for digest in digests)

    def __repr__(self) -> str:
        return f"ApiKeyAuthorizer(<{len(self._digests)} key digests>)"

    async def authorize(self, credentials: Credentials, privilege: Privilege, uri: str) -> None:
        if credentials.authorization is None:
            raise missing_credentials(uri, CHALLENGES)
        key = presented_key(credentials.authorization)
        if key is None or not self.accepts(key):
            raise AuthenticationFailed(UNABLE_TO_AUTHENTICATE, challenges=CHALLENGES)

    def accepts(self, key: str) -> bool:
        digest = digest_of(key)
        # Compare with every digest, without stopping at a match, so timing tells nothing.
        matched = False
        for stored in self._digests:
            matched |= hmac.compare_digest(digest, stored)
        return matched
