"""Bridge keys: API keys that open exactly one esproxy endpoint to OpenAI-style callers.

A key is `esb.<nonce>.<mac>`, where the MAC binds the nonce to one inference id under a key
derived from the secrets key. esproxy stores nothing per key, so a key minted by
`esproxy bridge create` works on every instance at once; it is revoked by listing its nonce in
`[bridge] revoked`, by deleting the endpoint, or by rotating the secrets key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Sequence

PREFIX = "esb"
NONCE_BYTES = 12
PURPOSE = b"esproxy openai bridge key v1"


def derive_bridge_secret(material: bytes) -> bytes:
    """A key of its own for MACs, so bridge keys never use the cipher key directly."""
    return hmac.new(material, PURPOSE, hashlib.sha256).digest()


def encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class BridgeKeys:
    """Mints with the sealing secrets key; accepts keys made with any key the cipher knows.

    `materials` is read at each use, so a secrets key rotated while the server runs (the cipher
    follows its key file) applies to bridge keys at once.
    """

    def __init__(
        self, materials: Callable[[], Sequence[bytes]], revoked: Iterable[str] = ()
    ) -> None:
        self._materials = materials
        self._derived: tuple[tuple[bytes, ...], tuple[bytes, ...]] = ((), ())
        self._revoked = frozenset(revoked)

    def __repr__(self) -> str:
        return f"BridgeKeys(revoked={len(self._revoked)})"

    @property
    def _secrets(self) -> tuple[bytes, ...]:
        materials = tuple(self._materials())
        if not materials:
            raise ValueError("bridge keys need at least one secrets key")
        if materials != self._derived[0]:
            self._derived = (materials, tuple(derive_bridge_secret(m) for m in materials))
        return self._derived[1]

    def mint(self, inference_id: str) -> str:
        nonce = encode(secrets.token_bytes(NONCE_BYTES))
        return f"{PREFIX}.{nonce}.{self._mac(self._secrets[0], nonce, inference_id)}"

    def opens(self, key: str, inference_id: str) -> bool:
        """Whether `key` is an unrevoked bridge key for `inference_id`."""
        prefix, _, rest = key.partition(".")
        nonce, dot, mac = rest.partition(".")
        if prefix != PREFIX or not dot or not nonce or nonce in self._revoked:
            return False
        matched = False
        for secret in self._secrets:
            expected = self._mac(secret, nonce, inference_id)
            matched |= hmac.compare_digest(expected.encode(), mac.encode("utf-8", "replace"))
        return matched

    @staticmethod
    def _mac(secret: bytes, nonce: str, inference_id: str) -> str:
        message = nonce.encode() + b"\x00" + inference_id.encode("utf-8", "surrogateescape")
        return encode(hmac.new(secret, message, hashlib.sha256).digest())


def looks_like_bridge_key(key: str) -> bool:
    return key.startswith(PREFIX + ".")
