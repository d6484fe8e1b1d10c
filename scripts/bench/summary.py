"""One table of every budget, from the results the benchmarks just wrote (scripts/bench/all ends
with it; run alone it re-renders from the recorded results).

Each budget: the issue it comes from, the measured value, what it is measured against (the
anchor, always in the same run), met or missed, and the load. For a miss, the text from
scripts/bench/closing.toml says what would close it. Writes docs/bench/summary.json and the
`<!-- bench:summary -->` block of docs/benchmarks.md (a --quick run: .cache/bench/quick/ only).

    summary.py [--quick] [--since EPOCH] [--durations name=seconds,...] [--total SECONDS]

--since: a result recorded before it (a benchmark that failed or was skipped) shows as stale.
"""

# ruff: noqa: RUF001 - the tables print the multiplication sign and an en dash on purpose

from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import lib

SOURCES = ("forwarding", "large-bodies", "inference", "embedding-cache", "rate-limit", "soak")
NAN = float("nan")


@dataclass(frozen=True)
class Budget:
    id: str
    issue: str
    what: str
    anchor: str
    source: str
    # (measured text, met) from the source's result; None when the result lacks it.
    measure: Callable[[dict[str, Any]], tuple[str, bool] | None]
    load: Callable[[dict[str, Any]], str]


def get(data: Any, *path: Any) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else NAN


# ---- forwarding -----------------------------------------------------------------------------


def fwd_peak_ratio(r: dict[str, Any]) -> tuple[str, bool] | None:
    peak = r.get("peak_rps") or {}
    if "esproxy" not in peak or "nginx" not in peak:
        return None
    ratio = peak["esproxy"] / peak["nginx"]
    return f"{ratio:.2f}× ({peak['esproxy']:,.0f} vs {peak['nginx']:,.0f} req/s peak)", ratio >= 0.5


def fwd_each_ratio(r: dict[str, Any]) -> tuple[str, bool] | None:
    sweep = r.get("sweep") or {}
    if "esproxy" not in sweep:
        return None
    ratios = {c: sweep["esproxy"][c]["rps"] / sweep["nginx"][c]["rps"] for c in ("16", "64", "256")}
    text = ", ".join(f"{v:.2f}× at {c}" for c, v in ratios.items())
    return text, min(ratios.values()) >= 0.75


def fwd_added(key: str, pct: str, limit: float) -> Callable[[dict[str, Any]], Any]:
    def measure(r: dict[str, Any]) -> tuple[str, bool] | None:
        runs = get(r, key, "runs")
        if not runs:
            return None
        added = runs["esproxy"]["latency_ms"][pct] - runs["direct"]["latency_ms"][pct]
        nginx = runs["nginx"]["latency_ms"][pct] - runs["direct"]["latency_ms"][pct]
        achieved = runs["esproxy"]["rps"] / r[key]["rate"]
        ok = added <= limit and achieved >= 0.95
        return (
            f"+{added:.2f} ms (nginx +{nginx:.2f}); carried {achieved:.0%} of the rate",
            ok,
        )

    return measure


def fwd_scaling(r: dict[str, Any]) -> tuple[str, bool] | None:
    ratio = get(r, "scaling", "ratio")
    return None if ratio is None else (f"{ratio:.2f}×", ratio >= 1.8)


def fwd_observability(r: dict[str, Any]) -> tuple[str, bool] | None:
    obs = r.get("observability")
    if not obs:
        return None
    cpu = obs["cpu_ms_per_request"]
    return (
        f"{obs['throughput_cost']:+.1%} of peak throughput; CPU/req "
        f"{cpu['obs-on'] * 1000:.1f} vs {cpu['obs-off'] * 1000:.1f} µs (on vs off)",
        obs["throughput_cost"] <= 0.03,
    )


