"""Large bodies: a 500 MB `_bulk` streamed through nginx and esproxy to an upstream that discards.

Client: curl uploading a cached NDJSON file (core 0, with the sink). Proxies: core 1. nginx runs
with `proxy_request_buffering off`. The sink (scripts/bench/sink.py) answers only after the whole
body and says how many bytes it got, which is checked. Runs alternate; the median run counts.
esproxy's peak RSS is its VmHWM after all its runs.
"""

# ruff: noqa: RUF001 - the tables print the multiplication sign and an en dash on purpose

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lib

SIZE_MB = 500


def bulk_file(size_mb: int) -> Path:
    """A cached `_bulk` NDJSON body of exactly size_mb MB (10^6 bytes)."""
    path = lib.CACHE / f"bulk-{size_mb}mb.ndjson"
    size = size_mb * 1_000_000
    if path.exists() and path.stat().st_size == size:
        return path
    lib.CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    block = b"".join(
        b'{"index":{"_index":"bench","_id":"%d"}}\n{"title":"Document %d","body":"The sky above '
        b'the port was the color of television, tuned to a dead channel.","n":%d}\n' % (i, i, i)
        for i in range(4096)
    )
    with tmp.open("wb") as f:
        written = 0
        while written + len(block) <= size:
            f.write(block)
            written += len(block)
        pad = size - written  # the last line: one document padded to the exact size
        tail = b'{"index":{}}\n{"pad":"' + b"x" * max(0, pad - 23) + b'"}\n'
        f.write(tail[:pad])
    tmp.rename(path)
    return path


def upload(url: str, body: Path, proc: Any = None) -> dict[str, Any]:
    cpu_before = lib.cpu_seconds(proc)
    started = time.perf_counter()
    out = subprocess.run(
        [
            "taskset",
            "-c",
            lib.LOAD_CPU,
            "curl",
            "-sS",
            "-X",
            "POST",
            "-T",
            str(body),
            "-H",
            "Content-Type: application/x-ndjson",
            "-H",
            "Expect:",
            "-w",
            "\n%{http_code}",
            url + "/_bulk",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    elapsed = time.perf_counter() - started
    text, _, code = out.stdout.rpartition("\n")
    size = body.stat().st_size
    ok = code == "200" and f'"received_bytes":{size}' in text
    if not ok:
        print(f"  upload via {url} failed: {code} {text[:200]} {out.stderr[:200]}", flush=True)
    cpu = lib.cpu_seconds(proc) - cpu_before
    return {
        "seconds": elapsed,
        "mb_s": size / 1e6 / elapsed,
        "status": code,
        "complete": ok,
        "proxy_cpu_s_per_gb": cpu / (size / 1e9) if proc else None,
    }


def main() -> int:
    lib.refuse_unknown_options("large-bodies", sys.argv[1:], {"--quick": False})
    lib.banner("large bodies")
    size_mb = 100 if lib.quick() else SIZE_MB
    rounds = 1 if lib.quick() else 3
    body = bulk_file(size_mb)
    logs = lib.tmpdir("large-logs")
    port = lib.free_port()
    sink = lib.start(
        "sink", [lib.PROJECT_PY, str(lib.BENCH / "sink.py"), str(port)], cpus=lib.LOAD_CPU
    )
    upstream = f"http://127.0.0.1:{port}"
    lib.wait_http(upstream, sink)
    contenders = {"direct": upstream}
    contenders["nginx"], nginx = lib.nginx_proxy("nginx-proxy", upstream)
    contenders["esproxy"], esp = lib.esproxy(
        "esproxy", "--upstream", upstream, env={"ESPROXY_STORAGE_BACKEND": "memory"}, log_dir=logs
    )
    procs = {"nginx": nginx, "esproxy": esp}
    rss_idle = lib.proc_status(esp.pid, "VmRSS")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
    rss_during: list[int] = []
    for i in range(rounds):
        names = list(contenders) if i % 2 == 0 else list(reversed(contenders))
        for name in names:
            r = upload(contenders[name], body, procs.get(name))
            runs[name].append(r)
            print(
                f"  round {i + 1} {name:<8} {r['mb_s']:>7.0f} MB/s  ({r['seconds']:.2f} s, "
                f"{'complete' if r['complete'] else 'INCOMPLETE'})",
                flush=True,
            )
            if name == "esproxy":
                rss_during.append(lib.proc_status(esp.pid, "VmRSS"))
    hwm = lib.proc_status(esp.pid, "VmHWM")
    med = {n: statistics.median(r["mb_s"] for r in rs) for n, rs in runs.items()}
    result = {
        "machine": lib.machine(),
        "size_mb": size_mb,
        "rounds": rounds,
        "client": "curl -T (core 0)",
        "upstream": "scripts/bench/sink.py (reads all, then 200)",
        "runs": runs,
        "median_mb_s": med,
        "esproxy_rss_kib": {"idle": rss_idle, "after_runs": rss_during, "vmhwm": hwm},
        "all_complete": all(r["complete"] for rs in runs.values() for r in rs),
    }
    result["summary"] = {
        "esproxy_vs_nginx": med["esproxy"] / med["nginx"],
        "targets": {
            "MB/s >= 70% of nginx": med["esproxy"] / med["nginx"] >= 0.7,
            "peak RSS < 150 MB": hwm * 1024 < 150e6,
        },
    }
    lib.write_json("large-bodies", result)
    lib.publish("large-bodies", report, result)
    plot(result)
    return 0 if result["all_complete"] else 1


def cpu_per_gb(runs: list[dict[str, Any]]) -> float | None:
    """The proxy's CPU seconds per GB moved (median): its cost, which noise hardly moves."""
    values = [r["proxy_cpu_s_per_gb"] for r in runs if r.get("proxy_cpu_s_per_gb") is not None]
    return statistics.median(values) if values else None


def report(res: dict[str, Any]) -> None:
    med, runs, hwm = res["median_mb_s"], res["runs"], res["esproxy_rss_kib"]["vmhwm"]
    print(f"{res['size_mb']} MB _bulk, median of {res['rounds']} runs\n")
    print(
        lib.table(
            ["contender", "MB/s", "× nginx", "runs (MB/s)", "proxy CPU s/GB"],
            [
                [
                    n,
                    med[n],
                    lib.ratio(med[n], med["nginx"]),
                    " ".join(f"{r['mb_s']:.0f}" for r in runs[n]),
                    cpu_per_gb(runs[n]),
                ]
                for n in runs
            ],
        )
    )
    print(
        f"\nesproxy RSS: idle {res['esproxy_rss_kib']['idle'] / 1024:.0f} MiB, peak (VmHWM) "
        f"{hwm / 1024:.0f} MiB ({hwm * 1024 / 1e6:.0f} MB); every upload complete: "
        f"{res['all_complete']}\n"
    )
    for target, ok in res["summary"]["targets"].items():
        print(f"  {'MET ' if ok else 'MISS'} {target}")


def plot(res: dict[str, Any]) -> None:
    plt = lib.pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    names = list(res["median_mb_s"])
    vals = [res["median_mb_s"][n] for n in names]
    bars = ax.bar(names, vals, color=["#888", "#2a7", "#37c"][: len(names)])
    ax.bar_label(bars, fmt="%.0f MB/s")
    ax.set_ylabel("MB/s (median)")
    hwm = res["esproxy_rss_kib"]["vmhwm"] * 1024 / 1e6
    ax.set_title(f"{res['size_mb']} MB _bulk upload; esproxy peak RSS {hwm:.0f} MB")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(lib.RESULTS / "large-bodies.png", dpi=110)


if __name__ == "__main__":
    sys.exit(main())
