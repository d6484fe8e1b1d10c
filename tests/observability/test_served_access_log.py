"""The access log of `esproxy serve` itself, on uvloop as users run it, before the test node."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import aiohttp

from esproxy.secret_cipher import generate_key_text
from tests.ports import free_port
from tests.test_cli import wait_for_port

ROOT = Path(__file__).resolve().parents[2]


async def test_forwarded_requests_are_timed_finer_than_a_millisecond(tmp_path, opensearch_url):
    # uvloop's loop clock moves in whole milliseconds; a duration read from it says 0 or 1 ms.
    port = free_port()
    access_log = tmp_path / "access.log"
    env = {
        **os.environ,
        "ESPROXY_SECRETS_KEY": generate_key_text(),
        "ESPROXY_STORAGE_INDEX": f".esproxy-served-log-{port}",
        "ESPROXY_AUTH_ALLOW_UNSECURED_CLUSTER": "true",
        "ESPROXY_LOG_FORMAT": "json",
        "ESPROXY_LOG_ACCESS_FILE": str(access_log),
    }
    process = await asyncio.create_subprocess_exec(
        str(ROOT / ".venv" / "bin" / "esproxy"), "serve",
        "--listen", f"127.0.0.1:{port}", "--upstream", opensearch_url,
        cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await wait_for_port(port, process)
        async with aiohttp.ClientSession() as session:
            for _ in range(20):
                async with session.get(f"http://127.0.0.1:{port}/") as response:
                    assert response.status == 200
                    await response.read()
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
    lines = [json.loads(line) for line in access_log.read_text().splitlines()]
    durations = [line["duration_ms"] for line in lines if line["forwarded"] and line["path"] == "/"]
    assert len(durations) == 20
    assert all(duration > 0 for duration in durations), durations
    assert any(duration != round(duration) for duration in durations), durations
