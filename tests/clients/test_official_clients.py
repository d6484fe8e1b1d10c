"""The published Elasticsearch clients, unmodified, against esproxy on a real socket.

Each client runs in its own process (tests/clients/drive_python.py in a client virtualenv,
tests/clients/js/drive.mjs under node), goes through every `inference` call it has and prints what
its user sees; the tests assert on that. `scripts/setup-clients` installs the four clients.

In sidecar mode the cluster is OpenSearch: whatever esproxy hands to it (ids it does not hold,
`/`, index APIs) comes back as OpenSearch's own answer, untouched. OpenSearch sends no
`X-Elastic-Product`, so there the clients rightly refuse it; a real Elasticsearch would pass.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from esproxy.bedrock_emulator import EmulatorSettings, create_emulator_app
from tests.sidecar.conftest import index_name, sidecar_settings  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
JS_DIR = ROOT / "tests" / "clients" / "js"
# One driver run makes ~45 calls in a few seconds; a loaded 2-core machine stays well inside this.
DRIVER_TIMEOUT = 120
USER_KEYS = ("<aws_access_key>", "<aws_secret_key>")
ROTATED_KEYS = ("<rotated_access_key>", "<rotated_secret_key>")  # as in both drivers
BOM = "\ufeff"
# Steps esproxy leaves to the cluster in sidecar mode: `/`, other APIs, ids it does not hold.
CLUSTER_STEPS = {
    "ping",
    "info",
    "head_missing",
    "stream_missing",
    "stream_missing_as_stream",
    "get_deleted",
    "delete_missing",
    "completion_missing",
    "indices_exists",
    "forwarded_opaque_id",
}


@dataclass(frozen=True)
class Driver:
    name: str  # py9 / py8: a virtualenv under .cache/clients; es9 / es8: an npm alias
    major: int

    @property
    def python(self) -> bool:
        return self.name.startswith("py")

    def command(self, url: str) -> list[str]:
        setup = "run scripts/setup-clients to install the clients"
        if self.python:
            venv = ROOT / ".cache" / "clients" / self.name
            if not (venv / ".esproxy-pins").is_file():
                pytest.fail(f"{venv} is missing: {setup}")
            return [str(venv / "bin" / "python"), str(ROOT / "tests/clients/drive_python.py"), url]
        node = shutil.which("node")
        if node is None or not (JS_DIR / "node_modules" / self.name / "package.json").is_file():
            pytest.fail(f"node or {JS_DIR}/node_modules/{self.name} is missing: {setup}")
        return [node, str(JS_DIR / "drive.mjs"), self.name, url]


DRIVERS = [Driver("py9", 9), Driver("py8", 8), Driver("es9", 9), Driver("es8", 8)]


async def drive(driver: Driver, url: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        *driver.command(url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), DRIVER_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"{driver.name} driver still running after {DRIVER_TIMEOUT} s")
    if process.returncode != 0:
        pytest.fail(f"{driver.name} driver exited {process.returncode}:\n{err.decode()}")
    result: dict[str, Any] = json.loads(out)
    return result


@pytest.fixture
async def emulator(aiohttp_server):
    """Overrides the shared one: SigV4 is checked against both pairs `_update` switches between,
    and streamed events are spaced so that an `asStream` reader sees them arrive apart."""
    settings = EmulatorSettings(keys=dict([USER_KEYS, ROTATED_KEYS]), stream_delay_ms=20)
    return await aiohttp_server(create_emulator_app(settings))


@pytest.fixture(params=["standalone", "sidecar"])
async def mode(request, start_proxy):
    """(mode, URL of a listening esproxy); sidecar mode starts OpenSearch only when it runs."""
    settings = request.getfixturevalue("sidecar_settings")() if request.param == "sidecar" else None
    proxy = await start_proxy(settings)
    return request.param, str(proxy.make_url("/"))


class Seen:
    """One driver run's steps, read the way the client's user would read them."""

    def __init__(self, driver: Driver, sidecar: bool, steps: dict[str, Any]) -> None:
        self.driver, self.sidecar, self.steps = driver, sidecar, steps

    def ok(self, name: str) -> Any:
        step = self.steps[name]
        assert "ok" in step, f"{name}: {step}"
        if "status" in step:  # Python's ping() shows only a bool
            assert step["product"] == "Elasticsearch", f"{name}: {step}"
        return step["ok"]

    def failed(self, name: str, status: int) -> dict[str, Any]:
        step = self.steps[name]
        assert "error" in step, f"{name}: {step}"
        error: dict[str, Any] = step["error"]
        assert error["status"] == step["status"] == status, f"{name}: {step}"
        return error

    def es_error(self, name: str, status: int, error_type: str, reason: str) -> None:
        """Elasticsearch's error body, as the client's own exception class shows it."""
        error = self.failed(name, status)
        assert self.steps[name]["product"] == "Elasticsearch"
        assert error["body"] == {
            "error": {
                "root_cause": [{"type": error_type, "reason": reason}],
                "type": error_type,
                "reason": reason,
            },
            "status": status,
        }
        if self.driver.python:
            classes = {400: "BadRequestError", 404: "NotFoundError"}
            assert error["class"] == classes[status]
            assert error["message"] == error_type
            assert error["str"] == f"{classes[status]}({status}, '{error_type}', '{reason}')"
        else:
            assert error["class"] == "ResponseError"
            assert error["statusCode"] == status
            assert error["message"] == f"{error_type}\n\tRoot causes:\n\t\t{error_type}: {reason}"

    def cluster_error(self, name: str, method: str, path: str) -> None:
        """OpenSearch's answer for a route it lacks, passed through untouched."""
        error = self.failed(name, 400)
        step = self.steps[name]
        assert step["product"] is None
        assert error["class"] == ("BadRequestError" if self.driver.python else "ResponseError")
        if method == "HEAD":  # no body to read
            assert error["body"] in (None, "")
            return
        text = f"no handler found for uri [{path}] and method [{method}]"
        assert error["body"] == {"error": text}
        js_message = json.dumps(error["body"], separators=(",", ":"))  # JSON.stringify
        assert error["message"] == (text if self.driver.python else js_message)

    def missing(self, name: str, method: str, path: str, inference_id: str) -> None:
        if self.sidecar:
            self.cluster_error(name, method, path)
        else:
            reason = f"Inference endpoint not found [{inference_id}]"
            self.es_error(name, 404, "resource_not_found_exception", reason)


