"""Several server processes on one port (SO_REUSEPORT), so esproxy uses every core.

The parent only supervises: it starts the workers, passes SIGTERM and SIGINT on, and exits with
the first non-zero worker status. A worker that dies after it listened (a crash, the OOM killer)
is replaced. One that dies before it listened met a startup mistake that a new one would meet
too, so the others are stopped, and the parent ends with that worker's own one-line reason and
its status, as a single process would.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnContext, SpawnProcess
from types import FrameType

log = logging.getLogger(__name__)

# A slot is restarted at most this often, so a worker that dies on every request cannot spin.
RESTART_SECONDS = 1.0

# What a worker reports on its connection: LISTENING once its socket accepts connections, or the
# one line that says why it could not start.
LISTENING = None


@dataclass(eq=False)
class Worker:
    process: SpawnProcess
    reports: Connection
    started_at: float
    ended: bool = False

    def read_reports(self) -> tuple[bool, str | None]:
        """Whether it listened, and the reason it gave for not starting (once it has ended)."""
        listened, reason = False, None
        while self.reports.poll():
            try:
                report = self.reports.recv()
            except EOFError:
                break
            if report is LISTENING:
                listened = True
            else:
                reason = str(report)
        self.reports.close()
        return listened, reason


def run_workers(count: int, serve: Callable[[Connection], None]) -> int:
    """Run `count` processes of `serve(reports)` until SIGTERM or SIGINT; the exit status."""
    # spawn, not fork: each worker builds its own event loop, sessions and limiters from scratch.
    context = multiprocessing.get_context("spawn")
    workers = [start_worker(context, serve, slot) for slot in range(count)]
    stopping = False
    status, reason = 0, None

    def pass_on(_signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.process.is_alive():
                worker.process.terminate()

    signal.signal(signal.SIGTERM, pass_on)
    signal.signal(signal.SIGINT, pass_on)
    log.info("started %d workers", count)
    while watched := {w.process.sentinel: slot for slot, w in enumerate(workers) if not w.ended}:
        ready = wait(list(watched))
        for slot in (slot for sentinel, slot in watched.items() if sentinel in ready):
            worker = workers[slot]
            # The sentinel closes as the process exits: join reaps it, so its status is known.
            # (Polling for the status instead can miss the moment between the two.)
            worker.process.join()
            worker.ended = True
            code = worker.process.exitcode
            listened, said = worker.read_reports()
            if stopping:
                continue
            if not listened:
                if said is None:
                    log.error("worker %d exited with status %s before it listened", slot, code)
                status, reason = exit_status(code), said
                pass_on(signal.SIGTERM, None)
                continue
            log.warning(
                "worker %d (pid %s) exited with status %s; starting a replacement",
                slot,
                worker.process.pid,
                code,
            )
            time.sleep(max(0.0, worker.started_at + RESTART_SECONDS - time.monotonic()))
            if not stopping:
                workers[slot] = start_worker(context, serve, slot)
                if stopping:  # the stop came while it started, and passed it by
                    workers[slot].process.terminate()
    if reason is not None:
        print(reason, file=sys.stderr)  # last, after every worker's own lines
    # A worker still starting when the stop came ends by the SIGTERM passed on: that is a stop.
    codes = [worker.process.exitcode for worker in workers]
    failed = (code for code in codes if code and code != -signal.SIGTERM)
    return status or next(map(exit_status, failed), 0)


def start_worker(context: SpawnContext, serve: Callable[[Connection], None], slot: int) -> Worker:
    reports, report_to = context.Pipe(duplex=False)
    process = context.Process(target=serve, args=(report_to,), name=f"esproxy-worker-{slot}")
    process.start()
    report_to.close()  # the worker holds its own copy; the reader sees EOF once it is gone
    return Worker(process, reports, time.monotonic())


def exit_status(code: int | None) -> int:
    """A worker's exit code as the parent's: killed by a signal (negative) is 1."""
    return code if code is not None and code > 0 else 1