def fwd_load(key: str) -> Callable[[dict[str, Any]], str]:
    def load(r: dict[str, Any]) -> str:
        d = r.get("duration_s", NAN)
        return {
            "sweep": f"wrk POST _search, 1-256 conns, {d:g} s each",
            "sweep16": f"wrk POST _search at 16, 64, 256 conns, {d:g} s each",
            "fixed_rate": f"{num(get(r, 'fixed_rate', 'rate')):,.0f} req/s fixed, 64 conns, "
            f"{d:g} s",
            "fixed_rate_light": f"{num(get(r, 'fixed_rate_light', 'rate')):,.0f} req/s fixed, "
            f"64 conns, {d:g} s",
            "scaling": f"GET _inference/_services?pretty, 64 conns, {d:g} s, best of 2",
            "observability": f"wrk POST _search, 64 conns, {d:g} s, best of 3 alternating",
        }[key]

    return load


# ---- large bodies ---------------------------------------------------------------------------


def large_ratio(r: dict[str, Any]) -> tuple[str, bool] | None:
    med = r.get("median_mb_s")
    if not med:
        return None
    ratio = med["esproxy"] / med["nginx"]
    return f"{ratio:.0%} ({med['esproxy']:.0f} vs {med['nginx']:.0f} MB/s)", ratio >= 0.7


def large_rss(r: dict[str, Any]) -> tuple[str, bool] | None:
    hwm = get(r, "esproxy_rss_kib", "vmhwm")
    return None if hwm is None else (f"VmHWM {hwm / 1024:.0f} MiB", hwm * 1024 < 150e6)


def large_load(r: dict[str, Any]) -> str:
    return f"{r.get('size_mb', '?')} MB _bulk by curl, median of {r.get('rounds', '?')}"


# ---- inference ------------------------------------------------------------------------------


def runs_at(r: dict[str, Any], workload: str, conc: str) -> dict[str, Any] | None:
    runs = get(r, "results", workload, conc)
    return runs if runs and "esproxy" in runs and "direct" in runs else None


def inf_added_p50(workload: str) -> Callable[[dict[str, Any]], Any]:
    def measure(r: dict[str, Any]) -> tuple[str, bool] | None:
        runs = runs_at(r, workload, "1")
        if not runs:
            return None
        e, d = runs["esproxy"]["latency_ms"]["p50"], runs["direct"]["latency_ms"]["p50"]
        return f"+{e - d:.2f} ms ({e:.2f} vs {d:.2f} ms)", e - d <= 1.0

    return measure


def extra_cpu(runs: dict[str, Any]) -> float:
    e, d = runs["esproxy"].get("cpu_ms_per_request"), runs["direct"].get("cpu_ms_per_request")
    return (e - d) / d if e and d else NAN


def inf_extra_cpu(workload: str) -> Callable[[dict[str, Any]], Any]:
    def measure(r: dict[str, Any]) -> tuple[str, bool] | None:
        runs = runs_at(r, workload, "16")
        if not runs:
            return None
        share = extra_cpu(runs)
        return (
            f"{share:+.0%} ({runs['esproxy']['cpu_ms_per_request']:.2f} vs "
            f"{runs['direct']['cpu_ms_per_request']:.2f} ms CPU/req)",
            share <= 0.25,
        )

    return measure


def inf_completion64(what: str) -> Callable[[dict[str, Any]], Any]:
    def measure(r: dict[str, Any]) -> tuple[str, bool] | None:
        runs = runs_at(r, "completion", "64")
        if not runs:
            return None
        e, d = runs["esproxy"], runs["direct"]
        if what == "rps":
            ratio = e["rps"] / d["rps"]
            return f"{ratio:.2f}× ({e['rps']:.0f} vs {d['rps']:.0f} req/s)", ratio >= 0.9
        ratio = e["latency_ms"]["p99"] / d["latency_ms"]["p99"]
        return (
            f"{ratio:.2f}× ({e['latency_ms']['p99']:.1f} vs {d['latency_ms']['p99']:.1f} ms)",
            ratio <= 1.3,
        )

    return measure


