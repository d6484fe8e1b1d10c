"""TLS to the upstream: verified against `ca_certs`, refused when unverifiable, or not verified."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.faulty_upstream import create_faulty_app
from tests.upstream.conftest import StartForwarder


def write_self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "esproxy test upstream")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "upstream.pem", directory / "upstream.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
async def tls_upstream(aiohttp_server: Any, tmp_path: Path) -> tuple[str, Path]:
    """An HTTPS upstream (the faulty app's sink answers normally) and its CA file."""
    cert_file, key_file = write_self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    server = await aiohttp_server(create_faulty_app(), ssl=context)
    return str(server.make_url("")).rstrip("/"), cert_file


async def test_upstream_verified_against_ca_certs(
    start_forwarder: StartForwarder, tls_upstream: tuple[str, Path]
) -> None:
    url, ca_file = tls_upstream
    assert url.startswith("https://")
    client = await start_forwarder(url, ca_certs=str(ca_file))
    response = await client.post("/slow-sink", data=b"hello")
    assert response.status == 200
    assert (await response.json())["bytes"] == 5


async def test_unverifiable_upstream_is_a_502(
    start_forwarder: StartForwarder, tls_upstream: tuple[str, Path]
) -> None:
    url, _ = tls_upstream
    client = await start_forwarder(url)
    response = await client.post("/slow-sink", data=b"hello")
    assert response.status == 502
    reason = (await response.json())["error"]["reason"]
    assert reason.startswith(f"could not connect to upstream [{url}]: ")
    assert "CERTIFICATE_VERIFY_FAILED" in reason


async def test_verification_can_be_turned_off(
    start_forwarder: StartForwarder, tls_upstream: tuple[str, Path]
) -> None:
    url, _ = tls_upstream
    client = await start_forwarder(url, verify_certs=False)
    response = await client.post("/slow-sink", data=b"hello")
    assert response.status == 200