def parse_events(text: str) -> list[tuple[str, str]]:
    """Elasticsearch's SSE framing: BOM, `event: <name>`, `data: <json>`, a blank line."""
    events = []
    for block in text.split("\n\n")[:-1]:
        assert block.startswith(BOM), block
        event, data = block.removeprefix(BOM).split("\n")
        events.append((event.removeprefix("event: "), data.removeprefix("data: ")))
    assert text.endswith("\n\n")
    return events


def deltas_of(text: str) -> list[str]:
    events = parse_events(text)
    assert events[-1] == ("message", "[DONE]")
    assert {event for event, _ in events} == {"message"}
    return [json.loads(data)["completion"][0]["delta"] for _, data in events[:-1]]


def not_found_event(text: str, inference_id: str) -> None:
    [(event, data)] = parse_events(text)
    assert event == "error"
    assert json.loads(data)["error"]["reason"] == f"Inference endpoint not found [{inference_id}]"


def check_client_version(seen: Seen, client: str) -> None:
    package = "elasticsearch-py" if seen.driver.python else "@elastic/elasticsearch"
    assert client.startswith(f"{package} {seen.driver.major}.")


def check_info_and_ping(seen: Seen) -> None:
    if not seen.sidecar:
        assert seen.ok("ping") is True
        info = seen.ok("info")
        assert info["tagline"] == "You Know, for Search"
        assert info["version"]["number"].startswith("9.")
        return
    # `/` is the cluster's: OpenSearch is not Elasticsearch, and the product check says so.
    if seen.driver.python:
        assert seen.steps["ping"] == {"ok": False}  # ping() swallows the UnsupportedProductError
        error = seen.failed("info", 200)
        assert error["class"] == "UnsupportedProductError"
        assert error["body"]["version"]["distribution"] == "opensearch"
    else:
        for name in ("ping", "info"):
            assert seen.failed(name, 200)["class"] == "ProductNotSupportedError"


def check_put(seen: Seen) -> None:
    put = seen.ok("put")
    assert put["inference_id"] == "embed"
    assert put["task_type"] == "text_embedding"
    assert put["service"] == "amazonbedrock"
    assert put["service_settings"]["dimensions"] == 1024
    assert put["service_settings"]["rate_limit"] == {"requests_per_minute": 240}
    assert "access_key" not in put["service_settings"]
    chat = seen.ok("put_amazonbedrock")
    assert (chat["inference_id"], chat["task_type"]) == ("chat", "completion")
    assert chat["task_settings"] == {"max_new_tokens": 64}
    assert seen.ok("gzip_put")["inference_id"] == "zipped"


