"""Run `python -m esproxy ...` with probes that say where its event loop's time goes, for
scripts/bench/tail. Nothing in esproxy/ changes; the probes cost a few µs a millisecond.

- every GC pass: its generation and duration (`gc.callbacks`);
- a 1 ms tick on the loop: how late each tick ran, and from the thread's /proc schedstat how much
  of that interval the process spent running and how much runnable but waiting for a CPU, which
  tells the loop's own work apart from other processes taking the core;
- every access-log batch rendered on the loop: its lines and duration.

SIGUSR2 writes what was gathered since the last SIGUSR2 to $PROBE_OUT (JSON) and starts over.
SIGUSR1 times one full collection as the process stands, to $PROBE_OUT.full.
"""

import gc
import json
import os
import runpy
import signal
import sys
import time

import esproxy.cli as cli
from esproxy.observability import access_log

OUT = os.environ.get("PROBE_OUT", "probe.json")
passes: list[tuple[int, float]] = []  # (generation, ms)
ticks: list[tuple[float, float, float]] = []  # (ms late, ms running, ms waiting for a CPU)
renders: list[tuple[int, float]] = []  # (lines, ms)
started = [0.0]


def on_gc(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        started[0] = time.perf_counter()
    else:
        passes.append((info["generation"], (time.perf_counter() - started[0]) * 1000))


gc.callbacks.append(on_gc)

render = access_log.AccessLog.render


def timed_render(self, *batch):  # type: ignore[no-untyped-def]
    # render(items) in older trees; render(values, lines) since forwarded entries are flat values.
    lines = len(batch[0]) if len(batch) == 1 else len(batch[0]) // access_log.WIDTH + len(batch[1])
    t = time.perf_counter()
    out = render(self, *batch)
    renders.append((lines, (time.perf_counter() - t) * 1000))
    return out


access_log.AccessLog.render = timed_render  # type: ignore[method-assign]

new_event_loop = cli.new_event_loop


def probed_loop():  # type: ignore[no-untyped-def]
    loop = new_event_loop()
    fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)

    def sched() -> tuple[float, float]:
        running, waiting, _ = os.pread(fd, 100, 0).split()
        return int(running) / 1e6, int(waiting) / 1e6

    def tick(due: float, last: tuple[float, float]) -> None:
        now = time.perf_counter()
        now_sched = sched()
        ticks.append(((now - due) * 1000, now_sched[0] - last[0], now_sched[1] - last[1]))
        loop.call_later(0.001, tick, now + 0.001, now_sched)

    loop.call_soon(tick, time.perf_counter(), sched())
    return loop


cli.new_event_loop = probed_loop


def dump(*_: object) -> None:
    with open(OUT, "w") as f:
        json.dump({"gc": passes, "ticks": ticks, "renders": renders}, f)
    passes.clear()
    ticks.clear()
    renders.clear()


def full_pass(*_: object) -> None:
    tracked = len(gc.get_objects())
    t = time.perf_counter()
    gc.collect()
    ms = (time.perf_counter() - t) * 1000
    with open(OUT + ".full", "w") as f:
        json.dump({"ms": ms, "tracked": tracked, "frozen": gc.get_freeze_count()}, f)


signal.signal(signal.SIGUSR2, dump)
signal.signal(signal.SIGUSR1, full_pass)
sys.argv[0] = "esproxy"
runpy.run_module("esproxy", run_name="__main__", alter_sys=True)
