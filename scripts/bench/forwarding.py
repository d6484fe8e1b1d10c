"""Forwarding benchmark: direct vs nginx (reverse proxy) vs esproxy (1 and 2 workers).

Upstream: nginx serving a canned Elasticsearch search answer (1 worker, core 0, with wrk). Each
proxy gets core 1 (esproxy --workers 2 gets cores 0-1, sharing core 0 with wrk and the upstream).
Load: wrk, 1 thread, POST /bench/_search at 1, 16, 64, 256 connections; contenders alternate at
each concurrency. Then fixed-rate runs at 50% of nginx's peak, --workers 1 vs 2 on a request
esproxy answers itself (so that esproxy bounds the throughput), and one case against OpenSearch.
An experiment (off by default): --floor adds a bare aiohttp server+client forwarder
(minimal_proxy.py), the floor for this
stack, a sketch of a protocol-level HTTP forwarder (http_splice.py), and an HTTP-blind TCP relay
(tcp_relay.py), the floor for any asyncio design; the last two also on uvloop.
"""

# ruff: noqa: RUF001 - the tables print the multiplication sign and an en dash on purpose

from __future__ import annotations

import json
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import lib
import observability

SEARCH_RESPONSE = json.dumps(
    {
        "took": 3,
        "timed_out": False,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {
            "total": {"value": 2, "relation": "eq"},
            "max_score": 1.0,
            "hits": [
                {
                    "_index": "bench",
                    "_id": str(i),
                    "_score": 1.0,
                    "_source": {
                        "title": f"Document {i}",
                        "body": "The sky above the port was the color "
                        "of television, tuned to a dead channel.",
                        "tags": ["a", "b"],
                        "n": i,
                    },
                }
                for i in (1, 2)
            ],
        },
    },
    separators=(",", ":"),
)
QUERY = '{"query":{"match":{"body":"television"}},"size":2}'
CONCURRENCY = [1, 16, 64, 256]
SCALING_PATH = "/_inference/_services?pretty"  # ~3x the CPU of the compact form: wrk stays small


def upstream_nginx() -> str:
    port = lib.free_port()
    proc = lib.nginx(
        "upstream",
        f"""
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      default_type application/json;
      add_header X-elastic-product Elasticsearch;
      return 200 '{SEARCH_RESPONSE}';
    }}
  }}""",
        cpus=lib.LOAD_CPU,
    )
    url = f"http://127.0.0.1:{port}"
    lib.wait_http(url, proc)
    return url