def check_errors(seen: Seen) -> None:
    for name, status, error_type, reason in (
        ("put_exists", 400, "resource_already_exists_exception", "Inference endpoint [embed] "
         "already exists"),
        ("put_bad_settings", 400, "validation_exception", "Validation Failed: 1: field "
         "[temperature] is not of the expected type. The value [1] cannot be converted to a "
         "[Double];"),
        ("put_unsupported_task", 400, "status_exception", "The [amazonbedrock] service does not "
         "support task type [rerank]"),
        ("infer_wrong_task_type", 400, "status_exception", "Incompatible task_type, the requested "
         "type [text_embedding] does not match the model type [completion]"),
        ("update_half_pair", 400, "validation_exception", "Validation Failed: 1: "
         "[secret_settings] does not contain the required setting [secret_key];"),
        ("update_wrong_task_type", 400, "status_exception", "Task type must match the task type "
         "of the existing endpoint"),
    ):  # fmt: skip
        seen.es_error(name, status, error_type, reason)


def check_get(seen: Seen) -> None:
    assert seen.ok("get_empty") == {"endpoints": []}
    ids = [endpoint["inference_id"] for endpoint in seen.ok("get_all")["endpoints"]]
    assert ids == ["chat", "embed"]
    [one] = seen.ok("get_one")["endpoints"]
    assert (one["inference_id"], one["task_type"]) == ("embed", "text_embedding")
    # elasticsearch-py 8 has no `/_inference/{task_type}/_all`: with a task type alone it lists all.
    task_ids = [endpoint["inference_id"] for endpoint in seen.ok("get_task")["endpoints"]]
    assert task_ids == (["chat", "embed"] if seen.driver.name == "py8" else ["chat"])


def check_head(seen: Seen) -> None:
    assert seen.ok("head_endpoint") is True
    assert seen.steps["head_endpoint"]["status"] == 200
    if seen.sidecar:
        seen.cluster_error("head_missing", "HEAD", "/_inference/missing")
        assert seen.steps["indices_exists"] == {
            "ok": False,
            "status": 404,  # forwarded, and the 404 stays a 404
            "product": None,
            "content_type": "application/json; charset=UTF-8",
            "opaque_id": None,
        }
    else:
        assert seen.ok("head_missing") is False
        assert seen.steps["head_missing"]["status"] == 404
        # No cluster to forward to: 400, which no client retries or takes for a dead node.
        error = seen.failed("indices_exists", 400)
        assert error["class"] == ("BadRequestError" if seen.driver.python else "ResponseError")


def check_inference(seen: Seen) -> None:
    assert seen.ok("text_embedding") == {"text_embedding": [{"embedding": 1024}] * 3}
    assert seen.ok("inference") == {"text_embedding": [{"embedding": 1024}]}
    [completion] = seen.ok("completion")["completion"]
    assert completion["result"].startswith("Emulated amazon reply to: what is elastic.")
    assert seen.ok("gzip_text_embedding") == {"text_embedding": [{"embedding": 1024}] * 2}


def check_opaque_id(seen: Seen) -> None:
    """The client's `opaque_id` / `opaqueId` option comes back unchanged, as from Elasticsearch."""
    seen.ok("completion_opaque_id")
    assert seen.steps["completion_opaque_id"]["opaque_id"] == "trace-ok-1"
    seen.failed("error_opaque_id", 400)
    assert seen.steps["error_opaque_id"]["opaque_id"] == "trace-error-2"
    forwarded = seen.steps["forwarded_opaque_id"]
    assert forwarded["opaque_id"] == "trace-forward-3", forwarded


def check_streaming(seen: Seen) -> None:
    text = seen.ok("stream")
    assert seen.steps["stream"]["content_type"] == "text/event-stream"
    assert len(deltas_of(text)) > 1
    if seen.sidecar:
        path = "/_inference/completion/missing/_stream"
        seen.cluster_error("stream_missing", "POST", path)
    else:
        # Not JSON, so the exception's message and body are the whole SSE text.
        error = seen.failed("stream_missing", 404)
        assert error["class"] == ("NotFoundError" if seen.driver.python else "ResponseError")
        assert error["message"] == error["body"]
        not_found_event(error["body"], "missing")
        assert seen.steps["stream_missing"]["product"] == "Elasticsearch"
    if seen.driver.python:
        return
    # asStream: the body as it arrives, in several chunks, with no status check at all.
    streamed = seen.ok("stream_as_stream")
    assert streamed["chunks"] > 1
    assert len(deltas_of(streamed["text"])) > 1
    missing = seen.steps["stream_missing_as_stream"]
    if seen.sidecar:
        assert missing["status"] == 400 and missing["product"] is None
    else:
        assert missing["status"] == 404 and missing["product"] == "Elasticsearch"
        not_found_event(missing["ok"]["text"], "missing")


