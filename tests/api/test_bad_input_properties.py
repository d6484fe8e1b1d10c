"""Property tests over HTTP: whatever reaches `_inference`, esproxy answers like Elasticsearch.

Each answer is a 4xx with ES's error body (or a 2xx of the right shape, when a generated input
happens to be valid), never a 5xx, and always carries `X-Elastic-Product`. A request that fails
stores nothing: `GET /_inference` reads the same afterwards.

Inputs that once crashed esproxy are pinned, one class each, as regression tests at the end of
this file.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDictProxy
from yarl import URL

from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION, TITAN_EMBEDDINGS

# One proxy serves every example of a test, so examples must leave its store as they found it.
PROPERTY = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def with_rate(example: dict[str, Any]) -> dict[str, Any]:
    """The user's example with a generous rate, so valid calls never wait for the limiter."""
    body = json.loads(json.dumps(example))
    body["service_settings"]["rate_limit"] = {"requests_per_minute": 60_000}
    return body


# The endpoints every example may use; `probe` is the id PUTs try to create.
FIXTURES = {
    "chat": ("completion", with_rate(TITAN_COMPLETION)),
    "vectors": ("text_embedding", with_rate(TITAN_EMBEDDINGS)),
}
EXAMPLES = {"completion": TITAN_COMPLETION, "text_embedding": TITAN_EMBEDDINGS}
SECRET_NAMES = frozenset({"access_key", "secret_key"})


@dataclass(frozen=True)
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class World:
    """A proxy holding the fixture endpoints, and the checks every answer must pass."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.baseline: Any = None

    async def send(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """`target` goes out byte for byte, so percent-encoded junk reaches the server as is."""
        base = self.client.make_url("/")
        url = URL(f"{base.scheme}://{base.host}:{base.port}{target}", encoded=True)
        headers = {} if headers is None else headers
        # aiohttp would add a Content-Type of its own; a request without one must stay without.
        skip = [] if "Content-Type" in headers else ["Content-Type"]
        async with self.client.session.request(
            method, url, data=body, headers=headers, skip_auto_headers=skip
        ) as response:
            return Answer(response.status, response.headers, await response.read())

    async def listing(self) -> Any:
        answer = await self.send("GET", "/_inference")
        assert answer.status == 200, answer.body
        return json.loads(answer.body)

    async def put_fixture(self, inference_id: str) -> None:
        task_type, body = FIXTURES[inference_id]
        target = f"/_inference/{task_type}/{inference_id}"
        answer = await self.send("PUT", target, json.dumps(body).encode(), JSON_HEADERS)
        assert answer.status == 200, answer.body

    async def create_fixtures(self) -> None:
        for inference_id in FIXTURES:
            await self.put_fixture(inference_id)
        self.baseline = await self.listing()

    async def check(self, method: str, target: str, answer: Answer) -> None:
        """Every property of one answer, then the store: unchanged after any failure."""
        where = f"{method} {target[:200]} -> {answer.status} {answer.body[:600]!r}"
        assert 200 <= answer.status < 500, where
        assert answer.headers.get("X-Elastic-Product") == "Elasticsearch", where
        if answer.status == 405:
            # ES lists the methods the path does take, which never include the one just refused.
            assert method not in answer.headers["Allow"].split(","), where
        if method != "HEAD":
            document = read_document(answer)
            if answer.status >= 400:
                assert_es_error(document, answer.status, where)
            else:
                assert_success(method, target, document, where)
        if answer.status >= 400:
            assert await self.listing() == self.baseline, f"stored after {where}"
        else:
            await self.restore()

    async def restore(self) -> None:
        """Undo what a successful request changed: new endpoints go, fixtures come back."""
        before = {e["inference_id"]: e for e in self.baseline["endpoints"]}
        for endpoint in (await self.listing())["endpoints"]:
            if before.get(endpoint["inference_id"]) != endpoint:
                answer = await self.send("DELETE", f"/_inference/{endpoint['inference_id']}")
                assert answer.status == 200, answer.body
        held = {e["inference_id"] for e in (await self.listing())["endpoints"]}
        for inference_id in FIXTURES.keys() - held:
            await self.put_fixture(inference_id)
        assert await self.listing() == self.baseline


@pytest.fixture
async def world(proxy) -> World:
    world = World(proxy)
    await world.create_fixtures()
    return world


def read_document(answer: Answer) -> Any:
    """The JSON of an answer; a `_stream` answer's events as (event, data) pairs."""
    content_type = answer.headers.get("Content-Type", "")
    if content_type == "text/event-stream":
        return parse_events(answer.body)
    if content_type == "application/yaml" or content_type.startswith(
        "application/vnd.elasticsearch+yaml;compatible-with="
    ):
        # Asked for with `Accept: application/yaml`, as ES answers it.
        return yaml.safe_load(answer.body)
    assert content_type == "application/json" or content_type.startswith(
        "application/vnd.elasticsearch+json;compatible-with="
    ), content_type
    return json.loads(answer.body)


