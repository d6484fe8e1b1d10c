"""PUT, GET and DELETE of endpoints over HTTP, with the user document's examples as written."""

from __future__ import annotations

import json

from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION, TITAN_EMBEDDINGS

EMBEDDINGS_CONFIG = {
    "inference_id": "amazon_bedrock_embeddings",
    "task_type": "text_embedding",
    "service": "amazonbedrock",
    "service_settings": {
        "region": "us-east-1",
        "model": "amazon.titan-embed-text-v2:0",
        "provider": "AMAZONTITAN",
        "rate_limit": {"requests_per_minute": 240},
        "dimensions": 1024,
        "similarity": "cosine",
    },
    "chunking_settings": {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1},
}
COMPLETION_CONFIG = {
    "inference_id": "amazon_bedrock_completion",
    "task_type": "completion",
    "service": "amazonbedrock",
    "service_settings": {
        "region": "us-east-1",
        "model": "amazon.titan-text-premier-v1:0",
        "provider": "AMAZONTITAN",
        "rate_limit": {"requests_per_minute": 240},
    },
}


async def put(proxy, path, body):
    return await proxy.put(path, data=json.dumps(body), headers=JSON_HEADERS)


async def test_put_user_examples_answer_the_stored_config_in_es_key_order(proxy):
    response = await put(
        proxy, "/_inference/text_embedding/amazon_bedrock_embeddings", TITAN_EMBEDDINGS
    )
    assert response.status == 200
    text = await response.text()
    assert json.loads(text) == EMBEDDINGS_CONFIG
    assert list(json.loads(text)) == list(EMBEDDINGS_CONFIG)
    assert list(json.loads(text)["service_settings"]) == list(EMBEDDINGS_CONFIG["service_settings"])
    assert response.headers["X-Elastic-Product"] == "Elasticsearch"
    assert response.headers["Content-Type"] == "application/json"

    response = await put(
        proxy, "/_inference/completion/amazon_bedrock_completion", TITAN_COMPLETION
    )
    assert response.status == 200
    assert await response.json() == COMPLETION_CONFIG


async def test_put_probes_bedrock_with_es_validation_input(proxy, emulator_calls):
    await put(proxy, "/_inference/text_embedding/amazon_bedrock_embeddings", TITAN_EMBEDDINGS)
    calls = await emulator_calls()
    assert [(c["model"], c["body"], c["signature_verified"]) for c in calls] == [
        ("amazon.titan-embed-text-v2:0", {"inputText": "how big"}, True)
    ]


async def test_put_with_task_type_in_body(proxy):
    body = {**TITAN_COMPLETION, "task_type": "completion"}
    response = await put(proxy, "/_inference/amazon_bedrock_completion", body)
    assert response.status == 200
    assert (await response.json())["task_type"] == "completion"


async def test_put_existing_id_is_rejected_and_keeps_the_first(proxy):
    path = "/_inference/completion/amazon_bedrock_completion"
    assert (await put(proxy, path, TITAN_COMPLETION)).status == 200
    changed = json.loads(json.dumps(TITAN_COMPLETION))
    changed["service_settings"]["region"] = "eu-west-1"
    response = await put(proxy, path, changed)
    assert response.status == 400
    body = await response.json()
    assert body["error"]["type"] == "resource_already_exists_exception"
    assert (
        body["error"]["reason"] == "Inference endpoint [amazon_bedrock_completion] already exists"
    )
    stored = await (await proxy.get("/_inference/amazon_bedrock_completion")).json()
    assert stored["endpoints"][0]["service_settings"]["region"] == "us-east-1"


