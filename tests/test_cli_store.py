"""The store as operators meet it through the `esproxy` command: real processes, real files, the
real OpenSearch node started after esproxy, key files and key rotation."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import uuid
from pathlib import Path

import aiohttp
import pytest

from esproxy.secret_cipher import generate_key_text, read_key_file_keys
from tests.opensearch_node import OpenSearchNode
from tests.ports import free_port
from tests.test_cli import running
from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION

COMPLETION = "/_inference/completion/amazon_bedrock_completion"
ROOT = str(Path(__file__).resolve().parent.parent)  # so a command run elsewhere finds esproxy
ROOT = str(Path(__file__).resolve().parent.parent)  # so a command run elsewhere finds esproxy


async def esproxy(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None):
    """Run an admin command to its end: (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "esproxy",
        *args,
        cwd=cwd,
        env={
            **os.environ,
            "PYTHONPATH": ROOT,
            **(env or {}),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


def serve_args(port: int, data_dir: Path, bedrock: str, *more: str) -> tuple[str, ...]:
    return (
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--data-dir",
        str(data_dir),
        "--bedrock-endpoint-url",
        bedrock,
        *more,
    )


async def put_and_infer(session: aiohttp.ClientSession, url: str) -> tuple[int, int]:
    put = await session.put(
        url + COMPLETION, data=json.dumps(TITAN_COMPLETION), headers=JSON_HEADERS
    )
    post = await session.post(url + COMPLETION, data='{"input": "hi"}', headers=JSON_HEADERS)
    return put.status, post.status


async def test_serve_starts_before_its_cluster_and_opens_the_store_when_it_comes(
    tmp_path: Path, emulator
):
    node_port, port = free_port(), free_port()
    env = {
        "ESPROXY_SECRETS_KEY": generate_key_text(),
        "ESPROXY_AUTH_MODE": "none",
        "ESPROXY_STORAGE_INDEX": f".esproxy-test-{uuid.uuid4().hex[:12]}",
    }
    bedrock = str(emulator.make_url("")).rstrip("/")
    args = serve_args(port, tmp_path, bedrock, "--upstream", f"http://127.0.0.1:{node_port}")
    node = OpenSearchNode(home=tmp_path / "node", port=node_port)
    async with running(*args, port=port, env=env) as url, aiohttp.ClientSession() as session:
        assert (await session.get(f"{url}/_esproxy/health")).status == 200
        not_ready = await session.get(f"{url}/_esproxy/ready")
        assert not_ready.status == 503
        store_check = (await not_ready.json())["checks"]["store"]
        assert "cannot reach any upstream node" in store_check["error"]
        forwarded = await session.get(f"{url}/_cluster/health")
        assert forwarded.status == 502
        assert (await forwarded.json())["status"] == 502
        refused = await session.put(
            url + COMPLETION, data=json.dumps(TITAN_COMPLETION), headers=JSON_HEADERS
        )
        assert refused.status == 503
        error = (await refused.json())["error"]
        assert "esproxy keeps retrying to open the endpoint store" in error["reason"]

        await asyncio.to_thread(node.start)
        try:
            for _ in range(200):
                ready = await session.get(f"{url}/_esproxy/ready")
                if ready.status == 200:
                    break
                await asyncio.sleep(0.2)
            assert ready.status == 200, await ready.text()
            assert await put_and_infer(session, url) == (200, 200)
            assert (await session.get(f"{url}/_cluster/health")).status == 200
        finally:
            await asyncio.to_thread(node.stop)


async def test_rotation_on_the_embedded_store_survives_a_plain_restart(tmp_path: Path, emulator):
    port = free_port()
    bedrock = str(emulator.make_url("")).rstrip("/")
    args = serve_args(port, tmp_path, bedrock)
    async with running(*args, port=port) as url, aiohttp.ClientSession() as session:
        assert await put_and_infer(session, url) == (200, 200)
    key_file = tmp_path / "secrets.key"
    old = key_file.read_text().strip()
    new = generate_key_text()

    # The README's way: the new key in the environment, the old one as a previous key.
    env = {"ESPROXY_SECRETS_KEY": new, "ESPROXY_SECRETS_PREVIOUS_KEYS": old}
    code, out, err = await esproxy("rotate-secrets-key", "--data-dir", str(tmp_path), env=env)

    assert code == 0, out + err
    assert f"SQLite store [{(tmp_path / 'endpoints.sqlite3').resolve()}]" in out
    assert "re-encrypted 1 endpoints" in out
    assert key_file.read_text().split() == [new]
    assert (key_file.stat().st_mode & 0o777) == 0o600
    async with running(*args, port=port) as url, aiohttp.ClientSession() as session:
        assert (await session.get(f"{url}/_esproxy/ready")).status == 200
        post = await session.post(url + COMPLETION, data='{"input": "hi"}', headers=JSON_HEADERS)
        assert post.status == 200, await post.text()

    # Without a key given, rotation makes one and keeps the file able to open everything.
    code, out, err = await esproxy("rotate-secrets-key", "--data-dir", str(tmp_path))
    assert code == 0, out + err
    assert len(key_file.read_text().split()) == 1 and key_file.read_text().strip() != new
    async with running(*args, port=port) as url, aiohttp.ClientSession() as session:
        post = await session.post(url + COMPLETION, data='{"input": "hi"}', headers=JSON_HEADERS)
        assert post.status == 200, await post.text()


async def test_endpoints_sealed_with_a_missing_key_are_named_at_start(tmp_path: Path, emulator):
    port = free_port()
    bedrock = str(emulator.make_url("")).rstrip("/")
    args = serve_args(port, tmp_path, bedrock)
    async with running(*args, port=port) as url, aiohttp.ClientSession() as session:
        assert await put_and_infer(session, url) == (200, 200)
    key_file = tmp_path / "secrets.key"
    old_id = read_key_file_keys(key_file)[0].key_id
    key_file.write_text(generate_key_text() + "\n")  # the old key lost, as the bug left it

    async with running(*args, port=port) as url, aiohttp.ClientSession() as session:
        ready = await session.get(f"{url}/_esproxy/ready")
        assert ready.status == 503
        unreadable = (await ready.json())["checks"]["endpoints"]["unreadable"]
        assert list(unreadable) == ["amazon_bedrock_completion"]
        post = await session.post(url + COMPLETION, data='{"input": "hi"}', headers=JSON_HEADERS)
        assert post.status == 500
        reason = (await post.json())["error"]["reason"]
        assert f"sealed with secrets key [{old_id}], which is not configured" in reason
        assert "add that key to [secrets] previous_keys" in reason


async def test_rotation_where_no_store_is_refuses_and_creates_nothing(tmp_path: Path):
    code, out, err = await esproxy("rotate-secrets-key", cwd=tmp_path)

    assert code != 0
    assert f"no endpoint store at [{tmp_path / 'data' / 'endpoints.sqlite3'}]" in err
    for shown in (out, err):
        assert "Traceback" not in shown and "WARNING" not in shown and "OPEN" not in shown
    assert os.listdir(tmp_path) == []


async def test_rotation_of_an_empty_store_exits_non_zero(tmp_path: Path):
    (tmp_path / "data").mkdir()
    sqlite3.connect(tmp_path / "data" / "endpoints.sqlite3").close()
    code, out, err = await esproxy("rotate-secrets-key", "--data-dir", str(tmp_path / "data"))

    assert code == 1
    assert "holds no endpoints: nothing was rotated" in err
    assert "WARNING" not in out + err


@pytest.mark.parametrize(
    ("prepare", "problem"),
    [
        (lambda path: path.chmod(0o640), "has mode 0640, so group or others may access it"),
        (lambda path: path.chmod(0o604), "has mode 0604, so group or others may access it"),
        (lambda path: replace_with_fifo(path), "is not a regular file"),
        (lambda path: replace_with_symlink(path), "is a symbolic link"),
    ],
    ids=["group-readable", "others-readable", "fifo", "symlink"],
)
async def test_serve_refuses_an_unsafe_key_file_with_one_line(tmp_path: Path, prepare, problem):
    key_file = tmp_path / "secrets.key"
    key_file.write_text(generate_key_text() + "\n")
    key_file.chmod(0o600)
    prepare(key_file)

    code, _, err = await esproxy(
        "serve", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path)
    )

    assert code == 2
    assert f"secrets key file [{key_file}] {problem}" in err
    assert "Traceback" not in err


def replace_with_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path, 0o600)


