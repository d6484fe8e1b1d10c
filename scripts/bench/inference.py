"""Inference benchmark: direct aiobotocore vs esproxy vs the LiteLLM proxy, on the Bedrock emulator.

The emulator answers after a fixed 20 ms (`--latency-ms 20`) and runs on core 0 with the load
generator; the contender gets core 1: the direct aiobotocore driver (scripts/bench/
bedrock_direct.py), esproxy, or LiteLLM's proxy (1 worker). esproxy and LiteLLM are loaded with
wrk. Workloads: 16-input Titan v2 embeddings (16 InvokeModel calls), 96-input Cohere embeddings
(one call), short completions (one Converse call), and a streamed chat (`chat_stream`: esproxy's
`_inference/chat_completion/{id}/_stream`, LiteLLM's streamed `/v1/chat/completions`, direct
ConverseStream); at 1, 16 and 64 concurrent requests. For the streamed chat, the time to the first
content delta is also measured at concurrency 1 (scripts/bench/stream_driver.py for the proxies),
on a second emulator that paces its events (`--stream-delay-ms`, PACE_MS apart after the message
start and the first delta, which come together) and a second esproxy on it; and, for reference,
on the main emulator, which sends a whole answer at once (see first_deltas and docs/benchmarks.md).
The paced runs also time `floor` (scripts/bench/minimal_chat_proxy.py: aiohttp and the same
ConverseStream call, nothing else), which shows what any Python HTTP proxy adds here.
`--workloads chat_stream` (comma-separated) runs a subset and records it as inference-<names>.
`completion-role` is the completion workload on an endpoint that assumes a role through the
emulator's STS (esproxy only; direct signs with keys): its p50 against the key endpoint's is the
cost of roles on the call path. With it, an A/B of the call path alone follows
(scripts/bench/role_call_path.py): sequential Converse calls through esproxy's BedrockClients,
alternating a key and a role endpoint in blocks.
`esproxy-openai` is the same esproxy process through its OpenAI-compatible routes (`--no-bridge`
leaves it out).
Experiment (off by default, see esproxy_experiment.py): --static-ua adds esproxy without
botocore's per-call User-Agent rebuild. esproxy's embedding cache is off in these runs; the
embedding cache benchmark (embedding_cache.py) follows them, or runs alone with --cache-only.
With BENCH_FEATURES=all (scripts/bench/all) every feature is on instead: esproxy is a sidecar of
an OpenSearch node (store and leases), the cache is on and the embedding endpoints opt out of it.
"""

# ruff: noqa: RUF001 - the tables print the multiplication sign and an en dash on purpose

from __future__ import annotations

import json
import math
import secrets
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import embedding_cache
import lib
import observability

TEXTS = [f"passage {i}: the sky above the port was the color of television" for i in range(96)]
QUESTION = "What is Elastic? Answer in one sentence."
CONCURRENCY = [1, 16, 64]
WORKLOADS = ["titan16", "cohere96", "completion", "completion-role", "chat_stream"]
ROLE = "arn:aws:iam::123456789012:role/bench"
CHAT_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
CHAT_MESSAGES = [{"role": "user", "content": QUESTION}]
KEYS = {"access_key": "AKIDBENCH", "secret_key": "bench-secret"}
LITELLM_KEY = "sk-bench-" + secrets.token_hex(16)  # LiteLLM refuses to start without one
LITELLM_AUTH = f"Authorization: Bearer {LITELLM_KEY}"
FAST = {"requests_per_minute": 100_000_000}  # so that the limiter never paces these runs
# The first-delta emulator's pause between stream events after the first delta: a model streams
# tens of tokens per second (an event every 10-30 ms); 2 ms is far quicker than any, yet longer
# than it takes to relay and read one event, so no later event lands on a first delta in flight.
PACE_MS = 2
# The budget's first-delta measure: six alternating rounds (each a third of a run's duration).
PACED_ROUNDS = 6
# The bridge's 0.2 ms budget at c=1 is below what one 10 s run of each resolves (the machine's
# drift moves whole runs by more), so it is timed in alternating rounds, as the first delta is.
BRIDGE_ROUNDS = 8
BRIDGE_ROUND_SECONDS = 3.0
# With every feature on (BENCH_FEATURES=all, scripts/bench/all), esproxy runs as a sidecar of an
# OpenSearch node: endpoints stored there, limits kept by leases (cluster mode). The embedding cache
# stays on, and the embedding endpoints, which measure Bedrock calls, opt out of it per endpoint
# (`task_settings.cache: false`). Set by main().
SIDECAR: dict[str, str] = {}

