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


MIN_KEY_BITS = 128
_HEX = frozenset("0123456789abcdefABCDEF")
_BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_")


def key_bits(key: str) -> int:
    """An upper bound on a key's entropy from its length: 4 bits a hex character, 6 for base64.

    A digest is only as strong as the key behind it, and a stored digest of a short key can be
    reversed by trying keys; other characters count as base64 ones (people type them).
    """
    body = key.rstrip("=")
    per_char = 4 if body and set(body) <= _HEX else 6
    return len(body) * per_char


def weak_key_reason(key: str) -> str | None:
    """Why `key` is too weak to accept, or None."""
    bits = key_bits(key)
    if bits < MIN_KEY_BITS:
        return (
            f"the key holds at most {bits} bits of entropy by its length, under the "
            f"{MIN_KEY_BITS} bits an API key needs (at least 32 hex or 22 base64 characters of "
            "random data); make one with `esproxy generate-api-key`"
        )
    if len(set(key)) < 8:
        return (
            "the key repeats a few characters, so it is not random; make one with "
            "`esproxy generate-api-key`"
        )
    return None


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