def main() -> int:
    lib.refuse_unknown_options(
        "forwarding",
        sys.argv[1:],
        {
            "--quick": False,
            "--floor": False,
            "--no-opensearch": False,
            "--only-observability": False,
        },
    )
    lib.banner("forwarding")
    duration = 3.0 if lib.quick() else 10.0
    logs = lib.tmpdir("forwarding-logs")
    memory = {"ESPROXY_STORAGE_BACKEND": "memory"}
    upstream = upstream_nginx()
    if "--only-observability" in sys.argv:
        only = {"machine": lib.machine(), "duration_s": duration}
        only["observability"] = observability.forwarding_case(
            upstream, QUERY, duration, logs, memory
        )
        lib.write_json("forwarding-observability", only)
        return 0
    contenders: dict[str, str] = {"direct": upstream}
    procs: dict[str, Any] = {"direct": None}
    contenders["nginx"], procs["nginx"] = lib.nginx_proxy("nginx-proxy", upstream)
    contenders["esproxy"], esp1 = lib.esproxy(
        "esproxy", "--upstream", upstream, env=memory, log_dir=logs
    )
    contenders["esproxy-w2"], esp2 = lib.esproxy(
        "esproxy-w2", "--upstream", upstream, "--workers", "2", cpus="0,1", env=memory, log_dir=logs
    )
    procs["esproxy"], procs["esproxy-w2"] = esp1, esp2
    if "--floor" in sys.argv:  # experiment: a bare aiohttp server+client forwarder
        port = lib.free_port()
        procs["aiohttp-floor"] = lib.start(
            "aiohttp-floor",
            [lib.PROJECT_PY, str(lib.BENCH / "minimal_proxy.py"), str(port), upstream],
            cpus=lib.PROXY_CPU,
        )
        contenders["aiohttp-floor"] = f"http://127.0.0.1:{port}"
        lib.wait_http(contenders["aiohttp-floor"], procs["aiohttp-floor"])
        # ...a sketch of a protocol-level HTTP forwarder (the proposed fast path), and a byte
        # pump that ignores HTTP: the floor for any asyncio design; both also on uvloop.
        lib.ensure_uvloop()
        uv = ["--uvloop", str(lib.CACHE / "uvloop")]
        host, up = upstream.split("//")[1].split(":")
        for name, script, extra in (
            ("http-splice", "http_splice.py", []),
            ("http-splice+uvloop", "http_splice.py", uv),
            ("relay-floor", "tcp_relay.py", []),
            ("relay+uvloop", "tcp_relay.py", uv),
        ):
            port = lib.free_port()
            procs[name] = lib.start(
                name,
                [lib.PROJECT_PY, str(lib.BENCH / script), str(port), host, up, *extra],
                cpus=lib.PROXY_CPU,
            )
            contenders[name] = f"http://127.0.0.1:{port}"
            lib.wait_http(contenders[name], procs[name])
    for url in contenders.values():  # warm up: connections, caches
        lib.wrk(url + "/bench/_search", connections=16, duration=1, method="POST", body=QUERY)

    sweep: dict[str, dict[int, Any]] = {name: {} for name in contenders}
    for c in CONCURRENCY:
        # Alternate the order at each level so that drift on a noisy machine spreads evenly.
        names = list(contenders) if c % 2 == 0 or c == 1 else list(reversed(contenders))
        for name in names:
            r = lib.wrk(
                contenders[name] + "/bench/_search",
                connections=c,
                duration=duration,
                method="POST",
                body=QUERY,
                measure=procs[name],
            )
            sweep[name][c] = r
            cpu = f"{r['cpu_ms_per_request'] * 1000:5.0f} µs CPU/req" if procs[name] else ""
            print(
                f"  c={c:<3} {name:<11} {r['rps']:>9,.0f} rps  p50 {r['latency_ms']['p50']:.2f} "
                f"p99 {r['latency_ms']['p99']:.2f} ms  errors {r['errors']}  {cpu}",
                flush=True,
            )

    peak = {name: max(r["rps"] for r in runs.values()) for name, runs in sweep.items()}
    # CPU per request at 64 connections: the least noise-sensitive efficiency figure.
    cpu_per_req = {
        name: runs[64]["cpu_ms_per_request"]
        for name, runs in sweep.items()
        if runs[64]["cpu_ms_per_request"]
    }
    # Latency at a fixed offered rate: 50% of nginx's peak (the target's load), then 50% of
    # esproxy's own peak (a load it can carry, so the added latency is not queueing). 64
    # connections to draw from.
    rate = round(peak["nginx"] * 0.5)
    light = round(peak["esproxy"] * 0.5)
    fixed = fixed_rate(contenders, rate, duration)
    fixed_light = fixed_rate(
        {n: contenders[n] for n in ("direct", "nginx", "esproxy")}, light, duration
    )
    hwm = {name: lib.proc_status(p.pid, "VmHWM") for name, p in [("esproxy", esp1)]}
    lib.stop(esp1)
    lib.stop(esp2)

    costs = observability.forwarding_case(upstream, QUERY, duration, logs, memory)
    scaling = scaling_case(duration, logs)
    opensearch = None if "--no-opensearch" in sys.argv else opensearch_case(duration, logs)
    result = {
        "machine": lib.machine(),
        "duration_s": duration,
        "concurrency": CONCURRENCY,
        "load": "wrk 4.1 (1 thread, core 0); fixed rate: wrk + scripts/bench/wrk.lua pacing",
        "request": {
            "method": "POST",
            "path": "/bench/_search",
            "body": QUERY,
            "response_bytes": len(SEARCH_RESPONSE),
        },
        "sweep": {n: {str(c): r for c, r in runs.items()} for n, runs in sweep.items()},
        "peak_rps": peak,
        "cpu_ms_per_request_at_64": cpu_per_req,
        "fixed_rate": {"rate": rate, "runs": fixed},
        "fixed_rate_light": {"rate": light, "runs": fixed_light},
        "esproxy_vmhwm_kib": hwm["esproxy"],
        "scaling": scaling,
        "opensearch": opensearch,
        "observability": costs,
    }
    result["summary"] = summarize(result)
    lib.write_json("forwarding", result)
    lib.publish("forwarding", report, result)
    plot(result)
    return 0


