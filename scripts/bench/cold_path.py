"""How much slower esproxy's Python runs after the core has idled, as it does at concurrency 1
while Bedrock thinks: one step of the chat path (parsing the unified request) timed back to back,
and once after sleeps of 1, 5 and 25 ms (the emulator's 20 ms plus the stream), then a second time
at once. Run on esproxy's core, from the project's venv:

    taskset -c 1 .venv/bin/python scripts/bench/cold_path.py
"""

from __future__ import annotations

import statistics
import time

from esproxy.inference.unified_chat import parse_chat_request

BODY = (
    b'{"messages": [{"role": "user", "content": "What is Elastic? Answer in one sentence."}],'
    b' "max_completion_tokens": 64}'
)
ROUNDS = 200


def main() -> None:
    for idle in (0.0, 0.001, 0.005, 0.025):
        first, second = [], []
        for _ in range(ROUNDS):
            if idle:
                time.sleep(idle)
            t0 = time.perf_counter()
            parse_chat_request(BODY)
            t1 = time.perf_counter()
            parse_chat_request(BODY)
            t2 = time.perf_counter()
            first.append((t1 - t0) * 1e6)
            second.append((t2 - t1) * 1e6)
        print(
            f"after {idle * 1000:4.0f} ms idle: first parse {statistics.median(first):6.1f} µs, "
            f"the next at once {statistics.median(second):5.1f} µs (medians of {ROUNDS})"
        )


if __name__ == "__main__":
    main()