def parse_events(raw: bytes) -> list[tuple[str, Any]]:
    events = []
    for block in raw.decode().split("\n\n")[:-1]:
        assert block.startswith("\ufeffevent: "), block
        event, data = block.removeprefix("\ufeffevent: ").split("\ndata: ")
        events.append((event, data if data == "[DONE]" else json.loads(data)))
    return events


# The answers ES gives as a bare string, before any handler runs.
PLAIN_ERRORS = (
    "no handler found for uri [",
    "Incorrect HTTP method for uri [",
    "Content-Type header ",
    "Unsupported Content-Encoding [",
    "Request body is too large",
)


def assert_es_error(document: Any, status: int, where: str) -> None:
    """ES's `{"error": {root_cause, type, reason}, "status"}`, or its plain-string form."""
    if isinstance(document, list):  # a `_stream` error: exactly one error event
        assert [event for event, _ in document] == ["error"], where
        document = document[0][1]
    assert isinstance(document, dict) and set(document) == {"error", "status"}, where
    assert document["status"] == status, where
    error = document["error"]
    if isinstance(error, str):
        assert error.startswith(PLAIN_ERRORS), where
        return
    assert isinstance(error.get("type"), str) and error["type"], where
    assert isinstance(error.get("reason"), str), where
    causes = error.get("root_cause")
    assert isinstance(causes, list) and causes, where
    for cause in causes:
        assert isinstance(cause.get("type"), str) and isinstance(cause.get("reason"), str), where


def assert_config(config: Any, where: str) -> None:
    assert isinstance(config, dict), where
    assert list(config)[:4] == ["inference_id", "task_type", "service", "service_settings"], where
    assert config["service"] == "amazonbedrock", where
    assert config["task_type"] in ("completion", "text_embedding"), where
    assert not SECRET_NAMES & set(config["service_settings"]), where


def assert_success(method: str, target: str, document: Any, where: str) -> None:
    """The 2xx shape each route has."""
    segments = target.split("?")[0].strip("/").split("/")
    query = target.partition("?")[2]
    if "filter_path=" in query and segments[-1] != "_stream":
        # ES's response filtering may leave any part of the shape out, even all of it.
        assert isinstance(document, dict | list), where
        return
    if segments[-1] == "_stream":
        assert document and document[-1] == ("message", "[DONE]"), where
        assert all("completion" in data for _, data in document[:-1]), where
    elif len(segments) > 1 and segments[1] == "_services":
        assert isinstance(document, list), where
    elif method == "GET":
        assert set(document) == {"endpoints"}, where
        for config in document["endpoints"]:
            assert_config(config, where)
    elif method == "PUT":
        assert_config(document, where)
    elif method == "POST":
        [(kind, results)] = document.items()
        assert kind in ("completion", "text_embedding") and results, where
    elif method == "DELETE":
        assert document["pipelines"] == [] and document["indexes"] == [], where
        assert isinstance(document["acknowledged"], bool), where
    else:
        raise AssertionError(f"unexpected success: {where}")