def scaling_case(duration: float, logs: Path) -> dict[str, Any]:
    """`--workers 1` (core 1) against `--workers 2` (cores 0-1) on a request esproxy answers itself
    (the service list, pretty-printed: all of it esproxy's own CPU): no upstream shares the cores,
    and wrk's cost per request is a small fraction of esproxy's, so esproxy's cores bound it."""
    memory = {"ESPROXY_STORAGE_BACKEND": "memory"}
    w1, p1 = lib.esproxy("scaling-w1", env=memory, log_dir=logs)
    w2, p2 = lib.esproxy("scaling-w2", "--workers", "2", cpus="0,1", env=memory, log_dir=logs)
    runs: dict[str, Any] = {}
    for rnd in range(2):  # better of two rounds, alternating
        order = [("workers-1", w1, p1), ("workers-2", w2, p2)]
        for name, url, proc in order if rnd == 0 else reversed(order):
            r = lib.wrk(url + SCALING_PATH, connections=64, duration=duration, measure=proc)
            print(f"  scaling {name:<10} {r['rps']:>9,.0f} rps  errors {r['errors']}", flush=True)
            if name not in runs or r["rps"] > runs[name]["rps"]:
                runs[name] = r
    lib.stop(p1)
    lib.stop(p2)
    ratio = runs["workers-2"]["rps"] / runs["workers-1"]["rps"]
    return {"request": f"GET {SCALING_PATH}", "connections": 64, "runs": runs, "ratio": ratio}


def fixed_rate(contenders: dict[str, str], rate: int, duration: float) -> dict[str, Any]:
    fixed: dict[str, Any] = {}
    for name in [n for n in contenders if n != "esproxy-w2"] + ["esproxy-w2"] * (
        "esproxy-w2" in contenders
    ):
        r = lib.wrk(
            contenders[name] + "/bench/_search",
            connections=64,
            duration=duration,
            method="POST",
            body=QUERY,
            rate=rate,
        )
        fixed[name] = r
        print(
            f"  fixed {rate}/s {name:<11} achieved {r['rps']:>8,.0f}/s  p50 "
            f"{r['latency_ms']['p50']:.2f} p99 {r['latency_ms']['p99']:.2f} p99.9 "
            f"{r['latency_ms']['p999']:.2f} ms",
            flush=True,
        )
    return fixed