def inf_litellm(r: dict[str, Any]) -> tuple[str, bool] | None:
    peak = get(r, "summary", "esproxy_vs_litellm_peak_rps")
    peak = {w: v for w, v in (peak or {}).items() if w in ("titan16", "cohere96", "completion")}
    if not peak:
        return None
    return ", ".join(f"{w} {v:.1f}×" for w, v in peak.items()), min(peak.values()) >= 3.0


def chat_first_delta(r: dict[str, Any]) -> tuple[str, bool] | None:
    d = r.get("chat_stream_first_delta")
    if not d or "esproxy" not in d:
        return None
    e, x = d["esproxy"]["first_delta_p50_ms"], d["direct"]["first_delta_p50_ms"]
    rounds = d["esproxy"].get("added_per_round_ms")
    if rounds is None:  # recorded before session 6: the difference of the means
        return f"+{e - x:.2f} ms ({e:.2f} vs {x:.2f} ms)", e - x <= 1.0
    added = d["esproxy"]["added_p50_ms"]
    spread = f"{rounds[0]:+.2f} to {rounds[-1]:+.2f}"
    return (
        f"{added:+.2f} ms, median of {len(rounds)} rounds ({spread}; means {e:.2f} vs {x:.2f} ms)",
        added <= 1.0,
    )


def chat_litellm(r: dict[str, Any]) -> tuple[str, bool] | None:
    runs = get(r, "results", "chat_stream", "64")
    if not runs or "litellm" not in runs:
        return None
    ratio = runs["esproxy"]["rps"] / runs["litellm"]["rps"]
    return f"{ratio:.1f}× ({runs['esproxy']['rps']:.0f} vs {runs['litellm']['rps']:.1f}/s)", (
        ratio >= 3.0
    )


def role_call_path(r: dict[str, Any]) -> tuple[str, bool] | None:
    ab = r.get("role_call_path")
    if not ab:
        return None
    e2e = get(r, "summary", "role", "added_p50_ms@1")
    tail = f"; end to end at c=1 {e2e:+.2f} ms" if e2e is not None else ""
    return (
        f"{ab['role_added_p50_ms']:+.3f} ms p50, {ab['role_added_cpu_ms_per_call']:+.3f} ms CPU"
        f"/call{tail}",
        ab["role_added_p50_ms"] <= 0.1,
    )


def bridge(r: dict[str, Any]) -> tuple[str, bool] | None:
    rounds = get(r, "summary", "bridge_added_p50_ms_rounds") or {}
    if rounds:  # the median of alternating rounds at c=1 (since session 8; see bridge_load)
        text = ", ".join(f"{w} {v:+.2f} ms" for w, v in rounds.items())
        return text, max(rounds.values()) <= 0.2
    added = get(r, "summary", "bridge_added_p50_ms") or {}
    at1 = {k.removesuffix("@1"): v for k, v in added.items() if k.endswith("@1")}
    if not at1:
        return None
    return ", ".join(f"{w} {v:+.2f} ms" for w, v in at1.items()), max(at1.values()) <= 0.2


def obs_inference(r: dict[str, Any]) -> tuple[str, bool] | None:
    obs = r.get("observability")
    if not obs:
        return None
    return (
        f"{obs['added_work_us_per_call']:.0f} µs work per call (in-process); end to end "
        f"{obs['added_p50_ms']:+.2f} ms p50 (median of {obs['rounds']})",
        obs["added_work_us_per_call"] <= 50,
    )