# --- JSON values -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """JSON text written as is: NaN, Infinity and other tokens `json.dumps` will not write."""

    text: str


class Pairs(list[tuple[str, Any]]):
    """A JSON object whose keys may repeat."""


def render(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        value = Pairs(value.items())
    if isinstance(value, Pairs):
        return "{" + ", ".join(f"{json.dumps(k)}: {render(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(render(item) for item in value) + "]"
    return json.dumps(value)


KNOWN_KEYS = (
    "service", "task_type", "service_settings", "task_settings", "chunking_settings", "input",
    "input_type", "query", "return_documents", "top_n", "timeout", "region", "model", "provider",
    "access_key", "secret_key", "rate_limit", "requests_per_minute", "dimensions",
    "max_input_tokens", "similarity", "dimensions_set_by_user", "temperature", "top_p", "top_k",
    "max_new_tokens", "truncate", "strategy", "max_chunk_size", "overlap", "sentence_overlap",
    "separator_group", "separators",
)  # fmt: skip
names = st.sampled_from(KNOWN_KEYS) | st.text(max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["amazonbedrock", "completion", "text_embedding", "amazontitan", "cohere"])
)
# Nesting stays shallow here for speed; deep nesting has its own tests below.
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=5),
    max_leaves=20,
)  # fmt: skip
RAW_TOKENS = (
    "NaN", "-NaN", "Infinity", "-Infinity", "+1", "01", "1.", ".5", "0x1F", "1e999", "-1e999",
    "1e-999", "undefined", "nul", "True", "'single'", "1_000", "[1,]", '{"a": 1,}', "/* c */ 1",
    "9" * 5000, "-" + "1" * 4400 + ".5", '"\\x41"', '"\\u12"', '"tab\there"',
)  # fmt: skip
huge_values = st.one_of(
    st.sampled_from([10**30, -(10**30), 2**31, 2**63, -(2**63) - 1, 10**4000, 1e308, 5e-324, -0.0]),
    st.integers(min_value=1_000, max_value=400_000).map(lambda n: "x" * n),
    st.integers(min_value=1_000, max_value=50_000).map(lambda n: ["x"] * n),
)
wrong_values = json_values | huge_values | st.sampled_from(RAW_TOKENS).map(Raw)

# --- bodies mutated from the user's examples ------------------------------------------------

Path = tuple[str, ...]
PUT_FIELDS: tuple[Path, ...] = (
    ("service",), ("task_type",), ("service_settings",), ("task_settings",),
    ("service_settings", "region"), ("service_settings", "model"),
    ("service_settings", "provider"), ("service_settings", "access_key"),
    ("service_settings", "secret_key"), ("service_settings", "rate_limit"),
    ("service_settings", "rate_limit", "requests_per_minute"),
    ("task_settings", "temperature"), ("task_settings", "top_p"), ("task_settings", "top_k"),
    ("task_settings", "max_new_tokens"), ("task_settings", "truncate"),
    ("service_settings", "dimensions"), ("service_settings", "max_input_tokens"),
    ("service_settings", "similarity"), ("service_settings", "dimensions_set_by_user"),
    ("chunking_settings",), ("chunking_settings", "strategy"),
    ("chunking_settings", "max_chunk_size"), ("chunking_settings", "overlap"),
    ("chunking_settings", "sentence_overlap"),
)  # fmt: skip
UPDATE_FIELDS: tuple[Path, ...] = (
    ("task_type",), ("service_settings",), ("task_settings",), ("service_settings", "rate_limit"),
    ("service_settings", "rate_limit", "requests_per_minute"),
    ("service_settings", "access_key"), ("service_settings", "secret_key"),
    ("service_settings", "max_input_tokens"), ("service_settings", "model"),
    ("task_settings", "temperature"), ("task_settings", "top_p"),
    ("task_settings", "max_new_tokens"), ("task_settings", "truncate"),
)  # fmt: skip
UPDATE_BASE = {
    "service_settings": {"rate_limit": {"requests_per_minute": 60_000}},
    "task_settings": {"temperature": 0.5},
}