ESPROXY_ENDPOINTS = {
    "titan16": ("text_embedding", "bench-titan", "amazontitan", "amazon.titan-embed-text-v2:0"),
    "cohere96": ("text_embedding", "bench-cohere", "cohere", "cohere.embed-english-v3"),
    "completion": (
        "completion",
        "bench-completion",
        "amazontitan",
        "amazon.titan-text-premier-v1:0",
    ),
    "completion-role": (
        "completion",
        "bench-completion-role",
        "amazontitan",
        "amazon.titan-text-premier-v1:0",
    ),
    "chat_stream": ("chat_completion", "bench-chat", "anthropic", CHAT_MODEL),
}


def esproxy_requests() -> dict[str, tuple[str, str]]:
    return {
        "titan16": ("/_inference/text_embedding/bench-titan", json.dumps({"input": TEXTS[:16]})),
        "cohere96": ("/_inference/text_embedding/bench-cohere", json.dumps({"input": TEXTS})),
        "completion": ("/_inference/completion/bench-completion", json.dumps({"input": QUESTION})),
        "completion-role": (
            "/_inference/completion/bench-completion-role",
            json.dumps({"input": QUESTION}),
        ),
        "chat_stream": (
            "/_inference/chat_completion/bench-chat/_stream",
            json.dumps({"messages": CHAT_MESSAGES, "max_completion_tokens": 64}),
        ),
    }


def bridge_requests() -> dict[str, tuple[str, str]]:
    """The same calls through esproxy's OpenAI-compatible routes (esproxy/openai_bridge/)."""
    v1 = "/_esproxy/openai/v1"
    chat = {"model": "bench-completion", "messages": [{"role": "user", "content": QUESTION}]}
    return {
        "titan16": (f"{v1}/embeddings", json.dumps({"model": "bench-titan", "input": TEXTS[:16]})),
        "cohere96": (f"{v1}/embeddings", json.dumps({"model": "bench-cohere", "input": TEXTS})),
        "completion": (f"{v1}/chat/completions", json.dumps(chat)),
        "chat_stream": (
            f"{v1}/chat/completions",
            json.dumps(
                {
                    "model": "bench-chat",
                    "messages": CHAT_MESSAGES,
                    "max_completion_tokens": 64,
                    "stream": True,
                }
            ),
        ),
    }


def litellm_requests() -> dict[str, tuple[str, str]]:
    return {
        "titan16": ("/v1/embeddings", json.dumps({"model": "titan", "input": TEXTS[:16]})),
        "cohere96": ("/v1/embeddings", json.dumps({"model": "cohere", "input": TEXTS})),
        "completion": (
            "/v1/chat/completions",
            json.dumps(
                {
                    "model": "completion",
                    "max_tokens": 64,
                    "messages": [{"role": "user", "content": QUESTION}],
                }
            ),
        ),
        "chat_stream": (
            "/v1/chat/completions",
            json.dumps(
                {"model": "chat", "max_tokens": 64, "stream": True, "messages": CHAT_MESSAGES}
            ),
        ),
    }


