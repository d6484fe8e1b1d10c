"""The `esproxy` command as a user runs it: real processes, real ports, the user's requests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from esproxy.cli import main
from tests.ports import free_port
from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION, TITAN_EMBEDDINGS


@asynccontextmanager
async def running_process(
    *args: str, port: int, env: dict[str, str] | None = None
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "esproxy",
        *args,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_for_port(port, process)
        yield url, process
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, output.decode()


@asynccontextmanager
async def running(*args: str, port: int, env: dict[str, str] | None = None) -> AsyncIterator[str]:
    async with running_process(*args, port=port, env=env) as (url, _):
        yield url


async def wait_for_port(port: int, process: asyncio.subprocess.Process | None) -> None:
    for _ in range(300):
        if process is not None and process.returncode is not None:
            output = await process.stdout.read() if process.stdout else b""
            raise AssertionError(f"esproxy exited early: {output.decode()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError(f"nothing listened on {port}")


async def test_serve_dev_answers_the_user_examples_and_keeps_them(tmp_path: Path):
    port = free_port()
    args = ("serve", "--dev", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path))
    async with running(*args, port=port) as url, aiohttp.ClientSession() as session:
        put = await session.put(
            f"{url}/_inference/text_embedding/amazon_bedrock_embeddings",
            data=json.dumps(TITAN_EMBEDDINGS),
            headers=JSON_HEADERS,
        )
        assert put.status == 200, await put.text()
        post = await session.post(
            f"{url}/_inference/text_embedding/amazon_bedrock_embeddings",
            data=json.dumps({"input": ["a", "b", "c"]}),
            headers=JSON_HEADERS,
        )
        vectors = (await post.json())["text_embedding"]
        assert [len(v["embedding"]) for v in vectors] == [1024] * 3
    async with running(*args, port=port) as url, aiohttp.ClientSession() as session:
        listed = await (await session.get(f"{url}/_inference")).json()
        assert [e["inference_id"] for e in listed["endpoints"]] == ["amazon_bedrock_embeddings"]


async def test_environment_variables_configure_serve(tmp_path: Path):
    port = free_port()
    env = {"ESPROXY_LISTEN": f"127.0.0.1:{port}", "ESPROXY_DATA_DIR": str(tmp_path)}
    async with running("serve", "--dev", port=port, env=env) as url, aiohttp.ClientSession() as s:
        assert (await s.get(f"{url}/")).headers["X-Elastic-Product"] == "Elasticsearch"


async def test_bedrock_emulator_command_serves_bedrock(tmp_path: Path):
    port = free_port()
    async with running("bedrock-emulator", "--listen", f"127.0.0.1:{port}", port=port) as url:
        proxy_port = free_port()
        args = (
            "serve",
            "--listen",
            f"127.0.0.1:{proxy_port}",
            "--data-dir",
            str(tmp_path),
            "--bedrock-endpoint-url",
            url,
        )
        async with running(*args, port=proxy_port) as proxy, aiohttp.ClientSession() as session:
            put = await session.put(
                f"{proxy}/_inference/text_embedding/e",
                data=json.dumps(TITAN_EMBEDDINGS),
                headers=JSON_HEADERS,
            )
            assert put.status == 200, await put.text()
            calls = await (await session.get(f"{url}/_emulator/requests")).json()
            assert len(calls["requests"]) == 1


def test_bad_settings_exit_with_a_message(capsys):
    assert main(["serve", "--listen", "nowhere"]) == 2
    assert "expected HOST:PORT" in capsys.readouterr().err


def test_generate_key_prints_a_usable_key(capsys):
    from esproxy.secret_cipher import parse_key

    assert main(["generate-key"]) == 0
    parse_key(capsys.readouterr().out.strip())


def test_emulator_key_flag_is_checked_without_echoing_it(capsys):
    try:
        main(["bedrock-emulator", "--key", "no-separator-secret"])
    except SystemExit as exit_:
        assert exit_.code == 2
    err = capsys.readouterr().err
    assert "expected ACCESS_KEY:SECRET_KEY" in err
    assert "no-separator-secret" not in err


async def test_sigterm_lets_in_flight_requests_finish(tmp_path: Path):
    port = free_port()
    args = ("serve", "--dev", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path))
    env = {"ESPROXY_EMULATOR_LATENCY_MS": "1500"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "esproxy",
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    await wait_for_port(port, process)
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        put = await session.put(
            f"{url}/_inference/completion/c",
            data=json.dumps(TITAN_COMPLETION),
            headers=JSON_HEADERS,
        )
        assert put.status == 200
        in_flight = asyncio.create_task(
            session.post(
                f"{url}/_inference/completion/c", data='{"input": "x"}', headers=JSON_HEADERS
            )
        )
        await asyncio.sleep(0.5)  # the call is now waiting on the emulator's latency
        process.send_signal(signal.SIGTERM)
        response = await in_flight
        assert response.status == 200
        assert (await response.json())["completion"][0]["result"]
    await asyncio.wait_for(process.wait(), 30)
    assert process.returncode == 0
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_sigterm_lets_a_forwarded_upload_finish(tmp_path: Path, opensearch_url: str):
    port = free_port()
    args = ("serve", "--listen", f"127.0.0.1:{port}", "--upstream", opensearch_url)
    env = {"ESPROXY_STORAGE_BACKEND": "memory", "ESPROXY_AUTH_MODE": "none"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "esproxy",
        *args,
        "--data-dir",
        str(tmp_path),
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    await wait_for_port(port, process)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b'{"n": 1}'
    writer.write(
        b"PUT /sigterm-upload/_doc/1?refresh=true HTTP/1.1\r\nHost: esproxy.test\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:3]
    )
    await writer.drain()
    await asyncio.sleep(0.3)
    process.send_signal(signal.SIGTERM)  # mid-upload: the rest of the body is still to come
    await asyncio.sleep(0.5)
    writer.write(body[3:])
    answer = await asyncio.wait_for(reader.read(), 30)  # the connection ends after the answer
    writer.close()
    await writer.wait_closed()
    head, _, document = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201 Created\r\n"), answer
    assert b"\r\nConnection: close" in head
    assert json.loads(document)["result"] == "created"
    await asyncio.wait_for(process.wait(), 30)
    assert process.returncode == 0


async def test_rotate_secrets_key_reencrypts_every_endpoint(tmp_path: Path):
    from esproxy.secret_cipher import generate_key_text

    old, new = generate_key_text(), generate_key_text()
    port = free_port()
    args = ("serve", "--dev", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path))
    old_env = {"ESPROXY_SECRETS_KEY": old}
    async with running(*args, port=port, env=old_env) as url, aiohttp.ClientSession() as session:
        put = await session.put(
            f"{url}/_inference/completion/c",
            data=json.dumps(TITAN_COMPLETION),
            headers=JSON_HEADERS,
        )
        assert put.status == 200
    rotate_env = {**os.environ, "ESPROXY_SECRETS_KEY": new, "ESPROXY_SECRETS_PREVIOUS_KEYS": old}
    rotated = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "esproxy",
        "rotate-secrets-key",
        "--data-dir",
        str(tmp_path),
        env=rotate_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await rotated.communicate()
    assert rotated.returncode == 0, output.decode()
    assert "re-encrypted 1 endpoints" in output.decode()
    # The new key alone now opens every endpoint.
    new_env = {"ESPROXY_SECRETS_KEY": new}
    async with running(*args, port=port, env=new_env) as url, aiohttp.ClientSession() as session:
        answer = await session.post(
            f"{url}/_inference/completion/c", data='{"input": "x"}', headers=JSON_HEADERS
        )
        assert answer.status == 200, await answer.text()


async def test_workers_share_one_port(tmp_path: Path):
    port = free_port()
    args = ("serve", "--dev", "--workers", "2", "--listen", f"127.0.0.1:{port}")
    args += ("--data-dir", str(tmp_path))
    async with running(*args, port=port) as url, aiohttp.ClientSession() as session:
        put = await session.put(
            f"{url}/_inference/completion/c",
            data=json.dumps(TITAN_COMPLETION),
            headers=JSON_HEADERS,
        )
        assert put.status == 200, await put.text()
        statuses = []
        for _ in range(20):
            # A fresh connection each time, so the kernel spreads them over both workers.
            async with aiohttp.ClientSession() as fresh:
                answer = await fresh.post(
                    f"{url}/_inference/completion/c", data='{"input": "x"}', headers=JSON_HEADERS
                )
                statuses.append(answer.status)
        assert statuses == [200] * 20


def worker_pids(parent: int) -> set[int]:
    """The spawned workers among a process's children (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return {int(pid) for pid in children if b"spawn_main" in command_line(pid)}