def set_at(body: dict[str, Any], path: Path, value: Any) -> None:
    node = body
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value


def dict_paths(value: Any, path: Path = ()) -> list[Path]:
    if not isinstance(value, dict):
        return []
    return [path] + [p for key, item in value.items() for p in dict_paths(item, (*path, key))]


def node_at(body: dict[str, Any], path: Path) -> dict[str, Any]:
    for key in path:
        body = body[key]
    return body


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any], fields: tuple[Path, ...]) -> str:
    """`base` after 1-3 mutations: wrong types, extra or missing keys, huge or raw values, and
    last, perhaps, a duplicated key. Returns the JSON text."""
    body = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        kind = draw(st.sampled_from(["wrong", "wrong", "wrong", "extra", "extra", "drop"]))
        if kind == "wrong":
            set_at(body, draw(st.sampled_from(fields)), draw(wrong_values))
        elif kind == "extra":
            path = draw(st.sampled_from(dict_paths(body)))
            set_at(body, (*path, draw(st.text(min_size=1, max_size=40))), draw(json_values))
        else:
            path = draw(st.sampled_from(dict_paths(body)))
            node = node_at(body, path)
            if node:
                del node[draw(st.sampled_from(sorted(node)))]
    text = render(body)
    if draw(st.integers(min_value=0, max_value=4)) == 0:
        path = draw(st.sampled_from(dict_paths(body)))
        node = node_at(body, path)
        if node:
            key = draw(st.sampled_from(sorted(node)))
            twin = Pairs([*node.items(), (key, draw(json_values))])
            text = render(replace_node(body, path, twin))
    return text


def replace_node(body: dict[str, Any], path: Path, value: Any) -> Any:
    if not path:
        return value
    return {**body, path[0]: replace_node(body[path[0]], path[1:], value)}


# --- the routes --------------------------------------------------------------------------------

# Routes that read a body, with a body that is valid there.
BODY_ROUTES = (
    ("PUT", "/_inference/completion/probe", render(TITAN_COMPLETION)),
    ("PUT", "/_inference/text_embedding/probe", render(TITAN_EMBEDDINGS)),
    ("PUT", "/_inference/probe", render({**TITAN_COMPLETION, "task_type": "completion"})),
    ("POST", "/_inference/chat", '{"input": "hello"}'),
    ("POST", "/_inference/completion/chat", '{"input": ["hello", "again"]}'),
    ("POST", "/_inference/vectors", '{"input": "hello"}'),
    ("POST", "/_inference/text_embedding/vectors", '{"input": ["a"], "input_type": "search"}'),
    ("POST", "/_inference/chat/_stream", '{"input": "hello"}'),
    ("POST", "/_inference/completion/chat/_stream", '{"input": "hello"}'),
    ("PUT", "/_inference/chat/_update", '{"task_settings": {"temperature": 0.5}}'),
    ("PUT", "/_inference/completion/chat/_update", '{"task_settings": {}}'),
    ("PUT", "/_inference/text_embedding/vectors/_update", '{"task_settings": {}}'),
)
body_routes = st.sampled_from(BODY_ROUTES)


@PROPERTY
@given(route=body_routes, body=st.dictionaries(names, json_values, max_size=6) | json_values)
async def test_any_json_value_as_a_body(world, route, body):
    method, target, _ = route
    answer = await world.send(method, target, json.dumps(body).encode(), JSON_HEADERS)
    await world.check(method, target, answer)