def inf_load(what: str) -> Callable[[dict[str, Any]], str]:
    def load(r: dict[str, Any]) -> str:
        d = r.get("duration_s", NAN)
        return {
            "c1": f"1 request at a time, {d:g} s, emulator 20 ms",
            "c16": f"16 concurrent, {d:g} s, emulator 20 ms",
            "c64": f"64 concurrent, {d:g} s, emulator 20 ms",
            "peak": f"peak of 1/16/64 concurrent, {d:g} s each",
            "delta": f"1 stream at a time, 2 × {d / 2:g} s alternating"
            + (
                f", emulator events {pace} ms apart, bare HTTP client"
                if (pace := r.get("stream_pace_ms"))
                else ""
            ),
            "role": f"{get(r, 'role_call_path', 'calls_each') or '?'} sequential Converse calls "
            "each, key/role blocks alternating",
            "obs": f"1 completion at a time, {d:g} s, 3 rounds alternating; 20,000 calls timed",
            "bridge": bridge_load(r) or f"1 request at a time, {d:g} s, emulator 20 ms",
        }[what]

    return load


def bridge_load(r: dict[str, Any]) -> str | None:
    rounds = r.get("bridge_rounds")
    if not rounds:
        return None
    first = next(iter(rounds.values()))
    count = len(first["added_per_round_ms"])
    return f"1 request at a time, {count} rounds of each route alternating, emulator 20 ms"


# ---- embedding cache ------------------------------------------------------------------------


def cache_corpus(r: dict[str, Any]) -> tuple[str, bool] | None:
    corpus = r.get("corpus")
    if not corpus:
        return None
    t, c = corpus["passes"]["titan256"], corpus["passes"]["cohere"]
    unique = corpus["unique"]
    ok = (
        t[0]["bedrock_calls"] == unique
        and c[0]["texts_sent"] == unique
        and t[1]["bedrock_calls"] == 0
        and c[1]["bedrock_calls"] == 0
    )
    return (
        f"Titan {t[0]['bedrock_calls']:,} then {t[1]['bedrock_calls']} calls; Cohere "
        f"{c[0]['texts_sent']:,} texts then {c[1]['bedrock_calls']} calls ({unique:,} unique)",
        ok,
    )


def cache_p50(r: dict[str, Any]) -> tuple[str, bool] | None:
    p50 = get(r, "fully_cached_96", "1", "cached", "latency_ms", "p50")
    return None if p50 is None else (f"{p50:.2f} ms p50", p50 <= 2.0)


def cache_speedup(r: dict[str, Any]) -> tuple[str, bool] | None:
    single = r.get("fully_cached_96")
    if not single:
        return None
    speed = {c: runs["cached"]["rps"] / runs["uncached"]["rps"] for c, runs in single.items()}
    return ", ".join(f"{v:.0f}× at {c}" for c, v in speed.items()), min(speed.values()) >= 20


def cache_load(r: dict[str, Any]) -> str:
    return f"Titan v2 ×96 (1024 dims), wrk at 1 and 16 conns, {r.get('duration_s', NAN):g} s"


# ---- rate limit, soak -----------------------------------------------------------------------


def rate(name: str, bound: float) -> Callable[[dict[str, Any]], Any]:
    def measure(r: dict[str, Any]) -> tuple[str, bool] | None:
        s = get(r, "scenarios", name)
        if not s:
            return None
        return (
            f"worst {s['max_abs_error_pct']:.2f}% off, mean {s['mean_error_pct']:+.2f}%; "
            f"{s['throttles']} throttles",
            s["max_abs_error_pct"] <= bound and s["throttles"] == 0,
        )

    return measure


def rate_load(name: str) -> Callable[[dict[str, Any]], str]:
    def load(r: dict[str, Any]) -> str:
        s = get(r, "scenarios", name) or {}
        callers = "/".join(map(str, s.get("callers_per_replica", [])))
        return (
            f"{s.get('windows', '?')} × {s.get('window_s', NAN):g} s windows, rpm = quota = "
            f"{s.get('requests_per_minute', '?')}, callers {callers}"
        )

    return load