async def test_get_one_all_and_by_task_type(proxy):
    await put(proxy, "/_inference/text_embedding/amazon_bedrock_embeddings", TITAN_EMBEDDINGS)
    await put(proxy, "/_inference/completion/amazon_bedrock_completion", TITAN_COMPLETION)

    everything = {"endpoints": [COMPLETION_CONFIG, EMBEDDINGS_CONFIG]}  # sorted by id
    for path in ("/_inference", "/_inference/_all", "/_inference/*"):
        assert await (await proxy.get(path)).json() == everything
    one = await (await proxy.get("/_inference/amazon_bedrock_embeddings")).json()
    assert one == {"endpoints": [EMBEDDINGS_CONFIG]}
    by_type = await (await proxy.get("/_inference/completion/_all")).json()
    assert by_type == {"endpoints": [COMPLETION_CONFIG]}
    typed = await (await proxy.get("/_inference/completion/amazon_bedrock_completion")).json()
    assert typed == {"endpoints": [COMPLETION_CONFIG]}


async def test_get_never_shows_keys(proxy):
    await put(proxy, "/_inference/text_embedding/amazon_bedrock_embeddings", TITAN_EMBEDDINGS)
    text = await (await proxy.get("/_inference")).text()
    assert "<aws_access_key>" not in text and "<aws_secret_key>" not in text
    assert "access_key" not in text and "secret_key" not in text


async def test_get_with_wrong_task_type_names_both(proxy):
    await put(proxy, "/_inference/text_embedding/amazon_bedrock_embeddings", TITAN_EMBEDDINGS)
    response = await proxy.get("/_inference/completion/amazon_bedrock_embeddings")
    assert response.status == 400
    assert (await response.json())["error"]["reason"] == (
        "Requested task type [completion] does not match the inference endpoint's task type "
        "[text_embedding]"
    )


async def test_get_missing_endpoint_is_es_not_found(proxy):
    response = await proxy.get("/_inference/inference_to_get")
    assert response.status == 404
    assert await response.json() == {
        "error": {
            "root_cause": [
                {
                    "type": "resource_not_found_exception",
                    "reason": "Inference endpoint not found [inference_to_get]",
                }
            ],
            "type": "resource_not_found_exception",
            "reason": "Inference endpoint not found [inference_to_get]",
        },
        "status": 404,
    }


async def test_delete_dry_run_keeps_then_delete_removes(proxy):
    await put(proxy, "/_inference/completion/amazon_bedrock_completion", TITAN_COMPLETION)
    dry = await proxy.delete("/_inference/completion/amazon_bedrock_completion?dry_run=true")
    assert await dry.json() == {"acknowledged": False, "pipelines": [], "indexes": []}
    assert (await proxy.get("/_inference/amazon_bedrock_completion")).status == 200

    gone = await proxy.delete("/_inference/amazon_bedrock_completion?force=true")
    assert await gone.json() == {"acknowledged": True, "pipelines": [], "indexes": []}
    assert (await proxy.get("/_inference/amazon_bedrock_completion")).status == 404
    assert (await proxy.delete("/_inference/amazon_bedrock_completion")).status == 404


async def test_delete_rejects_a_bad_boolean(proxy):
    await put(proxy, "/_inference/completion/amazon_bedrock_completion", TITAN_COMPLETION)
    response = await proxy.delete("/_inference/amazon_bedrock_completion?dry_run=maybe")
    assert response.status == 400
    assert (await proxy.get("/_inference/amazon_bedrock_completion")).status == 200


async def test_restart_keeps_endpoints(start_proxy, settings_for, tmp_path):
    settings = settings_for(tmp_path / "kept")
    first = await start_proxy(settings)
    await put(first, "/_inference/completion/amazon_bedrock_completion", TITAN_COMPLETION)
    await first.close()

    second = await start_proxy(settings)
    listed = await (await second.get("/_inference")).json()
    assert listed == {"endpoints": [COMPLETION_CONFIG]}
    response = await second.post(
        "/_inference/completion/amazon_bedrock_completion",
        data=json.dumps({"input": "still there?"}),
        headers=JSON_HEADERS,
    )
    assert response.status == 200


async def test_stored_file_holds_no_plaintext_keys(proxy, tmp_path):
    await put(proxy, "/_inference/text_embedding/amazon_bedrock_embeddings", TITAN_EMBEDDINGS)
    for path in (tmp_path / "data").iterdir():
        assert b"<aws_secret_key>" not in path.read_bytes()
        assert b"<aws_access_key>" not in path.read_bytes()
