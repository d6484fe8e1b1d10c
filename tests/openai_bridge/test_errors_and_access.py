"""Bad input and bad keys get OpenAI-shaped errors, never a 500, and never a Bedrock call."""

from __future__ import annotations

import json

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from esproxy.authorization.api_keys import hash_api_key
from tests.openai_bridge.conftest import COMPLETION_ID, EMBEDDINGS_ID, OTHER_EMBEDDINGS_ID

EMBEDDINGS = "/_esproxy/openai/v1/embeddings"
MODELS = "/_esproxy/openai/v1/models"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def assert_openai_error(body, *, param=None, code=None):
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert error["param"] == param
    assert error["code"] == code
    return error


@pytest.mark.parametrize(
    ("body", "param", "needle"),
    [
        ({"model": EMBEDDINGS_ID}, "input", "'input'"),
        ({"model": EMBEDDINGS_ID, "input": []}, "input", "must not be empty"),
        ({"model": EMBEDDINGS_ID, "input": ""}, "input", "empty string"),
        ({"model": EMBEDDINGS_ID, "input": [1, 2, 3]}, "input", "Token arrays"),
        ({"model": EMBEDDINGS_ID, "input": {"text": "x"}}, "input", "an object"),
        ({"model": EMBEDDINGS_ID, "input": ["ok", None]}, "input", "input[1]"),
        ({"input": "x"}, "model", "model parameter"),
        ({"model": 7, "input": "x"}, "model", "'model'"),
        (
            {"model": EMBEDDINGS_ID, "input": "x", "encoding_format": "int8"},
            "encoding_format",
            "'float' or 'base64'",
        ),
        (
            {"model": EMBEDDINGS_ID, "input": "x", "dimensions": "256"},
            "dimensions",
            "positive integer",
        ),
        ({"model": EMBEDDINGS_ID, "input": "x", "temperature": 1}, "temperature", "Unrecognized"),
    ],
)
async def test_malformed_embeddings_requests_name_the_parameter(
    bridged, bridge_key, emulator_calls, body, param, needle
):
    before = len(await emulator_calls())
    response = await bridged.post(EMBEDDINGS, data=json.dumps(body), headers=bearer(bridge_key))
    assert response.status == 400
    error = assert_openai_error(await response.json(), param=param)
    assert error["type"] == "invalid_request_error"
    assert needle in error["message"]
    assert len(await emulator_calls()) == before


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"text"', b"null", b"{not json", b""])
async def test_a_body_that_is_not_an_object_is_a_400(bridged, bridge_key, raw):
    response = await bridged.post(EMBEDDINGS, data=raw, headers=bearer(bridge_key))
    assert response.status == 400
    assert_openai_error(await response.json())


async def test_an_unknown_model_is_a_404_that_names_it(bridged, api_key):
    body = json.dumps({"model": "no-such-endpoint", "input": "x"})
    response = await bridged.post(EMBEDDINGS, data=body, headers=bearer(api_key))
    assert response.status == 404
    error = assert_openai_error(await response.json(), param="model", code="model_not_found")
    assert "no-such-endpoint" in error["message"]


async def test_a_completion_endpoint_is_refused_by_the_embeddings_route(bridged, api_key):
    body = json.dumps({"model": COMPLETION_ID, "input": "x"})
    response = await bridged.post(EMBEDDINGS, data=body, headers=bearer(api_key))
    assert response.status == 400
    error = assert_openai_error(await response.json(), param="model")
    assert "[completion]" in error["message"] and "[text_embedding]" in error["message"]


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer not-a-key", "Basic dXNlcjpwYXNz", "Bearer esb.forged.mac"],
)
async def test_missing_or_wrong_keys_are_a_401(bridged, emulator_calls, authorization):
    before = len(await emulator_calls())
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    body = json.dumps({"model": EMBEDDINGS_ID, "input": "x"})
    response = await bridged.post(EMBEDDINGS, data=body, headers=headers)
    assert response.status == 401
    assert_openai_error(await response.json(), code="invalid_api_key")
    assert "WWW-Authenticate" not in response.headers
    assert len(await emulator_calls()) == before