def lease_latency(r: dict[str, Any]) -> tuple[str, bool] | None:
    lat = r.get("lease_latency")
    if not lat:
        return None
    ok = lat.get("within_noise")
    noise = lat.get("noise_ms")
    text = (
        f"{lat['p50_difference_ms']:+.2f} ms p50 ({lat['cluster']['p50_ms']:.2f} vs "
        f"{lat['local']['p50_ms']:.2f} ms)"
        + (f"; noise {noise:.2f} ms" if noise is not None else "")
    )
    return text, bool(ok) if ok is not None else lat["p50_difference_ms"] <= 0.5


def lease_load(r: dict[str, Any]) -> str:
    lat = r.get("lease_latency") or {}
    calls = get(lat, "local", "calls") or "?"
    return f"{calls} sequential 1-input embeddings per mode, rounds alternating"


def soak(r: dict[str, Any]) -> tuple[str, bool] | None:
    if "unexpected" not in r:
        return None
    bad = sum(r["unexpected"].values())
    hwm = get(r, "esproxy_rss_kib", "vmhwm")
    return (
        f"{bad} unexpected of {r['sent']:,} requests; alive {r['esproxy_alive_at_end']}; "
        f"VmHWM {num(hwm) / 1024:.0f} MiB",
        bad == 0 and r["esproxy_alive_at_end"],
    )


def soak_load(r: dict[str, Any]) -> str:
    return f"{r.get('seconds', NAN):.0f} s mixed traffic, {r.get('workers', '?')} clients, faults"


