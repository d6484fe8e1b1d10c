"""Start, wait for and stop the real OpenSearch 2.19.6 upstream used by the tests.

The node runs in a child JVM built by ``scripts/setup-opensearch`` (see
``tests/opensearch_launcher``), with a fresh temporary home, an ephemeral HTTP port read from
``<home>/logs/http.ports``, and ``-Xms512m -Xmx1g`` from ``jvm.options``. ``opensearch_url`` is
the session-scoped fixture for tests; ``OpenSearchNode`` is the context manager behind it.
"""

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER_DIR = ROOT / "tests" / "opensearch_launcher"
JVM_OPTIONS = LAUNCHER_DIR / "jvm.options"
LAUNCHER_ARGS = LAUNCHER_DIR / "target" / "launcher.args"

# Startup is ~5 s here, but a loaded 2-core CI machine can be far slower; never wait forever.
START_TIMEOUT = 180.0
STOP_TIMEOUT = 30.0
LOG_TAIL_LINES = 40


class OpenSearchNodeError(RuntimeError):
    """The test node could not be started (missing build, crash, or no health in time)."""


class OpenSearchNode:
    """One OpenSearch node in a child JVM; use as a context manager, then read ``url``."""

    def __init__(
        self,
        *,
        start_timeout: float = START_TIMEOUT,
        stop_timeout: float = STOP_TIMEOUT,
        launcher_args: Path = LAUNCHER_ARGS,
        home: Path | None = None,
        port: int = 0,
    ) -> None:
        """`home` and `port` given: a node that can be stopped and started again with its data."""
        self.kept_home = home
        self.port = port
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.launcher_args = launcher_args
        self.home: Path | None = None
        self._url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise OpenSearchNodeError("the node is not running")
        return self._url

    @property
    def log_path(self) -> Path:
        assert self.home is not None
        return self.home / "node.log"

    def start(self) -> str:
        if not self.launcher_args.is_file():
            raise OpenSearchNodeError(
                f"OpenSearch launcher is not built ({self.launcher_args} is missing): "
                "run scripts/setup-opensearch first"
            )
        java = shutil.which("java")
        if java is None:
            raise OpenSearchNodeError("no java on PATH: run scripts/setup-opensearch first")
        if self.kept_home is not None:
            self.kept_home.mkdir(parents=True, exist_ok=True)
        self.home = self.kept_home or Path(tempfile.mkdtemp(prefix="esproxy-opensearch-"))
        self._log = self.log_path.open("wb")
        # HTTP port 0: the node picks a free one. stdin stays open for the node's lifetime: if this
        # process dies without stopping the node (SIGKILL), the JVM sees EOF and exits instead of
        # lingering with 1 GB of heap.
        cmd = [
            java,
            f"@{JVM_OPTIONS}",
            f"@{self.launcher_args}",
            str(self.home),
            str(self.port),
            "--exit-on-stdin-eof",
        ]
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._url = self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self._url

    def _wait_until_ready(self) -> str:
        assert self.home is not None and self._proc is not None
        ports_file = self.home / "logs" / "http.ports"
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise OpenSearchNodeError(
                    f"OpenSearch node exited with code {code} during startup\n{self._log_tail()}"
                )
            # The node writes this file (atomically) only once HTTP is bound.
            if ports_file.is_file():
                url = f"http://{ports_file.read_text().split()[0]}"
                if self._is_yellow(url):
                    return url
            time.sleep(0.2)
        raise OpenSearchNodeError(
            f"OpenSearch node not at least yellow after {self.start_timeout:.0f} s\n"
            f"{self._log_tail()}"
        )

    @staticmethod
    def _is_yellow(url: str) -> bool:
        health = f"{url}/_cluster/health?wait_for_status=yellow&timeout=5s"
        try:
            with urllib.request.urlopen(health, timeout=10) as resp:
                body = json.load(resp)
        except (OSError, ValueError):  # URLError/HTTPError (408 while red) are OSErrors
            return False
        return body.get("status") in ("yellow", "green")

    def _log_tail(self) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError as exc:
            return f"(no node log: {exc})"
        tail = "\n".join(lines[-LOG_TAIL_LINES:])
        return f"--- last {LOG_TAIL_LINES} lines of the node log ---\n{tail}"

    def stop(self) -> None:
        """SIGTERM (the JVM's shutdown hook closes the node), then SIGKILL after a grace period."""
        proc, self._proc, self._url = self._proc, None, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            assert proc.stdin is not None
            proc.stdin.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.home is not None and self.kept_home is None:
            shutil.rmtree(self.home, ignore_errors=True)
        self.home = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@pytest.fixture(scope="session")
def opensearch_url() -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT``) of one OpenSearch node shared by the whole run."""
    with OpenSearchNode() as node:
        yield node.url