@PROPERTY
@given(
    route=st.sampled_from(["/_inference/completion/probe", "/_inference/probe"]),
    task_type=st.sampled_from(["completion", "text_embedding"]),
    data=st.data(),
)
async def test_put_bodies_mutated_from_the_user_examples(world, route, task_type, data):
    base = {**EXAMPLES[task_type], "task_type": task_type}
    if route == "/_inference/completion/probe":
        route = f"/_inference/{task_type}/probe"
        base = EXAMPLES[task_type]
    text = data.draw(mutated(base, PUT_FIELDS))
    answer = await world.send("PUT", route, text.encode(), JSON_HEADERS)
    await world.check("PUT", route, answer)


@PROPERTY
@given(
    target=st.sampled_from(
        ["/_inference/chat/_update", "/_inference/completion/chat/_update",
         "/_inference/vectors/_update"]
    ),
    data=st.data(),
)  # fmt: skip
async def test_update_bodies_mutated_from_a_valid_update(world, target, data):
    text = data.draw(mutated(UPDATE_BASE, UPDATE_FIELDS))
    answer = await world.send("PUT", target, text.encode(), JSON_HEADERS)
    await world.check("PUT", target, answer)


BAD_UTF8 = (
    b"\xff", b"\xfe", b"\x80", b"\xc3", b"\xc3(", b"\xe2\x82", b"\xe2\x28\xa1", b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80",
)  # fmt: skip


@PROPERTY
@given(route=body_routes, bad=st.sampled_from(BAD_UTF8), data=st.data())
async def test_invalid_utf8_anywhere_in_a_body_is_a_400(world, route, bad, data):
    method, target, text = route
    raw = text.encode()
    at = data.draw(st.integers(min_value=0, max_value=len(raw)))
    answer = await world.send(method, target, raw[:at] + bad + raw[at:], JSON_HEADERS)
    await world.check(method, target, answer)
    assert answer.status == 400


# --- headers -----------------------------------------------------------------------------------

printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
versions = st.integers(min_value=-3, max_value=12).map(str) | st.text(
    '0123456789abc -"', max_size=6
)
media_types = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/json", "application/json; charset=UTF-8", "APPLICATION/JSON",
            "text/plain", "application/x-ndjson", "application/yaml", "application/cbor",
            "application/smile", "*/*", "", " ", ";", "application/vnd.elasticsearch+json",
            "application/vnd.elasticsearch+json;compatible-with=8, application/json",
            "application/vnd.elasticsearch+x-ndjson; compatible-with=9",
            "application/vnd.elasticsearch+yaml; compatible-with=9",
        ]
    ),
    versions.map(lambda v: f"application/vnd.elasticsearch+json; compatible-with={v}"),
    st.tuples(versions, versions).map(
        lambda vs: "application/vnd.elasticsearch+json; compatible-with={}; compatible-with={}"
        .format(*vs)
    ),
    printable,
)  # fmt: skip
HEADER_ROUTES = (
    ("GET", "/_inference", None),
    ("GET", "/_inference/chat", None),
    ("GET", "/_inference/_services", None),
    ("DELETE", "/_inference/nope", None),
    ("POST", "/_inference/nope", '{"input": "x"}'),
    *BODY_ROUTES,
)


@PROPERTY
@given(route=st.sampled_from(HEADER_ROUTES), accept=media_types, content_type=media_types)
async def test_odd_accept_and_content_type_headers(world, route, accept, content_type):
    method, target, text = route
    headers = {
        name: value
        for name, value in (("Accept", accept), ("Content-Type", content_type))
        if value is not None
    }
    answer = await world.send(method, target, None if text is None else text.encode(), headers)
    await world.check(method, target, answer)


# --- content encodings -------------------------------------------------------------------------