EARLIER = "earlier"
BUDGETS = [
    Budget("fwd.throughput-50", EARLIER, "forwarding: ≥ 50% of nginx's peak throughput",
           "nginx reverse proxy, same run", "forwarding", fwd_peak_ratio, fwd_load("sweep")),
    Budget("fwd.p50-half-nginx", EARLIER, "forwarding: ≤ 0.5 ms p50 added at 50% of nginx's peak",
           "direct to the upstream, same rate", "forwarding",
           fwd_added("fixed_rate", "p50", 0.5), fwd_load("fixed_rate")),
    Budget("fwd.p99-half-nginx", EARLIER, "forwarding: ≤ 3 ms p99 added at 50% of nginx's peak",
           "direct to the upstream, same rate", "forwarding",
           fwd_added("fixed_rate", "p99", 3.0), fwd_load("fixed_rate")),
    Budget("fwd.workers2", EARLIER, "forwarding: `--workers 2` ≥ 1.8× one worker",
           "`--workers 1`, same run", "forwarding", fwd_scaling, fwd_load("scaling")),
    Budget("fwd.throughput-75", "#18.3", "forwarding: ≥ 0.75× nginx at 16 to 256 connections",
           "nginx reverse proxy, same run", "forwarding", fwd_each_ratio, fwd_load("sweep16")),
    Budget("fwd.p99-half-own", "#18.3", "forwarding: ≤ 1.5 ms p99 added at 50% of its own peak",
           "direct to the upstream, same rate", "forwarding",
           fwd_added("fixed_rate_light", "p99", 1.5), fwd_load("fixed_rate_light")),
    Budget("fwd.p50-half-nginx-18", "#18.3", "forwarding: ≤ 0.5 ms p50 added at 50% of nginx's "
           "peak", "direct to the upstream, same rate", "forwarding",
           fwd_added("fixed_rate", "p50", 0.5), fwd_load("fixed_rate")),
    Budget("obs.forwarding", "#14 / #18.4", "metrics + JSON access log ≤ 3% of forwarding "
           "throughput", "the same esproxy with both off, same run", "forwarding",
           fwd_observability, fwd_load("observability")),
    Budget("large.throughput", EARLIER, "large bodies: ≥ 70% of nginx's MB/s",
           "nginx reverse proxy, same run", "large-bodies", large_ratio, large_load),
    Budget("large.rss", EARLIER, "large bodies: peak RSS < 150 MB", "absolute", "large-bodies",
           large_rss, large_load),
    Budget("inf.completion-p50", EARLIER, "inference: ≤ 1 ms p50 added (completion, conc. 1)",
           "direct aiobotocore, same run", "inference", inf_added_p50("completion"),
           inf_load("c1")),
    Budget("inf.litellm", EARLIER, "inference: ≥ 3× LiteLLM's peak throughput, every workload",
           "LiteLLM proxy, same run", "inference", inf_litellm, inf_load("peak")),
    Budget("inf.titan16-cpu", "#18.1", "Titan×16: CPU beyond direct ≤ 25% of direct's",
           "direct aiobotocore, same run", "inference", inf_extra_cpu("titan16"), inf_load("c16")),
    Budget("inf.cohere96-cpu", "#18.1", "Cohere×96: CPU beyond direct ≤ 25% of direct's",
           "direct aiobotocore, same run", "inference", inf_extra_cpu("cohere96"),
           inf_load("c16")),
    Budget("inf.titan16-p50", "#18.1", "Titan×16: ≤ 1 ms p50 added at concurrency 1",
           "direct aiobotocore, same run", "inference", inf_added_p50("titan16"), inf_load("c1")),
    Budget("inf.cohere96-p50", "#18.1", "Cohere×96: ≤ 1 ms p50 added at concurrency 1",
           "direct aiobotocore, same run", "inference", inf_added_p50("cohere96"),
           inf_load("c1")),
    Budget("inf.completion64-rps", "#18.2", "completion at 64: ≥ 0.9× direct's throughput",
           "direct aiobotocore, same run", "inference", inf_completion64("rps"), inf_load("c64")),
    Budget("inf.completion64-p99", "#18.2", "completion at 64: p99 ≤ 1.3× direct's",
           "direct aiobotocore, same run", "inference", inf_completion64("p99"), inf_load("c64")),
    Budget("chat.first-delta", "#13 / #18.4", "streamed chat: ≤ 1 ms added to the first delta",
           "direct ConverseStream, same run", "inference", chat_first_delta, inf_load("delta")),
    Budget("chat.litellm", "#13", "streamed chat: ≥ 3× LiteLLM at 64 streams",
           "LiteLLM proxy, same run", "inference", chat_litellm, inf_load("c64")),
    Budget("role.call-path", "#12 / #18.4", "role credentials: ≤ 0.1 ms p50 over a key endpoint",
           "key endpoint, same process (call-path A/B)", "inference", role_call_path,
           inf_load("role")),
    Budget("bridge.p50", "#17 / #18.4", "OpenAI bridge: ≤ 0.2 ms p50 over `_inference`",
           "`_inference`, same process and call", "inference", bridge, inf_load("bridge")),
    Budget("obs.inference", "#14", "metrics + JSON access log ≤ 0.05 ms p50 on inference",
           "the same esproxy with both off, same run", "inference", obs_inference,
           inf_load("obs")),
    Budget("cache.corpus", "#16", "cache: corpus twice, Bedrock calls = unique texts, then 0",
           "emulator's request log", "embedding-cache", cache_corpus,
           lambda r: "10,000 chunks (30% repeats), 96 a request, twice"),
    Budget("cache.p50", "#16 / #18.4", "cache: fully cached 96-input request ≤ 2 ms p50",
           "absolute", "embedding-cache", cache_p50, cache_load),
    Budget("cache.speedup", "#16", "cache: fully cached ≥ 20× uncached throughput",
           "`task_settings.cache: false`, same esproxy", "embedding-cache", cache_speedup,
           cache_load),
    Budget("rate.one", EARLIER, "rate limiter, one endpoint: within ±2%, 0 throttles",
           "configured rpm; emulator quota", "rate-limit", rate("one endpoint", 2.0),
           rate_load("one endpoint")),
    Budget("rate.ten", EARLIER, "rate limiter, ten endpoints: within ±2%, 0 throttles",
           "configured rpm; emulator quota", "rate-limit", rate("ten endpoints", 2.0),
           rate_load("ten endpoints")),
    Budget("rate.three", "#15", "3 replicas through leases: within ±3%, 0 throttles",
           "configured rpm; emulator quota", "rate-limit", rate("three replicas", 3.0),
           rate_load("three replicas")),
    Budget("rate.lease-latency", "#15 / #18.4", "cluster-wide limiter adds no measurable latency",
           "local-mode replica, same node, rounds alternating", "rate-limit", lease_latency,
           lease_load),
    Budget("soak", EARLIER, "soak: no unexpected failure, esproxy alive", "injected faults",
           "soak", soak, soak_load),
]  # fmt: skip


