"""The secrets key file (made, refused, rotated under a running server) and the exact errors of
sealed values: fast unit tests, run by `scripts/mutate secrets` as well."""

from __future__ import annotations

import base64
import logging
import os
import stat
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from esproxy.errors import (
    ConfigNotAuthenticated,
    EndpointModified,
    KeyNotConfigured,
    SecretsUnreadable,
)
from esproxy.secret_cipher import (
    KEY_FILE_MAX_BYTES,
    SecretCipher,
    SecretKey,
    bound_data,
    generate_key_text,
    load_or_create_key_file,
    load_or_create_key_file_keys,
    parse_key,
    read_key_file,
    read_key_file_keys,
    write_key_file,
)
from esproxy.settings import SettingsError
from tests.test_secret_cipher import BOUND, SECRETS, seal_legacy


def new_key() -> SecretKey:
    return parse_key(generate_key_text())


def key_line(key: SecretKey) -> str:
    return base64.b64encode(key.material).decode() + "\n"


def private_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


# -- the key file --------------------------------------------------------------------------------


def test_a_new_key_file_is_made_in_private_directories_and_announced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "a" / "b" / "secrets.key"
    with caplog.at_level(logging.WARNING, logger="esproxy.secret_cipher"):
        keys = load_or_create_key_file_keys(path)
    assert len(keys) == 1 and read_key_file(path) == keys[0]
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["secrets.key"]
    assert caplog.messages == [
        f"created secrets key file [{path.resolve()}]; back it up: stored endpoint secrets "
        "cannot be read without it"
    ]


def test_a_key_file_that_cannot_be_made_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "data").symlink_to(tmp_path / "missing")  # a dangling link where the dir goes
    path = tmp_path / "data" / "secrets.key"
    with pytest.raises(SettingsError) as raised:
        load_or_create_key_file(path)
    assert str(raised.value) == f"cannot create secrets key file [{path}]: File exists"


def test_a_key_file_is_written_whole_private_and_in_order(tmp_path: Path) -> None:
    path = tmp_path / "secrets.key"
    first, second = new_key(), new_key()
    write_key_file(path, [first, second])
    assert path.read_text() == key_line(first) + key_line(second)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["secrets.key"]
    assert read_key_file_keys(path) == [first, second]
    (tmp_path / "taken" / "x").mkdir(parents=True)  # a rename over a directory fails late
    with pytest.raises(SettingsError) as raised:
        write_key_file(tmp_path / "taken", [first])
    assert (
        str(raised.value) == f"cannot write secrets key file [{tmp_path / 'taken'}]: Is a directory"
    )
    assert sorted(os.listdir(tmp_path)) == ["secrets.key", "taken"]
    with pytest.raises(SettingsError) as raised:
        write_key_file(tmp_path / "missing" / "secrets.key", [first])
    assert str(raised.value) == (
        f"cannot write secrets key file [{tmp_path / 'missing' / 'secrets.key'}]: "
        "No such file or directory"
    )


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (
            lambda p: p.symlink_to(private_file(p.with_name("real"), b"x")),
            "is a symbolic link; point [storage] data_dir at the real file's directory instead",
        ),
        (lambda p: os.mkfifo(p, 0o600), "is not a regular file"),
        (lambda p: p.mkdir(mode=0o700), "is not a regular file"),
        (lambda p: private_file(p, b""), "holds no key; it holds one base64 key per line"),
        (
            lambda p: private_file(p, b"\n  \n\t\n"),
            "holds no key; it holds one base64 key per line",
        ),
        (
            lambda p: private_file(p, b"\n" * (KEY_FILE_MAX_BYTES + 1)),
            "is larger than 64 KiB; it holds one base64 key per line",
        ),
        (
            lambda p: private_file(p, b"\xff\xfe" + generate_key_text().encode() + b"\n"),
            "is not valid base64; generate a key with `openssl rand -base64 32`",
        ),
    ],
)
def test_a_key_file_esproxy_cannot_trust_or_read_is_refused_saying_why(
    tmp_path: Path, make: object, problem: str
) -> None:
    path = tmp_path / "secrets.key"
    make(path)  # type: ignore[operator]
    with pytest.raises(SettingsError) as raised:
        load_or_create_key_file(path)
    assert str(raised.value) == f"secrets key file [{path}] {problem}"


def test_a_key_file_in_place_of_a_directory_is_refused(tmp_path: Path) -> None:
    private_file(tmp_path / "data", b"")
    path = tmp_path / "data" / "secrets.key"
    with pytest.raises(SettingsError) as raised:
        read_key_file_keys(path)
    assert str(raised.value) == f"cannot read secrets key file [{path}]: Not a directory"