@st.composite
def encoded_bodies(draw: st.DrawFn, text: str) -> tuple[str, bytes, int | None]:
    """(Content-Encoding, body, the status it must get or None when it may still be valid)."""
    raw = text.encode()
    zipped = gzip.compress(raw)
    kind = draw(
        st.sampled_from(["truncated", "corrupt", "garbage", "raw-deflate", "unknown", "twice"])
    )
    if kind == "truncated":
        return "gzip", zipped[: draw(st.integers(min_value=0, max_value=len(zipped) - 1))], 400
    if kind == "corrupt":
        at = draw(st.integers(min_value=0, max_value=len(zipped) - 1))
        flip = draw(st.integers(min_value=1, max_value=255))
        return "gzip", zipped[:at] + bytes([zipped[at] ^ flip]) + zipped[at + 1 :], None
    if kind == "garbage":
        junk = draw(st.binary(min_size=1, max_size=200))
        return draw(st.sampled_from(["gzip", "x-gzip", "deflate"])), junk, None
    if kind == "raw-deflate":
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        return (
            draw(st.sampled_from(["gzip", "deflate"])),
            packer.compress(raw) + packer.flush(),
            400,
        )
    if kind == "twice":
        # Decoded once, as the header says: what remains is gzip, not JSON.
        return "gzip", gzip.compress(zipped), 400
    name = draw(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1))
    assume(name.strip().lower() not in ("gzip", "x-gzip", "deflate", "identity"))
    return name, raw, 415


@PROPERTY
@given(route=body_routes, data=st.data())
async def test_truncated_corrupt_and_unknown_content_encodings(world, route, data):
    method, target, text = route
    encoding, body, status = data.draw(encoded_bodies(text))
    headers = {**JSON_HEADERS, "Content-Encoding": encoding}
    answer = await world.send(method, target, body, headers)
    await world.check(method, target, answer)
    if status is not None:
        assert answer.status == status, answer.body


# --- paths and query strings -------------------------------------------------------------------

segments = st.one_of(
    st.sampled_from(
        [
            "completion", "text_embedding", "sparse_embedding", "rerank", "chat_completion",
            "any", "ANY", "Completion", "_all", "*", "_stream", "_update", "_services", ".",
            "..", "%", "%zz", "%00", "%2F", "%2e%2e", "%ff%fe", "%C3%A9", "%0D", "chat",
            "vectors", "nope", "probe", "a%20b", "-", "_", "a.b", "UPPER", "x" * 255,
        ]
    ),
    st.text(min_size=1, max_size=30).map(lambda s: quote(s, safe="")),
    st.binary(min_size=1, max_size=20).map(lambda b: quote(b, safe="")),
    st.integers(min_value=256, max_value=3_000).map(lambda n: "a" * n),
    st.sampled_from(["", "%0A", "%7B", "a%7Db"]),
)  # fmt: skip
METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS")


def valid_body(method: str, parts: list[str]) -> str | None:
    if method == "POST":
        return '{"input": "hello"}'
    if method == "PUT":
        return '{"task_settings": {}}' if parts[-1] == "_update" else render(TITAN_COMPLETION)
    return None


@PROPERTY
@given(method=st.sampled_from(METHODS), parts=st.lists(segments, min_size=1, max_size=4))
async def test_random_path_segments(world, method, parts):
    target = "/_inference/" + "/".join(parts)
    body = valid_body(method, parts)
    headers = JSON_HEADERS if body is not None else {}
    answer = await world.send(method, target, None if body is None else body.encode(), headers)
    await world.check(method, target, answer)


