"""Rate limiter accuracy: achieved Bedrock call rate vs `requests_per_minute`, with the emulator
enforcing the same quota per access key (`--quota-per-minute`, a sliding 60 s window).

Scenarios: one endpoint alone, then ten endpoints in one esproxy process (each with its own keys,
so each has its own quota). Every endpoint is kept saturated (8 callers each, one Bedrock call per
request). scripts/bench/bedrock_tap.py sits between esproxy and the emulator and records each
call's answer, so the rate and the throttles are counted where Bedrock would count them, whatever
esproxy retries. Windows of 60 s from the first request; the first one includes the limiter's
initial burst.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import lib

RPM = 600
CALLERS = 8


def scenario(name: str, endpoints: int, windows: int, window_s: float) -> dict[str, Any]:
    logs = lib.tmpdir(f"rate-{name}")
    emulator, emu = lib.emulator(
        "emulator", "--latency-ms", "20", "--quota-per-minute", str(RPM), log_dir=logs
    )
    port = lib.free_port()
    tap = lib.start(
        "tap",
        [lib.PROJECT_PY, str(lib.BENCH / "bedrock_tap.py"), str(port), emulator],
        cpus=lib.LOAD_CPU,
        log=logs / "tap.log",
    )
    tap_url = f"http://127.0.0.1:{port}"
    lib.wait_http(tap_url + "/_tap/events", tap)
    url, esp = lib.esproxy("esproxy", "--bedrock-endpoint-url", tap_url, log_dir=logs)
    ids, keys = [], {}
    for n in range(endpoints):
        inference_id, access = f"rate-{n}", f"AKIDRATE{n:04d}"
        status, body = lib.http(
            "PUT",
            f"{url}/_inference/text_embedding/{inference_id}",
            {
                "service": "amazonbedrock",
                "service_settings": {
                    "access_key": access,
                    "secret_key": "bench-secret",
                    "region": "us-east-1",
                    "provider": "amazontitan",
                    "model": "amazon.titan-embed-text-v2:0",
                    "rate_limit": {"requests_per_minute": RPM},
                },
            },
        )
        if status != 200:
            raise RuntimeError(f"PUT {inference_id}: {status} {body}")
        ids.append(inference_id)
        keys[access] = inference_id
    # The PUT probes were calls too: a fresh emulator on the same port starts every quota empty.
    lib.stop(emu)
    emulator, emu = lib.emulator(
        "emulator",
        "--latency-ms",
        "20",
        "--quota-per-minute",
        str(RPM),
        log_dir=logs,
        port=int(emulator.rsplit(":", 1)[1]),
    )
    seconds = windows * window_s
    out = subprocess.run(
        [
            "taskset",
            "-c",
            lib.LOAD_CPU,
            lib.PROJECT_PY,
            str(lib.BENCH / "rate_driver.py"),
            url,
            str(CALLERS),
            str(seconds),
            *ids,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 180,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    driven = json.loads(out.stdout.strip().splitlines()[-1])
    _, tapped = lib.http("GET", tap_url + "/_tap/events")
    t0 = driven["started"]
    per_endpoint = {}
    for access, inference_id in keys.items():
        mine = [(t, s) for t, k, s in tapped["events"] if k == access and t >= t0]
        wins = []
        for w in range(windows):
            lo, hi = t0 + w * window_s, t0 + (w + 1) * window_s
            ok = sum(1 for t, s in mine if lo <= t < hi and s == 200)
            achieved = ok * 60 / window_s
            wins.append(
                {
                    "window": w + 1,
                    "calls_ok": ok,
                    "achieved_rpm": achieved,
                    "error_pct": (achieved - RPM) / RPM * 100,
                }
            )
        throttles = sum(1 for _, s in mine if s == 429)
        per_endpoint[inference_id] = {
            "windows": wins,
            "throttles": throttles,
            "other_errors": sum(1 for _, s in mine if s not in (200, 429)),
            "client_statuses": driven["statuses"][inference_id],
        }
    rss = lib.proc_status(esp.pid, "VmHWM")
    for proc in (esp, tap, emu):
        lib.stop(proc)
    errors = [w["error_pct"] for e in per_endpoint.values() for w in e["windows"]]
    result = {
        "endpoints": endpoints,
        "requests_per_minute": RPM,
        "quota_per_minute": RPM,
        "callers_per_endpoint": CALLERS,
        "window_s": window_s,
        "windows": windows,
        "per_endpoint": per_endpoint,
        "max_abs_error_pct": max(abs(e) for e in errors),
        "mean_error_pct": sum(errors) / len(errors),
        "throttles": sum(e["throttles"] for e in per_endpoint.values()),
        "esproxy_vmhwm_kib": rss,
    }
    print(
        f"  {name}: max |error| {result['max_abs_error_pct']:.2f}%, throttles "
        f"{result['throttles']}",
        flush=True,
    )
    return result


def main() -> int:
    lib.banner("rate limit")
    windows, window_s = (1, 15.0) if lib.quick() else (2, 60.0)
    results = {
        "one endpoint": scenario("one endpoint", 1, windows, window_s),
        "ten endpoints": scenario("ten endpoints", 10, windows, window_s),
    }
    summary = {
        "targets": {f"{n}: within ±2%": r["max_abs_error_pct"] <= 2.0 for n, r in results.items()}
        | {f"{n}: zero throttles": r["throttles"] == 0 for n, r in results.items()},
    }
    data = {"machine": lib.machine(), "scenarios": results, "summary": summary}
    lib.write_json("rate-limit", data)
    lib.publish("rate-limit", report, data)
    plot(data)
    return 0


def report(data: dict[str, Any]) -> None:
    results = data["scenarios"]
    first = next(iter(results.values()))
    windows, window_s = first["windows"], first["window_s"]
    print(
        f"requests_per_minute = quota = {RPM}; {windows} window(s) of {window_s:g} s; "
        f"{CALLERS} callers per endpoint\n"
    )
    rows = []
    for n, r in results.items():
        for w in range(windows):
            ach = [e["windows"][w]["achieved_rpm"] for e in r["per_endpoint"].values()]
            err = [e["windows"][w]["error_pct"] for e in r["per_endpoint"].values()]
            rows.append(
                [
                    n,
                    w + 1,
                    sum(ach) / len(ach),
                    min(ach),
                    max(ach),
                    sum(err) / len(err),
                    max(err, key=abs),
                    r["throttles"] if w == 0 else "",
                ]
            )
    print(
        lib.table(
            [
                "scenario",
                "window",
                "mean rpm",
                "min rpm",
                "max rpm",
                "mean err %",
                "worst err %",
                "throttles (run)",
            ],
            rows,
        )
    )
    print()
    for target, ok in data["summary"]["targets"].items():
        print(f"  {'MET ' if ok else 'MISS'} {target}")


def plot(data: dict[str, Any]) -> None:
    plt = lib.pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8))
    x, ticks, names = 0, [], []
    colors = {1: "#37c", 2: "#2a7"}
    for n, r in data["scenarios"].items():
        first = x
        for e in r["per_endpoint"].values():
            for w in e["windows"]:
                ax.bar(x, w["error_pct"], color=colors.get(w["window"], "#888"))
                x += 1
        ticks.append((first + x - 1) / 2)
        names.append(n.replace(", ", "\n"))
        x += 2
    ax.axhspan(-2, 2, color="#eee", zorder=0)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(ticks, names, fontsize=7)
    ax.set_ylabel("achieved vs requests_per_minute (%)")
    ax.set_title("rate error per endpoint (blue: window 1, green: window 2; grey: ±2%)", fontsize=9)
    scen = list(data["scenarios"])
    bars = bx.bar(range(len(scen)), [data["scenarios"][n]["throttles"] for n in scen], color="#c44")
    bx.bar_label(bars)
    bx.set_xticks(range(len(scen)), [n.replace(", ", "\n") for n in scen], fontsize=7)
    bx.set_title(f"throttles from the emulator (quota = rpm = {RPM})", fontsize=9)
    fig.tight_layout()
    fig.savefig(lib.RESULTS / "rate-limit.png", dpi=110)


if __name__ == "__main__":
    sys.exit(main())