def start_esproxy(
    emulator: str,
    logs: Path,
    name: str = "esproxy",
    experiment: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> tuple[str, Any]:
    # The embedding cache is off here (or, with every feature on, off for these endpoints): these
    # runs compare the calls themselves.
    features = lib.all_features()
    url, proc = lib.esproxy(
        name,
        "--bedrock-endpoint-url",
        emulator,
        log_dir=logs,
        experiment=experiment,
        # The emulator also answers STS on its port: the role endpoint's AssumeRole goes there.
        env={
            **({} if features else {"ESPROXY_CACHE_ENABLED": "false"}),
            "AWS_ENDPOINT_URL_STS": emulator,
            **SIDECAR,
            **(env or {}),
        },
    )
    for task, inference_id, provider, model in ESPROXY_ENDPOINTS.values():
        role = {"role_arn": ROLE} if inference_id.endswith("-role") else {}
        task_settings: dict[str, Any] = {"max_new_tokens": 64} if task == "completion" else {}
        if features and task == "text_embedding":
            task_settings["cache"] = False
        status, body = lib.http(
            "PUT",
            f"{url}/_inference/{task}/{inference_id}",
            {
                "service": "amazonbedrock",
                "service_settings": {
                    **KEYS,
                    "region": "us-east-1",
                    "provider": provider,
                    "model": model,
                    "rate_limit": FAST,
                    **role,
                },
                **({"task_settings": task_settings} if task_settings else {}),
            },
        )
        if SIDECAR and status == 400 and "already exists" in str(body):
            continue  # another instance of this run stored it in the shared cluster store
        if status != 200:
            raise RuntimeError(f"PUT {inference_id}: {status} {body}")
    return url, proc


def start_litellm(emulator: str, logs: Path) -> tuple[str, Any] | None:
    exe = lib.REPO / ".cache" / "litellm-venv" / "bin" / "litellm"
    if not exe.exists():
        return None
    common = {
        "aws_bedrock_runtime_endpoint": emulator,
        "aws_region_name": "us-east-1",
        "aws_access_key_id": KEYS["access_key"],
        "aws_secret_access_key": KEYS["secret_key"],
    }
    models = [
        ("titan", "bedrock/amazon.titan-embed-text-v2:0"),
        ("cohere", "bedrock/cohere.embed-english-v3"),
        ("completion", "bedrock/converse/amazon.titan-text-premier-v1:0"),
        ("chat", f"bedrock/converse/{CHAT_MODEL}"),
    ]
    config = logs / "litellm.yaml"
    # JSON is YAML: no YAML library needed here.
    config.write_text(
        json.dumps(
            {
                "model_list": [
                    {"model_name": n, "litellm_params": {"model": m, **common}} for n, m in models
                ],
                "litellm_settings": {"drop_params": True, "telemetry": False},
                "general_settings": {"master_key": LITELLM_KEY},
            },
            indent=1,
        )
    )
    port = lib.free_port()
    proc = lib.start(
        "litellm",
        [
            str(exe),
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],
        cpus=lib.PROXY_CPU,
        log=logs / "litellm.log",
        env={
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_LOG": "ERROR",
            "LITELLM_TELEMETRY": "False",
        },
    )
    url = f"http://127.0.0.1:{port}"
    lib.wait_http(url + "/health/liveliness", proc, timeout=240)
    return url, proc


def direct(emulator: str, workload: str, conc: int, duration: float) -> dict[str, Any]:
    out = subprocess.run(
        [
            "taskset",
            "-c",
            lib.PROXY_CPU,
            lib.PROJECT_PY,
            str(lib.BENCH / "bedrock_direct.py"),
            emulator,
            workload,
            str(conc),
            str(duration),
        ],
        capture_output=True,
        text=True,
        timeout=duration + 120,
    )
    if out.returncode != 0:
        raise RuntimeError(f"bedrock_direct failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def stream_driver(
    url: str, body: str, header: str | None, conc: int, duration: float, client: str = "aiohttp"
) -> Any:
    out = subprocess.run(
        [
            "taskset",
            "-c",
            lib.LOAD_CPU,
            lib.PROJECT_PY,
            str(lib.BENCH / "stream_driver.py"),
            url,
            body,
            header or "",
            str(conc),
            str(duration),
            client,
        ],
        capture_output=True,
        text=True,
        timeout=duration + 120,
        cwd=lib.BENCH,
    )
    if out.returncode != 0:
        raise RuntimeError(f"stream_driver failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def start_emulator(logs: Path, name: str = "emulator", *options: str) -> str:
    """The emulator every contender calls, answering after 20 ms. Signatures are verified for
    every contender, so that the role's temporary keys (which the emulator always verifies) cost
    it no more than the plain keys."""
    emulator, _ = lib.emulator(
        name,
        "--latency-ms",
        "20",
        *options,
        "--key",
        f"{KEYS['access_key']}:{KEYS['secret_key']}",
        "--role",
        ROLE,
        log_dir=logs,
    )
    return emulator


def paced_first_deltas(
    logs: Path, targets: dict[str, Any], duration: float
) -> dict[str, dict[str, Any]]:
    """The first delta against an emulator that paces its events as a model streams them: the
    budget's measure. The message start and the first delta come together (`--stream-burst 2`),
    so everything before the first delta is timed as before; only the later events, which the
    emulator otherwise writes at once while the proxies' client reads the first delta on the
    emulator's core, are spaced. The same emulator serves direct and esproxy; LiteLLM, which is
    no budget's reference here, is left out."""
    emulator = start_emulator(
        logs, "emulator-paced", "--stream-delay-ms", str(PACE_MS), "--stream-burst", "2"
    )
    url, proc = start_esproxy(emulator, logs, "esproxy-paced")
    paced = {
        name: (url, requests, header)
        for name, (_, requests, header) in targets.items()
        if name in ("esproxy", "esproxy-openai")
    }
    for _, requests, header in paced.values():
        check(url, *requests["chat_stream"], header)
    # The proxies' client is the bare one (stream_driver.py), which adds little of its own, as
    # wrk does for the throughput runs; esproxy read by aiohttp's client shows what that adds.
    clients = dict.fromkeys(paced, "raw")
    paced["esproxy-aiohttp"] = paced["esproxy"]
    clients["esproxy-aiohttp"] = "aiohttp"
    # The floor: an aiohttp server making the same ConverseStream call and nothing else, on
    # esproxy's core and read by the same client. What esproxy adds beyond it is its own work;
    # what the floor adds over direct is the hop that any HTTP proxy in Python pays here.
    port = lib.free_port()
    floor = lib.start(
        "floor",
        [lib.PROJECT_PY, str(lib.BENCH / "minimal_chat_proxy.py"), str(port), emulator],
        cpus=lib.PROXY_CPU,
        log=logs / "floor.log",
    )
    floor_url = f"http://127.0.0.1:{port}"
    lib.wait_http(floor_url, floor)
    paced["floor"] = (floor_url, paced["esproxy"][1], None)
    check(floor_url, *paced["floor"][1]["chat_stream"], None)
    clients["floor"] = "raw"
    print(f"  chat_stream first delta, emulator events {PACE_MS} ms apart:")
    found = first_deltas(emulator, paced, duration, clients, rounds=PACED_ROUNDS)
    lib.stop(floor)
    lib.stop(proc)
    return found


def first_deltas(
    emulator: str,
    targets: dict[str, Any],
    duration: float,
    clients: dict[str, str] | None = None,
    rounds: int = 2,
) -> dict[str, dict[str, Any]]:
    """Time to the first content delta of a streamed chat, one request at a time, in `rounds`
    alternating rounds of `duration / rounds` per contender; the proxies are read by
    `clients[name]` (stream_driver.py's `raw` or `aiohttp`, the default).

    Each contender's `first_delta_p50_ms` is the mean of its rounds' p50s; a proxy's
    `added_p50_ms` is the median of its rounds' differences to direct's p50 in the same round:
    the machine's drift (whole rounds move by up to ±0.6 ms on the quiet machine) moves the
    difference within a round far less than either p50."""
    found: dict[str, dict[str, Any]] = {}
    names = ["direct", *targets]
    for round_ in range(rounds):  # alternate the order, as the throughput runs do
        for name in names if round_ % 2 == 0 else reversed(names):
            if name == "direct":
                r = direct(emulator, "chat_stream", 1, duration / rounds)
            else:
                url, requests, header = targets[name]
                path, body = requests["chat_stream"]
                client = (clients or {}).get(name, "aiohttp")
                r = stream_driver(url + path, body, header, 1, duration / rounds, client)
            samples = found.setdefault(name, {"p50s": []})
            samples["p50s"].append(r["first_delta_ms"]["p50"])
            samples["last"] = r
    direct_p50s = found["direct"]["p50s"]
    for name, samples in found.items():
        p50s = samples["p50s"]
        samples["first_delta_p50_ms"] = sum(p50s) / len(p50s)
        line = f"  chat_stream first delta c=1 {name:<8} p50 {samples['first_delta_p50_ms']:.2f} ms"
        if name != "direct":
            added = sorted(p - d for p, d in zip(p50s, direct_p50s, strict=True))
            samples["added_per_round_ms"] = added
            samples["added_p50_ms"] = statistics.median(added)
            line += f", added per round {' '.join(f'{a:+.2f}' for a in added)}"
        print(line)
    for samples in found.values():
        del samples["p50s"]
    return found


def role_call_path(emulator: str, per_block: int, blocks: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            "taskset",
            "-c",
            lib.PROXY_CPU,
            lib.PROJECT_PY,
            str(lib.BENCH / "role_call_path.py"),
            emulator,
            str(per_block),
            str(blocks),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if out.returncode != 0:
        raise RuntimeError(f"role_call_path failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def check(url: str, path: str, body: str, header: str | None) -> None:
    name, _, value = (header or "").partition(": ")
    status, answer = lib.http(
        "POST", url + path, json.loads(body), timeout=60, headers={name: value} if header else None
    )
    if status != 200:
        raise RuntimeError(f"POST {url}{path}: {status} {str(answer)[:500]}")


def main() -> int:
    lib.refuse_unknown_options(
        "inference",
        sys.argv[1:],
        {
            "--quick": False,
            "--workloads": True,
            "--cache-only": False,
            "--only-observability": False,
            "--no-bridge": False,
            "--static-ua": False,
            "--no-litellm": False,
        },
    )
    workloads = WORKLOADS
    if "--workloads" in sys.argv:
        workloads = sys.argv[sys.argv.index("--workloads") + 1].split(",")
    result_name = "inference" if workloads == WORKLOADS else "inference-" + "-".join(workloads)
    lib.banner(result_name)
    duration = 3.0 if lib.quick() else 10.0
    logs = lib.tmpdir("inference-logs")
    emulator = start_emulator(logs)
    if "--cache-only" in sys.argv:
        embedding_cache.main(emulator, logs)
        return 0
    if lib.all_features():
        upstream, _ = lib.opensearch_node(logs)
        SIDECAR.update({"ESPROXY_UPSTREAM": upstream, "ESPROXY_SECRETS_KEY": lib.secrets_key()})
    if "--only-observability" in sys.argv:
        result = {"machine": lib.machine(), "duration_s": duration}
        result["observability"] = observability_case(emulator, duration, logs)
        lib.write_json("inference-observability", result)
        return 0
    esproxy_url, esproxy_proc = start_esproxy(emulator, logs)
    targets: dict[str, tuple[str, dict[str, tuple[str, str]], str | None]] = {
        "esproxy": (esproxy_url, esproxy_requests(), None)
    }
    procs = {"esproxy": esproxy_proc}
    if "--no-bridge" not in sys.argv:  # the same process, through the OpenAI-compatible routes
        targets["esproxy-openai"] = (esproxy_url, bridge_requests(), None)
        procs["esproxy-openai"] = esproxy_proc
    if "--static-ua" in sys.argv:  # experiment: botocore's per-call User-Agent rebuild removed
        url, procs["esproxy+static-ua"] = start_esproxy(
            emulator, logs, "esproxy-static-ua", {"BENCH_EXP_STATIC_UA": "1"}
        )
        targets["esproxy+static-ua"] = (url, esproxy_requests(), None)
    litellm = None if "--no-litellm" in sys.argv else start_litellm(emulator, logs)
    if litellm:
        targets["litellm"] = (litellm[0], litellm_requests(), LITELLM_AUTH)
        procs["litellm"] = litellm[1]
    for url, requests, header in targets.values():
        for workload in workloads:
            if workload in requests:
                check(url, *requests[workload], header)

    results: dict[str, dict[str, dict[str, Any]]] = {}
    for workload in workloads:
        results[workload] = {}
        for url, requests, header in targets.values():  # warm up
            if workload not in requests:
                continue
            path, body = requests[workload]
            lib.wrk(url + path, connections=4, duration=1, method="POST", body=body, header=header)
        for i, c in enumerate(CONCURRENCY):
            names = ["direct", *(n for n, t in targets.items() if workload in t[1])]
            for name in names if i % 2 == 0 else reversed(names):
                if name == "direct":
                    # The direct driver signs with keys: roles are esproxy's alone.
                    r = direct(emulator, workload.removesuffix("-role"), c, duration)
                else:
                    url, requests, header = targets[name]
                    path, body = requests[workload]
                    r = lib.wrk(
                        url + path,
                        connections=c,
                        duration=duration,
                        method="POST",
                        body=body,
                        header=header,
                        measure=procs[name],
                    )
                    # Drain: requests wrk abandoned may still be queued in the contender (LiteLLM
                    # does not cancel them); one request that waits behind them clears the way.
                    check(url, path, body, header)
                results[workload].setdefault(str(c), {})[name] = r
                cpu = r.get("cpu_ms_per_request")
                print(
                    f"  {workload:<10} c={c:<3} {name:<8} {r['rps']:>8,.1f} req/s  p50 "
                    f"{r['latency_ms']['p50']:7.2f} p99 {r['latency_ms']['p99']:7.2f} ms  "
                    f"errors {r['errors']}  CPU {cpu or float('nan'):.2f} ms/req",
                    flush=True,
                )

    check_uncached(results)
    result = {
        "machine": lib.machine(),
        "duration_s": duration,
        "emulator_latency_ms": 20,
        "features": features_note(),
        "concurrency": CONCURRENCY,
        "workloads": workloads,
        "results": results,
    }
    if "chat_stream" in workloads:
        print("  chat_stream first delta, emulator events at once (reference):")
        result["chat_stream_first_delta_burst"] = first_deltas(emulator, targets, duration)
        result["chat_stream_first_delta"] = paced_first_deltas(logs, targets, duration)
        result["stream_pace_ms"] = PACE_MS
    if "completion-role" in workloads:
        ab = role_call_path(emulator, 50 if lib.quick() else 100, 10 if lib.quick() else 20)
        print(
            f"  call path A/B ({ab['calls_each']} calls each): key p50 {ab['key_p50_ms']:.3f} ms, "
            f"role p50 {ab['role_p50_ms']:.3f} ms, role adds {ab['role_added_p50_ms']:+.3f} ms "
            f"p50 and {ab['role_added_cpu_ms_per_call']:+.3f} ms CPU per call",
            flush=True,
        )
        result["role_call_path"] = ab
    if "esproxy-openai" in targets:
        rounds = BRIDGE_ROUNDS // 2 if lib.quick() else BRIDGE_ROUNDS
        seconds = 1.0 if lib.quick() else BRIDGE_ROUND_SECONDS
        print(f"  the bridge over _inference at c=1, {rounds} alternating rounds of {seconds:g} s:")
        result["bridge_rounds"] = {
            w: bridge_rounds(esproxy_url, esproxy_proc, w, 1, seconds, rounds)
            for w in workloads
            if w in targets["esproxy-openai"][1]
        }
    result["summary"] = summarize(result)
    lib.stop(esproxy_proc)
    if workloads == WORKLOADS:  # the observability case belongs to the full run
        result["observability"] = observability_case(emulator, duration, logs)
    lib.write_json(result_name, result)
    lib.publish(result_name, report, result)
    plot(result, result_name)
    if workloads == WORKLOADS:  # the embedding cache benchmark belongs to the full run
        embedding_cache.main(emulator, logs)
    return 0


def features_note() -> str:
    if not lib.all_features():
        return "embedding cache off; metrics and the text access log as by default; no upstream"
    return (
        "every feature on: metrics, JSON access log to a file, embedding cache on (the embedding "
        "endpoints opt out per endpoint), the OpenAI bridge, a role endpoint beside key endpoints, "
        "endpoints stored in an OpenSearch node and limits in cluster mode (leases)"
    )


def check_uncached(results: dict[str, dict[str, dict[str, Any]]]) -> None:
    """The embedding workloads measure Bedrock calls: none of them may come from the cache, which
    would answer well under the emulator's 20 ms."""
    for workload in ("titan16", "cohere96"):
        for name, r in results.get(workload, {}).get("1", {}).items():
            if name != "direct" and r["latency_ms"]["p50"] < 20:
                raise RuntimeError(f"{workload} via {name}: p50 under 20 ms, served from a cache")


def observability_case(emulator: str, duration: float, logs: Path) -> dict[str, Any]:
    """Metrics and the JSON access log on vs off, on one short completion at a time."""
    path, body = esproxy_requests()["completion"]
    return observability.inference_case(
        lambda name, env: start_esproxy(emulator, logs, name, env=env),
        path,
        body,
        duration,
        logs,
    )


def alternate_wrk(
    runs: dict[str, tuple[str, str, Any]], conc: int, seconds: float, rounds: int
) -> dict[str, list[dict[str, Any]]]:
    """wrk `rounds` times against each of `runs` (name -> (url, body, process measured)), the
    order reversed every other round, so that the machine's drift falls on all alike."""
    got: dict[str, list[dict[str, Any]]] = {name: [] for name in runs}
    for i in range(rounds):
        for name in runs if i % 2 == 0 else reversed(runs):
            url, body, proc = runs[name]
            got[name].append(
                lib.wrk(
                    url, connections=conc, duration=seconds, method="POST", body=body, measure=proc
                )
            )
    return got


def bridge_rounds(
    url: str, proc: Any, workload: str, conc: int, seconds: float, rounds: int
) -> dict[str, Any]:
    """The same call through `_inference` and through the OpenAI bridge of one esproxy, in
    alternating rounds. `added_p50_ms` is the median of the rounds' differences of p50s: drift
    moves both routes of a round alike."""
    routes = {"_inference": esproxy_requests()[workload], "bridge": bridge_requests()[workload]}
    for path, body in routes.values():
        check(url, path, body, None)
        lib.wrk(url + path, connections=4, duration=1, method="POST", body=body)
    got = alternate_wrk(
        {name: (url + path, body, proc) for name, (path, body) in routes.items()},
        conc,
        seconds,
        rounds,
    )
    p50s = {name: [r["latency_ms"]["p50"] for r in runs] for name, runs in got.items()}
    added = sorted(b - p for p, b in zip(p50s["_inference"], p50s["bridge"], strict=True))
    found = {
        "inference_p50_ms": p50s["_inference"],
        "bridge_p50_ms": p50s["bridge"],
        "added_per_round_ms": added,
        "added_p50_ms": statistics.median(added),
        "cpu_ms_per_request": {
            name: statistics.median(r.get("cpu_ms_per_request") or math.nan for r in runs)
            for name, runs in got.items()
        },
    }
    print(
        f"  {workload:<10} c={conc:<3} bridge added per round "
        f"{' '.join(f'{a:+.2f}' for a in added)} ms (median {found['added_p50_ms']:+.2f}); "
        f"CPU ms/req _inference {found['cpu_ms_per_request']['_inference']:.2f}, bridge "
        f"{found['cpu_ms_per_request']['bridge']:.2f}",
        flush=True,
    )
    return found


def summarize(res: dict[str, Any]) -> dict[str, Any]:
    added, vs_litellm = {}, {}
    for w, by_c in res["results"].items():
        for c, runs in by_c.items():
            added[f"{w}@{c}"] = (
                runs["esproxy"]["latency_ms"]["p50"] - runs["direct"]["latency_ms"]["p50"]
            )
            if "litellm" in runs:
                vs_litellm[f"{w}@{c}"] = lib.ratio(runs["esproxy"]["rps"], runs["litellm"]["rps"])
    at1 = [v for k, v in added.items() if k.endswith("@1")] or [0.0]
    bridge_added = {
        f"{w}@{c}": runs["esproxy-openai"]["latency_ms"]["p50"]
        - runs["esproxy"]["latency_ms"]["p50"]
        for w, by_c in res["results"].items()
        for c, runs in by_c.items()
        if "esproxy-openai" in runs
    }
    bridge_at1 = [v for k, v in bridge_added.items() if k.endswith("@1")]
    rounds = {w: r["added_p50_ms"] for w, r in res.get("bridge_rounds", {}).items()}
    if rounds:  # the budget's measure since session 8; the single runs' figures stay beside it
        bridge_at1 = list(rounds.values())
    peak_ratio = {
        w: lib.ratio(
            max(r["esproxy"]["rps"] for r in by_c.values()),
            max(r["litellm"]["rps"] for r in by_c.values()),
        )
        for w, by_c in res["results"].items()
        if "litellm" in by_c["1"]
    }
    # esproxy's own CPU per request: what it spends beyond the aiobotocore work the direct driver
    # also does (at 16 concurrent requests; robust to other load on the machine).
    extra_cpu = {
        w: by_c["16"]["esproxy"]["cpu_ms_per_request"] - by_c["16"]["direct"]["cpu_ms_per_request"]
        for w, by_c in res["results"].items()
        if by_c["16"]["esproxy"].get("cpu_ms_per_request")
        and by_c["16"]["direct"].get("cpu_ms_per_request")
    }
    targets = {
        "<= 1 ms p50 added over direct (concurrency 1)": max(at1) <= 1.0,
        ">= 3x LiteLLM throughput (peak, every workload)": bool(peak_ratio)
        and min(peak_ratio.values()) >= 3.0,
    }
    if bridge_at1:
        targets["<= 0.2 ms p50 added by the OpenAI bridge over _inference (concurrency 1)"] = (
            max(bridge_at1) <= 0.2
        )
    role: dict[str, Any] = {}
    if "completion-role" in res["results"] and "completion" in res["results"]:
        # What a role endpoint adds over a key endpoint, both through esproxy in the same run.
        keyed = res["results"]["completion"]
        for c, runs in res["results"]["completion-role"].items():
            role[f"added_p50_ms@{c}"] = (
                runs["esproxy"]["latency_ms"]["p50"] - keyed[c]["esproxy"]["latency_ms"]["p50"]
            )
            role[f"added_cpu_ms_per_request@{c}"] = (
                runs["esproxy"].get("cpu_ms_per_request") or 0.0
            ) - (keyed[c]["esproxy"].get("cpu_ms_per_request") or 0.0)
    if "role_call_path" in res:
        targets["<= 0.1 ms p50 added by a role endpoint over a key endpoint (call path A/B)"] = (
            res["role_call_path"]["role_added_p50_ms"] <= 0.1
        )
    chat: dict[str, Any] = {}
    if "chat_stream_first_delta" in res:
        deltas = res["chat_stream_first_delta"]
        # Since session 6 the median of the rounds' differences (see first_deltas); the
        # difference of the means, the earlier figure, is kept beside it.
        means = deltas["esproxy"]["first_delta_p50_ms"] - deltas["direct"]["first_delta_p50_ms"]
        chat["added_first_delta_p50_ms_of_means"] = means
        chat["added_first_delta_p50_ms"] = deltas["esproxy"].get("added_p50_ms", means)
        if "floor" in deltas:  # context, not a budget: the bare aiohttp + aiobotocore proxy
            chat["floor_added_first_delta_p50_ms"] = deltas["floor"]["added_p50_ms"]
        targets["<= 1 ms added to the first delta of a streamed chat (concurrency 1)"] = (
            chat["added_first_delta_p50_ms"] <= 1.0
        )
        burst = res.get("chat_stream_first_delta_burst")
        if burst:  # the earlier method, for reference: the emulator sends each answer at once
            chat["added_first_delta_p50_ms_burst"] = (
                burst["esproxy"]["first_delta_p50_ms"] - burst["direct"]["first_delta_p50_ms"]
            )
        at64 = res["results"]["chat_stream"]["64"]
        if "litellm" in at64:
            chat["vs_litellm_rps_at_64"] = lib.ratio(at64["esproxy"]["rps"], at64["litellm"]["rps"])
            targets[">= 3x LiteLLM streamed chat throughput at 64 concurrent"] = (
                chat["vs_litellm_rps_at_64"] >= 3.0
            )
    return {
        "chat_stream": chat,
        "role": role,
        "esproxy_added_p50_ms": added,
        "esproxy_extra_cpu_ms_per_request": extra_cpu,
        "esproxy_vs_litellm_rps": vs_litellm,
        "esproxy_vs_litellm_peak_rps": peak_ratio,
        "bridge_added_p50_ms": bridge_added,
        "bridge_added_p50_ms_rounds": rounds,
        "targets": targets,
    }


def report(res: dict[str, Any]) -> None:
    print(f"\nEmulator latency 20 ms; {res['duration_s']:g} s per run\n")
    rows = []
    for w, by_c in res["results"].items():
        for c, runs in by_c.items():
            d = runs["direct"]
            for name, r in runs.items():
                rows.append(
                    [
                        w,
                        c,
                        name,
                        r["rps"],
                        lib.ratio(r["rps"], d["rps"]),
                        r["latency_ms"]["p50"],
                        r["latency_ms"]["p99"],
                        r["latency_ms"]["p50"] - d["latency_ms"]["p50"],
                        lib.ratio(runs["esproxy"]["rps"], r["rps"]) if name == "litellm" else None,
                        r.get("cpu_ms_per_request"),
                        r["errors"],
                    ]
                )
    print(
        lib.table(
            [
                "workload",
                "conc",
                "contender",
                "req/s",
                "× direct",
                "p50 ms",
                "p99 ms",
                "+p50 ms",
                "esproxy ×",
                "CPU ms/req",
                "errors",
            ],
            rows,
        )
    )
    print(
        "\nesproxy's own CPU per request beyond direct aiobotocore (16 concurrent): "
        + ", ".join(
            f"{w} {v:.2f} ms" for w, v in res["summary"]["esproxy_extra_cpu_ms_per_request"].items()
        )
    )
    if "chat_stream_first_delta" in res:
        pace = res.get("stream_pace_ms")
        print(
            "\nstreamed chat, time to the first content delta at concurrency 1 (p50)"
            + (f", emulator events {pace} ms apart after the first delta:" if pace else ":")
        )
        for who, r in res["chat_stream_first_delta"].items():
            added = r.get("added_p50_ms")
            tail = f" (added over direct, median of rounds: {added:+.2f} ms)" if added else ""
            print(f"  {who:<8} {r['first_delta_p50_ms']:.2f} ms{tail}")
    if "chat_stream_first_delta_burst" in res:
        print("the same with the emulator sending each answer at once (the earlier method):")
        for who, r in res["chat_stream_first_delta_burst"].items():
            print(f"  {who:<8} {r['first_delta_p50_ms']:.2f} ms")
    role = res["summary"].get("role") or {}
    if role:
        print(
            "role endpoint minus key endpoint, through esproxy: "
            + ", ".join(f"{name} {value:+.3f}" for name, value in role.items())
        )
    if "role_call_path" in res:
        ab = res["role_call_path"]
        print(
            f"call path A/B, {ab['calls_each']} sequential Converse calls each through "
            f"BedrockClients: key p50 {ab['key_p50_ms']:.3f} ms, role p50 {ab['role_p50_ms']:.3f} "
            f"ms ({ab['role_added_p50_ms']:+.3f} ms); CPU per call key "
            f"{ab['key_cpu_ms_per_call']:.3f} ms, role {ab['role_cpu_ms_per_call']:.3f} ms "
            f"({ab['role_added_cpu_ms_per_call']:+.3f} ms)"
        )
    if "bridge_rounds" in res:
        print("the OpenAI bridge over `_inference` at c=1, alternating rounds (p50 added each):")
        for w, r in res["bridge_rounds"].items():
            each = " ".join(f"{a:+.2f}" for a in r["added_per_round_ms"])
            print(f"  {w:<11} {each} ms; median {r['added_p50_ms']:+.2f} ms")
    for target, ok in res["summary"]["targets"].items():
        print(f"  {'MET ' if ok else 'MISS'} {target}")


def plot(res: dict[str, Any], name: str = "inference") -> None:
    plt = lib.pyplot()
    workloads = list(res["results"])
    fig, axes = plt.subplots(1, len(workloads), figsize=(4.2 * len(workloads), 3.8), squeeze=False)
    axes = axes[0]
    conc = res["concurrency"]
    for ax, w in zip(axes, workloads, strict=True):
        by_c = res["results"][w]
        for who in by_c[str(conc[0])]:
            ax.plot(conc, [by_c[str(c)][who]["rps"] for c in conc], marker="o", label=who)
        ax.set_xscale("log", base=2)
        ax.set_xticks(conc, [str(c) for c in conc])
        ax.set_title(w)
        ax.set_xlabel("concurrent requests")
        ax.set_ylabel("requests/s")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("inference throughput (emulator latency 20 ms)")
    fig.tight_layout()
    fig.savefig(lib.RESULTS / f"{name}.png", dpi=110)


if __name__ == "__main__":
    sys.exit(main())
