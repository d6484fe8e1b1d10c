"""The `--workers` supervisor on real processes: a worker that dies after it listened is replaced,
one that dies before it listened stops the rest. The workers here are small stand-ins, so that a
test can choose which one fails and when; tests/test_cli.py runs the real server's workers."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import NoReturn

import pytest

from esproxy.workers import LISTENING

ROOT = Path(__file__).resolve().parent.parent


def serve_until_terminated(reports: Connection) -> NoReturn:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    reports.send(LISTENING)
    while True:
        time.sleep(1)


def fail_worker_1_at_startup(reports: Connection) -> None:
    if multiprocessing.current_process().name == "esproxy-worker-1":
        time.sleep(0.5)  # after worker 0 listens, which must then be stopped
        reports.send("esproxy: worker 1 cannot start")
        sys.exit(3)
    serve_until_terminated(reports)


def die_at_startup(reports: Connection) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def note_pid_then_serve(directory: str, reports: Connection) -> None:
    (Path(directory) / str(os.getpid())).touch()
    serve_until_terminated(reports)


def supervise(serve: str, *args: str) -> subprocess.Popen[str]:
    """`run_workers(2, ...)` in a process of its own: it takes over SIGTERM and SIGINT."""
    code = (
        "import logging, sys\n"
        "from functools import partial\n"
        "from esproxy.workers import run_workers\n"
        f"from tests.test_workers import {serve}\n"
        "logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')\n"
        f"sys.exit(run_workers(2, partial({serve}, *sys.argv[1:])))\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(supervisor: subprocess.Popen[str]) -> None:
    if supervisor.poll() is None:
        supervisor.kill()
        supervisor.communicate()


def wait_until(check, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return result


def supervise_to_the_end(serve: str) -> tuple[int, str]:
    """Run the supervisor with these workers until it exits by itself: its status and output."""
    supervisor = supervise(serve)
    try:
        output, _ = supervisor.communicate(timeout=30)
    finally:
        stop(supervisor)
    return supervisor.returncode, output


def test_a_worker_failing_before_it_listens_stops_the_others():
    status, output = supervise_to_the_end("fail_worker_1_at_startup")
    assert status == 3, output
    # Its own reason, last, once the other worker has stopped.
    assert output.splitlines()[-1] == "esproxy: worker 1 cannot start", output


def test_a_worker_killed_before_it_listens_is_named():
    status, output = supervise_to_the_end("die_at_startup")
    assert status == 1, output
    assert re.search(r"worker [01] exited with status -9 before it listened", output), output


def test_a_worker_that_dies_after_listening_is_replaced(tmp_path: Path):
    supervisor = supervise("note_pid_then_serve", str(tmp_path))
    try:
        first = wait_until(lambda: len(pids := os.listdir(tmp_path)) == 2 and pids)
        time.sleep(0.5)  # both set `listening` right after writing their pid
        os.kill(int(first[0]), signal.SIGKILL)
        started = wait_until(lambda: len(pids := os.listdir(tmp_path)) == 3 and pids)
        (replacement,) = set(started) - set(first)

        supervisor.send_signal(signal.SIGTERM)
        output, _ = supervisor.communicate(timeout=30)
    finally:
        stop(supervisor)
    assert supervisor.returncode == 0, output
    killed = rf"worker [01] \(pid {first[0]}\) exited with status -9; starting a replacement"
    assert re.search(killed, output), output
    for pid in (first[1], replacement):
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)
