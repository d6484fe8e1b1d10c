"""A/B of esproxy source trees on the inference workloads, as `scripts/bench/all` runs esproxy.

Every feature on (BENCH_FEATURES=all) and an upstream set (a sink on core 0), so that the splicer
is in front and hands `_inference` to the app as in the recorded run; the store is in memory and
the limits local, so no OpenSearch node is needed. The emulator (20 ms) and wrk run on core 0,
each variant's esproxy on core 1. Rounds alternate the variants, reversed every other round, and
print each variant's sorted CPU ms per request (utime + stime of the process per completed
request: what moves least when others share the machine), with `uptime`.

A case `bridge-WORKLOAD:C` (e.g. `bridge-completion:1`) times each variant's call through
`_inference` and through the OpenAI bridge in alternating rounds, as the bridge's budget
compares them, and prints each round's difference.

The case `first_delta:1` times the streamed chat's first delta instead, as the budget does
(inference.paced_first_deltas): events paced PACE_MS apart after the first delta (the emulator
paces here unless BENCH_AB_BURST=1; the other workloads do not stream), a bare client, and
direct aiobotocore alternating with the variants, SECONDS per round; it prints each one's mean
p50 and its rounds' differences to direct.

    .cache/bench-venv/bin/python scripts/bench/inference_ab.py \
        completion:64,cohere96:16,first_delta:1 SECONDS ROUNDS name=SRC [name=SRC ...]

SRC is a directory holding an `esproxy` package (e.g. `git archive main esproxy | tar -x -C
/tmp/main`), or `.` for this worktree. Each variant is started from its own SRC, since
`python -m esproxy` puts the working directory first on sys.path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

os.environ["BENCH_FEATURES"] = "all"

import inference
import lib


def start_variants(
    emulator: str, upstream: str, variants: dict[str, str], logs: Path, experiment: bool = False
) -> Any:
    procs = {}
    for name, src in variants.items():
        env = {
            "ESPROXY_UPSTREAM": upstream,
            "ESPROXY_STORAGE_BACKEND": "memory",
            "ESPROXY_LIMITS_MODE": "local",
            "ESPROXY_SECRETS_KEY": lib.secrets_key(),
        }
        tree = lib.REPO if src == "." else Path(src).resolve()
        if src != ".":
            env["PYTHONPATH"] = str(tree)
        os.chdir(tree)
        # The experiment launcher reads its knobs (BENCH_EXP_*) from the environment.
        knobs = {k: v for k, v in os.environ.items() if k.startswith("BENCH_EXP_")}
        procs[name] = inference.start_esproxy(
            emulator, logs, name=name, env=env, experiment=knobs if experiment else None
        )
    os.chdir(lib.REPO)
    return procs


def start_emulator_and_sink(logs: Path) -> tuple[str, str]:
    """The pacing emulator (the other workloads do not stream) and a sink upstream, on core 0.
    With BENCH_AB_BURST=1 the emulator writes each answer's events at once, as the first delta's
    reference case in `inference` has it."""
    pacing = ("--stream-delay-ms", str(inference.PACE_MS), "--stream-burst", "2")
    burst = os.environ.get("BENCH_AB_BURST") == "1"
    emulator = inference.start_emulator(logs, "emulator", *(() if burst else pacing))
    port = lib.free_port()
    sink = lib.start(
        "sink", [lib.PROJECT_PY, str(lib.BENCH / "sink.py"), str(port)], cpus=lib.LOAD_CPU
    )
    lib.wait_http(f"http://127.0.0.1:{port}", sink)
    return emulator, f"http://127.0.0.1:{port}"


def main() -> int:
    if len(sys.argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    cases = [(w, int(c)) for w, c in (x.split(":") for x in sys.argv[1].split(","))]
    seconds, rounds = float(sys.argv[2]), int(sys.argv[3])
    variants = dict(arg.split("=", 1) for arg in sys.argv[4:])
    logs = lib.tmpdir("inference-ab")
    emulator, upstream = start_emulator_and_sink(logs)
    procs = start_variants(emulator, upstream, variants, logs)
    requests = inference.esproxy_requests()
    for workload, conc in cases:
        if workload == "first_delta":
            first_deltas(emulator, procs, seconds, rounds)
            continue
        if workload.startswith("bridge-"):
            bridge_rounds(workload.removeprefix("bridge-"), conc, procs, seconds, rounds)
            continue
        path, body = requests[workload]
        for url, _ in procs.values():
            inference.check(url, path, body, None)
            lib.wrk(url + path, connections=4, duration=1, method="POST", body=body)
        got = inference.alternate_wrk(
            {name: (url + path, body, proc) for name, (url, proc) in procs.items()},
            conc,
            seconds,
            rounds,
        )
        uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        for name, runs in got.items():
            cpu = sorted(r["cpu_ms_per_request"] for r in runs)
            mid = len(runs) // 2
            rps = sorted(r["rps"] for r in runs)[mid]
            p50 = sorted(r["latency_ms"]["p50"] for r in runs)[mid]
            p99 = sorted(r["latency_ms"]["p99"] for r in runs)[mid]
            print(
                f"{workload}:{conc} {name:10} CPU ms/req {' '.join(f'{c:.3f}' for c in cpu)} | "
                f"median {rps:.1f} req/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms",
                flush=True,
            )
        print(f"    {uptime}", flush=True)
    return 0


def bridge_rounds(
    workload: str, conc: int, procs: dict[str, Any], seconds: float, rounds: int
) -> None:
    """Each variant's call through `_inference` and the OpenAI bridge, as the budget times it."""
    for name, (url, proc) in procs.items():
        print(f"  {name}:", flush=True)
        inference.bridge_rounds(url, proc, workload, conc, seconds, rounds)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"    {uptime}", flush=True)


def first_deltas(emulator: str, procs: dict[str, Any], seconds: float, rounds: int) -> None:
    """The budget's measure (inference.first_deltas) with the variants as contenders."""
    requests = inference.esproxy_requests()
    targets = {name: (url, requests, None) for name, (url, _) in procs.items()}
    for url, _ in procs.values():
        inference.check(url, *requests["chat_stream"], None)
    clients = dict.fromkeys(procs, "raw")
    inference.first_deltas(emulator, targets, seconds * rounds, clients, rounds=rounds)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"    {uptime}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
