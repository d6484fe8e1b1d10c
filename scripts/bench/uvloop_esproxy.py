"""Run `python -m esproxy ...` on uvloop's event loop, unchanged otherwise: an experiment for the
benchmarks (`--uvloop`), to measure what switching the loop would give. uvloop comes from
.cache/bench/uvloop (installed there by the benchmark, never into the project's venv).
"""

import asyncio
import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".cache" / "bench" / "uvloop"))
import uvloop

asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
sys.argv[0] = "esproxy"
runpy.run_module("esproxy", run_name="__main__", alter_sys=True)