async def test_a_bridge_key_opens_only_its_own_endpoint(bridged, base_url, bridge_key):
    async with openai.AsyncOpenAI(base_url=base_url, api_key=bridge_key, max_retries=0) as sdk:
        with pytest.raises(openai.AuthenticationError):
            await sdk.embeddings.create(model=OTHER_EMBEDDINGS_ID, input="x")
        listed = await sdk.models.list()
    assert [model.id for model in listed.data] == [EMBEDDINGS_ID]


async def test_an_esproxy_api_key_lists_every_endpoint(bridged, base_url, api_key):
    async with openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0) as sdk:
        listed = await sdk.models.list()
    assert sorted(model.id for model in listed.data) == sorted(
        [EMBEDDINGS_ID, OTHER_EMBEDDINGS_ID, COMPLETION_ID]
    )
    assert {model.object for model in listed.data} == {"model"}


async def test_a_revoked_bridge_key_opens_nothing(
    start_proxy, settings_for, bridged, bridge_key, api_key, tmp_path
):
    nonce = bridge_key.split(".")[1]
    revoking = await start_proxy(
        settings_for(
            data_dir=tmp_path / "data",
            ESPROXY_AUTH_MODE="api_keys",
            ESPROXY_AUTH_API_KEYS=hash_api_key(api_key),
            ESPROXY_BRIDGE_REVOKED=nonce,
        )
    )
    body = json.dumps({"model": EMBEDDINGS_ID, "input": "x"})
    still = await bridged.post(EMBEDDINGS, data=body, headers=bearer(bridge_key))
    assert still.status == 200
    refused = await revoking.post(EMBEDDINGS, data=body, headers=bearer(bridge_key))
    assert refused.status == 401


async def test_bridge_requests_show_in_the_route_series_even_when_refused(
    bridged, bridge_key, api_key
):
    body = json.dumps({"model": EMBEDDINGS_ID, "input": []})
    refused = await bridged.post(EMBEDDINGS, data=body, headers=bearer(bridge_key))
    assert refused.status == 400
    body = json.dumps({"model": EMBEDDINGS_ID, "input": "x"})
    assert (await bridged.post(EMBEDDINGS, data=body, headers=bearer(bridge_key))).status == 200
    metrics = await bridged.get("/_esproxy/metrics", headers={"Authorization": f"ApiKey {api_key}"})
    scrape = await metrics.text()
    samples = {
        (s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(scrape)
        if family.name == "esproxy_http_requests"
        for s in family.samples
        if s.name == "esproxy_http_requests_total"
    }
    assert samples[(EMBEDDINGS, "400")] == 1
    assert samples[(EMBEDDINGS, "200")] == 1


async def test_a_byte_vector_endpoint_is_refused_before_any_bedrock_call(
    bridged, api_key, emulator_calls
):
    body = {
        "service": "amazonbedrock",
        "service_settings": {
            "access_key": "<aws_access_key>",
            "secret_key": "<aws_secret_key>",
            "region": "us-east-1",
            "provider": "cohere",
            "model": "cohere.embed-english-v3",
            "embedding_type": "int8",
        },
    }
    created = await bridged.put(
        "/_inference/text_embedding/cohere-bytes",
        data=json.dumps(body),
        headers={"Content-Type": "application/json", "Authorization": f"ApiKey {api_key}"},
    )
    assert created.status == 200, await created.text()
    before = len(await emulator_calls())
    request = json.dumps({"model": "cohere-bytes", "input": "x"})
    response = await bridged.post(EMBEDDINGS, data=request, headers=bearer(api_key))
    assert response.status == 400
    error = assert_openai_error(await response.json(), param="model")
    assert "[byte]" in error["message"]
    assert len(await emulator_calls()) == before
