"""SecretCipher sealing and the secrets key: text, generation and the key file."""

import base64
import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from esproxy.errors import (
    ConfigNotAuthenticated,
    EndpointModified,
    KeyNotConfigured,
    SecretsUnreadable,
)
from esproxy.secret_cipher import (
    SecretCipher,
    SecretKey,
    generate_key_text,
    load_or_create_key_file,
    parse_key,
)
from esproxy.settings import SettingsError

SECRETS = {"access_key": "AKIAEXAMPLEACCESS", "secret_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCY"}


def new_key() -> SecretKey:
    return parse_key(generate_key_text())


def flip_last_byte(sealed: str) -> str:
    head, _, encoded = sealed.rpartition(".")
    blob = bytearray(base64.urlsafe_b64decode(encoded))
    blob[-1] ^= 0x01
    return f"{head}.{base64.urlsafe_b64encode(bytes(blob)).decode()}"


BOUND = b'{"config":{"model":"a"},"inference_id":"my-endpoint"}'


def test_seal_then_open_returns_the_secrets_and_hides_them():
    cipher = SecretCipher(new_key())

    sealed = cipher.seal("my-endpoint", SECRETS, BOUND)

    assert cipher.open("my-endpoint", sealed, BOUND) == SECRETS
    assert all(value not in sealed for value in SECRETS.values())
    assert sealed.startswith(f"v2.{cipher.primary.key_id}.")


def test_sealing_twice_gives_different_values():
    cipher = SecretCipher(new_key())

    assert cipher.seal("e", SECRETS, BOUND) != cipher.seal("e", SECRETS, BOUND)


def test_a_tampered_value_is_refused_naming_the_endpoint_and_key():
    cipher = SecretCipher(new_key())
    sealed = cipher.seal("my-endpoint", SECRETS, BOUND)

    with pytest.raises(EndpointModified) as caught:
        cipher.open("my-endpoint", flip_last_byte(sealed), BOUND)

    assert caught.value.status == 500
    assert "[my-endpoint]" in caught.value.reason
    assert f"[{cipher.primary.key_id}]" in caught.value.reason
    assert "modified outside esproxy" in caught.value.reason


def test_a_value_opened_with_other_bound_data_is_refused():
    cipher = SecretCipher(new_key())
    sealed = cipher.seal("endpoint-a", SECRETS, BOUND)

    with pytest.raises(EndpointModified, match=r"\[endpoint-b\] was modified outside esproxy"):
        cipher.open("endpoint-b", sealed, BOUND.replace(b'"a"', b'"b"'))


def test_a_value_sealed_with_an_unknown_key_names_that_key_and_what_to_do():
    sealer = SecretCipher(new_key())
    sealed = sealer.seal("my-endpoint", SECRETS, BOUND)

    with pytest.raises(KeyNotConfigured) as caught:
        SecretCipher(new_key()).open("my-endpoint", sealed, BOUND)

    assert caught.value.reason.startswith(
        f"Secrets of inference endpoint [my-endpoint] were sealed with secrets key "
        f"[{sealer.primary.key_id}], which is not configured: add that key to [secrets] "
        "previous_keys"
    )
    assert "rotate-secrets-key" in caught.value.reason


@pytest.mark.parametrize("sealed", ["", "plaintext", "v2.0123456789abcdef.AAAA", "v3.x.AAAA"])
def test_a_value_that_is_not_sealed_is_refused(sealed):
    with pytest.raises(SecretsUnreadable, match=r"\[e\] are not a sealed value"):
        SecretCipher(new_key()).open("e", sealed, BOUND)


def lenient_variants(sealed: str) -> list[str]:
    head, _, encoded = sealed.rpartition(".")
    standard = encoded.replace("-", "+").replace("_", "/")
    variants = [
        f"{head}.{encoded} ",  # trailing space
        f"{head}.{encoded[:10]}\n{encoded[10:]}",  # a newline inside
        f"{head}.{encoded[:10]}*{encoded[10:]}",  # a character outside the alphabet
        f"{head}.{encoded.rstrip('=')}",  # padding missing
        f"{head}.{standard}",  # the standard alphabet
        f"{head}.{encoded[:-4]}{flip_spare_bits(encoded[-4:])}",  # spare bits set
    ]
    return [variant for variant in variants if variant != sealed]


