"""`esproxy bridge create`: the cluster-side body it prints works, and `--apply` fails clearly."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import openai

from tests.user_examples import JSON_HEADERS, TITAN_EMBEDDINGS


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "esproxy",
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_printed_endpoint_opens_the_esproxy_endpoint(
    start_proxy, settings_for, tmp_path: Path
):
    data_dir = tmp_path / "data"
    proxy = await start_proxy(settings_for(data_dir=data_dir))
    created = await proxy.put(
        "/_inference/text_embedding/titan", data=json.dumps(TITAN_EMBEDDINGS), headers=JSON_HEADERS
    )
    assert created.status == 200
    code, out, err = await run_cli(
        "bridge", "create", "titan", "--es-endpoint", "bedrock-titan",
        "--url", "http://esproxy.internal:9200",
        env={"ESPROXY_DATA_DIR": str(data_dir)},
    )  # fmt: skip
    assert code == 0, err
    first, _, rest = out.partition("\n")
    assert first == "PUT /_inference/text_embedding/bedrock-titan"
    body = json.loads(rest)
    settings = body["service_settings"]
    assert body["service"] == "openai"
    assert settings["url"] == "http://esproxy.internal:9200/_esproxy/openai/v1/embeddings"
    assert settings["model_id"] == "titan"
    assert settings["dimensions"] == 1024
    assert (
        settings["similarity"]
        == (await (await proxy.get("/_inference/titan")).json())["endpoints"][0][
            "service_settings"
        ]["similarity"]
    )
    # The key the cluster would send opens the endpoint on the running instance.
    base_url = str(proxy.make_url("/_esproxy/openai/v1"))
    async with openai.AsyncOpenAI(base_url=base_url, api_key=settings["api_key"]) as sdk:
        answer = await sdk.embeddings.create(model="titan", input="hello")
    assert len(answer.data[0].embedding) == 1024


async def test_an_unknown_endpoint_or_store_is_one_line_and_a_non_zero_exit(
    start_proxy, settings_for, tmp_path: Path
):
    no_store = {"ESPROXY_DATA_DIR": str(tmp_path / "nothing-here")}
    code, out, err = await run_cli("bridge", "create", "x", "--es-endpoint", "x", env=no_store)
    assert code == 2 and out == ""
    [line] = err.strip().splitlines()
    assert line.startswith("esproxy: there is no endpoint store at")
    assert not (tmp_path / "nothing-here").exists()  # never creates a store
    data_dir = tmp_path / "data"
    await start_proxy(settings_for(data_dir=data_dir))  # an empty store
    code, out, err = await run_cli(
        "bridge", "create", "missing", "--es-endpoint", "x",
        env={"ESPROXY_DATA_DIR": str(data_dir)},
    )  # fmt: skip
    assert code == 1 and out == ""
    assert err.strip().splitlines() == ["esproxy: Inference endpoint not found [missing]"]


async def test_apply_against_a_cluster_without_inference_fails_with_one_line(
    start_proxy, sidecar_settings, tmp_path: Path
):
    settings = sidecar_settings
    sidecar = await start_proxy(settings)
    created = await sidecar.put(
        "/_inference/text_embedding/titan", data=json.dumps(TITAN_EMBEDDINGS), headers=JSON_HEADERS
    )
    assert created.status == 200
    code, out, err = await run_cli(
        "bridge", "create", "titan", "--es-endpoint", "bedrock-titan", "--apply",
        "--url", str(sidecar.make_url("")),
        env={
            "ESPROXY_UPSTREAM": settings.upstream.urls[0],
            "ESPROXY_SECRETS_KEY": str(settings.secrets.key),
            "ESPROXY_STORAGE_INDEX": settings.storage.index,
            "ESPROXY_DATA_DIR": str(tmp_path / "cli"),
        },
    )  # fmt: skip
    assert code == 1, out + err
    assert "Traceback" not in err
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith("esproxy: the cluster behind esproxy has no _inference API")
    )
    assert "esb." not in out + err  # the minted key is never shown when it was not used


async def test_a_bad_url_is_one_line_and_exit_2(tmp_path: Path):
    code, out, err = await run_cli(
        "bridge", "create", "x", "--es-endpoint", "y", "--url", "esproxy:9200",
        env={"ESPROXY_DATA_DIR": str(tmp_path / "data")},
    )  # fmt: skip
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "esproxy: --url must be an http(s) URL of esproxy, not [esproxy:9200]"
    ]