def when(result: dict[str, Any]) -> float:
    stamp = get(result, "machine", "when")
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z").timestamp() if stamp else 0.0
    except ValueError:
        return 0.0


def arg(name: str) -> str | None:
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv[:-1] else None


def evaluate(since: float) -> dict[str, Any]:
    closing = tomllib.loads((lib.BENCH / "closing.toml").read_text())["close"]
    results: dict[str, dict[str, Any]] = {}
    for name in SOURCES:
        path = lib.RESULTS / f"{name}.json"
        results[name] = json.loads(path.read_text()) if path.exists() else {}
    rows = []
    for b in BUDGETS:
        r = results[b.source]
        stale = bool(r) and since > 0 and when(r) < since
        try:
            got = b.measure(r) if r else None
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as error:
            got = None
            print(f"summary: {b.id}: {error!r}", file=sys.stderr)
        status = "not measured" if got is None else ("met" if got[1] else "missed")
        if stale and got is not None:
            status += " (stale: not from this run)"
        machine = r.get("machine") or {}
        load_avg = (machine.get("load_avg_at_start") or [NAN])[0]
        rows.append(
            {
                "id": b.id,
                "issue": b.issue,
                "budget": b.what,
                "measured": got[0] if got else None,
                "met": got[1] if got else None,
                "status": status,
                "anchor": b.anchor,
                "load": b.load(r) if r else None,
                "machine_load": load_avg,
                "features": machine.get("features"),
                "source": f"docs/bench/{b.source}.json",
                "recorded": machine.get("when"),
                "close": closing.get(b.id) if status.startswith("missed") else None,
            }
        )
    return {"rows": rows, "inference": inference_context(results["inference"])}


def inference_context(r: dict[str, Any]) -> list[dict[str, Any]]:
    """esproxy against direct aiobotocore, every workload and concurrency: the #18 first table."""
    out = []
    for workload in ("titan16", "cohere96", "completion", "completion-role", "chat_stream"):
        for conc in ("1", "16", "64"):
            runs = runs_at(r, workload, conc)
            if not runs:
                continue
            e, d = runs["esproxy"], runs["direct"]
            lite = runs.get("litellm")
            out.append(
                {
                    "workload": workload,
                    "concurrency": int(conc),
                    "vs_direct_rps": lib.ratio(e["rps"], d["rps"]),
                    "added_p50_ms": e["latency_ms"]["p50"] - d["latency_ms"]["p50"],
                    "p99_vs_direct": lib.ratio(e["latency_ms"]["p99"], d["latency_ms"]["p99"]),
                    "cpu_ms": e.get("cpu_ms_per_request"),
                    "direct_cpu_ms": d.get("cpu_ms_per_request"),
                    "cpu_beyond_direct_pct": extra_cpu(runs) * 100,
                    # A contender that finished no request in the run has no ratio (NaN).
                    "vs_litellm_rps": lib.ratio(e["rps"], lite["rps"]) if lite else None,
                }
            )
    return out


