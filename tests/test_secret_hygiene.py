"""AWS keys never leak: not in answers, logs at DEBUG, reprs, errors, stored files or the emulator.

One scenario runs every route with distinctive keys (PUT, GET, POST, `_stream`, `_update` with
rotation, Bedrock faults, a timeout, validation errors that echo values, DELETE) while every
logger records at DEBUG; each test then searches one place for the keys, raw or encoded.
"""

from __future__ import annotations

import base64
import json
import logging
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from esproxy.app import create_app
from esproxy.app_keys import (
    BACKING_STORE,
    BEDROCK_CLIENTS,
    BEDROCK_ENDPOINT_URL,
    CIPHER,
    INFERENCE_SERVICE,
    SETTINGS,
    STORE,
)
from esproxy.bedrock_emulator import EmulatorSettings, create_emulator_app
from esproxy.errors import ProxyError
from esproxy.integrations.amazonbedrock.settings import read_endpoint
from esproxy.settings import load_settings
from tests.conftest import ProxyServer
from tests.user_examples import JSON_HEADERS

ACCESS_KEY, SECRET_KEY = "AKIDLEAKCHECK1234", "sEcReT/LeAk+CheCk"
NEW_ACCESS_KEY, NEW_SECRET_KEY = "AKIDLEAKROTATE5678", "rOtAtEd/SeCrEt+KeY"
WRONG_SECRET_KEY = "wRoNg/SeCrEt+KeY42"  # with ACCESS_KEY: Bedrock refuses the signature
UNKNOWN_ACCESS_KEY, UNKNOWN_SECRET_KEY = "AKIDLEAKUNKNOWN999", "uNkNoWn/SeCrEt+KeY"
KEYS = (
    ACCESS_KEY,
    SECRET_KEY,
    NEW_ACCESS_KEY,
    NEW_SECRET_KEY,
    WRONG_SECRET_KEY,
    UNKNOWN_ACCESS_KEY,
    UNKNOWN_SECRET_KEY,
)

SDK_LOGGERS = ("botocore", "aiobotocore")


def encodings(key: str) -> set[str]:
    """The key as sent and the ways it could be re-encoded on its way out."""
    raw = key.encode()
    return {
        key,
        quote(key, safe=""),
        quote_plus(key),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        json.dumps(key)[1:-1],
    }


FORBIDDEN = sorted({form for key in KEYS for form in encodings(key)})


def leaks(text: str | bytes) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return [form for form in FORBIDDEN if form in text]