def replace_with_symlink(path: Path) -> None:
    target = path.with_name("elsewhere.key")
    path.rename(target)
    path.symlink_to(target)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
async def test_serve_refuses_a_key_file_owned_by_another_user(tmp_path: Path):
    key_file = tmp_path / "secrets.key"
    key_file.write_text(generate_key_text() + "\n")
    key_file.chmod(0o600)
    os.chown(key_file, 4242, -1)

    code, _, err = await esproxy(
        "serve", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path)
    )

    assert code == 2
    assert "is owned by uid 4242" in err


async def test_rotation_against_a_cluster_without_the_index_refuses_and_creates_none(
    tmp_path: Path, opensearch_url: str
):
    index = f".esproxy-test-{uuid.uuid4().hex[:12]}"
    env = {"ESPROXY_SECRETS_KEY": generate_key_text(), "ESPROXY_STORAGE_INDEX": index}

    code, out, err = await esproxy("rotate-secrets-key", "--upstream", opensearch_url, env=env)

    assert code == 1
    assert f"there is no endpoint index [{index}] on {opensearch_url}" in err
    assert "Traceback" not in err and "WARNING" not in out + err
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{opensearch_url}/{index}*?expand_wildcards=all") as response,
    ):
        assert await response.json() == {}


async def test_a_server_running_during_a_key_file_rotation_follows_it(tmp_path: Path, emulator):
    port = free_port()
    bedrock = str(emulator.make_url("")).rstrip("/")
    args = serve_args(port, tmp_path, bedrock, "--log-level", "WARNING")
    env = {"ESPROXY_STORAGE_CACHE_SECONDS": "0"}
    key_file = tmp_path / "secrets.key"
    async with running(*args, port=port, env=env) as url, aiohttp.ClientSession() as session:
        assert await put_and_infer(session, url) == (200, 200)

        code, out, err = await esproxy("rotate-secrets-key", "--data-dir", str(tmp_path))
        assert code == 0, out + err
        (new_key,) = read_key_file_keys(key_file)

        post = await session.post(url + COMPLETION, data='{"input": "hi"}', headers=JSON_HEADERS)
        assert post.status == 200, await post.text()
        later = "/_inference/completion/later"
        put = await session.put(
            url + later, data=json.dumps(TITAN_COMPLETION), headers=JSON_HEADERS
        )
        assert put.status == 200, await put.text()
        assert (await session.get(f"{url}/_esproxy/ready")).status == 200

    with sqlite3.connect(tmp_path / "endpoints.sqlite3") as connection:
        sealed = [row[0] for row in connection.execute("SELECT sealed_secrets FROM endpoints")]
    assert all(value.startswith(f"v2.{new_key.key_id}.") for value in sealed)
    async with running(*args, port=port) as url, aiohttp.ClientSession() as session:
        for path in (COMPLETION, "/_inference/completion/later"):
            post = await session.post(url + path, data='{"input": "hi"}', headers=JSON_HEADERS)
            assert post.status == 200, await post.text()


