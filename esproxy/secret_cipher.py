"""SecretCipher: seals an endpoint's secrets with AES-256-GCM before any store sees them.

A sealed value also authenticates `bound` bytes, the canonical encoding of the rest of the stored
endpoint (`esproxy/sealed_records.py`), so a config changed outside esproxy no longer opens.

Also the secrets key itself: parsing key text, generating it, and the key file made on first start
(its first line is the key that seals; later lines are older keys kept while a rotation runs).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import errno
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

from esproxy.errors import (
    ConfigNotAuthenticated,
    EndpointModified,
    KeyNotConfigured,
    SecretsUnreadable,
)
from esproxy.settings import SettingsError

logger = logging.getLogger(__name__)

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_FILE_MAX_BYTES = 64 * 1024
KEY_ID_CHARS = 16
# v1 bound only the inference id; v2 binds the whole stored endpoint. v1 opens only for migration.
FORMAT = "v2"
LEGACY_FORMAT = "v1"
BASE64_URLSAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")


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
    """Seals with the primary key; opens with the primary key or any of `others` (old keys).

    Given the `key_file` its keys came from, `follow_key_file()` takes up a rotation done by
    `esproxy rotate-secrets-key` while the server runs: the file's first key seals from then on,
    and every key known before still opens.
    """

    def __init__(
        self, primary: SecretKey, others: Sequence[SecretKey] = (), key_file: Path | None = None
    ) -> None:
        self.primary = primary
        self._ciphers = {key.key_id: AESGCM(key.material) for key in (*others, primary)}
        self._others = {key.key_id: key for key in others}
        self._key_file = key_file
        self._key_file_seen = file_identity(key_file) if key_file else None

    async def follow_key_file(self) -> bool:
        """Re-read the key file if it was replaced since it was read; True if the keys changed."""
        if self._key_file is None:
            return False
        keys = await asyncio.to_thread(self._read_key_file_if_replaced)
        known = all(key.key_id in self._ciphers for key in keys)
        if not keys or (keys[0].key_id == self.primary.key_id and known):
            return False
        self._ciphers.update({key.key_id: AESGCM(key.material) for key in keys})
        self._others.update({key.key_id: key for key in keys})
        self._others[self.primary.key_id] = self.primary
        self.primary = keys[0]
        logger.warning(
            "secrets key file [%s] was rotated: sealing with key [%s] from now on",
            self._key_file,
            self.primary.key_id,
        )
        return True

    def _read_key_file_if_replaced(self) -> list[SecretKey]:
        assert self._key_file is not None
        identity = file_identity(self._key_file)
        if identity == self._key_file_seen:
            return []
        try:
            keys = read_key_file_keys(self._key_file)
        except (OSError, SettingsError) as error:
            logger.error("cannot re-read secrets key file [%s]: %s", self._key_file, error)
            return []
        self._key_file_seen = identity
        return keys

    def __repr__(self) -> str:
        return f"SecretCipher(primary={self.primary.key_id!r}, keys={sorted(self._ciphers)!r})"

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._ciphers)

    def all_keys(self) -> list[SecretKey]:
        """Every key this cipher opens with, the sealing one first (for keys derived from them)."""
        rest = [key for key_id, key in self._others.items() if key_id != self.primary.key_id]
        return [self.primary, *rest]

    def seal(self, inference_id: str, secrets: Mapping[str, str], bound: bytes) -> str:
        """Encrypt `secrets`, authenticating `bound` (the rest of the endpoint) with them."""
        key_id = self.primary.key_id
        nonce = os.urandom(NONCE_BYTES)
        plaintext = json.dumps(dict(secrets), separators=(",", ":")).encode()
        sealed = self._ciphers[key_id].encrypt(nonce, plaintext, bound_data(key_id, bound))
        return f"{FORMAT}.{key_id}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, inference_id: str, sealed: str, bound: bytes) -> dict[str, str]:
        """The secrets, if `sealed` was sealed by esproxy together with exactly `bound`.

        A legacy (v1) value raises `ConfigNotAuthenticated`: its config was never authenticated.
        """
        version, key_id, blob = split_sealed(inference_id, sealed)
        if version == LEGACY_FORMAT:
            raise ConfigNotAuthenticated(
                f"Inference endpoint [{inference_id}] was stored by an older esproxy that did not "
                "authenticate its config, so it is not used; check its config with GET "
                f"_inference/{inference_id}, then run `esproxy rotate-secrets-key` (or update it "
                "through esproxy) to seal it again"
            )
        cipher = self._cipher_for(inference_id, key_id)
        try:
            plaintext = cipher.decrypt(
                blob[:NONCE_BYTES], blob[NONCE_BYTES:], bound_data(key_id, bound)
            )
        except InvalidTag:
            raise EndpointModified(
                f"Inference endpoint [{inference_id}] was modified outside esproxy: its stored "
                f"config or secrets no longer match their seal (secrets key [{key_id}]), so it is "
                f"not used. Delete it and create it again through esproxy, or restore the "
                f"document from a backup"
            ) from None
        return decode_secrets(inference_id, plaintext)

    def open_legacy(self, inference_id: str, sealed: str) -> dict[str, str]:
        """A v1 value's secrets, for migrating it: v1 authenticated only the inference id."""
        version, key_id, blob = split_sealed(inference_id, sealed)
        if version != LEGACY_FORMAT:
            raise SecretsUnreadable(f"Secrets of inference endpoint [{inference_id}] are not v1")
        cipher = self._cipher_for(inference_id, key_id)
        legacy_bound = f"esproxy-secrets/{LEGACY_FORMAT}/{key_id}/{inference_id}".encode()
        try:
            plaintext = cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], legacy_bound)
        except InvalidTag:
            raise EndpointModified(
                f"Secrets of inference endpoint [{inference_id}] failed authentication with "
                f"secrets key [{key_id}]: the value was altered or belongs to another endpoint"
            ) from None
        return decode_secrets(inference_id, plaintext)

    def _cipher_for(self, inference_id: str, key_id: str) -> AESGCM:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise KeyNotConfigured(
                f"Secrets of inference endpoint [{inference_id}] were sealed with secrets key "
                f"[{key_id}], which is not configured: add that key to [secrets] previous_keys "
                f"(or restore the key file that held it) and restart; `esproxy rotate-secrets-key` "
                f"then re-seals the endpoint with the current key"
            )
        return cipher

    def needs_reseal(self, sealed: str) -> bool:
        """True unless `sealed` is a well-formed v2 value sealed with the primary key.

        Malformed values count too, so a rotation that opens them reports why they are unreadable.
        """
        version, _, rest = sealed.partition(".")
        key_id, dot, _ = rest.partition(".")
        return not (version == FORMAT and dot and key_id == self.primary.key_id)