def command_line(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:  # it ended since the parent's children were listed
        return b""


def listeners(port: int) -> int:
    """Sockets listening on 127.0.0.1:`port`: one per worker that accepts connections."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(row.split()[1] == f"0100007F:{port:04X}" and row.split()[3] == "0A" for row in rows)


async def wait_for(check: Callable[[], Any], what: str) -> Any:
    for _ in range(400):
        if result := check():
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_killed_worker_is_replaced_and_serves(tmp_path: Path):
    port = free_port()
    args = ("serve", "--dev", "--workers", "2", "--listen", f"127.0.0.1:{port}")
    args += ("--data-dir", str(tmp_path))
    async with (
        running_process(*args, port=port) as (url, process),
        aiohttp.ClientSession() as session,
    ):
        body = json.dumps(TITAN_COMPLETION)
        put = await session.put(f"{url}/_inference/completion/c", data=body, headers=JSON_HEADERS)
        assert put.status == 200, await put.text()
        await wait_for(lambda: listeners(port) == 2, "both workers to listen")
        first = worker_pids(process.pid)
        killed, kept = sorted(first)
        os.kill(killed, signal.SIGKILL)
        await wait_for(lambda: worker_pids(process.pid) - first, "a replacement worker")
        await wait_for(lambda: listeners(port) == 2, "the replacement to listen")
        # With the other original worker gone too, only replacements can answer.
        os.kill(kept, signal.SIGKILL)
        await wait_for(lambda: listeners(port) == 1, "the second killed worker's socket to close")
        async with aiohttp.ClientSession() as fresh:
            answer = await fresh.post(
                f"{url}/_inference/completion/c", data='{"input": "x"}', headers=JSON_HEADERS
            )
            assert answer.status == 200, await answer.text()
        await wait_for(lambda: len(worker_pids(process.pid) - first) == 2, "a second replacement")
        await wait_for(lambda: listeners(port) == 2, "the second replacement to listen")


def test_api_key_commands(capsys, monkeypatch):
    import io

    from esproxy.authorization.api_keys import hash_api_key

    assert main(["generate-api-key"]) == 0
    key_line, digest_line = capsys.readouterr().out.splitlines()
    key = key_line.split()[-1]
    assert digest_line.split()[-1] == hash_api_key(key)
    monkeypatch.setattr("sys.stdin", io.StringIO(key + "\n"))
    assert main(["hash-api-key"]) == 0
    assert capsys.readouterr().out.strip() == hash_api_key(key)


def test_sidecar_without_a_secrets_key_refuses_to_start(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ESPROXY_SECRETS_KEY", raising=False)
    args = ["serve", "--upstream", "http://127.0.0.1:9", "--data-dir", str(tmp_path)]
    assert main([*args, "--listen", f"127.0.0.1:{free_port()}"]) == 2
    assert "a secrets key is required" in capsys.readouterr().err
    assert not (tmp_path / "secrets.key").exists()


async def test_emulator_sts_flags_and_a_role_endpoint_under_the_default_chain(tmp_path: Path):
    port, sts_port, proxy_port = free_port(), free_port(), free_port()
    role = "arn:aws:iam::210987654321:role/models"
    emulator_args = (
        "bedrock-emulator",
        "--listen",
        f"127.0.0.1:{port}",
        "--sts-listen",
        f"127.0.0.1:{sts_port}",
        "--key",
        "AKIDCLIBASE:cli-base-secret",
        "--role",
        f"{role}#ext-42",
        "--web-identity-token",
        "cli-token",
        "--credential-lifetime",
        "900",
    )
    aws = {
        "AWS_ACCESS_KEY_ID": "AKIDCLIBASE",
        "AWS_SECRET_ACCESS_KEY": "cli-base-secret",
        "AWS_ENDPOINT_URL_STS": f"http://127.0.0.1:{sts_port}",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "ESPROXY_BEDROCK_CREDENTIALS": "default",
    }
    serve_args = ("serve", "--listen", f"127.0.0.1:{proxy_port}", "--data-dir", str(tmp_path))
    async with (
        running(*emulator_args, port=port) as url,
        running(*serve_args, "--bedrock-endpoint-url", url, port=proxy_port, env=aws) as proxy,
        aiohttp.ClientSession() as session,
    ):
        await wait_for_port(sts_port, None)
        body = {
            "service": "amazonbedrock",
            "service_settings": {
                "region": "us-east-1",
                "provider": "anthropic",
                "model": "anthropic.claude-3-haiku-20240307-v1:0",
                "role_arn": role,
                "external_id": "ext-42",
            },
        }
        put = await session.put(
            f"{proxy}/_inference/completion/x", data=json.dumps(body), headers=JSON_HEADERS
        )
        assert put.status == 200, await put.text()
        calls = (await (await session.get(f"{url}/_emulator/requests")).json())["requests"]
        assert calls[0]["access_key"].startswith("ASIA") and calls[0]["signature_verified"]
        exchanges = await (await session.get(f"{url}/_emulator/sts-requests")).json()
        assert [r["operation"] for r in exchanges["requests"]] == ["AssumeRole"]


def test_emulator_role_flag_is_checked(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bedrock-emulator", "--role", "not-an-arn"])
    assert exit_.value.code == 2
    assert "expected ROLE_ARN[#EXTERNAL_ID]" in capsys.readouterr().err
