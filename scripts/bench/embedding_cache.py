"""Embedding cache benchmark, part of scripts/bench/inference (or alone: inference --cache-only).

1. Re-embedding a corpus: 10,000 chunks of which 30% repeat earlier ones, sent twice in requests
   of 96 inputs to esproxy (cache on, default 64 MiB), for Titan v2 (256 dimensions: one Bedrock
   call per text) and Cohere v3 (one call per request). Bedrock calls and texts are counted at the
   emulator: the first pass should send each unique text once, the second nothing.
2. A fully cached 96-input Titan v2 request (1024 dimensions, the user document's endpoint) against
   the same request with `task_settings.cache: false`, with wrk at 1 and 16 connections.
The emulator answers after 20 ms on core 0; esproxy runs on core 1.
"""

# ruff: noqa: RUF001 - the tables print the multiplication sign on purpose

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import lib

CORPUS_SIZE = 10_000
DUPLICATE_SHARE = 0.3
BATCH = 96
KEYS = {"access_key": "AKIDBENCH", "secret_key": "bench-secret", "region": "us-east-1"}
FAST = {"requests_per_minute": 100_000_000}
WORDS = [
    "index",
    "shard",
    "replica",
    "vector",
    "search",
    "query",
    "token",
    "chunk",
    "passage",
    "cluster",
    "node",
    "mapping",
    "field",
    "score",
    "rank",
    "embed",
    "model",
    "dense",
    "sparse",
    "filter",
    "aggregate",
    "bucket",
    "segment",
    "merge",
    "refresh",
    "flush",
]
ENDPOINTS = {
    "titan256": {
        "provider": "amazontitan",
        "model": "amazon.titan-embed-text-v2:0",
        "dimensions": 256,
    },
    "cohere": {"provider": "cohere", "model": "cohere.embed-english-v3"},
    "titan1024": {"provider": "amazontitan", "model": "amazon.titan-embed-text-v2:0"},
}


def corpus() -> tuple[list[str], int]:
    rng = random.Random(16)
    unique = round(CORPUS_SIZE * (1 - DUPLICATE_SHARE))
    texts = [f"chunk {i}: " + " ".join(rng.choice(WORDS) for _ in range(24)) for i in range(unique)]
    everything = texts + [rng.choice(texts) for _ in range(CORPUS_SIZE - unique)]
    rng.shuffle(everything)
    return everything, unique


def start(emulator: str, logs: Path) -> tuple[str, Any]:
    url, proc = lib.esproxy("esproxy-cache", "--bedrock-endpoint-url", emulator, log_dir=logs)
    for name, service in ENDPOINTS.items():
        body = {
            "service": "amazonbedrock",
            "service_settings": {**KEYS, **service, "rate_limit": FAST},
        }
        status, answer = lib.http("PUT", f"{url}/_inference/text_embedding/{name}", body)
        if status != 200:
            raise RuntimeError(f"PUT {name}: {status} {answer}")
    return url, proc


def reembed(url: str, emulator: str, endpoint: str, texts: list[str]) -> dict[str, Any]:
    lib.http("DELETE", emulator + "/_emulator/requests")
    sent_texts = 0
    started = time.perf_counter()
    for start in range(0, len(texts), BATCH):
        batch = texts[start : start + BATCH]
        status, answer = lib.http(
            "POST", f"{url}/_inference/{endpoint}", {"input": batch}, timeout=120
        )
        if status != 200:
            raise RuntimeError(f"POST {endpoint}: {status} {str(answer)[:300]}")
    elapsed = time.perf_counter() - started
    status, body = lib.http("GET", emulator + "/_emulator/requests", timeout=60)
    calls = body["counts"].get("InvokeModel", 0)
    for call in body["requests"]:  # Cohere's few calls are all kept: count their texts
        if isinstance(call["body"], dict) and "texts" in call["body"]:
            sent_texts += len(call["body"]["texts"])
    return {"seconds": elapsed, "bedrock_calls": calls, "texts_sent": sent_texts or calls}


