"""Run `python -m esproxy ...` with a proposed change applied from outside, to measure it before
anyone edits esproxy/ (the benchmarks' experiment flags use this launcher). Each knob is an
environment variable; none set means esproxy exactly as it is.

- BENCH_EXP_STATIC_UA=1: each Bedrock client keeps the User-Agent it was created with, instead of
  botocore rebuilding it before every call (its `rebuild_and_replace_user_agent_handler`).
- BENCH_EXP_STAMPS=FILE: stage stamps of the streamed-chat path (stage_stamps.py), one JSON line
  per request appended to FILE. Changes nothing else.
- BENCH_EXP_CPROFILE=FILE: the whole process under cProfile, its stats dumped to FILE at exit.
"""

import os
import runpy
import sys

if os.environ.get("BENCH_EXP_STATIC_UA") == "1":
    from esproxy.integrations.amazonbedrock.client import BedrockClients

    original_open = BedrockClients._open

    async def open_static_ua(self, key, account):  # type: ignore[no-untyped-def]
        client = await original_open(self, key, account)
        service_id = client.meta.service_model.service_id.hyphenize()
        client.meta.events.unregister(
            f"request-created.{service_id}",
            client._user_agent_creator.rebuild_and_replace_user_agent_handler,
        )
        return client

    BedrockClients._open = open_static_ua  # type: ignore[method-assign]

if stamps := os.environ.get("BENCH_EXP_STAMPS"):
    import stage_stamps

    stage_stamps.install(stamps)

if profile_to := os.environ.get("BENCH_EXP_CPROFILE"):
    import atexit

    # This directory's profile.py would shadow the standard library's, which cProfile imports.
    here = sys.path.pop(0)
    import cProfile

    sys.path.insert(0, here)

    profiler = cProfile.Profile()
    atexit.register(lambda: (profiler.disable(), profiler.dump_stats(profile_to)))
    profiler.enable()

sys.argv[0] = "esproxy"
runpy.run_module("esproxy", run_name="__main__", alter_sys=True)
