"""The float32 vector round trip alone, in ns per number: Bedrock's JSON answer in, ES's printed
vectors out, as esproxy does it now (`vector_json`) and as it did before (`orjson.loads`, then
`array("f")`, which is still the fallback), next to what direct aiobotocore does with the same
body (`orjson.loads` only). Best of N CPU times (process_time) in one process, so it moves
little with the machine's load.

    .venv/bin/python scripts/bench/vector_conversion.py [--rounds N]

Bodies: the emulator's own Cohere x96 and Titan answers (what `scripts/bench/inference` sends;
its vectors are mostly zeros), and dense ones with 1024 random float32 values per vector printed
as Python prints float64 (the shape of a real Bedrock answer).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from esproxy.bedrock_emulator.embedding_models import embed_cohere_v3, embed_titan_v2
from esproxy.integrations.amazonbedrock import bodies, vector_json
from esproxy.web.responses import float32_vectors, to_json

TEXTS = [f"passage {i}: the sky above the port was the color of television" for i in range(96)]


def dense(rng: random.Random, size: int) -> list[float]:
    return [float(np.float32(rng.gauss(0.0, 0.03))) for _ in range(size)]


def answers() -> dict[str, tuple[bytes, str, int]]:
    """name: (body, field, numbers printed)."""
    rng = random.Random(18)
    vector = dense(rng, 1024)
    return {
        "cohere96 emulator": (
            embed_cohere_v3({"texts": TEXTS, "input_type": "search_document"}).body,
            "embeddings",
            96 * 1024,
        ),
        "cohere96 dense": (
            json.dumps(
                {"id": "x", "texts": TEXTS, "embeddings": [dense(rng, 1024) for _ in TEXTS]}
            ).encode(),
            "embeddings",
            96 * 1024,
        ),
        "titan emulator": (embed_titan_v2({"inputText": TEXTS[0]}).body, "embedding", 1024),
        "titan dense": (
            json.dumps({"embedding": vector, "embeddingsByType": {"float": vector}}).encode(),
            "embedding",
            1024,
        ),
    }


def round_trip(load: Callable[[bytes], dict[str, Any]], raw: bytes, field: str) -> bytes:
    """What esproxy does between Bedrock's bytes and its own answer's bytes."""
    body = load(raw)
    values = body[field]
    rows = [values] if field == "embedding" else list(values)
    vectors = [bodies.float32_vector(row) for row in rows]
    return to_json({"text_embedding": [{"embedding": v} for v in float32_vectors(vectors)]})


def best_ns(work: Callable[[], object], rounds: int) -> float:
    fastest = float("inf")
    for _ in range(rounds):
        started = time.process_time_ns()
        work()
        fastest = min(fastest, time.process_time_ns() - started)
    return fastest


def main() -> int:
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 30
    print(f"best of {rounds}; load average {os.getloadavg()[0]:.2f}")
    print(f"{'answer':18} {'direct':>8} {'before':>8} {'now':>8}  (ns per number)  now - direct")
    for name, (raw, field, numbers) in answers().items():
        before = round_trip(vector_json.load_plain, raw, field)
        assert round_trip(vector_json.load_answer, raw, field) == before  # the same bytes
        direct = best_ns(lambda: orjson.loads(raw), rounds)  # noqa: B023 - used at once
        old = best_ns(lambda: round_trip(vector_json.load_plain, raw, field), rounds)  # noqa: B023
        new = best_ns(lambda: round_trip(vector_json.load_answer, raw, field), rounds)  # noqa: B023
        print(
            f"{name:18} {direct / numbers:8.1f} {old / numbers:8.1f} {new / numbers:8.1f}"
            f"  {' ' * 16}{(new - direct) / 1e6:+.2f} ms per answer"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