def report(data: dict[str, Any]) -> None:
    rows = data["rows"]
    met = sum(1 for r in rows if r["status"] == "met")
    missed = sum(1 for r in rows if r["status"].startswith("missed"))
    print(
        f"{data['features_note']}. {met} budgets met, {missed} missed, "
        f"{len(rows) - met - missed} not measured.\n"
    )
    print(
        lib.table(
            ["issue", "budget", "measured", "anchor", "status", "load", "1-min load"],
            [
                [
                    r["issue"],
                    r["budget"],
                    r["measured"],
                    r["anchor"],
                    f"**{r['status']}**" if r["status"] != "met" else r["status"],
                    r["load"],
                    r["machine_load"],
                ]
                for r in rows
            ],
        )
    )
    misses = [r for r in rows if r["status"].startswith("missed")]
    if misses:
        print("\nWhat would close each miss (texts from scripts/bench/closing.toml):\n")
        for r in misses:
            print(f"- **{r['budget']}** ({r['status']}): {r['close'] or 'no text yet'}")
    absent = [r for r in rows if r["status"] == "not measured"]
    if absent:
        print(
            "\nNot measured (its benchmark failed, was skipped, or its result predates this "
            "budget): " + "; ".join(r["budget"] for r in absent)
        )
    inf = data["inference"]
    if inf:
        print("\nInference against direct aiobotocore, same run (emulator 20 ms)\n")
        print(
            lib.table(
                [
                    "workload",
                    "conc",
                    "× direct req/s",
                    "+p50 ms",
                    "p99 × direct",
                    "CPU ms/req",
                    "direct CPU",
                    "CPU beyond direct",
                    "× LiteLLM",
                ],
                [
                    [
                        x["workload"],
                        x["concurrency"],
                        x["vs_direct_rps"],
                        x["added_p50_ms"],
                        x["p99_vs_direct"],
                        x["cpu_ms"],
                        x["direct_cpu_ms"],
                        f"{x['cpu_beyond_direct_pct']:+.0f}%",
                        x["vs_litellm_rps"],
                    ]
                    for x in inf
                ],
            )
        )
    durations = data.get("durations_s") or {}
    if durations:
        print(
            "\nDurations of this run: "
            + ", ".join(f"{n} {s / 60:.1f} min" for n, s in durations.items())
            + (f"; in all {data['total_s'] / 60:.1f} min" if data.get("total_s") else "")
        )


OPTIONS = {
    "--since": True,
    "--durations": True,
    "--total": True,
    "--quick": False,
    "--strict": False,
}


def previous_run() -> dict[str, Any]:
    """The last summary written, so that re-rendering it (new closing texts) keeps when and how
    long the run was, instead of stamping the results with the time of the re-render."""
    try:
        data = json.loads((lib.RESULTS / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def main() -> int:
    lib.refuse_unknown_options("summary", sys.argv[1:], OPTIONS)
    rerender = arg("--durations") is None and arg("--total") is None
    previous = previous_run() if rerender else {}
    since = float(arg("--since") or 0)
    durations = {
        name: float(seconds)
        for name, _, seconds in (
            item.partition("=") for item in (arg("--durations") or "").split(",") if item
        )
    }
    data: dict[str, Any] = {"machine": previous.get("machine") or lib.machine(), **evaluate(since)}
    features = {r["features"] for r in data["rows"] if r["features"]}
    data["features_note"] = (
        "Every esproxy ran with every feature on (BENCH_FEATURES=all)"
        if features == {"all"}
        else "Not every result was taken with every feature on"
        if features
        else "Results from before the feature flag was recorded"
    )
    data["durations_s"] = durations or previous.get("durations_s", {})
    total = arg("--total")
    data["total_s"] = float(total) if total else previous.get("total_s")
    lib.write_json("summary", data)
    lib.publish("summary", report, data, recorded=data["machine"])
    missed = [r for r in data["rows"] if r["status"] != "met"]
    return 0 if not missed or "--strict" not in sys.argv else 1


if __name__ == "__main__":
    sys.exit(main())