def completion(access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> dict[str, Any]:
    return {
        "service": "amazonbedrock",
        "service_settings": {
            "access_key": access_key,
            "secret_key": secret_key,
            "region": "us-east-1",
            "provider": "amazontitan",
            "model": "amazon.titan-text-premier-v1:0",
        },
    }


def embeddings() -> dict[str, Any]:
    body = completion()
    body["service_settings"]["model"] = "amazon.titan-embed-text-v2:0"
    return body


def with_top(**extra: Any) -> dict[str, Any]:
    return {**completion(), **extra}


def with_service(**extra: Any) -> dict[str, Any]:
    body = completion()
    body["service_settings"].update(extra)
    return body


KEY_PAIR = {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY}
# PUT bodies that fail validation next to the keys, or with the keys in the wrong place or type.
BAD_PUTS = {
    "keys at the top level": with_top(**KEY_PAIR),
    "keys in task_settings": with_top(task_settings=KEY_PAIR),
    "keys in rate_limit": with_service(rate_limit=KEY_PAIR),
    "keys in an unknown object": with_top(extra={"nested": KEY_PAIR}),
    "keys in an unknown list": with_top(extra=[KEY_PAIR]),
    "secret in a list": with_service(secret_key=[SECRET_KEY]),
    "access key in an object": with_service(access_key={"id": ACCESS_KEY}),
    "bad provider next to keys": with_service(provider="nope"),
    "bad temperature next to keys": with_top(task_settings={"temperature": 7.5}),
    "unknown service": {**completion(), "service": "nope"},
    "only the access key": {
        "service": "amazonbedrock",
        "service_settings": {**completion()["service_settings"], "secret_key": None},
    },
    "keys in chunking_settings": {**embeddings(), "chunking_settings": KEY_PAIR},
}
BAD_UPDATES = {
    "half a pair": {"service_settings": {"access_key": NEW_ACCESS_KEY}},
    "secret in a list": {
        "service_settings": {"access_key": NEW_ACCESS_KEY, "secret_key": [NEW_SECRET_KEY]}
    },
    "keys at the top level": {"task_settings": {}, **KEY_PAIR},
    "keys in task_settings": {"task_settings": KEY_PAIR},
    "keys in rate_limit": {"service_settings": {"rate_limit": KEY_PAIR}},
    "settings not an object": {"service_settings": KEY_PAIR, "task_settings": [KEY_PAIR]},
    "task_type not a string": {"task_type": 5, "service_settings": KEY_PAIR},
    "pair Bedrock refuses": {
        "service_settings": {"access_key": NEW_ACCESS_KEY, "secret_key": WRONG_SECRET_KEY}
    },
}


@dataclass
class Run:
    """Everything the scenario left behind, for the tests to search."""

    answers: list[tuple[str, int, dict[str, str], bytes]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    records: list[logging.LogRecord] = field(default_factory=list)
    objects: list[Any] = field(default_factory=list)
    data_dir: Path | None = None
    files_while_open: dict[str, bytes] = field(default_factory=dict)
    access_log: bytes = b""


@pytest.fixture
async def emulator(aiohttp_server):
    keys = {ACCESS_KEY: SECRET_KEY, NEW_ACCESS_KEY: NEW_SECRET_KEY}
    return await aiohttp_server(create_emulator_app(EmulatorSettings(keys=keys)))


def debug_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    """Root and every logger known so far at DEBUG, so that no level set elsewhere hides one."""
    caplog.set_level(logging.DEBUG)
    for name in {"esproxy", "aiohttp", *SDK_LOGGERS, *logging.root.manager.loggerDict}:
        caplog.set_level(logging.DEBUG, logger=name)


def capture_errors(errors: list[BaseException]) -> Any:
    """A middleware inside esproxy's own: it sees each exception before it is rendered."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except BaseException as error:
            errors.append(error)
            raise

    return middleware


def read_files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file()}


class Scenario:
    """The calls, each answer kept in `run`; `emulator` takes the faults."""

    def __init__(self, client: TestClient, emulator: TestServer | None, run: Run) -> None:
        self.client = client
        self.emulator = emulator
        self.run = run

    async def call(self, label: str, method: str, path: str, body: Any = None) -> int:
        data = None if body is None else json.dumps(body)
        async with self.client.request(method, path, data=data, headers=JSON_HEADERS) as response:
            raw = await response.read()
            self.run.answers.append((label, response.status, dict(response.headers), raw))
            return response.status

    async def fault(self, **spec: Any) -> None:
        """Queue `spec` as the only fault (an empty spec just clears the queue)."""
        assert self.emulator is not None
        url = self.emulator.make_url("/_emulator/faults")
        async with self.client.session.delete(url) as response:
            assert response.status == 200, await response.text()
        if spec:
            async with self.client.session.post(url, json=spec) as response:
                assert response.status == 200, await response.text()

    async def play(self) -> None:
        call = self.call
        assert await call("put", "PUT", "/_inference/completion/chat", completion()) == 200
        assert await call("put", "PUT", "/_inference/text_embedding/vectors", embeddings()) == 200
        for path in ("/_inference", "/_inference/chat?pretty", "/_inference/_services"):
            assert await call(f"get {path}", "GET", path) == 200
        assert await call("infer", "POST", "/_inference/chat", {"input": "hello"}) == 200
        assert await call("embed", "POST", "/_inference/vectors", {"input": ["a", "b"]}) == 200
        # Unknown task settings of one call are ignored, as in ES.
        body = {"input": "hi", "task_settings": KEY_PAIR}
        assert await call("keys as task settings", "POST", "/_inference/chat", body) == 200
        assert await call("stream", "POST", "/_inference/chat/_stream", {"input": "x"}) == 200
        await self.bedrock_failures()
        await self.refused_keys()
        for label, body in BAD_PUTS.items():
            status = await call(f"put: {label}", "PUT", "/_inference/completion/bad", body)
            assert status == 400, label
        await self.rotation()

    async def delete_all(self) -> None:
        assert await self.call("delete", "DELETE", "/_inference/vectors") == 200
        assert await self.call("delete", "DELETE", "/_inference/chat?dry_run=false") == 200

    async def bedrock_failures(self) -> None:
        # esproxy retries throttling up to three times, so that fault answers four calls.
        for code, count in (
            ("AccessDeniedException", 1),
            ("ThrottlingException", 4),
            ("ValidationException", 1),
        ):
            await self.fault(code=code, operation="Converse", count=count)
            status = await self.call(code, "POST", "/_inference/chat", {"input": "x"})
            assert 400 <= status < 500, code
        await self.fault(code="ThrottlingException", after_events=2, operation="ConverseStream")
        body = {"input": "a long story"}
        assert await self.call("mid-stream", "POST", "/_inference/chat/_stream", body) == 200
        await self.fault(code="Hang", hang_ms=3000, operation="Converse")
        path = "/_inference/chat?timeout=200ms"
        assert await self.call("timeout", "POST", path, {"input": "x"}) == 429
        await self.fault(code="Hang", hang_ms=3000, operation="Converse")
        path = "/_inference/completion/slow?timeout=200ms"
        assert await self.call("put timeout", "PUT", path, completion()) == 429
        await self.fault()

    async def refused_keys(self) -> None:
        """Keys Bedrock refuses at the PUT probe: a wrong secret, then an unknown key pair."""
        for label, body in (
            ("wrong secret", completion(secret_key=WRONG_SECRET_KEY)),
            ("unknown keys", completion(UNKNOWN_ACCESS_KEY, UNKNOWN_SECRET_KEY)),
        ):
            assert await self.call(label, "PUT", "/_inference/completion/refused", body) == 400

    async def rotation(self) -> None:
        path = "/_inference/completion/chat/_update"
        pair = {"service_settings": {"access_key": NEW_ACCESS_KEY, "secret_key": NEW_SECRET_KEY}}
        assert await self.call("rotate", "PUT", path, pair) == 200
        assert await self.call("after rotation", "POST", "/_inference/chat", {"input": "x"}) == 200
        for label, body in BAD_UPDATES.items():
            status = await self.call(f"update: {label}", "PUT", path, body)
            assert status >= 400, label
        await self.fault(code="AccessDeniedException", operation="Converse")
        body = {"task_settings": {"temperature": 0.25}}
        assert await self.call("update probe refused", "PUT", path, body) == 400

    async def keep_objects(self, app: web.Application) -> None:
        """The objects that hold or handle keys, for their repr and str."""
        service = app[INFERENCE_SERVICE]
        for inference_id in ("chat", "vectors"):
            stored = await service.load_endpoint(inference_id)
            record = await app[STORE].get(inference_id)
            self.run.objects += [stored, stored.config, read_endpoint(stored), record]
        self.run.objects += [
            app[SETTINGS],
            app[CIPHER],
            app[STORE],
            app[BACKING_STORE],
            app[BEDROCK_CLIENTS],
            service,
        ]


async def start(aiohttp_client: Any, settings: Any, errors: list[BaseException]) -> TestClient:
    app = create_app(settings)
    app.middlewares.append(capture_errors(errors))
    server = ProxyServer(app)
    await server.start_server()
    client: TestClient = await aiohttp_client(server)
    return client


@pytest.fixture
async def run(aiohttp_client, settings_for, emulator, caplog, tmp_path) -> Run:
    debug_everywhere(caplog)
    result = Run(data_dir=tmp_path / "data")
    access_log = tmp_path / "access.log"
    settings = settings_for(
        result.data_dir, ESPROXY_LOG_FORMAT="json", ESPROXY_LOG_ACCESS_FILE=str(access_log)
    )
    client = await start(aiohttp_client, settings, result.errors)
    scenario = Scenario(client, emulator, result)
    await scenario.play()
    # A caller's credentials in the Authorization header and in the query string.
    headers = {**JSON_HEADERS, "Authorization": f"ApiKey {SECRET_KEY}"}
    async with client.post(
        f"/_inference/chat?api_key={quote_plus(SECRET_KEY)}", json={"input": "x"}, headers=headers
    ) as response:
        assert response.status == 400  # an unknown parameter, as in ES
        assert not leaks(await response.read())
    await scenario.keep_objects(client.server.app)
    # Read while the server runs, so that SQLite's -wal file is still there to be read.
    result.files_while_open = read_files(result.data_dir)
    await scenario.delete_all()
    await client.close()  # flushes the access log
    result.records = list(caplog.records)
    result.access_log = access_log.read_bytes()
    return result


def test_answers_never_carry_keys(run):
    assert len(run.answers) > 40
    for label, status, headers, body in run.answers:
        assert not leaks(body), (label, status, body[:500])
        assert not leaks(json.dumps(headers)), (label, status, headers)


def rendered(error: BaseException) -> str:
    parts = [repr(error), str(error), *traceback.format_exception(error)]
    if isinstance(error, ProxyError):
        parts.append(json.dumps(error.to_body(), default=str))
    return "\n".join(parts)


def test_errors_raised_inside_esproxy_never_carry_keys(run):
    assert len(run.errors) > 20
    for error in run.errors:
        assert not leaks(rendered(error)), rendered(error)


def record_texts(record: logging.LogRecord) -> Iterator[str]:
    yield record.getMessage()
    yield repr(record.args)
    if record.exc_info:
        yield "".join(traceback.format_exception(*record.exc_info))
    yield record.exc_text or ""
    yield record.stack_info or ""


def leaking_records(records: list[logging.LogRecord]) -> list[str]:
    return [
        f"{record.name} {record.levelname}: {text[:300]}"
        for record in records
        for text in record_texts(record)
        if leaks(text)
    ]


def from_sdk(record: logging.LogRecord) -> bool:
    return record.name.split(".")[0] in SDK_LOGGERS


def test_esproxy_and_aiohttp_logs_never_carry_keys_at_debug(run):
    ours = [record for record in run.records if not from_sdk(record)]
    assert {r.name.split(".")[0] for r in ours} >= {"esproxy", "aiohttp"}
    assert leaking_records(ours) == []


def test_aws_sdk_logs_never_carry_keys_at_debug(run):
    sdk = [record for record in run.records if from_sdk(record)]
    assert any(r.levelno == logging.DEBUG for r in sdk)
    assert leaking_records(sdk) == []


def test_objects_never_show_keys_in_repr_or_str(run):
    assert len(run.objects) > 10
    for thing in run.objects:
        assert not leaks(repr(thing)), repr(thing)
        assert not leaks(str(thing)), str(thing)


def test_access_log_never_carries_keys(run):
    lines = run.access_log.splitlines()
    assert len(lines) > 40
    assert all(json.loads(line)["method"] for line in lines)
    assert not leaks(run.access_log)


def test_stored_files_never_carry_keys(run):
    # The endpoints' rows are gone by now; SQLite may keep their old bytes in free pages.
    after = read_files(run.data_dir)
    assert "endpoints.sqlite3" in run.files_while_open
    assert any(name.endswith("-wal") for name in run.files_while_open)
    for name, raw in [*run.files_while_open.items(), *after.items()]:
        assert not leaks(raw), name


# Wrong types whose error text renders the whole value, keys and all.
ECHOING = {
    "service_settings in a list": (
        "PUT",
        {"service": "amazonbedrock", "service_settings": [completion()["service_settings"]]},
    ),
    "task_settings in a list": ("PUT", with_top(task_settings=[KEY_PAIR])),
    "rate_limit in a list": ("PUT", with_service(rate_limit=[KEY_PAIR])),
    "keys as the service": ("PUT", {**completion(), "service": KEY_PAIR}),
    "keys as the task type": ("PUT", {**completion(), "task_type": KEY_PAIR}),
    "keys as a temperature": ("PUT", with_top(task_settings={"temperature": KEY_PAIR})),
    "update: rate_limit in a list": ("_update", {"service_settings": {"rate_limit": [KEY_PAIR]}}),
    "update: keys as a temperature": ("_update", {"task_settings": {"temperature": KEY_PAIR}}),
    "post: keys as a temperature": ("POST", {"input": "x", "task_settings": {"top_p": KEY_PAIR}}),
}


@pytest.mark.parametrize(("route", "body"), ECHOING.values(), ids=ECHOING)
async def test_wrong_types_never_echo_keys(proxy, route, body):
    chat = await proxy.put(
        "/_inference/completion/chat", data=json.dumps(completion()), headers=JSON_HEADERS
    )
    assert chat.status == 200
    method, path = {
        "PUT": ("PUT", "/_inference/completion/echo"),
        "_update": ("PUT", "/_inference/chat/_update"),
        "POST": ("POST", "/_inference/chat"),
    }[route]
    response = await proxy.request(method, path, data=json.dumps(body), headers=JSON_HEADERS)
    assert response.status == 400
    assert not leaks(await response.text())


@pytest.mark.parametrize("name", ["access_key", "secret_key"])
async def test_parse_errors_never_echo_an_unquoted_key(proxy, name):
    text = json.dumps(completion())
    key = completion()["service_settings"][name]
    response = await proxy.put(
        "/_inference/completion/echo", data=text.replace(f'"{key}"', key), headers=JSON_HEADERS
    )
    assert response.status == 400
    assert not leaks(await response.text())


async def test_dev_emulator_request_log_never_holds_the_secret_key(aiohttp_client, tmp_path):
    # `--dev` without a Bedrock URL: esproxy starts the emulator in its own process.
    settings = load_settings(environ={"ESPROXY_DATA_DIR": str(tmp_path), "ESPROXY_DEV": "true"})
    client = await start(aiohttp_client, settings, [])
    scenario = Scenario(client, None, Run())
    assert await scenario.call("put", "PUT", "/_inference/completion/chat", completion()) == 200
    assert await scenario.call("put", "PUT", "/_inference/text_embedding/v", embeddings()) == 200
    assert await scenario.call("infer", "POST", "/_inference/chat", {"input": "x"}) == 200
    assert await scenario.call("embed", "POST", "/_inference/v", {"input": "x"}) == 200
    assert await scenario.call("stream", "POST", "/_inference/chat/_stream", {"input": "x"}) == 200
    pair = {"service_settings": {"access_key": NEW_ACCESS_KEY, "secret_key": NEW_SECRET_KEY}}
    assert await scenario.call("rotate", "PUT", "/_inference/chat/_update", pair) == 200
    assert await scenario.call("infer", "POST", "/_inference/chat", {"input": "x"}) == 200

    url = client.server.app[BEDROCK_ENDPOINT_URL] + "/_emulator/requests"
    async with client.session.get(url) as response:
        log = await response.text()
    assert len(json.loads(log)["requests"]) == 7  # 3 probes (2 PUTs, the rotation), 4 calls
    secrets = {form for key in (SECRET_KEY, NEW_SECRET_KEY) for form in encodings(key)}
    assert [form for form in secrets if form in log] == []


# Session tokens and temporary credentials: the same searches, over a scenario of their own (keys
# with a session token, its rotation, a role assumed through the emulator's STS, trust failures).
SESSION_TOKEN = "FwoGZXIvYXdzEHsessionTOKEN/leak+check=="
NEW_SESSION_TOKEN = "FwoGZXIvYXdzEHrotatedTOKEN/leak+check=="
ROLE = "arn:aws:iam::123456789012:role/hygiene"
EXTERNAL_ID = "hygiene-external-id"


def with_token(token: str = SESSION_TOKEN, **service: Any) -> dict[str, Any]:
    body = completion()
    body["service_settings"].update(session_token=token, **service)
    return body


@dataclass
class IdentityRun(Run):
    forbidden: list[str] = field(default_factory=list)

    def leaks(self, text: str | bytes) -> list[str]:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        return [form for form in self.forbidden if form in text]


class IdentityScenario(Scenario):
    async def play(self) -> None:
        call = self.call
        assert (
            await call("put with token", "PUT", "/_inference/completion/token", with_token()) == 200
        )
        assert await call("get token", "GET", "/_inference/token") == 200
        assert await call("infer token", "POST", "/_inference/token", {"input": "x"}) == 200
        assert (
            await call("stream token", "POST", "/_inference/token/_stream", {"input": "x"}) == 200
        )
        path = "/_inference/token/_update"
        rotation = {
            "service_settings": {
                "access_key": NEW_ACCESS_KEY,
                "secret_key": NEW_SECRET_KEY,
                "session_token": NEW_SESSION_TOKEN,
            }
        }
        assert await call("rotate token", "PUT", path, rotation) == 200
        for label, body in {
            "token alone": {"service_settings": {"session_token": NEW_SESSION_TOKEN}},
            "token in a list": {
                "service_settings": {
                    **rotation["service_settings"],
                    "session_token": [SESSION_TOKEN],
                }
            },
            "token in task_settings": {"task_settings": {"session_token": SESSION_TOKEN}},
        }.items():
            assert await call(f"update: {label}", "PUT", path, body) == 400, label
        for label, body in {
            "token at the top level": {**completion(), "session_token": SESSION_TOKEN},
            "token in rate_limit": with_service(rate_limit={"session_token": SESSION_TOKEN}),
            "token as a number list": with_token([SESSION_TOKEN]),  # type: ignore[arg-type]
        }.items():
            status = await call(f"put: {label}", "PUT", "/_inference/completion/bad", body)
            assert status == 400, label
        role = with_service(role_arn=ROLE, external_id=EXTERNAL_ID)
        assert await call("put role", "PUT", "/_inference/completion/role", role) == 200
        assert await call("infer role", "POST", "/_inference/role", {"input": "x"}) == 200
        assert await call("stream role", "POST", "/_inference/role/_stream", {"input": "x"}) == 200
        wrong = with_service(role_arn=ROLE, external_id="wrong-id")
        assert await call("untrusted role", "PUT", "/_inference/completion/wrong", wrong) == 400
        await self.fault(code="ExpiredTokenException", operation="Converse")
        assert await call("expired", "POST", "/_inference/token", {"input": "x"}) == 403
        await self.fault()

    async def delete_all(self) -> None:
        for inference_id in ("token", "role"):
            assert await self.call("delete", "DELETE", f"/_inference/{inference_id}") == 200

    async def keep_objects(self, app: web.Application) -> None:
        service = app[INFERENCE_SERVICE]
        for inference_id in ("token", "role"):
            stored = await service.load_endpoint(inference_id)
            typed = read_endpoint(stored)
            self.run.objects += [stored, typed, typed.identity, await app[STORE].get(inference_id)]
        credentials = app[BEDROCK_CLIENTS].credentials
        held = await credentials.held_for(
            read_endpoint(await service.load_endpoint("role")).identity, "us-east-1"
        )
        self.run.objects += [
            app[BEDROCK_CLIENTS],
            credentials,
            held,  # (botocore's ReadOnlyCredentials, which it hands the signer, shows all)
        ]


@pytest.fixture
async def identity_run(
    aiohttp_server, aiohttp_client, settings_for, caplog, tmp_path, monkeypatch
) -> IdentityRun:
    from esproxy.bedrock_emulator import create_sts_app
    from esproxy.bedrock_emulator.state import EMULATOR_STATE
    from tests.integrations.amazonbedrock.identity_support import isolate_aws_environment

    keys = {ACCESS_KEY: SECRET_KEY, NEW_ACCESS_KEY: NEW_SECRET_KEY}
    settings = EmulatorSettings(keys=keys, roles={ROLE: EXTERNAL_ID})
    emulator = await aiohttp_server(create_emulator_app(settings))
    sts = await aiohttp_server(create_sts_app(emulator.app))
    isolate_aws_environment(monkeypatch, tmp_path, str(sts.make_url("")).rstrip("/"))
    debug_everywhere(caplog)
    result = IdentityRun(data_dir=tmp_path / "data")
    data_dir = tmp_path / "data"
    environ = {"ESPROXY_BEDROCK_ENDPOINT_URL": str(emulator.make_url("")).rstrip("/")}
    client = await start(aiohttp_client, settings_for(data_dir, **environ), result.errors)
    scenario = IdentityScenario(client, emulator, result)
    await scenario.play()
    await scenario.keep_objects(client.server.app)
    result.files_while_open = read_files(data_dir)
    await scenario.delete_all()
    await client.close()
    result.records = list(caplog.records)
    issued = emulator.app[EMULATOR_STATE].identities.issued()
    assert issued, "the role was never assumed"
    secrets = [*KEYS, SESSION_TOKEN, NEW_SESSION_TOKEN]
    for granted in issued:
        secrets += [granted.access_key, granted.secret_key, granted.session_token]
    result.forbidden = sorted({form for secret in secrets for form in encodings(secret)})
    return result


def test_session_tokens_and_temporary_credentials_never_reach_answers(identity_run):
    assert len(identity_run.answers) > 15
    for label, status, headers, body in identity_run.answers:
        assert not identity_run.leaks(body), (label, status, body[:500])
        assert not identity_run.leaks(json.dumps(headers)), (label, status, headers)


def test_session_tokens_and_temporary_credentials_never_reach_errors(identity_run):
    assert len(identity_run.errors) > 5
    for error in identity_run.errors:
        assert not identity_run.leaks(rendered(error)), rendered(error)


def test_session_tokens_and_temporary_credentials_never_reach_logs_at_debug(identity_run):
    assert any(from_sdk(r) for r in identity_run.records)
    leaking = [
        f"{record.name} {record.levelname}: {text[:300]}"
        for record in identity_run.records
        for text in record_texts(record)
        if identity_run.leaks(text)
    ]
    assert leaking == []


def test_session_tokens_and_temporary_credentials_never_show_in_reprs(identity_run):
    assert len(identity_run.objects) > 8
    for thing in identity_run.objects:
        assert not identity_run.leaks(repr(thing)), repr(thing)
        assert not identity_run.leaks(str(thing)), str(thing)


def test_session_tokens_never_reach_stored_files(identity_run):
    for name, raw in [
        *identity_run.files_while_open.items(),
        *read_files(identity_run.data_dir).items(),
    ]:
        assert not identity_run.leaks(raw), name