def test_a_key_file_of_another_user_is_refused(tmp_path: Path) -> None:
    path = private_file(tmp_path / "secrets.key", generate_key_text().encode())
    if os.geteuid() != 0:
        pytest.skip("only root can give a file away")
    other = os.geteuid() + 1
    os.chown(path, other, -1)
    with pytest.raises(SettingsError) as raised:
        load_or_create_key_file(path)
    assert str(raised.value) == (
        f"secrets key file [{path}] is owned by uid {other}, not by the user esproxy runs as "
        f"(uid {os.geteuid()}); run `chown $(id -u) {path}`"
    )


def test_a_key_file_of_exactly_the_largest_size_is_read_whole(tmp_path: Path) -> None:
    first, last = new_key(), new_key()
    head = key_line(first).encode()
    tail = key_line(last).encode().rstrip(b"\n")  # the file's very last byte ends a key
    filler = b"\n" * (KEY_FILE_MAX_BYTES - len(head) - len(tail))
    path = private_file(tmp_path / "secrets.key", head + filler + tail)
    assert path.stat().st_size == KEY_FILE_MAX_BYTES
    assert read_key_file_keys(path) == [first, last]


def test_key_files_are_made_only_inside_their_own_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never by way of the system's temporary directory: no copy of a key is left there."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-temporary-directory"))
    path = tmp_path / "data" / "secrets.key"
    key = load_or_create_key_file(path)
    new = new_key()
    write_key_file(path, [new, key])
    assert read_key_file_keys(path) == [new, key]
    assert os.listdir(path.parent) == ["secrets.key"]


# -- a rotation while the server runs ----------------------------------------------------------


async def test_a_running_cipher_takes_up_a_rotated_key_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "secrets.key"
    old = load_or_create_key_file(path)
    cipher = SecretCipher(old, key_file=path)
    sealed_before = cipher.seal("e", SECRETS, BOUND)
    assert not await cipher.follow_key_file()  # not replaced yet

    new = new_key()
    write_key_file(path, [new, old])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="esproxy.secret_cipher"):
        assert await cipher.follow_key_file()
    assert caplog.messages == [
        f"secrets key file [{path}] was rotated: sealing with key [{new.key_id}] from now on"
    ]
    assert cipher.primary == new and cipher.all_keys() == [new, old]
    assert cipher.key_ids == sorted([new.key_id, old.key_id])
    assert cipher.open("e", sealed_before, BOUND) == SECRETS
    sealed_after = cipher.seal("e", SECRETS, BOUND)
    assert sealed_after.startswith(f"v2.{new.key_id}.")
    assert SecretCipher(new).open("e", sealed_after, BOUND) == SECRETS
    assert not await cipher.follow_key_file()  # nothing new since

    # The old key leaves the file: values it sealed still open in this process.
    write_key_file(path, [new])
    assert not await cipher.follow_key_file()
    assert cipher.all_keys() == [new, old]
    assert cipher.open("e", sealed_before, BOUND) == SECRETS


async def test_a_rotation_back_to_a_known_key_is_taken_up(tmp_path: Path) -> None:
    path = tmp_path / "secrets.key"
    first, second = new_key(), new_key()
    write_key_file(path, [first])
    cipher = SecretCipher(first, key_file=path)
    write_key_file(path, [second, first])
    assert await cipher.follow_key_file()
    write_key_file(path, [first, second])
    assert await cipher.follow_key_file()
    assert cipher.primary == first and cipher.all_keys() == [first, second]


async def test_a_broken_key_file_keeps_the_keys_in_use_until_it_is_fixed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "secrets.key"
    key = load_or_create_key_file(path)
    cipher = SecretCipher(key, key_file=path)
    private_file(path, b"oops\n")
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="esproxy.secret_cipher"):
        assert not await cipher.follow_key_file()
    assert caplog.messages == [
        f"cannot re-read secrets key file [{path}]: secrets key file [{path}] decodes to 3 "
        "bytes; a secrets key is 32 random bytes in base64, e.g. from `openssl rand -base64 32`"
    ]
    assert cipher.primary == key and cipher.all_keys() == [key]
    new = new_key()
    write_key_file(path, [new, key])
    assert await cipher.follow_key_file()
    assert cipher.primary == new


async def test_a_cipher_without_a_key_file_and_a_vanished_one_keep_their_keys(
    tmp_path: Path,
) -> None:
    key = new_key()
    assert not await SecretCipher(key).follow_key_file()
    path = tmp_path / "secrets.key"
    write_key_file(path, [key])
    cipher = SecretCipher(key, key_file=path)
    path.unlink()
    assert not await cipher.follow_key_file()
    assert cipher.primary == key


# -- what a sealed value says when it cannot be used ------------------------------------------


def sealed_as(key: SecretKey, plaintext: bytes) -> str:
    """A v2 value esproxy's key sealed, around any plaintext."""
    nonce = os.urandom(12)
    blob = AESGCM(key.material).encrypt(nonce, plaintext, bound_data(key.key_id, BOUND))
    return f"v2.{key.key_id}.{base64.urlsafe_b64encode(nonce + blob).decode()}"