def file_identity(path: Path) -> tuple[int, int, int] | None:
    """What changes when a file is replaced or rewritten (rotation renames a new file over it)."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def bound_data(key_id: str, bound: bytes) -> bytes:
    # Authenticated but not encrypted: a blob opens only with the endpoint it was sealed with.
    return f"esproxy-endpoint/{FORMAT}/{key_id}/".encode() + bound


def split_sealed(inference_id: str, sealed: str) -> tuple[str, str, bytes]:
    version, _, rest = sealed.partition(".")
    key_id, _, encoded = rest.partition(".")
    blob = strict_urlsafe_b64decode(encoded)
    if (
        version not in (FORMAT, LEGACY_FORMAT)
        or not is_key_id(key_id)
        or blob is None
        or len(blob) < NONCE_BYTES + TAG_BYTES
    ):
        raise SecretsUnreadable(
            f"Secrets of inference endpoint [{inference_id}] are not a sealed value "
            f"esproxy can read (expected format {FORMAT})"
        )
    return version, key_id, blob


def strict_urlsafe_b64decode(text: str) -> bytes | None:
    """Only the canonical URL-safe encoding esproxy writes: no stray characters or whitespace,
    no missing padding, and no spare bits set, so one blob has exactly one spelling."""
    if not text or len(text) % 4 or not BASE64_URLSAFE.issuperset(text):
        return None
    try:
        blob = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.urlsafe_b64encode(blob).decode("ascii") != text:
        return None
    return blob


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
    """The sealing key of the key file, creating the file with mode 0600 first if it is missing."""
    return load_or_create_key_file_keys(path)[0]


def load_or_create_key_file_keys(path: Path) -> list[SecretKey]:
    """Every key in the key file (the sealing key first), creating the file if it is missing."""
    try:
        return read_key_file_keys(path)
    except FileNotFoundError:
        create_key_file(path)
    return read_key_file_keys(path)


def read_key_file(path: Path) -> SecretKey:
    return read_key_file_keys(path)[0]


def read_key_file_keys(path: Path) -> list[SecretKey]:
    """The keys of an existing key file: one base64 key per line, the sealing key first.

    Refused, as ssh refuses such private keys: a file group or others may access (whoever can read
    it can read every stored credential), one owned by another user, a symlink (O_NOFOLLOW), and
    anything but a regular file (O_NONBLOCK, so a FIFO there cannot hang startup).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise SettingsError(
                f"secrets key file [{path}] is a symbolic link; point [storage] data_dir at the "
                "real file's directory instead"
            ) from None
        raise SettingsError(f"cannot read secrets key file [{path}]: {error.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SettingsError(f"secrets key file [{path}] is not a regular file")
        if info.st_uid != os.geteuid():
            raise SettingsError(
                f"secrets key file [{path}] is owned by uid {info.st_uid}, not by the user "
                f"esproxy runs as (uid {os.geteuid()}); run `chown $(id -u) {path}`"
            )
        if info.st_mode & 0o077:
            raise SettingsError(
                f"secrets key file [{path}] has mode {stat.S_IMODE(info.st_mode):04o}, so group "
                f"or others may access it; run `chmod 600 {path}`"
            )
        # Only now a file object: fdopen itself refuses a directory, with a traceback.
        with os.fdopen(fd, "rb", closefd=False) as handle:
            raw = handle.read(KEY_FILE_MAX_BYTES + 1)
    finally:
        os.close(fd)
    text = raw.decode("ascii", errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    if len(raw) > KEY_FILE_MAX_BYTES:
        raise SettingsError(
            f"secrets key file [{path}] is larger than {KEY_FILE_MAX_BYTES // 1024} KiB; it holds "
            "one base64 key per line"
        )
    if not lines:
        raise SettingsError(
            f"secrets key file [{path}] holds no key; it holds one base64 key per line"
        )
    source = f"secrets key file [{path}]"
    return [parse_key(line, source=source) for line in lines]


def write_key_file(path: Path, keys: Sequence[SecretKey]) -> None:
    """Replace the key file atomically (a complete new file renamed over it, then synced)."""
    text = "".join(base64.b64encode(key.material).decode("ascii") + "\n" for key in keys)
    try:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        sync_directory(path.parent)
    except OSError as error:
        raise SettingsError(f"cannot write secrets key file [{path}]: {error.strerror}") from None


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