def opensearch_case(duration: float, logs: Path) -> dict[str, Any] | None:
    """POST /bench/_search on a real OpenSearch node (pinned to core 0) at 16 connections."""
    duration = min(duration, 8.0)
    node = lib.start(
        "opensearch",
        [str(lib.REPO / "scripts" / "opensearch-node")],
        cpus=lib.LOAD_CPU,
        stdout=subprocess.PIPE,
        log=logs / "opensearch.log",
    )
    assert node.stdout is not None
    ready, _, _ = select.select([node.stdout], [], [], 240)  # the URL is printed once ready
    url = node.stdout.readline().decode().strip() if ready else ""
    if not url.startswith("http"):
        print("  OpenSearch did not start; skipping its case", flush=True)
        return None
    for i in (1, 2):
        lib.http(
            "PUT",
            f"{url}/bench/_doc/{i}?refresh=true",
            {
                "title": f"Document {i}",
                "body": "The sky above the port was the color of "
                "television, tuned to a dead channel.",
                "tags": ["a", "b"],
                "n": i,
            },
        )
    memory = {"ESPROXY_STORAGE_BACKEND": "memory"}
    # With every feature on, esproxy is a whole sidecar here: its store in the node, leases too.
    store = {"ESPROXY_SECRETS_KEY": lib.secrets_key()} if lib.all_features() else memory
    contenders = {"direct": url}
    contenders["nginx"], _ = lib.nginx_proxy("nginx-proxy-os", url)
    contenders["esproxy"], _ = lib.esproxy("esproxy-os", "--upstream", url, env=store, log_dir=logs)
    # The JVM keeps compiling for a while: warm up longer, then two rounds in opposite orders,
    # keeping each contender's better one.
    lib.wrk(url + "/bench/_search", connections=16, duration=8, method="POST", body=QUERY)
    for u in contenders.values():
        lib.wrk(u + "/bench/_search", connections=16, duration=2, method="POST", body=QUERY)
    runs: dict[str, Any] = {}
    for order in (list(contenders), list(reversed(contenders))):
        for name in order:
            r = lib.wrk(
                contenders[name] + "/bench/_search",
                connections=16,
                duration=duration,
                method="POST",
                body=QUERY,
            )
            print(
                f"  opensearch c=16 {name:<8} {r['rps']:>8,.0f} rps  p50 "
                f"{r['latency_ms']['p50']:.2f} p99 {r['latency_ms']['p99']:.2f} ms  errors "
                f"{r['errors']}",
                flush=True,
            )
            if name not in runs or r["rps"] > runs[name]["rps"]:
                runs[name] = r
    lib.stop_all()
    return {"connections": 16, "runs": runs}


def summarize(res: dict[str, Any]) -> dict[str, Any]:
    peak = res["peak_rps"]
    fixed = res["fixed_rate"]["runs"]
    d, e = fixed["direct"]["latency_ms"], fixed["esproxy"]["latency_ms"]
    added = {k: e[k] - d[k] for k in ("p50", "p99", "p999")}
    rate = res["fixed_rate"]["rate"]
    cpu = res["cpu_ms_per_request_at_64"]
    return {
        "esproxy_vs_nginx_peak": peak["esproxy"] / peak["nginx"],
        "nginx_vs_esproxy_cpu_per_request": lib.ratio(cpu.get("nginx"), cpu.get("esproxy")),
        "workers2_vs_workers1_peak": peak["esproxy-w2"] / peak["esproxy"],
        "workers2_vs_workers1_own_api": res["scaling"]["ratio"],
        "added_at_half_nginx_peak_ms": added,
        "esproxy_achieved_fraction_of_fixed_rate": fixed["esproxy"]["rps"] / rate,
        "targets": {
            "throughput >= 50% of nginx": peak["esproxy"] / peak["nginx"] >= 0.5,
            "added p50 <= 0.5 ms at 50% nginx peak": added["p50"] <= 0.5
            and fixed["esproxy"]["rps"] >= 0.95 * rate,
            "added p99 <= 3 ms at 50% nginx peak": added["p99"] <= 3
            and fixed["esproxy"]["rps"] >= 0.95 * rate,
            "--workers 2 >= 1.8x 1 worker": res["scaling"]["ratio"] >= 1.8,
        },
    }


