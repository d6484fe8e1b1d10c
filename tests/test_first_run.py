"""A new user's first steps: `scripts/run`, what esproxy logs at start and stop, the venv itself."""

from __future__ import annotations

import asyncio
import os
import signal
from importlib.metadata import version
from pathlib import Path

from esproxy.secret_cipher import generate_key_text
from tests.ports import free_port
from tests.test_cli import wait_for_port

ROOT = Path(__file__).resolve().parent.parent


async def run_until_serving(*command: str, port: int, cwd: Path) -> tuple[int, str]:
    """Start a command, wait until it serves on `port`, stop it with SIGTERM; (exit, output)."""
    env = {**os.environ}
    env.pop("ESPROXY_LOG_LEVEL", None)
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await wait_for_port(port, process)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_scripts_run_says_what_it_does_and_how_to_reach_esproxy(tmp_path):
    port = free_port()
    code, output = await run_until_serving(
        str(ROOT / "scripts" / "run"),
        "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data"),
        port=port, cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, output
    assert (
        f"scripts/run: starting .venv/bin/esproxy serve --dev --listen 127.0.0.1:{port}" in output
    )
    assert "the other commands are .venv/bin/esproxy --help" in output


async def test_serve_logs_the_absolute_store_path_and_its_shutdown(tmp_path):
    port = free_port()
    code, output = await run_until_serving(
        str(ROOT / ".venv" / "bin" / "esproxy"),
        "serve", "--dev", "--listen", f"127.0.0.1:{port}", "--data-dir", "relative-data",
        port=port, cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, output
    store = tmp_path.resolve() / "relative-data" / "endpoints.sqlite3"
    assert f"endpoint store: SQLite at [{store}]" in output
    assert "esproxy stopping: finishing requests in flight" in output
    assert output.rstrip().endswith("esproxy stopped")


def test_the_venv_has_no_setuptools_with_known_advisories():
    # CVE-2022-40897 (fixed in 65.5.1) and CVE-2024-6345 (fixed in 70.0): scripts/install upgrades.
    major, minor, *_ = (int(part) for part in version("setuptools").split(".")[:2])
    assert (major, minor) >= (78, 1)


async def test_a_sidecar_start_logs_nothing_that_reads_like_an_error(tmp_path, opensearch_url):
    port = free_port()
    index = f".esproxy-first-run-{port}"
    env_args = (
        "env", f"ESPROXY_SECRETS_KEY={generate_key_text()}", f"ESPROXY_STORAGE_INDEX={index}",
        "ESPROXY_AUTH_ALLOW_UNSECURED_CLUSTER=true",
    )  # fmt: skip
    for _ in range(2):  # the second start finds the index there already
        code, output = await run_until_serving(
            *env_args, str(ROOT / ".venv" / "bin" / "esproxy"),
            "serve", "--listen", f"127.0.0.1:{port}", "--upstream", opensearch_url,
            port=port, cwd=tmp_path,
        )  # fmt: skip
        assert code == 0, output
        assert f"endpoint store: index [{index}] in the cluster" in output
        assert " -> 4" not in output and " -> 5" not in output, output
        assert "ERROR" not in output, output