@pytest.mark.parametrize("plaintext", [b"[1]", b'{"access_key": 1}', b"not json", b'"x"'])
def test_secrets_of_an_unexpected_shape_are_refused_naming_the_endpoint(plaintext: bytes) -> None:
    key = new_key()
    with pytest.raises(SecretsUnreadable) as raised:
        SecretCipher(key).open("my-endpoint", sealed_as(key, plaintext), BOUND)
    assert raised.value.reason == (
        "Secrets of inference endpoint [my-endpoint] decrypted to an unexpected shape"
    )


def test_a_legacy_value_says_how_to_seal_it_again() -> None:
    key = new_key()
    with pytest.raises(ConfigNotAuthenticated) as raised:
        SecretCipher(key).open("e", seal_legacy(key, "e", SECRETS), BOUND)
    assert raised.value.reason == (
        "Inference endpoint [e] was stored by an older esproxy that did not authenticate its "
        "config, so it is not used; check its config with GET _inference/e, then run `esproxy "
        "rotate-secrets-key` (or update it through esproxy) to seal it again"
    )


def test_migrating_a_legacy_value_refuses_anything_else_naming_the_endpoint() -> None:
    key, other = new_key(), new_key()
    cipher = SecretCipher(key)
    with pytest.raises(SecretsUnreadable) as raised:
        cipher.open_legacy("e", cipher.seal("e", SECRETS, BOUND))
    assert raised.value.reason == "Secrets of inference endpoint [e] are not v1"
    with pytest.raises(SecretsUnreadable) as raised:
        cipher.open_legacy("e", "garbage")
    assert raised.value.reason == (
        "Secrets of inference endpoint [e] are not a sealed value esproxy can read "
        "(expected format v2)"
    )
    with pytest.raises(KeyNotConfigured) as raised:
        cipher.open_legacy("e", seal_legacy(other, "e", SECRETS))
    assert raised.value.reason.startswith(
        f"Secrets of inference endpoint [e] were sealed with secrets key [{other.key_id}]"
    )
    with pytest.raises(EndpointModified) as raised:
        cipher.open_legacy("f", seal_legacy(key, "e", SECRETS))
    assert raised.value.reason == (
        f"Secrets of inference endpoint [f] failed authentication with secrets key "
        f"[{key.key_id}]: the value was altered or belongs to another endpoint"
    )
    with pytest.raises(SecretsUnreadable) as raised:
        cipher.open_legacy("e", seal_legacy(key, "e", [1]))  # type: ignore[arg-type]
    assert raised.value.reason == (
        "Secrets of inference endpoint [e] decrypted to an unexpected shape"
    )


def respelled(sealed: str, version: str | None = None, key_id: str | None = None) -> str:
    old_version, old_key_id, blob = sealed.split(".")
    return f"{version or old_version}.{key_id or old_key_id}.{blob}"


@pytest.mark.parametrize(
    ("version", "key_id"),
    [("v3", None), ("V2", None), (None, "abc"), (None, "XXXXXXXXXXXXXXXX"), (None, "0" * 17)],
)
def test_a_value_with_a_foreign_version_or_key_name_is_not_a_sealed_value(
    version: str | None, key_id: str | None
) -> None:
    cipher = SecretCipher(new_key())
    value = respelled(cipher.seal("e", SECRETS, BOUND), version, key_id)
    with pytest.raises(SecretsUnreadable) as raised:
        cipher.open("e", value, BOUND)
    assert raised.value.reason == (
        "Secrets of inference endpoint [e] are not a sealed value esproxy can read "
        "(expected format v2)"
    )


def test_a_value_of_the_shortest_sealed_shape_is_checked_as_a_seal() -> None:
    cipher = SecretCipher(new_key())
    blob = base64.urlsafe_b64encode(os.urandom(12 + 16)).decode()  # a nonce and a tag
    with pytest.raises(EndpointModified):
        cipher.open("e", f"v2.{cipher.primary.key_id}.{blob}", BOUND)
    shorter = base64.urlsafe_b64encode(os.urandom(12 + 15)).decode()
    with pytest.raises(SecretsUnreadable, match=r"are not a sealed value"):
        cipher.open("e", f"v2.{cipher.primary.key_id}.{shorter}", BOUND)


def test_key_text_errors_name_the_setting_by_default() -> None:
    with pytest.raises(SettingsError) as raised:
        parse_key("not base64!")
    assert str(raised.value) == (
        "[secrets] key is not valid base64; generate a key with `openssl rand -base64 32`"
    )
    with pytest.raises(ValueError, match=r"^a secrets key is 32 bytes, not 5$"):
        SecretKey(b"short")
