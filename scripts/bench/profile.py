"""Profile a running esproxy under benchmark load with py-spy (from the bench venv).

    scripts/bench/profile forwarding [--connections N] [--seconds S]
    scripts/bench/profile inference  [--workload titan16|cohere96|completion] ...
    scripts/bench/profile large-bodies [--seconds S]   (repeated 500 MB uploads)

Starts the same processes as the benchmark, drives esproxy with wrk, samples it with py-spy, and
prints the functions with the most inclusive and own time (samples taken while holding the GIL,
so idle threads and waits are left out). Writes the folded stacks (input for
any flamegraph tool) to .cache/bench/profile-<scenario>.folded.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import threading
from pathlib import Path

import forwarding
import inference
import large_bodies
import lib

PY_SPY = str(lib.REPO / ".cache" / "bench-venv" / "bin" / "py-spy")


def record(pid: int, seconds: float, name: str) -> str:
    lib.CACHE.mkdir(parents=True, exist_ok=True)
    folded = lib.CACHE / f"profile-{name}.folded"
    subprocess.run(
        [
            PY_SPY,
            "record",
            "-p",
            str(pid),
            "-d",
            str(int(seconds)),
            "-r",
            "200",
            "--gil",
            "-f",
            "raw",
            "-o",
            str(folded),
        ],
        check=True,
        capture_output=True,
    )
    return str(folded)


def summarize(folded: str, top: int = 40) -> None:
    total = 0
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    for line in Path(folded).read_text().splitlines():
        stack, _, n = line.rstrip().rpartition(" ")
        count = int(n)
        total += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    print(f"{total} samples\n\ninclusive:")
    for f, n in incl.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {f[:140]}")
    print("\nown:")
    for f, n in own.most_common(25):
        print(f"  {100 * n / total:5.1f}%  {f[:140]}")


def profile_uploads(seconds: float, logs: Path) -> int:
    body = large_bodies.bulk_file(large_bodies.SIZE_MB)
    port = lib.free_port()
    sink = lib.start(
        "sink", [lib.PROJECT_PY, str(lib.BENCH / "sink.py"), str(port)], cpus=lib.LOAD_CPU
    )
    lib.wait_http(f"http://127.0.0.1:{port}", sink)
    url, esp = lib.esproxy(
        "esproxy",
        "--upstream",
        f"http://127.0.0.1:{port}",
        env={"ESPROXY_STORAGE_BACKEND": "memory"},
        log_dir=logs,
    )
    stop = threading.Event()
    speeds: list[float] = []

    def uploads() -> None:
        while not stop.is_set():
            speeds.append(large_bodies.upload(url, body)["mb_s"])

    runner = threading.Thread(target=uploads)
    runner.start()
    folded = record(esp.pid, seconds, "large-bodies")
    stop.set()
    runner.join()
    print(f"uploads during the profile: {', '.join(f'{v:.0f}' for v in speeds)} MB/s")
    summarize(folded)
    return 0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=["forwarding", "inference", "large-bodies"])
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--workload", default="completion", choices=inference.WORKLOADS)
    args = p.parse_args()
    logs = lib.tmpdir("profile-logs")
    if args.scenario == "large-bodies":
        return profile_uploads(args.seconds, logs)
    if args.scenario == "forwarding":
        upstream = forwarding.upstream_nginx()
        url, esp = lib.esproxy(
            "esproxy",
            "--upstream",
            upstream,
            env={"ESPROXY_STORAGE_BACKEND": "memory"},
            log_dir=logs,
        )
        target, method, body, name = url + "/bench/_search", "POST", forwarding.QUERY, "forwarding"
    else:
        keys = inference.KEYS
        emulator, _ = lib.emulator(
            "emulator",
            "--latency-ms",
            "20",
            # As in the benchmark: the role endpoint's AssumeRole needs the role and its key.
            "--key",
            f"{keys['access_key']}:{keys['secret_key']}",
            "--role",
            inference.ROLE,
            log_dir=logs,
        )
        url, esp = inference.start_esproxy(emulator, logs)
        path, body = inference.esproxy_requests()[args.workload]
        target, method, name = url + path, "POST", f"inference-{args.workload}"
    load: dict[str, object] = {}
    runner = threading.Thread(
        target=lambda: load.update(
            lib.wrk(
                target,
                connections=args.connections,
                duration=args.seconds + 4,
                method=method,
                body=body,
            )
        )
    )
    runner.start()
    threading.Event().wait(2)  # past the warm-up
    folded = record(esp.pid, args.seconds, name)
    runner.join()
    print(
        f"load during the profile: {load.get('rps', 0):,.0f} req/s at {args.connections} "
        f"connections (sampling slows esproxy somewhat)"
    )
    summarize(folded)
    return 0


if __name__ == "__main__":
    sys.exit(main())
