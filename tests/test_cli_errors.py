"""Ordinary mistakes on the command line: one clear line on stderr, a non-zero exit, no traceback.

Each case runs the real `esproxy` command in its own process, as a user would.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.ports import free_port


def run_esproxy(
    *args: str, tmp_path: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ESPROXY_DATA_DIR": str(tmp_path / "data")}
    env.pop("ESPROXY_LOG_LEVEL", None)
    return subprocess.run(
        [sys.executable, "-m", "esproxy", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], code: int, *parts: str) -> str:
    """The problem is the last stderr line (log lines may come before it), and no traceback."""
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines, "nothing said"
    line = lines[-1]
    for part in parts:
        assert part in line, line
    return line


@pytest.fixture
def busy_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_serve_on_a_port_in_use(tmp_path, busy_port):
    result = run_esproxy("serve", "--listen", f"127.0.0.1:{busy_port}", tmp_path=tmp_path)
    assert_one_line(
        result, 1, f"esproxy: cannot listen on 127.0.0.1:{busy_port}", "already in use", "--listen"
    )


def test_workers_on_a_port_in_use(tmp_path, busy_port):
    result = run_esproxy(
        "serve", "--workers", "2", "--listen", f"127.0.0.1:{busy_port}", tmp_path=tmp_path
    )
    assert_one_line(result, 1, f"esproxy: cannot listen on 127.0.0.1:{busy_port}", "in use")


def test_the_emulator_on_a_port_in_use(tmp_path, busy_port):
    result = run_esproxy(
        "bedrock-emulator", "--listen", f"127.0.0.1:{busy_port}", tmp_path=tmp_path
    )
    assert_one_line(result, 1, f"cannot listen on 127.0.0.1:{busy_port}", "already in use")


def transport_url(opensearch_url: str) -> str:
    with urllib.request.urlopen(f"{opensearch_url}/_nodes/_local/transport", timeout=10) as answer:
        nodes = json.load(answer)["nodes"]
    address = next(iter(nodes.values()))["transport"]["publish_address"]
    return f"http://{address}"


def test_the_clusters_transport_port_as_upstream(tmp_path, opensearch_url):
    upstream = transport_url(opensearch_url)
    result = run_esproxy(
        "serve", "--listen", f"127.0.0.1:{free_port()}", "--upstream", upstream,
        tmp_path=tmp_path,
    )  # fmt: skip
    assert_one_line(result, 1, f"--upstream {upstream} is not a cluster's HTTP port", "9200")


def test_https_on_an_http_port(tmp_path, opensearch_url):
    upstream = opensearch_url.replace("http://", "https://")
    result = run_esproxy(
        "serve", "--listen", f"127.0.0.1:{free_port()}", "--upstream", upstream,
        tmp_path=tmp_path,
    )  # fmt: skip
    assert_one_line(result, 1, f"--upstream {upstream}: the TLS handshake failed", opensearch_url)


@pytest.mark.parametrize("command", ["serve", "bedrock-emulator"])
def test_an_unknown_log_level_lists_the_choices(tmp_path, command):
    result = run_esproxy(command, "--log-level", "verbose", tmp_path=tmp_path)
    assert_one_line(
        result, 2, "invalid log level [verbose]", "DEBUG, INFO, WARNING, ERROR, CRITICAL"
    )


def test_an_unknown_log_level_from_the_environment(tmp_path):
    env = {**os.environ, "ESPROXY_LOG_LEVEL": "verbose"}
    result = subprocess.run(
        [sys.executable, "-m", "esproxy", "serve", "--listen", f"127.0.0.1:{free_port()}"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert_one_line(result, 2, "invalid log level [verbose]")


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("generate-key", "--bogus"), "unrecognized arguments: --bogus"),
        (("generate-api-key", "extra"), "unrecognized arguments: extra"),
        (("hash-api-key", "--key", "x"), "unrecognized arguments: --key x"),
        (("rotate-secrets-key", "--upstream"), "expected one argument"),
        (("nonsense",), "invalid choice: 'nonsense'"),
        ((), "the following arguments are required: command"),
        (("bedrock-emulator", "--listen", "nowhere"), "expected HOST:PORT, got [nowhere]"),
        (("bedrock-emulator", "--latency-ms", "soon"), "invalid float value: 'soon'"),
        (
            ("bedrock-emulator", "--latency-ms", "-5"),
            "--latency-ms (or ESPROXY_EMULATOR_LATENCY_MS): must be at least 0, got [-5.0]",
        ),
        (("bedrock-emulator", "--stream-delay-ms", "nan"), "must be at least 0, got [nan]"),
        (
            ("bedrock-emulator", "--stream-burst", "0"),
            "must be at least 1, got [0]",
        ),
        (("bedrock-emulator", "--quota-per-minute", "0"), "must be at least 1, got [0]"),
    ],
)
def test_bad_usage_exits_2_with_one_line(tmp_path, args, problem):
    assert_one_line(run_esproxy(*args, tmp_path=tmp_path), 2, problem)


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("hunter2", "at most 42 bits of entropy"),
        ("0123456789abcdef0123456789abcde", "at most 124 bits"),  # 31 hex characters
        ("dGhpcyBpcyBub3QgcmFuZG9t", None),  # 24 base64 characters: 144 bits by length
        ("0123456789abcdef0123456789abcdef", None),  # 32 hex characters: 128 bits
        ("abababababababababababababababababab", "repeats a few characters"),
    ],
)
def test_hash_api_key_refuses_keys_under_128_bits(tmp_path, key, problem):
    result = subprocess.run(
        [sys.executable, "-m", "esproxy", "hash-api-key"],
        input=key + "\n", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if problem is None:
        assert result.returncode == 0, result.stderr
        assert len(result.stdout.strip()) == 64
        return
    line = assert_one_line(result, 2, "esproxy: refusing the key:", problem, "generate-api-key")
    assert key not in line and result.stdout == ""
