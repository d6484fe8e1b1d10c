"""Egress: every Bedrock and STS call through a real forward proxy (Debian's tinyproxy, installed by
scripts/setup-proxy), a CA bundle for a TLS Bedrock, and per-region Bedrock URLs."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import re
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from esproxy.bedrock_emulator import create_emulator_app, create_sts_app
from esproxy.settings import load_settings
from tests.integrations.amazonbedrock.identity_support import (
    BASE_KEY,
    BASE_SECRET,
    ROLE,
    WEB_TOKEN,
    completion,
    identity_settings,
    infer,
    isolate_aws_environment,
    model_calls,
    put,
    sts_calls,
)
from tests.ports import free_port

KEYS = {"access_key": BASE_KEY, "secret_key": BASE_SECRET}
REQUEST_LINE = re.compile(r"Request \(file descriptor \d+\): (\S+) (\S+) HTTP/1\.[01]")


class ForwardProxy:
    """A tinyproxy process on a free loopback port; its log lists every request it forwarded."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
        if not Path(binary).exists():
            raise AssertionError("tinyproxy is missing: run scripts/setup-proxy")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = directory / "tinyproxy.log"
        config = directory / "tinyproxy.conf"
        config.write_text(
            f'Port {self.port}\nListen 127.0.0.1\nTimeout 60\nLogFile "{self.log}"\n'
            "LogLevel Info\nMaxClients 100\nAllow 127.0.0.1\n"
        )
        self.process = subprocess.Popen(
            [binary, "-d", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def wait_ready(self) -> None:
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return
        raise AssertionError("tinyproxy did not start")

    def requests(self) -> list[tuple[str, str]]:
        text = self.log.read_text() if self.log.exists() else ""
        return [(m[1], m[2]) for m in REQUEST_LINE.finditer(text)]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
async def forward_proxy(tmp_path):
    proxy = ForwardProxy(tmp_path)
    try:
        await proxy.wait_ready()
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
async def emulator(aiohttp_server):
    return await aiohttp_server(create_emulator_app(identity_settings()))


@pytest.fixture
async def sts(aiohttp_server, emulator):
    return await aiohttp_server(create_sts_app(emulator.app))


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch, tmp_path, sts):
    isolate_aws_environment(monkeypatch, tmp_path, base_url(sts))


def base_url(server) -> str:
    return str(server.make_url("")).rstrip("/")


async def test_every_bedrock_and_sts_call_goes_through_the_proxy(
    forward_proxy, start_proxy, settings_for, emulator, sts
):
    proxy = await start_proxy(settings_for(ESPROXY_BEDROCK_PROXY_URL=forward_proxy.url))
    body = completion(**KEYS, role_arn=ROLE)
    status, config = await put(proxy, "proxied", body)
    assert status == 200, config
    for _ in range(3):
        assert (await infer(proxy, "proxied"))[0] == 200
    forwarded = forward_proxy.requests()
    bedrock = [url for method, url in forwarded if url.startswith(base_url(emulator) + "/model/")]
    to_sts = [url for method, url in forwarded if url == base_url(sts) + "/"]
    assert len(bedrock) == len(await model_calls(emulator)) == 4
    assert len(to_sts) == len(await sts_calls(sts)) == 1
    assert len(forwarded) == 5  # nothing else went out, and nothing around the proxy


async def test_the_default_chain_reaches_sts_through_the_proxy(
    monkeypatch, tmp_path, forward_proxy, start_proxy, settings_for, emulator, sts
):
    token = tmp_path / "token"
    token.write_text(WEB_TOKEN)
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE)
    proxy = await start_proxy(
        settings_for(
            ESPROXY_BEDROCK_PROXY_URL=forward_proxy.url, ESPROXY_BEDROCK_CREDENTIALS="default"
        )
    )
    assert (await put(proxy, "irsa", completion()))[0] == 200
    forwarded = [url for _, url in forward_proxy.requests()]
    assert forwarded.count(base_url(sts) + "/") == 1
    assert [c["operation"] for c in await sts_calls(sts)] == ["AssumeRoleWithWebIdentity"]
    assert sum(url.startswith(base_url(emulator)) for url in forwarded) == 1


async def test_a_proxy_that_is_down_is_a_clear_error_and_nothing_is_stored(
    start_proxy, settings_for, emulator
):
    dead = f"http://127.0.0.1:{free_port()}"
    proxy = await start_proxy(settings_for(ESPROXY_BEDROCK_PROXY_URL=dead))
    status, answer = await put(proxy, "unreachable", completion(**KEYS))
    assert status == 400
    assert answer["error"]["caused_by"]["reason"] == "Amazon Bedrock converse call failed"
    assert (await proxy.get("/_inference/unreachable")).status == 404
    assert await model_calls(emulator) == []


async def test_endpoint_urls_map_regions_to_urls(tmp_path, start_proxy, emulator):
    settings = load_settings(
        environ={
            "ESPROXY_DATA_DIR": str(tmp_path / "data"),
            "ESPROXY_BEDROCK_ENDPOINT_URLS": f"eu-west-1={base_url(emulator)}",
        }
    )
    assert settings.bedrock.endpoint_urls == {"eu-west-1": base_url(emulator)}
    proxy = await start_proxy(settings)
    status, config = await put(proxy, "eu", completion(**KEYS, region="eu-west-1"))
    assert status == 200, config
    assert len(await model_calls(emulator)) == 1


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bedrock.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "bedrock.pem", directory / "bedrock.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_ca_bundle_trusts_a_private_tls_bedrock(tmp_path, aiohttp_server, start_proxy):
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    tls = await aiohttp_server(create_emulator_app(identity_settings()), ssl=context)
    url = f"https://127.0.0.1:{tls.port}"

    def settings(**extra):
        return load_settings(
            environ={
                "ESPROXY_DATA_DIR": str(tmp_path / "data"),
                "ESPROXY_BEDROCK_ENDPOINT_URL": url,
                **extra,
            }
        )

    untrusting = await start_proxy(settings())
    assert (await put(untrusting, "tls", completion(**KEYS)))[0] == 400
    trusting = await start_proxy(settings(ESPROXY_BEDROCK_CA_BUNDLE=str(cert)))
    status, config = await put(trusting, "tls", completion(**KEYS))
    assert status == 200, config


async def test_readiness_reports_credentials_and_probes_the_proxy(
    forward_proxy, start_proxy, settings_for
):
    proxy = await start_proxy(settings_for(ESPROXY_BEDROCK_PROXY_URL=forward_proxy.url))
    assert (await put(proxy, "proxied", completion(**KEYS, role_arn=ROLE)))[0] == 200
    body = await (await proxy.get("/_esproxy/ready")).json()
    assert body["checks"]["bedrock"]["target"] == f"127.0.0.1:{forward_proxy.port}"
    credentials = body["checks"]["aws_credentials"]
    assert credentials["ok"] is True and credentials["mode"] == "endpoint"
    assert credentials["identities"] == 2 and credentials["renewing"] == 1  # keys, and the role
    assert ROLE not in json.dumps(body) and BASE_KEY not in json.dumps(body)


async def test_metrics_count_identities_and_renewals(start_proxy, settings_for):
    proxy = await start_proxy(settings_for())
    assert (await put(proxy, "role", completion(**KEYS, role_arn=ROLE)))[0] == 200
    text = await (await proxy.get("/_esproxy/metrics")).text()
    assert "esproxy_aws_credentials_identities 2.0" in text
    assert "esproxy_aws_credential_renewals_total 0.0" in text
    assert "esproxy_aws_credentials_failing 0.0" in text
    assert BASE_KEY not in text and ROLE not in text
