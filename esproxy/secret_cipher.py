"""SecretCipher: seals an endpoint's secrets with AES-256-GCM before any store sees them.

Also the secrets key itself: parsing key text, generating it, and the key file made on first start.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from secrets import token_bytes

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from esproxy.errors import SecretsUnreadable
from esproxy.settings import SettingsError

logger = logging.getLogger(__name__)

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_ID_CHARS = 16
FORMAT = "v1"


@dataclass(frozen=True)
class SecretKey:
    """A 256-bit key; `key_id` names it in sealed values and messages without revealing it."""

    material: bytes = field(repr=False)
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        if len(self.material) != KEY_BYTES:
            raise ValueError(f"a secrets key is {KEY_BYTES} bytes, not {len(self.material)}")
        digest = hashlib.sha256(b"esproxy secrets key id\x00" + self.material).hexdigest()
        object.__setattr__(self, "key_id", digest[:KEY_ID_CHARS])


class SecretCipher:
    """Seals with the primary key; opens with the primary key or any of `others` (old keys)."""

    def __init__(self, primary: SecretKey, others: Sequence[SecretKey] = ()) -> None:
        self.primary = primary
        self._ciphers = {key.key_id: AESGCM(key.material) for key in (*others, primary)}

    def __repr__(self) -> str:
        return f"SecretCipher(primary={self.primary.key_id!r}, keys={sorted(self._ciphers)!r})"

    def seal(self, inference_id: str, secrets: Mapping[str, str]) -> str:
        key_id = self.primary.key_id
        nonce = os.urandom(NONCE_BYTES)
        plaintext = json.dumps(dict(secrets), separators=(",", ":")).encode()
        sealed = self._ciphers[key_id].encrypt(nonce, plaintext, bound_data(key_id, inference_id))
        return f"{FORMAT}.{key_id}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, inference_id: str, sealed: str) -> dict[str, str]:
        key_id, blob = split_sealed(inference_id, sealed)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise SecretsUnreadable(
                f"Secrets of inference endpoint [{inference_id}] were sealed with secrets key "
                f"[{key_id}], which is not configured; add it to [secrets] previous_keys"
            )
        try:
            plaintext = cipher.decrypt(
                blob[:NONCE_BYTES], blob[NONCE_BYTES:], bound_data(key_id, inference_id)
            )
        except InvalidTag:
            raise SecretsUnreadable(
                f"Secrets of inference endpoint [{inference_id}] failed authentication with "
                f"secrets key [{key_id}]: the value was altered or belongs to another endpoint"
            ) from None
        return decode_secrets(inference_id, plaintext)

    def needs_reseal(self, sealed: str) -> bool:
        """True unless `sealed` is a well-formed value sealed with the primary key.

        Malformed values count too, so a rotation that opens them reports why they are unreadable.
        """
        version, _, rest = sealed.partition(".")
        key_id, dot, _ = rest.partition(".")
        return not (version == FORMAT and dot and key_id == self.primary.key_id)


def bound_data(key_id: str, inference_id: str) -> bytes:
    # Authenticated but not encrypted: a blob opens only for the endpoint and key it was sealed for.
    return f"esproxy-secrets/{FORMAT}/{key_id}/{inference_id}".encode()


def split_sealed(inference_id: str, sealed: str) -> tuple[str, bytes]:
    version, _, rest = sealed.partition(".")
    key_id, _, encoded = rest.partition(".")
    try:
        blob = base64.urlsafe_b64decode(encoded.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError):
        blob = b""
    if version != FORMAT or not is_key_id(key_id) or len(blob) < NONCE_BYTES + TAG_BYTES:
        raise SecretsUnreadable(
            f"Secrets of inference endpoint [{inference_id}] are not a sealed value "
            f"esproxy can read (expected format {FORMAT})"
        )
    return key_id, blob


def is_key_id(text: str) -> bool:
    return len(text) == KEY_ID_CHARS and all(char in "0123456789abcdef" for char in text)


def decode_secrets(inference_id: str, plaintext: bytes) -> dict[str, str]:
    try:
        secrets = json.loads(plaintext)
    except ValueError:
        secrets = None
    if not isinstance(secrets, dict) or not all(isinstance(v, str) for v in secrets.values()):
        raise SecretsUnreadable(
            f"Secrets of inference endpoint [{inference_id}] decrypted to an unexpected shape"
        )
    return secrets


def parse_key(text: str, *, source: str = "[secrets] key") -> SecretKey:
    """Key text is base64 (standard or URL-safe, padding optional) of 32 random bytes.

    Errors name `source`, never the text, which may be a near-miss of the real key.
    """
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    try:
        material = base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SettingsError(
            f"{source} is not valid base64; generate a key with `openssl rand -base64 32`"
        ) from None
    if len(material) != KEY_BYTES:
        raise SettingsError(
            f"{source} decodes to {len(material)} bytes; a secrets key is {KEY_BYTES} random "
            f"bytes in base64, e.g. from `openssl rand -base64 32`"
        )
    return SecretKey(material)


def generate_key_text() -> str:
    return base64.b64encode(token_bytes(KEY_BYTES)).decode("ascii")


def load_or_create_key_file(path: Path) -> SecretKey:
    """Read the key file, creating it with mode 0600 first if it does not exist.

    A file that group or others may access is refused, as ssh refuses such private keys: whoever
    can read it can read every stored credential.
    """
    try:
        return read_key_file(path)
    except FileNotFoundError:
        create_key_file(path)
    return read_key_file(path)


def read_key_file(path: Path) -> SecretKey:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise SettingsError(f"cannot read secrets key file [{path}]: {error.strerror}") from None
    with os.fdopen(fd, "r", encoding="ascii", errors="replace") as handle:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise SettingsError(f"secrets key file [{path}] is not a regular file")
        if mode & 0o077:
            raise SettingsError(
                f"secrets key file [{path}] has mode {stat.S_IMODE(mode):04o}, so group or others "
                f"may access it; run `chmod 600 {path}`"
            )
        text = handle.read()
    return parse_key(text, source=f"secrets key file [{path}]")


def create_key_file(path: Path) -> None:
    """Publish a complete new key file atomically; if another process won the race, keep theirs."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkstemp opens with O_EXCL and mode 0600; linking then publishes only a fully written file,
        # and fails with FileExistsError when another process published first.
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(generate_key_text() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temp, path)
        except FileExistsError:
            return
        finally:
            os.unlink(temp)
        sync_directory(path.parent)
    except OSError as error:
        raise SettingsError(f"cannot create secrets key file [{path}]: {error.strerror}") from None
    logger.warning(
        "created secrets key file [%s]; back it up: stored endpoint secrets cannot be read "
        "without it",
        path.resolve(),
    )


def sync_directory(directory: Path) -> None:
    # Losing the key file to a crash after endpoints were sealed with it would lose their secrets.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
