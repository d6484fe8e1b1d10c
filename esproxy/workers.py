"""Several server processes on one port (SO_REUSEPORT), so esproxy uses every core.

The parent only supervises: it starts the workers, passes SIGTERM and SIGINT on, and exits with
the first non-zero worker status.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)


def run_workers(count: int, serve: Callable[[], None]) -> int:
    # spawn, not fork: each worker builds its own event loop, sessions and limiters from scratch.
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=serve, name=f"esproxy-worker-{i}") for i in range(count)]
    for worker in workers:
        worker.start()

    def pass_on(signum: int, _: FrameType | None) -> None:
        for worker in workers:
            if worker.is_alive() and worker.pid is not None:
                worker.terminate() if signum == signal.SIGTERM else worker.kill()

    signal.signal(signal.SIGTERM, pass_on)
    signal.signal(signal.SIGINT, lambda *_: pass_on(signal.SIGTERM, None))
    log.info("started %d workers", count)
    for worker in workers:
        worker.join()
    return next((w.exitcode for w in workers if w.exitcode), 0) or 0
