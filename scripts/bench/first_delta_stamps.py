"""Where the streamed chat's first delta spends its time inside esproxy: stage stamps.

    .cache/bench-venv/bin/python scripts/bench/first_delta_stamps.py SECONDS [--opensearch] \
        [name=SRC ...]

Runs esproxy as `inference_ab.py` does (every feature on, a sink upstream so that the splicer is
in front, the memory store, local limits), or with `--opensearch` as the recorded sidecar run
does (an OpenSearch node upstream holding the endpoints and the leases), under
esproxy_experiment.py with BENCH_EXP_STAMPS, then
drives one streamed chat at a time for SECONDS with the bare client against the paced emulator,
and prints the median ms after the splicer's first read at which each stage was first reached
(stage_stamps.py). SRC is a tree holding an `esproxy` package, `.` (the default) for this one.
"""

from __future__ import annotations

import bisect
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

os.environ["BENCH_FEATURES"] = "all"

import inference
import inference_ab
import lib


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    seconds = float(sys.argv[1])
    opensearch = "--opensearch" in sys.argv[2:]
    variants = dict(arg.split("=", 1) for arg in sys.argv[2:] if "=" in arg) or {"esproxy": "."}
    logs = lib.tmpdir("first-delta-stamps")
    emulator, upstream = inference_ab.start_emulator_and_sink(logs)
    if opensearch:
        node, _ = lib.opensearch_node(logs)
        inference.SIDECAR.update(
            {"ESPROXY_UPSTREAM": node, "ESPROXY_SECRETS_KEY": lib.secrets_key()}
        )
    path, body = inference.esproxy_requests()["chat_stream"]
    floor_stamps = logs / "floor.stamps"
    floor_port = lib.free_port()
    floor = lib.start(
        "floor",
        [
            lib.PROJECT_PY,
            str(lib.BENCH / "floor_stamped.py"),
            str(floor_stamps),
            str(floor_port),
            emulator,
        ],
        cpus=lib.PROXY_CPU,
        log=logs / "floor.log",
    )
    floor_url = f"http://127.0.0.1:{floor_port}"
    lib.wait_http(floor_url, floor)
    inference.check(floor_url, path, body, None)
    floor_stamps.write_text("")
    os.environ["STREAM_DRIVER_TIMES"] = str(logs / "floor.times")
    r = inference.stream_driver(floor_url + path, body, None, 1, seconds, "raw")
    lib.stop(floor)
    summarize("floor", r, floor_stamps)
    for name, src in variants.items():
        stamps = logs / f"{name}.stamps"
        os.environ["BENCH_EXP_STAMPS"] = str(stamps)
        if opensearch:
            url, proc = start_sidecar(emulator, name, src, logs)
        else:
            procs = inference_ab.start_variants(
                emulator, upstream, {name: src}, logs, experiment=True
            )
            url, proc = procs[name]
        inference.check(url, path, body, None)
        stamps.write_text("")  # the check's request is a cold one
        os.environ["STREAM_DRIVER_TIMES"] = str(logs / f"{name}.times")
        r = inference.stream_driver(url + path, body, None, 1, seconds, "raw")
        lib.stop(proc)
        summarize(name, r, stamps)
    return 0


def start_sidecar(emulator: str, name: str, src: str, logs: Path) -> tuple[str, Any]:
    tree = lib.REPO if src == "." else Path(src).resolve()
    env = {"PYTHONPATH": str(tree)}
    knobs = {k: v for k, v in os.environ.items() if k.startswith("BENCH_EXP_")}
    return inference.start_esproxy(emulator, logs, name=name, env=env, experiment=knobs)


def summarize(name: str, run: dict[str, Any], stamps: Path) -> None:
    rows = [json.loads(line) for line in stamps.read_text().splitlines()]
    p50 = run["first_delta_ms"]["p50"]
    print(f"{name}: {len(rows)} streams, the client's first delta p50 {p50:.2f} ms")
    stages: dict[str, list[float]] = {}
    for row in rows:
        for stage, ms in row.items():
            if not stage.startswith("@"):
                stages.setdefault(stage, []).append(ms)
    last = 0.0
    for stage, values in sorted(stages.items(), key=lambda kv: statistics.median(kv[1])):
        mid = statistics.median(values)
        print(f"  {stage:<18} {mid:7.3f} ms  (+{mid - last:.3f}, n={len(values)})")
        last = mid
    line_up(rows, stamps.with_suffix(".times"))


def line_up(rows: list[dict[str, float]], times: Path) -> None:
    """What the stamps cannot see, from the client's clock (perf_counter is system-wide): the
    client's send to the server's first read, the last write of the first delta to the client
    reading it, and the previous answer's end to this request's first read."""
    sent = json.loads(times.read_text())  # [started, first delta or None] per request
    starts = [s for s, _ in sent]
    arrival, delivery, turnaround = [], [], []
    previous_end = None
    for row in rows:
        t0 = row.get("@t0")
        if t0 is None:
            continue
        at = bisect.bisect_right(starts, t0) - 1
        if at >= 0 and t0 - starts[at] < 0.01:
            started, first = sent[at]
            arrival.append((t0 - started) * 1000)
            if first is not None and "delta written" in row:
                delivery.append((first - t0) * 1000 - row["delta written"])
        if previous_end is not None:
            turnaround.append((t0 - previous_end) * 1000)
        previous_end = t0 + row["@eof"] / 1000
    for label, values in (
        ("client send to first read", arrival),
        ("delta written to client", delivery),
        ("answer's end to next read", turnaround),
    ):
        if values:
            print(f"  {label:<26} {statistics.median(values):7.3f} ms  (n={len(values)})")


if __name__ == "__main__":
    sys.exit(main())