PARAM_NAMES = st.sampled_from(
    ["timeout", "dry_run", "force", "pretty", "human", "error_trace", "filter_path", "task_type",
     "inference_id", "timout", "TIMEOUT", "dryrun", ""]
) | st.text(max_size=15)  # fmt: skip
PARAM_VALUES = st.sampled_from(
    ["", "abc", "maybe", "true", "false", "TRUE", "1", "0", "-1", "-2", "1s", "30s", "1.5s",
     "10ms", "1nanos", "0s", "99999999999999999999s", "9223372036854775807d",
     "-9223372036854775808s", "1m", "1M", "1h", "5 s", " 5s", "5S", "NaN", "1e3s", "0x10s",
     "\u00a05s", "%"]
) | st.text(max_size=20)  # fmt: skip
QUERY_ROUTES = (
    ("GET", "/_inference", None),
    ("GET", "/_inference/chat", None),
    ("GET", "/_inference/completion/_all", None),
    ("GET", "/_inference/_services/completion", None),
    ("DELETE", "/_inference/chat", None),
    ("DELETE", "/_inference/nope", None),
    *BODY_ROUTES,
)


def query_part(name: str, value: str | None) -> str:
    key = quote(name, safe="")
    return key if value is None else f"{key}={quote(value, safe='')}"


@PROPERTY
@given(
    route=st.sampled_from(QUERY_ROUTES),
    params=st.lists(st.tuples(PARAM_NAMES, st.none() | PARAM_VALUES), min_size=1, max_size=4),
)
async def test_random_query_parameters(world, route, params):
    method, target, text = route
    target += "?" + "&".join(query_part(name, value) for name, value in params)
    headers = {} if text is None else JSON_HEADERS
    answer = await world.send(method, target, None if text is None else text.encode(), headers)
    await world.check(method, target, answer)


# --- inputs that once crashed esproxy: each asserts the correct answer -------------------------


def deep(levels: int, kind: str = "array") -> str:
    if kind == "array":
        return "[" * levels + "]" * levels
    return '{"a": ' * levels + "1" + "}" * levels


async def assert_rejected(world: World, method: str, target: str, body: bytes) -> None:
    answer = await world.send(method, target, body, JSON_HEADERS)
    await world.check(method, target, answer)
    assert 400 <= answer.status < 500


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("PUT", "/_inference/completion/probe", '{"service": "amazonbedrock", "x": %s}'),
        ("POST", "/_inference/chat", '{"input": %s}'),
        ("POST", "/_inference/chat/_stream", '{"input": %s}'),
        ("PUT", "/_inference/chat/_update", '{"task_settings": {"temperature": %s}}'),
    ],
    ids=["put", "post", "stream", "update"],
)
async def test_ten_thousand_levels_of_nesting_are_a_400(world, method, target, body):
    # ES's Jackson stops at depth 1000 with a parse error (400).
    await assert_rejected(world, method, target, (body % deep(10_000)).encode())


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("PUT", "/_inference/completion/probe", render({**TITAN_COMPLETION, "x": Raw(deep(300))})),
        (
            "PUT",
            "/_inference/completion/probe",
            render({**TITAN_COMPLETION, "service_settings": {"region": Raw(deep(300, "o"))}}),
        ),
        ("PUT", "/_inference/chat/_update", render({"x": Raw(deep(300))})),
    ],
    ids=["put-unknown-key", "put-wrong-type", "update-unknown-key"],
)  # fmt: skip
async def test_three_hundred_levels_in_an_echoed_value_are_a_400(world, method, target, body):
    await assert_rejected(world, method, target, body.encode())


LONE = "\ud800"  # json.dumps writes it as the escape `\\ud800`, which json.loads reads back


LONE_KEYS = {"access_key": LONE, "secret_key": "x"}


