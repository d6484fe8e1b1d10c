"""Soak: a bounded run of mixed traffic with injected faults against esproxy in sidecar mode.

esproxy forwards to a real OpenSearch node through scripts/bench/faulty_upstream.py (which resets
the requests marked for it) and stores its endpoints in that cluster; Bedrock is the emulator
(5 ms latency, 5 ms between stream events) with faults queued by scripts/bench/soak_driver.py.
Writes docs/bench/soak.json, docs/bench/soak.png (RSS over time) and docs/reliability.md.
"""

# ruff: noqa: RUF001 - the tables print the multiplication sign and an en dash on purpose

from __future__ import annotations

import json
import select
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any

import lib

WORKERS = 8


def main() -> int:
    lib.refuse_unknown_options("soak", sys.argv[1:], {"--quick": False, "--from-json": False})
    if "--from-json" in sys.argv:  # re-render docs/reliability.md from the recorded result
        result = json.loads((lib.RESULTS / "soak.json").read_text())
        text = report(result)
        print(text)
        (lib.REPO / "docs" / "reliability.md").write_text(page(result, text))
        return 0
    lib.banner("soak")
    seconds = 20.0 if lib.quick() else 150.0
    logs = lib.tmpdir("soak-logs")
    node = lib.start(
        "opensearch",
        [str(lib.REPO / "scripts" / "opensearch-node")],
        cpus=lib.LOAD_CPU,
        stdout=subprocess.PIPE,
        log=logs / "opensearch.log",
    )
    assert node.stdout is not None
    ready, _, _ = select.select([node.stdout], [], [], 240)
    cluster = node.stdout.readline().decode().strip() if ready else ""
    if not cluster.startswith("http"):
        raise RuntimeError("OpenSearch did not start")
    emulator, _ = lib.emulator(
        "emulator", "--latency-ms", "5", "--stream-delay-ms", "5", log_dir=logs
    )
    port = lib.free_port()
    faulty = lib.start(
        "faulty-upstream",
        [lib.PROJECT_PY, str(lib.BENCH / "faulty_upstream.py"), str(port), cluster],
        cpus=lib.LOAD_CPU,
        log=logs / "faulty.log",
    )
    upstream = f"http://127.0.0.1:{port}"
    lib.wait_http(upstream, faulty)
    key = subprocess.run(
        [lib.PROJECT_PY, "-m", "esproxy", "generate-key"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    url, esp = lib.esproxy(
        "esproxy",
        "--upstream",
        upstream,
        "--bedrock-endpoint-url",
        emulator,
        env={"ESPROXY_SECRETS_KEY": key},
        log_dir=logs,
    )
    rss: list[tuple[float, int]] = []
    done = threading.Event()

    def sample() -> None:
        t0 = time.monotonic()
        while not done.is_set():
            try:
                rss.append((time.monotonic() - t0, lib.proc_status(esp.pid, "VmRSS")))
            except (OSError, KeyError):
                return
            done.wait(2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = subprocess.run(
        [
            "taskset",
            "-c",
            lib.LOAD_CPU,
            lib.PROJECT_PY,
            str(lib.BENCH / "soak_driver.py"),
            url,
            emulator,
            str(seconds),
            str(WORKERS),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 300,
    )
    done.set()
    sampler.join()
    if out.returncode != 0:
        raise RuntimeError(f"soak driver failed: {out.stderr[-3000:]}")
    driven = json.loads(out.stdout.strip().splitlines()[-1])
    alive = esp.poll() is None
    hwm = lib.proc_status(esp.pid, "VmHWM") if alive else None
    warnings = Counter(
        line.split(" ", 4)[-1][:120]
        for line in (logs / "esproxy.log").read_text().splitlines()
        if " WARNING " in line or " ERROR " in line
    )
    result = {
        "machine": lib.machine(),
        "seconds": driven["seconds"],
        "workers": WORKERS,
        **driven,
        "esproxy_alive_at_end": alive,
        "esproxy_rss_kib": {
            "start": rss[0][1] if rss else None,
            "end": rss[-1][1] if rss else None,
            "vmhwm": hwm,
            "samples": rss,
        },
        "esproxy_log_lines": sum(warnings.values()),
    }
    lib.write_json("soak", result)
    text = report(result)
    print(text)
    plot(result)
    if not lib.quick():  # a quick trial never replaces the recorded result
        (lib.REPO / "docs" / "reliability.md").write_text(page(result, text))
    return 0 if alive and not driven["unexpected"] else 1


def accounting(res: dict[str, Any]) -> list[str]:
    """Each injected fault next to the outcome it should produce."""
    out, inj = res["outcomes"], res["injected"]

    def count(kinds: tuple[str, ...], outcome: str) -> int:
        return sum(out.get(k, {}).get(outcome, 0) for k in kinds)

    inference = ("completion", "embed_titan", "embed_cohere", "stream", "put_get_delete")
    timed_out = count(inference, "429") + count(("stream",), "429 + error event")
    return [
        f"- upstream reset before the answer: {inj.get('upstream reset', 0)} injected, "
        f"{count(('forward',), '502')} forwarded requests answered 502;",
        f"- upstream reset mid-body: {inj.get('upstream midbody', 0)} injected, "
        f"{count(('forward',), 'error: ClientPayloadError')} client connections cut "
        "mid-body (the status line had gone out, so cutting is the only honest signal);",
        f"- emulator hang: {inj.get('emulator hang', 0)} injected, {timed_out} inference "
        "requests answered 429 `timeout_exception` at their 2 s `timeout` (ES's status for it);",
        f"- emulator stream error after 2 events: {inj.get('emulator mid_stream_error', 0)} "
        f"injected, {count(('stream',), '200 + error event')} streams ended by an `error` event;",
        f"- emulator throttling and 500s: {inj.get('emulator throttling', 0)} and "
        f"{inj.get('emulator status_500', 0)} injected, absorbed by esproxy's retries (no "
        "inference request answered 500 or 503).",
    ]


def report(res: dict[str, Any]) -> str:
    rows = []
    for kind, outcomes in res["outcomes"].items():
        for outcome, n in sorted(outcomes.items(), key=lambda x: -x[1]):
            rows.append([kind, outcome, n])
    rss = res["esproxy_rss_kib"]
    mib = lambda k: f"{k / 1024:.0f} MiB" if k else "–"  # noqa: E731
    settled = next((k for t, k in rss["samples"] if t >= 10), rss["end"])
    lines = [
        f"{res['seconds']:.0f} s, {res['workers']} concurrent clients: "
        f"{res['sent']:,} requests sent, {res['answered']:,} answered "
        f"({res['sent'] - res['answered']:,} without an HTTP answer).",
        "",
        "Injected faults: "
        + ", ".join(f"{k} {v}" for k, v in sorted(res["injected"].items()))
        + f" ({res['faults_never_triggered']} emulator faults still queued at the end).",
        "",
        lib.table(["request kind", "outcome (status or error type)", "count"], rows),
        "",
        "Where the injected faults went:",
        "",
        *accounting(res),
        "",
        f"Unexpected failures (not explained by an injected fault): "
        f"{sum(res['unexpected'].values())}"
        + "".join(
            f"\n- {k}: {v} (e.g. `{res['unexpected_examples'].get(k, '')}`)"
            for k, v in res["unexpected"].items()
        ),
        "",
        f"esproxy RSS: {mib(rss['start'])} at start, {mib(settled)} after 10 s, "
        f"{mib(rss['end'])} at the end, peak "
        f"{mib(rss['vmhwm'])}; still running at the end: {res['esproxy_alive_at_end']}; "
        f"{res['esproxy_log_lines']} warning/error log lines.",
    ]
    return "\n".join(lines)


def page(res: dict[str, Any], text: str) -> str:
    m = res["machine"]
    busy = f"({lib.BUSY})" if m["noisy"] else ""
    quick = " — QUICK run, not representative" if m["quick"] else ""
    return f"""# Reliability: the soak run

`scripts/bench/soak` (add `--quick` for a 20-second trial) runs esproxy in sidecar mode for
{res["seconds"]:.0f} seconds under mixed traffic with about 10% injected faults, and reports what
was sent, what was answered, and every failure by class. It installs what it needs (the
project's venv, a bench venv, the OpenSearch test node) and stops everything it started.

What it runs, all on 127.0.0.1:

- an OpenSearch 2.19.6 test node (`scripts/opensearch-node`), which also stores esproxy's endpoints;
- `scripts/bench/faulty_upstream.py` between esproxy and OpenSearch: requests marked with
  `X-Bench-Fault` get their connection reset, before the answer or halfway through the body;
- the Bedrock emulator (5 ms latency, 5 ms between stream events);
- esproxy (`--upstream` the faulty upstream, `--bedrock-endpoint-url` the emulator);
- `scripts/bench/soak_driver.py`: {res["workers"]} clients sending a seeded mix of PUT/GET/DELETE
  of endpoints, `GET /_inference`, Titan and Cohere embeddings, completions, `_stream`
  completions (inference calls carry `?timeout=2s`), and forwarded search/index/get/health
  requests. Every 10th inference request queues one emulator fault (`POST /_emulator/faults`:
  throttling, a 500, a hang, or a stream that fails after 2 events) and every 10th forwarded
  request asks for an upstream reset.

A failure is *expected* when an injected fault explains it: an inference error status (408, 424,
429, 5xx) or an `error` event in a stream, and a 502 or a cut connection on a request marked for a
reset. Anything else (a 5xx on an unmarked forwarded request, a client timeout, a connection
error on an unmarked request) is counted as unexpected. RSS is sampled every 2 s.

## Latest result

Finished {m["when"]}, {m["cpus"]} cores, 1-minute load {m["load_avg_at_start"][0]} at the end
{busy}{quick}.

{text}

![esproxy RSS during the soak](bench/soak.png)

Raw data: [bench/soak.json](bench/soak.json).
"""


def plot(res: dict[str, Any]) -> None:
    samples = res["esproxy_rss_kib"]["samples"]
    if not samples:
        return
    plt = lib.pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    ax.plot([t for t, _ in samples], [k / 1024 for _, k in samples])
    ax.set_xlabel("seconds")
    ax.set_ylabel("esproxy RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"soak: {res['sent']:,} requests, ~10% faults injected")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(lib.RESULTS / "soak.png", dpi=110)


if __name__ == "__main__":
    sys.exit(main())