def flip_spare_bits(quantum: str) -> str:
    """The last 4 characters with the unused low bits of their final character set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    data = quantum.rstrip("=")
    spare = {2: 0b1111, 3: 0b11}.get(len(data))
    if spare is None:
        return quantum
    last = alphabet[alphabet.index(data[-1]) | spare]
    return data[:-1] + last + "=" * (4 - len(data))


def test_sealed_values_are_decoded_strictly():
    # base64's lenient decoder drops stray characters, so one blob would have many spellings.
    cipher = SecretCipher(new_key())
    sealed = cipher.seal("e", SECRETS, BOUND)
    while "-" not in sealed.rpartition(".")[2] and "_" not in sealed.rpartition(".")[2]:
        sealed = cipher.seal("e", SECRETS, BOUND)  # one that the standard alphabet spells apart
    assert cipher.open("e", sealed, BOUND) == SECRETS

    for variant in lenient_variants(sealed):
        with pytest.raises(SecretsUnreadable, match=r"are not a sealed value"):
            cipher.open("e", variant, BOUND)


def test_a_legacy_value_is_refused_unless_migrating():
    key = new_key()
    cipher = SecretCipher(key)
    legacy = seal_legacy(key, "e", SECRETS)

    with pytest.raises(ConfigNotAuthenticated, match=r"rotate-secrets-key"):
        cipher.open("e", legacy, BOUND)
    assert cipher.open_legacy("e", legacy) == SECRETS
    assert cipher.needs_reseal(legacy)
    with pytest.raises(EndpointModified):
        cipher.open_legacy("other", legacy)


def seal_legacy(key: SecretKey, inference_id: str, secrets: dict[str, str]) -> str:
    """A value as esproxy before config authentication sealed it (format v1)."""
    nonce = os.urandom(12)
    plaintext = json.dumps(secrets, separators=(",", ":")).encode()
    bound = f"esproxy-secrets/v1/{key.key_id}/{inference_id}".encode()
    blob = AESGCM(key.material).encrypt(nonce, plaintext, bound)
    return f"v1.{key.key_id}.{base64.urlsafe_b64encode(nonce + blob).decode()}"


def test_rotation_opens_old_values_and_reports_which_need_resealing():
    old, new = new_key(), new_key()
    sealed_before = SecretCipher(old).seal("e", SECRETS, BOUND)
    rotated = SecretCipher(new, others=[old])

    assert rotated.needs_reseal(sealed_before)
    assert rotated.open("e", sealed_before, BOUND) == SECRETS
    resealed = rotated.seal("e", rotated.open("e", sealed_before, BOUND), BOUND)
    assert not rotated.needs_reseal(resealed)
    assert SecretCipher(new).open("e", resealed, BOUND) == SECRETS
    assert rotated.needs_reseal("garbage")


def test_key_id_is_stable_and_differs_between_keys():
    text = generate_key_text()

    assert parse_key(text).key_id == parse_key(text).key_id
    assert parse_key(text).key_id != new_key().key_id


def test_key_text_may_be_url_safe_or_unpadded():
    material = bytes(range(250, 256)) * 5 + b"\xfb\xff"
    standard = base64.b64encode(material).decode()
    url_safe = base64.urlsafe_b64encode(material).decode().rstrip("=")

    assert parse_key(f"  {standard}\n") == parse_key(url_safe) == SecretKey(material)


@pytest.mark.parametrize(
    ("text", "problem"),
    [("not base64 at all!", "not valid base64"), (base64.b64encode(b"short").decode(), "5 bytes")],
)
def test_malformed_key_text_is_a_settings_error_without_the_text(text, problem):
    with pytest.raises(SettingsError, match=problem) as caught:
        parse_key(text, source="[secrets] previous_keys")

    assert str(caught.value).startswith("[secrets] previous_keys ")
    assert text not in str(caught.value)


def test_key_material_never_shows_in_reprs_or_errors():
    key = new_key()
    text = base64.b64encode(key.material).decode()
    cipher = SecretCipher(key)
    with pytest.raises(SecretsUnreadable) as caught:
        cipher.open("e", flip_last_byte(cipher.seal("e", SECRETS, BOUND)), BOUND)

    shown = [repr(key), str(key), repr(cipher), repr(caught.value), str(caught.value)]
    for text_shown in shown:
        assert text not in text_shown
        assert repr(key.material) not in text_shown
        assert all(value not in text_shown for value in SECRETS.values())
    assert key.key_id in repr(key)


def test_key_file_is_created_once_private_and_reused(tmp_path):
    path = tmp_path / "data" / "secrets.key"

    first = load_or_create_key_file(path)
    second = load_or_create_key_file(path)

    assert first == second
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert parse_key(path.read_text()) == first
    assert os.listdir(path.parent) == ["secrets.key"]


def test_racing_starts_share_one_key(tmp_path):
    path = tmp_path / "secrets.key"

    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = list(pool.map(load_or_create_key_file, [path] * 16))

    assert {key.key_id for key in keys} == {parse_key(path.read_text()).key_id}
    assert os.listdir(tmp_path) == ["secrets.key"]


def test_a_key_file_others_can_read_is_refused(tmp_path):
    path = tmp_path / "secrets.key"
    load_or_create_key_file(path)
    path.chmod(0o644)

    with pytest.raises(SettingsError, match=r"mode 0644.*chmod 600"):
        load_or_create_key_file(path)


def test_a_malformed_key_file_names_the_file(tmp_path):
    path = tmp_path / "secrets.key"
    path.write_text("oops\n")
    path.chmod(0o600)

    with pytest.raises(SettingsError, match=rf"secrets key file \[{path}\] decodes to 3 bytes"):
        load_or_create_key_file(path)
