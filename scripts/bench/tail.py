"""Where forwarding's tail comes from: fixed-rate runs, esproxy under scripts/bench/loop_probe.py.

    scripts/bench/tail [--rate N] [--seconds S] [--rounds R] [--compare DIR]

Same setup as scripts/bench/forwarding (nginx upstream and wrk on core 0, the proxy on core 1, 64
connections, wrk.lua pacing). The rate defaults to 50% of esproxy's peak, measured first. Each
round runs direct, nginx and esproxy (and, with --compare, an esproxy imported from DIR, e.g. an
older tree unpacked with `git archive`) alternately, and prints for each proxy the latency, its
CPU per request, and the share of the run it spent on a CPU and runnable but waiting for one
(other processes on its core); for esproxy also every GC pass, the loop's late ticks split into
its own work and waiting for a CPU, and the access-log batches rendered on the loop. Prints
only; it records nothing in docs/.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import forwarding
import lib


def schedstat(proc: subprocess.Popen[bytes]) -> tuple[float, float]:
    """ms on a CPU and ms runnable but waiting for one, over the process's threads and children."""
    running = waiting = 0
    for pid in lib.group_pids(proc.pid):
        for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
            try:
                a, b, _ = Path(path).read_text().split()
            except (OSError, ValueError):
                continue
            running, waiting = running + int(a), waiting + int(b)
    return running / 1e6, waiting / 1e6


def probed_esproxy(name: str, upstream: str, out: str, pythonpath: str | None) -> Any:
    port = lib.free_port()
    env = {
        "ESPROXY_AUTH_MODE": "none",
        "ESPROXY_STORAGE_BACKEND": "memory",
        "PROBE_OUT": out,
        **({"PYTHONPATH": pythonpath} if pythonpath else {}),
    }
    argv = [lib.PROJECT_PY, str(lib.BENCH / "loop_probe.py"), "serve", "--upstream", upstream]
    argv += ["--listen", f"127.0.0.1:{port}", "--data-dir", str(lib.tmpdir(name))]
    proc = lib.start(
        name,
        [*argv, "--log-level", "WARNING"],
        cpus=lib.PROXY_CPU,
        env=env,
        log=lib.tmpdir(name + "-log") / "log",
    )
    url = f"http://127.0.0.1:{port}"
    lib.wait_http(url + "/_esproxy/health", proc)
    return url, proc


def describe_probe(out: str, seconds: float) -> None:
    probe = json.loads(Path(out).read_text())
    for gen in (0, 1, 2):
        ms = sorted(d for g, d in probe["gc"] if g == gen)
        if ms:
            total, longest = sum(ms), ms[-1]
            print(f"      gc gen{gen}: {len(ms)} passes, {total:.1f} ms, longest {longest:.2f} ms")
    if not probe["gc"]:
        print("      gc: no pass")
    late = [t for t in probe["ticks"] if t[0] > 1.0]
    print(
        f"      loop ticks over 1 ms late: {len(late)} in {seconds:.0f} s; over those intervals"
        f" {sum(t[1] for t in late):.0f} ms running, {sum(t[2] for t in late):.0f} ms waiting"
        " for a CPU"
    )
    renders = probe["renders"]
    if renders:
        ms = sorted(d for _, d in renders)
        lines = sum(n for n, _ in renders) / len(renders)
        print(
            f"      access-log batches rendered on the loop: {len(ms)}, ~{lines:.0f} lines each,"
            f" median {ms[len(ms) // 2]:.2f} ms, longest {ms[-1]:.2f} ms"
        )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--compare", help="also an esproxy imported from this directory")
    args = parser.parse_args()
    lib.banner("tail")
    upstream = forwarding.upstream_nginx()
    probes = lib.tmpdir("tail-probe")
    contenders: dict[str, tuple[str, Any, str | None]] = {"direct": (upstream, None, None)}
    url, proc = lib.nginx_proxy("nginx-proxy", upstream)
    contenders["nginx"] = (url, proc, None)
    trees = {"esproxy": None, **({"esproxy-compare": args.compare} if args.compare else {})}
    for name, tree in trees.items():
        out = str(probes / f"{name}.json")
        url, proc = probed_esproxy(name, upstream, out, tree)
        contenders[name] = (url, proc, out)
    for url, _, _ in contenders.values():  # warm up
        lib.wrk(
            url + "/bench/_search", connections=64, duration=1, method="POST", body=forwarding.QUERY
        )
    for name, (_, proc, out) in contenders.items():
        if out:
            os.kill(proc.pid, signal.SIGUSR1)
            time.sleep(1)
            full = json.loads(Path(out + ".full").read_text())
            print(
                f"  {name}: one full GC pass now takes {full['ms']:.2f} ms ({full['tracked']} "
                f"objects tracked, {full['frozen']} frozen)"
            )
    rate = args.rate
    if not rate:
        url, proc, _ = contenders["esproxy"]
        peak = lib.wrk(
            url + "/bench/_search",
            connections=64,
            duration=args.seconds,
            method="POST",
            body=forwarding.QUERY,
        )
        rate = round(peak["rps"] / 2)
        print(f"  esproxy's peak {peak['rps']:,.0f}/s: rate {rate:,}/s")
    for rnd in range(args.rounds):
        names = list(contenders) if rnd % 2 == 0 else list(reversed(contenders))
        uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        print(f"  round {rnd + 1}, {uptime}")
        for name in names:
            url, proc, out = contenders[name]
            if out:
                os.kill(proc.pid, signal.SIGUSR2)
                time.sleep(0.3)
            before = schedstat(proc) if proc else (0.0, 0.0)
            r = lib.wrk(
                url + "/bench/_search",
                connections=64,
                duration=args.seconds,
                method="POST",
                body=forwarding.QUERY,
                rate=rate,
                measure=proc,
            )
            lat = r["latency_ms"]
            line = (
                f"  {name:<15} {r['rps']:>8,.0f}/s  p50 {lat['p50']:.2f}  p99 {lat['p99']:.2f}"
                f"  p99.9 {lat['p999']:.2f}  max {lat['max']:.1f} ms"
            )
            if proc:
                after = schedstat(proc)
                wall = r["duration_s"] * 10  # ms per 1%
                line += (
                    f"  {r['cpu_ms_per_request'] * 1000:.1f} µs/req; on a CPU"
                    f" {(after[0] - before[0]) / wall:.0f}%, waiting for one"
                    f" {(after[1] - before[1]) / wall:.0f}% of the run"
                )
            print(line, flush=True)
            if out:
                os.kill(proc.pid, signal.SIGUSR2)
                time.sleep(0.5)
                describe_probe(out, r["duration_s"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