def run(emulator: str, logs: Path, duration: float) -> dict[str, Any]:
    url, proc = start(emulator, logs)
    texts, unique = corpus()
    passes: dict[str, list[dict[str, Any]]] = {}
    for endpoint in ("titan256", "cohere"):
        passes[endpoint] = [reembed(url, emulator, endpoint, texts) for _ in range(2)]
        for number, result in enumerate(passes[endpoint], start=1):
            print(
                f"  corpus {endpoint:<9} pass {number}: {result['bedrock_calls']:>6} Bedrock calls"
                f", {result['texts_sent']:>6} texts sent, {result['seconds']:6.2f} s",
                flush=True,
            )
    time.sleep(1.1)  # /_esproxy/ready reuses a report for a second
    _, ready = lib.http("GET", url + "/_esproxy/ready")

    request = {"input": texts[:BATCH]}
    path = url + "/_inference/titan1024"
    lib.http("POST", path, request, timeout=120)  # fills the cache for the cached runs
    cached_body = json.dumps(request)
    uncached_body = json.dumps({**request, "task_settings": {"cache": False}})
    single: dict[str, dict[str, Any]] = {}
    for conc in (1, 16):
        for name, body in (("cached", cached_body), ("uncached", uncached_body)):
            lib.wrk(path, connections=conc, duration=1, method="POST", body=body)  # warm up
            r = lib.wrk(
                path, connections=conc, duration=duration, method="POST", body=body, measure=proc
            )
            single.setdefault(str(conc), {})[name] = r
            print(
                f"  titan×96 {name:<8} c={conc:<3} {r['rps']:>8,.1f} req/s  p50 "
                f"{r['latency_ms']['p50']:7.2f} p99 {r['latency_ms']['p99']:7.2f} ms  "
                f"CPU {r['cpu_ms_per_request'] or float('nan'):.2f} ms/req  errors {r['errors']}",
                flush=True,
            )
    lib.stop(proc)
    return {
        "corpus": {"size": CORPUS_SIZE, "unique": unique, "batch": BATCH, "passes": passes},
        "cache_stats": (ready.get("checks") or {}).get("embedding_cache")
        if isinstance(ready, dict)
        else None,
        "fully_cached_96": single,
    }


def summarize(res: dict[str, Any]) -> dict[str, Any]:
    unique = res["corpus"]["unique"]
    titan, cohere = res["corpus"]["passes"]["titan256"], res["corpus"]["passes"]["cohere"]
    single = res["fully_cached_96"]
    p50 = single["1"]["cached"]["latency_ms"]["p50"]
    speedup = {
        c: lib.ratio(runs["cached"]["rps"], runs["uncached"]["rps"]) for c, runs in single.items()
    }
    return {
        "cached_p50_ms": p50,
        "cached_vs_uncached_rps": speedup,
        "targets": {
            "corpus pass 1: Bedrock calls = unique texts (Titan), texts sent = unique (Cohere)": (
                titan[0]["bedrock_calls"] == unique and cohere[0]["texts_sent"] == unique
            ),
            "corpus pass 2: 0 Bedrock calls": (
                titan[1]["bedrock_calls"] == 0 and cohere[1]["bedrock_calls"] == 0
            ),
            "fully cached 96-input request: <= 2 ms p50": p50 <= 2.0,
            "fully cached 96-input request: >= 20x uncached throughput": min(speedup.values())
            >= 20.0,
        },
    }


def report(res: dict[str, Any]) -> None:
    corpus_info = res["corpus"]
    print(
        f"\nRe-embedding a corpus of {corpus_info['size']:,} chunks ({corpus_info['unique']:,} "
        f"unique), {corpus_info['batch']} inputs a request, twice; emulator latency 20 ms\n"
    )
    rows = []
    for endpoint, passes in corpus_info["passes"].items():
        for number, p in enumerate(passes, start=1):
            rows.append([endpoint, number, p["bedrock_calls"], p["texts_sent"], p["seconds"]])
    print(lib.table(["endpoint", "pass", "Bedrock calls", "texts sent", "seconds"], rows))
    print("\nOne 96-input Titan v2 request (1024 dimensions), cached and not\n")
    rows = []
    for conc, runs in res["fully_cached_96"].items():
        for name, r in runs.items():
            rows.append(
                [
                    name,
                    conc,
                    r["rps"],
                    r["latency_ms"]["p50"],
                    r["latency_ms"]["p99"],
                    r.get("cpu_ms_per_request"),
                    r["errors"],
                ]
            )
    print(lib.table(["request", "conc", "req/s", "p50 ms", "p99 ms", "CPU ms/req", "errors"], rows))
    summary = res["summary"]
    print(
        "\ncached ÷ uncached throughput: "
        + ", ".join(f"{v:.1f}× at {c}" for c, v in summary["cached_vs_uncached_rps"].items())
    )
    stats = res.get("cache_stats") or {}
    if stats:
        print(
            f"cache after the corpus: {stats['hits']:,} hits, {stats['misses']:,} misses, "
            f"{stats['saved_bedrock_calls']:,} Bedrock calls and "
            f"{stats['saved_input_tokens']:,} input tokens saved, "
            f"{stats['memory']['entries']:,} entries in {stats['memory']['bytes'] / 2**20:.1f} MiB"
        )
    for target, ok in summary["targets"].items():
        print(f"  {'MET ' if ok else 'MISS'} {target}")


def main(emulator: str, logs: Path) -> dict[str, Any]:
    duration = 3.0 if lib.quick() else 10.0
    result = {"machine": lib.machine(), "duration_s": duration, **run(emulator, logs, duration)}
    result["summary"] = summarize(result)
    lib.write_json("embedding-cache", result)
    lib.publish("embedding-cache", report, result)
    return result