def report(res: dict[str, Any]) -> None:
    sweep = res["sweep"]
    print("\nThroughput (requests/s) and latency (ms) by concurrency\n")
    rows = []
    for c in map(str, res["concurrency"]):
        direct = sweep["direct"][c]
        for name in sweep:
            r = sweep[name][c]
            lat = r["latency_ms"]
            rows.append(
                [
                    c,
                    name,
                    r["rps"],
                    lib.ratio(r["rps"], sweep["nginx"][c]["rps"]),
                    lat["p50"],
                    lat["p99"],
                    lat["p999"],
                    lat["p50"] - direct["latency_ms"]["p50"],
                    r["cpu_ms_per_request"] * 1000 if r["cpu_ms_per_request"] else None,
                    r["errors"],
                ]
            )
    print(
        lib.table(
            [
                "conns",
                "contender",
                "rps",
                "× nginx",
                "p50",
                "p99",
                "p99.9",
                "p50 over direct",
                "CPU µs/req",
                "errors",
            ],
            rows,
        )
    )
    for key, what in (
        ("fixed_rate", "50% of nginx's peak"),
        ("fixed_rate_light", "50% of esproxy's peak"),
    ):
        fx = res[key]
        print(f"\nFixed rate {fx['rate']:,}/s ({what}), 64 connections\n")
        d = fx["runs"]["direct"]["latency_ms"]
        rows = [
            [
                n,
                r["rps"],
                r["latency_ms"]["p50"],
                r["latency_ms"]["p99"],
                r["latency_ms"]["p999"],
                r["latency_ms"]["p50"] - d["p50"],
                r["latency_ms"]["p99"] - d["p99"],
            ]
            for n, r in fx["runs"].items()
        ]
        print(lib.table(["contender", "achieved/s", "p50", "p99", "p99.9", "+p50", "+p99"], rows))
    if res["opensearch"]:
        print("\nOpenSearch 2.19.6 upstream (core 0), 16 connections, better of 2 rounds\n")
        runs = res["opensearch"]["runs"]
        rows = [
            [
                n,
                r["rps"],
                lib.ratio(r["rps"], runs["nginx"]["rps"]),
                r["latency_ms"]["p50"],
                r["latency_ms"]["p99"],
                r["latency_ms"]["p50"] - runs["direct"]["latency_ms"]["p50"],
                r["errors"],
            ]
            for n, r in runs.items()
        ]
        print(lib.table(["contender", "rps", "× nginx", "p50", "p99", "+p50", "errors"], rows))
    sc = res["scaling"]
    print(f"\n--workers 1 vs 2 on {sc['request']} (esproxy's own answer), 64 connections\n")
    rows = [
        [n, r["rps"], r["latency_ms"]["p50"], r["latency_ms"]["p99"], r["errors"]]
        for n, r in sc["runs"].items()
    ]
    print(lib.table(["workers", "rps", "p50", "p99", "errors"], rows))
    s = res["summary"]
    print(
        f"\nesproxy / nginx peak: {s['esproxy_vs_nginx_peak']:.2f}; workers 2 / 1: "
        f"{s['workers2_vs_workers1_own_api']:.2f} on esproxy's own API, "
        f"{s['workers2_vs_workers1_peak']:.2f} forwarding (sharing core 0 with wrk and nginx); "
        f"esproxy VmHWM {res['esproxy_vmhwm_kib'] / 1024:.0f} MiB"
    )
    cpu = res["cpu_ms_per_request_at_64"]
    print(
        "CPU per request at 64 connections: "
        + ", ".join(f"{n} {v * 1000:.0f} µs" for n, v in cpu.items())
        + f" (esproxy / nginx: {lib.ratio(cpu.get('esproxy'), cpu.get('nginx')):.1f}×)"
    )
    for target, ok in s["targets"].items():
        print(f"  {'MET ' if ok else 'MISS'} {target}")


def plot(res: dict[str, Any]) -> None:
    plt = lib.pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    conc = res["concurrency"]
    for name, runs in res["sweep"].items():
        a.plot(conc, [runs[str(c)]["rps"] for c in conc], marker="o", label=name)
        b.plot(conc, [runs[str(c)]["latency_ms"]["p99"] for c in conc], marker="o", label=name)
    for ax, title, unit in ((a, "throughput", "requests/s"), (b, "p99 latency", "ms")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(conc, [str(c) for c in conc])
        ax.set_xlabel("connections (wrk)")
        ax.set_ylabel(unit)
        ax.set_title(f"forwarding: {title}")
        ax.grid(alpha=0.3)
    b.set_yscale("log")
    a.legend()
    fig.tight_layout()
    fig.savefig(lib.RESULTS / "forwarding.png", dpi=110)


if __name__ == "__main__":
    sys.exit(main())
