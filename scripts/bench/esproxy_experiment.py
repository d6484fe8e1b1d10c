"""Run `python -m esproxy ...` with a proposed change applied from outside, to measure it before
anyone edits esproxy/ (the benchmarks' experiment flags use this launcher). Each knob is an
environment variable; none set means esproxy exactly as it is.

- BENCH_EXP_STATIC_UA=1: each Bedrock client keeps the User-Agent it was created with, instead of
  botocore rebuilding it before every call (its `rebuild_and_replace_user_agent_handler`).
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

sys.argv[0] = "esproxy"
runpy.run_module("esproxy", run_name="__main__", alter_sys=True)
