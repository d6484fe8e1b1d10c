"""The soak run's traffic: a seeded, bounded mix of esproxy's own API and forwarded requests, with
faults injected into about 10% of the inference calls and of the forwarded requests.

    python soak_driver.py ESPROXY_URL EMULATOR_URL SECONDS WORKERS

Faults: every 10th inference request queues one emulator fault (throttling, a 500, a hang, or a
stream that breaks after 2 events); every 10th forwarded request asks the faulty upstream for a
reset (before the answer, or mid-body). Each request's outcome is classed by its status or error
type; a failure that no injected fault explains is counted as unexpected. Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import sys
import time
from collections import Counter
from typing import Any

import aiohttp

KEYS = {"access_key": "AKIDSOAK", "secret_key": "soak-secret", "region": "us-east-1"}
ENDPOINTS = {
    "soak-titan": ("text_embedding", "amazontitan", "amazon.titan-embed-text-v2:0"),
    "soak-cohere": ("text_embedding", "cohere", "cohere.embed-english-v3"),
    "soak-completion": ("completion", "amazontitan", "amazon.titan-text-premier-v1:0"),
}
MIX = {  # weights of the request kinds
    "put_get_delete": 3,
    "get_endpoints": 5,
    "embed_titan": 14,
    "embed_cohere": 8,
    "completion": 12,
    "stream": 8,
    "forward": 50,
}
EMULATOR_FAULTS = [
    ("throttling", {"code": "ThrottlingException"}),
    ("status_500", {"status": 500}),
    ("hang", {"code": "Hang"}),  # held until esproxy's ?timeout=2s gives up
    (
        "mid_stream_error",
        {"code": "ModelStreamErrorException", "after_events": 2, "operation": "ConverseStream"},
    ),
]
INFERENCE_ERROR_STATUSES = {408, 424, 429, 500, 502, 503, 504}


def endpoint_body(task: str, provider: str, model: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "service": "amazonbedrock",
        "service_settings": {
            **KEYS,
            "provider": provider,
            "model": model,
            "rate_limit": {"requests_per_minute": 1_000_000},
        },
    }
    if task == "completion":
        body["task_settings"] = {"max_new_tokens": 32}
    return body


class Soak:
    def __init__(self, url: str, emulator: str, session: aiohttp.ClientSession) -> None:
        self.url, self.emulator, self.session = url, emulator, session
        self.sent = 0
        self.outcomes: dict[str, Counter[str]] = {}
        self.unexpected: Counter[str] = Counter()
        self.examples: dict[str, str] = {}
        self.injected: Counter[str] = Counter()
        self.inference_count = itertools.count(1)
        self.forward_count = itertools.count(1)
        self.tmp = itertools.count(1)

    def note(self, kind: str, outcome: str, unexpected: bool = False, detail: str = "") -> None:
        self.outcomes.setdefault(kind, Counter())[outcome] += 1
        if unexpected:
            key = f"{kind}: {outcome}"
            self.unexpected[key] += 1
            self.examples.setdefault(key, detail[:300])

    async def call(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        expect_break: bool = False,
    ) -> tuple[int | None, str]:
        """One request; notes its outcome and returns (status, body text)."""
        self.sent += 1
        try:
            async with self.session.request(
                method, self.url + path, json=json_body, headers=headers
            ) as response:
                text = (await response.read()).decode(errors="replace")
        except TimeoutError:
            self.note(kind, "client timeout (20 s)", unexpected=True, detail=path)
            return None, ""
        except aiohttp.ClientError as error:
            self.note(
                kind,
                f"error: {type(error).__name__}",
                unexpected=not expect_break,
                detail=f"{method} {path}: {error}",
            )
            return None, ""
        outcome = str(response.status)
        if stream and "event: error" in text:
            outcome += " + error event"
        ok = response.status < 400 or (response.status == 404 and method in ("GET", "HEAD"))
        fault_explained = expect_break and response.status in (502, 504)
        # Any call to Bedrock may meet an emulator fault, including a PUT's probe (ES answers a
        # failed probe with 400).
        inference_fault = (
            kind in ("embed_titan", "embed_cohere", "completion", "stream")
            and response.status in INFERENCE_ERROR_STATUSES
        ) or (method == "PUT" and response.status in INFERENCE_ERROR_STATUSES | {400})
        self.note(
            kind,
            outcome,
            unexpected=not (ok or fault_explained or inference_fault),
            detail=f"{method} {path}: {text[:200]}",
        )
        return response.status, text

    async def inject_emulator_fault(self) -> None:
        name, spec = random.choice(EMULATOR_FAULTS)
        async with self.session.post(f"{self.emulator}/_emulator/faults", json=spec) as r:
            if r.status == 200:
                self.injected[f"emulator {name}"] += 1

    async def inference(self, kind: str) -> None:
        if next(self.inference_count) % 10 == 0:
            await self.inject_emulator_fault()
        q = "?timeout=2s"
        if kind == "embed_titan":
            await self.call(
                kind,
                "POST",
                f"/_inference/text_embedding/soak-titan{q}",
                json_body={"input": "the sky above the port"},
            )
        elif kind == "embed_cohere":
            await self.call(
                kind,
                "POST",
                f"/_inference/text_embedding/soak-cohere{q}",
                json_body={"input": [f"text {i}" for i in range(8)]},
            )
        elif kind == "completion":
            await self.call(
                kind,
                "POST",
                f"/_inference/completion/soak-completion{q}",
                json_body={"input": "What is Elastic?"},
            )
        else:
            await self.call(
                kind,
                "POST",
                f"/_inference/completion/soak-completion/_stream{q}",
                json_body={"input": "Tell me about Elastic."},
                stream=True,
            )

    async def forward(self) -> None:
        n = next(self.forward_count)
        # Every 10th forwarded request breaks: alternately a reset before the answer, mid-body.
        fault = None if n % 10 else ("midbody" if n % 20 == 0 else "reset")
        headers = {"X-Bench-Fault": fault} if fault else None
        if fault:
            self.injected[f"upstream {fault}"] += 1
        choice = (n + n // 10) % 4  # so that faults hit every kind of forwarded request
        if choice == 0:
            await self.call(
                "forward",
                "POST",
                "/soak/_search",
                headers=headers,
                json_body={"query": {"match": {"body": "port"}}, "size": 3},
                expect_break=bool(fault),
            )
        elif choice == 1:
            await self.call(
                "forward",
                "POST",
                "/soak/_doc",
                headers=headers,
                json_body={"body": f"soak document {n}", "n": n},
                expect_break=bool(fault),
            )
        elif choice == 2:
            await self.call(
                "forward", "GET", f"/soak/_doc/{n % 50}", headers=headers, expect_break=bool(fault)
            )
        else:
            await self.call(
                "forward", "GET", "/_cluster/health", headers=headers, expect_break=bool(fault)
            )

    async def put_get_delete(self) -> None:
        inference_id = f"soak-tmp-{next(self.tmp)}"
        task, provider, model = ENDPOINTS["soak-titan"]
        status, _ = await self.call(
            "put_get_delete",
            "PUT",
            f"/_inference/{task}/{inference_id}?timeout=5s",
            json_body=endpoint_body(task, provider, model),
        )
        if status != 200:  # e.g. the PUT's probe met an injected fault: nothing to read back
            return
        await self.call("put_get_delete", "GET", f"/_inference/{inference_id}")
        await self.call("put_get_delete", "DELETE", f"/_inference/{inference_id}")

    async def one(self, rng: random.Random) -> None:
        kind = rng.choices(list(MIX), weights=list(MIX.values()))[0]
        if kind == "forward":
            await self.forward()
        elif kind == "put_get_delete":
            await self.put_get_delete()
        elif kind == "get_endpoints":
            await self.call(kind, "GET", rng.choice(["/_inference", "/_inference/soak-titan"]))
        else:
            await self.inference(kind)


async def main(url: str, emulator: str, seconds: float, workers: int) -> None:
    random.seed(7)
    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        soak = Soak(url, emulator, session)
        for inference_id, (task, provider, model) in ENDPOINTS.items():
            async with session.put(
                f"{url}/_inference/{task}/{inference_id}", json=endpoint_body(task, provider, model)
            ) as r:
                if r.status != 200:
                    raise SystemExit(f"PUT {inference_id}: {r.status} {await r.text()}")
        for i in range(50):
            async with session.put(
                f"{url}/soak/_doc/{i}", json={"body": f"the sky above the port {i}", "n": i}
            ) as r:
                await r.read()
        async with session.post(f"{url}/soak/_refresh") as r:
            await r.read()
        started = time.monotonic()
        stop_at = started + seconds

        async def worker(n: int) -> None:
            rng = random.Random(n)
            while time.monotonic() < stop_at:
                await soak.one(rng)

        await asyncio.gather(*(worker(n) for n in range(workers)))
        elapsed = time.monotonic() - started
        async with session.delete(f"{emulator}/_emulator/faults") as r:
            left = (await r.json())["faults"]
    answered = sum(
        n
        for kind in soak.outcomes.values()
        for o, n in kind.items()
        if not o.startswith(("error", "client timeout"))
    )
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "workers": workers,
                "sent": soak.sent,
                "answered": answered,
                "outcomes": {k: dict(v) for k, v in soak.outcomes.items()},
                "injected": dict(soak.injected),
                "faults_never_triggered": len(left),
                "unexpected": dict(soak.unexpected),
                "unexpected_examples": soak.examples,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2].rstrip("/"), float(sys.argv[3]), int(sys.argv[4])))
