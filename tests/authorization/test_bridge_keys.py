"""Bridge keys (`esproxy bridge create`): their format, what each one opens, and revocation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest

from esproxy.openai_bridge import keys as keys_module
from esproxy.openai_bridge.keys import BridgeKeys, derive_bridge_secret, looks_like_bridge_key

MATERIAL = bytes(range(32))
NEWER = bytes(range(1, 33))


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def expected_key(material: bytes, nonce: str, inference_id: str) -> str:
    """The format, computed independently: keys minted by one esproxy open on every other."""
    secret = hmac.new(material, b"esproxy openai bridge key v1", hashlib.sha256).digest()
    message = nonce.encode() + b"\0" + inference_id.encode("utf-8", "surrogateescape")
    return f"esb.{nonce}.{b64(hmac.new(secret, message, hashlib.sha256).digest())}"


def test_a_key_is_a_prefix_a_random_nonce_and_a_mac_of_the_inference_id():
    keys = BridgeKeys(lambda: [MATERIAL, NEWER])
    minted = {keys.mint("titan") for _ in range(5)}
    assert len(minted) == 5
    for key in minted:
        assert re.fullmatch(r"esb\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{43}", key)
        nonce = key.split(".")[1]
        assert key == expected_key(MATERIAL, nonce, "titan")  # minted with the first key
        assert looks_like_bridge_key(key)


def test_the_nonce_is_12_random_bytes_written_whole(monkeypatch):
    asked = []

    def token_bytes(n):
        asked.append(n)
        return bytes(11) + b"\x17"  # base64 ends in "X"

    monkeypatch.setattr(keys_module.secrets, "token_bytes", token_bytes)
    key = BridgeKeys(lambda: [MATERIAL]).mint("titan")
    assert asked == [12]
    assert key == expected_key(MATERIAL, "AAAAAAAAAAAAAAAX", "titan")


def test_the_mac_key_is_derived_from_the_secrets_key_not_the_key_itself():
    assert (
        derive_bridge_secret(MATERIAL)
        == hmac.new(MATERIAL, b"esproxy openai bridge key v1", hashlib.sha256).digest()
    )
    assert derive_bridge_secret(MATERIAL) != MATERIAL


def test_a_key_opens_exactly_its_endpoint():
    keys = BridgeKeys(lambda: [MATERIAL])
    key = keys.mint("titan")
    assert keys.opens(key, "titan")
    for other in ("titan2", "Titan", "", "titan\0"):
        assert not keys.opens(key, other)
    odd = keys.mint("ti\udcfftan")  # ids arrive from URLs; undecodable bytes as surrogates
    assert keys.opens(odd, "ti\udcfftan") and not keys.opens(odd, "ti\udcfetan")


def test_a_key_made_with_any_known_secrets_key_opens_and_a_forgotten_one_does_not():
    materials = [MATERIAL]
    keys = BridgeKeys(lambda: materials)
    old = keys.mint("titan")
    materials[:] = [NEWER, MATERIAL]  # rotated: the new key first, the old one still known
    new = keys.mint("titan")
    assert new == expected_key(NEWER, new.split(".")[1], "titan")
    assert keys.opens(old, "titan") and keys.opens(new, "titan")
    materials[:] = [NEWER]  # the old key retired while the server runs
    assert not keys.opens(old, "titan") and keys.opens(new, "titan")
    materials[:] = []
    with pytest.raises(ValueError, match=r"^bridge keys need at least one secrets key$"):
        keys.opens(new, "titan")
    with pytest.raises(ValueError, match=r"^bridge keys need at least one secrets key$"):
        keys.mint("titan")


def test_a_revoked_nonce_opens_nothing():
    keys = BridgeKeys(lambda: [MATERIAL])
    key = keys.mint("titan")
    nonce = key.split(".")[1]
    revoking = BridgeKeys(lambda: [MATERIAL], revoked=[nonce, "other"])
    assert not revoking.opens(key, "titan")
    assert revoking.opens(keys.mint("titan"), "titan")
    assert repr(revoking) == "BridgeKeys(revoked=2)"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda key: key[:-1] + ("A" if key[-1] != "A" else "B"),  # another MAC
        lambda key: key + "x",
        lambda key: key.rsplit(".", 1)[0] + ".",  # no MAC
        lambda key: key.rsplit(".", 1)[0],  # no second dot
        lambda key: "esb.." + key.split(".")[2],  # no nonce
        lambda key: "esc" + key[3:],  # another prefix
        lambda key: "ESB" + key[3:],
        lambda key: "x" + key,
        lambda key: key.replace(".", ".x", 1),  # another nonce
        lambda key: key + "\udcff",  # undecodable bytes in the header
        lambda key: "",
    ],
)
def test_a_tampered_key_opens_nothing(tamper):
    keys = BridgeKeys(lambda: [MATERIAL])
    key = keys.mint("titan")
    assert not keys.opens(tamper(key), "titan")


def test_a_mac_for_an_empty_nonce_does_not_open():
    keys = BridgeKeys(lambda: [MATERIAL])
    forged = expected_key(MATERIAL, "", "titan")
    assert forged.startswith("esb..") and not keys.opens(forged, "titan")


def test_the_derived_secrets_follow_the_materials():
    calls = []
    materials = [MATERIAL]

    def read():
        calls.append(1)
        return list(materials)

    keys = BridgeKeys(read)
    key = keys.mint("a")
    assert keys.opens(key, "a")
    materials[:] = [NEWER]
    assert not keys.opens(key, "a")  # the same object, a new key: derived again
    assert len(calls) == 3  # the materials are read at every use


def test_only_the_prefix_and_a_dot_make_a_key_look_like_a_bridge_key():
    assert looks_like_bridge_key("esb.")
    assert not looks_like_bridge_key("esb")
    assert not looks_like_bridge_key("esbx.abc")
    assert not looks_like_bridge_key("ESB.abc")