def example_with(**service: str) -> dict[str, Any]:
    body = json.loads(json.dumps(TITAN_COMPLETION))
    body["service_settings"].update(service)
    return body


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("PUT", "/_inference/completion/probe", example_with(region=LONE)),
        ("PUT", "/_inference/completion/probe", example_with(model=LONE)),
        ("PUT", "/_inference/completion/probe", example_with(provider=LONE)),
        ("PUT", "/_inference/completion/probe", example_with(access_key=LONE)),
        ("PUT", "/_inference/completion/probe", example_with(secret_key=LONE)),
        ("PUT", "/_inference/completion/probe", {**TITAN_COMPLETION, "service": LONE}),
        ("PUT", "/_inference/completion/probe", {**TITAN_COMPLETION, "x": LONE}),
        ("PUT", "/_inference/completion/probe", {**TITAN_COMPLETION, LONE: 1}),
        ("POST", "/_inference/vectors", {"input": LONE}),
        ("POST", "/_inference/chat", {"input": LONE}),
        ("POST", "/_inference/chat", {"input": "x", "timeout": LONE}),
        ("POST", "/_inference/chat/_stream", {"input": LONE}),
        ("PUT", "/_inference/chat/_update", {LONE: 1}),
        ("PUT", "/_inference/chat/_update", {"task_type": LONE}),
        ("PUT", "/_inference/chat/_update", {"service_settings": LONE_KEYS}),
    ],
    ids=[
        "put-region", "put-model", "put-provider", "put-access-key", "put-secret-key",
        "put-service", "put-unknown-value", "put-unknown-key", "post-embedding-input",
        "post-completion-input", "post-timeout", "stream-input", "update-unknown-key",
        "update-task-type", "update-keys",
    ],
)  # fmt: skip
async def test_lone_surrogate_escapes_are_not_a_500(world, method, target, body):
    answer = await world.send(method, target, json.dumps(body).encode(), JSON_HEADERS)
    await world.check(method, target, answer)


@pytest.mark.parametrize("header", ["Accept", "Content-Type"])
async def test_a_huge_compatible_with_version_is_a_400(world, header):
    headers = {
        **JSON_HEADERS,
        header: "application/vnd.elasticsearch+json; compatible-with=" + "9" * 4_400,
    }
    answer = await world.send(
        "PUT", "/_inference/completion/probe", render(TITAN_COMPLETION).encode(), headers
    )
    await world.check("PUT", "/_inference/completion/probe", answer)
    assert answer.status == 400


async def test_an_id_too_long_for_the_request_line_gets_an_es_error(world):
    target = "/_inference/" + "a" * 9_000
    answer = await world.send("GET", target)
    await world.check("GET", target, answer)


@pytest.mark.parametrize("task_type", ["null", "5", '["completion"]', '{"a": 1}'])
async def test_update_with_a_task_type_that_is_not_a_string_is_a_4xx(world, task_type):
    body = render({"task_type": Raw(task_type), "task_settings": {"temperature": 0.5}})
    await assert_rejected(world, "PUT", "/_inference/chat/_update", body.encode())


@pytest.mark.parametrize("target", ["/_inference//%0A", "/_inference/a/b/c/%0A"])
async def test_an_encoded_newline_in_an_unknown_path_is_no_handler_found(world, target):
    answer = await world.send("GET", target)
    await world.check("GET", target, answer)
    assert answer.status == 400


@pytest.mark.parametrize(
    "target",
    ["/_inference//", "/_inference/chat//", "/_inference/%7B", "/_inference/completion/a%7Db"],
)
async def test_odd_paths_never_refuse_an_allowed_method(world, target):
    answer = await world.send("GET", target)
    await world.check("GET", target, answer)


@pytest.mark.parametrize(
    ("where", "error_type"),
    [("id", "too_long_http_line_exception"), ("header", "too_long_http_header_exception")],
    ids=["id", "header"],
)
async def test_a_request_past_every_line_limit_gets_an_es_error(world, where, error_type):
    # Past aiohttp's 64 KiB a line, as past ES's own limits (4 KiB a line, 16 KiB of headers).
    target, headers = "/_inference/chat", {}
    if where == "id":
        target = "/_inference/" + "a" * 70_000
    else:
        headers = {"Accept": "application/json;" + "x" * 70_000}
    answer = await world.send("GET", target, headers=headers)
    await world.check("GET", target, answer)
    assert answer.status == 400
    assert json.loads(answer.body)["error"]["type"] == error_type