def check_update(seen: Seen) -> None:
    updated = seen.ok("update_rate_limit")
    assert updated["service_settings"]["rate_limit"] == {"requests_per_minute": 600}
    rotated = seen.ok("update_keys")
    assert rotated == updated  # the keys changed, and are never shown
    assert seen.ok("text_embedding_after_update") == {"text_embedding": [{"embedding": 1024}]}
    [stored] = seen.ok("get_after_update")["endpoints"]
    assert stored == updated


def check_compat_media_types(seen: Seen) -> None:
    # Each client asks for its own major; esproxy answers in that vendor type.
    ours = f"application/vnd.elasticsearch+json;compatible-with={seen.driver.major}"
    # Not negotiated: compat7 asks for 7; Python's raw HEADs send no Accept; the standalone
    # indices_exists is the no-upstream error, answered before any negotiation.
    skipped = {"compat7", "indices_exists", "forwarded_opaque_id"}
    if seen.driver.python:
        skipped |= {"head_endpoint", "head_missing"}
    for name, step in seen.steps.items():
        if "status" not in step or step["product"] is None or "stream" in name or name in skipped:
            continue  # also ping's bool, the cluster's own answers and SSE
        assert step["content_type"] == ours, f"{name}: {step}"
    assert seen.ok("compat7") == {"text_embedding": [{"embedding": 1024}]}
    compat7 = seen.steps["compat7"]["content_type"]
    assert compat7 == "application/vnd.elasticsearch+json;compatible-with=7"


def check_product_header(seen: Seen) -> None:
    for name, step in seen.steps.items():
        if "status" not in step or step["status"] is None:
            continue  # ping's bool, sniffing
        from_cluster = seen.sidecar and name in CLUSTER_STEPS
        assert step["product"] == (None if from_cluster else "Elasticsearch"), f"{name}: {step}"


def check_delete(seen: Seen) -> None:
    assert seen.ok("delete") == {"acknowledged": True, "pipelines": [], "indexes": []}
    seen.missing("get_deleted", "GET", "/_inference/chat", "chat")
    seen.missing("delete_missing", "DELETE", "/_inference/chat", "chat")
    seen.missing("completion_missing", "POST", "/_inference/completion/chat", "chat")


def check_sniffing(seen: Seen, url: str) -> None:
    proxy = url.removeprefix("http://").rstrip("/")
    sniffed = seen.steps["sniff_on_start"]["ok"]
    if seen.driver.python:
        # With a cluster, the rewritten publish addresses keep the client on the proxy; without
        # one, a sniff-on-start client cannot even be built.
        assert sniffed == ([proxy] if seen.sidecar else {"error": "SniffingError"})
    else:
        # JS keeps its node list when a sniff fails: OpenSearch fails the product check.
        error = "ProductNotSupportedError" if seen.sidecar else "ResponseError"
        assert sniffed == {"nodes": [proxy], "error": error}


def check_nothing_secret_printed(seen: Seen) -> None:
    printed = json.dumps(seen.steps)
    for secret in (*USER_KEYS, *ROTATED_KEYS):
        assert secret not in printed


CHECKS = [
    check_info_and_ping,
    check_put,
    check_errors,
    check_get,
    check_head,
    check_inference,
    check_opaque_id,
    check_streaming,
    check_update,
    check_compat_media_types,
    check_product_header,
    check_delete,
    check_nothing_secret_printed,
]


@pytest.mark.parametrize("driver", DRIVERS, ids=[d.name for d in DRIVERS])
async def test_official_client(driver, mode, emulator_calls, subtests):
    mode_name, url = mode
    result = await drive(driver, url)
    seen = Seen(driver, mode_name == "sidecar", result["steps"])
    check_client_version(seen, result["client"])
    for check in CHECKS:
        with subtests.test(msg=check.__name__):
            check(seen)
    with subtests.test(msg="check_sniffing"):
        check_sniffing(seen, url)
    with subtests.test(msg="rotated keys sign every later Bedrock call"):
        calls = await emulator_calls()
        keys = {c["body"]["inputText"]: c["access_key"] for c in calls if "inputText" in c["body"]}
        assert keys["a"] == keys["gzip"] == USER_KEYS[0]
        assert keys["rotated"] == keys["seven"] == ROTATED_KEYS[0]