async def test_rotate_secrets_key_seals_legacy_records_for_use(tmp_path: Path, emulator):
    from tests.test_secret_cipher import seal_legacy

    port = free_port()
    args = serve_args(port, tmp_path, str(emulator.make_url("")).rstrip("/"))
    async with running(*args, port=port) as url, aiohttp.ClientSession() as session:
        assert await put_and_infer(session, url) == (200, 200)
    key = read_key_file_keys(tmp_path / "secrets.key")[0]
    keys = {"access_key": "<aws_access_key>", "secret_key": "<aws_secret_key>"}
    with sqlite3.connect(tmp_path / "endpoints.sqlite3") as connection:
        legacy = seal_legacy(key, "amazon_bedrock_completion", keys)
        connection.execute("UPDATE endpoints SET sealed_secrets = ?", (legacy,))
    async with running(*args, port=port) as url, aiohttp.ClientSession() as session:
        post = await session.post(url + COMPLETION, data='{"input": "hi"}', headers=JSON_HEADERS)
        assert post.status == 500  # not authenticated: not used

    code, out, err = await esproxy("rotate-secrets-key", "--data-dir", str(tmp_path))

    assert code == 0, out + err
    async with running(*args, port=port) as url, aiohttp.ClientSession() as session:
        post = await session.post(url + COMPLETION, data='{"input": "hi"}', headers=JSON_HEADERS)
        assert post.status == 200, await post.text()
