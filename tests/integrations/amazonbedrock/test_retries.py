"""Retries of Bedrock calls against the emulator over a real socket, with real aiobotocore.

Backoff draws and sleeps are recorded instead of slept, except where a deadline has to cut a sleep.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from esproxy.bedrock_emulator import EmulatorSettings, create_emulator_app
from esproxy.errors import ProviderError, ProviderUnavailable
from esproxy.inference.models import CompletionResult, InferenceRequest, TaskType
from esproxy.inference.rate_limits import RateLimit, RateLimiters, deadline_at
from esproxy.integrations.amazonbedrock.client import BedrockClients
from esproxy.integrations.amazonbedrock.integration import AmazonBedrockIntegration
from esproxy.integrations.amazonbedrock.retries import RetryPolicy
from tests.emulator_control import add_fault, recorded

ACCESS_KEY = "AKIDRETRYTEST"
SECRET_KEY = "retry-test-secret"
TITAN = "amazon.titan-embed-text-v2:0"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
HELLO = InferenceRequest(inputs=["Hello"])


@dataclass(frozen=True)
class Keys:
    region: str = "us-east-1"
    access_key: str = ACCESS_KEY
    secret_key: str = field(default=SECRET_KEY, repr=False)


class Sleeps:
    """Records each backoff instead of sleeping it."""

    def __init__(self):
        self.delays = []

    async def __call__(self, delay):
        self.delays.append(delay)
        await asyncio.sleep(0)


class Slots:
    """Real rate-limit slots that note how many calls the emulator had seen at each entry."""

    def __init__(self, emulator):
        self.emulator = emulator
        self.limiters = RateLimiters()
        self.calls_seen = []

    @asynccontextmanager
    async def __call__(self, tokens=0):
        async with self.limiters.slot(RateLimit("amazonbedrock/retries", 60_000), tokens):
            self.calls_seen.append(len(await recorded(self.emulator)))
            yield


def add_retry_after(app, value):
    """Make the emulator send Retry-After with its 429s, as Bedrock may."""

    async def add(request, response):
        if response.status == 429:
            response.headers["Retry-After"] = value

    app.on_response_prepare.append(add)


@pytest.fixture
def start_emulator(aiohttp_server):
    async def start(retry_after=None):
        app = create_emulator_app(EmulatorSettings(keys={ACCESS_KEY: SECRET_KEY}))
        if retry_after is not None:
            add_retry_after(app, retry_after)
        return await aiohttp_server(app)

    return start


@pytest.fixture
async def emulator(start_emulator):
    return await start_emulator()


@pytest.fixture
async def make_integration():
    """An integration on its own clients: `await make(emulator, clients=..., **policy)`."""
    opened = []

    async def make(emulator, clients=None, **policy):
        if clients is None:
            clients = BedrockClients(endpoint_url=str(emulator.make_url("")).rstrip("/"))
        opened.append(clients)
        # Opened up front: loading botocore's models would eat into the tests' short deadlines.
        await clients.client_for(Keys())
        policy = {"jitter": lambda: 0.5, "sleep": Sleeps(), **policy}
        return AmazonBedrockIntegration(clients, RetryPolicy(**policy)), policy["sleep"]

    yield make
    for clients in opened:
        await clients.close()


def endpoint(integration, task_type, provider, model):
    body = {
        "service": "amazonbedrock",
        "service_settings": {
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "region": "us-east-1",
            "provider": provider,
            "model": model,
        },
    }
    return integration.parse_request(f"{provider}-{task_type}", TaskType(task_type), body)


def titan(integration):
    return endpoint(integration, "text_embedding", "amazontitan", TITAN)


def claude(integration):
    return endpoint(integration, "completion", "anthropic", CLAUDE)


async def test_throttling_burst_is_retried_each_time_after_a_new_slot(
    emulator, make_integration, caplog
):
    caplog.set_level(logging.WARNING, logger="esproxy.integrations.amazonbedrock.retries")
    integration, sleeps = await make_integration(emulator)
    await add_fault(emulator, code="ThrottlingException", count=2)
    slots = Slots(emulator)
    result = await integration.infer(titan(integration), InferenceRequest(inputs=["a"]), slots)
    assert [len(vector) for vector in result.embeddings] == [1024]
    assert len(await recorded(emulator)) == 3
    assert slots.calls_seen == [0, 1, 2]
    # Full jitter: half of 150 ms, then half of 300 ms.
    assert sleeps.delays == pytest.approx([0.075, 0.15])
    assert [record.getMessage() for record in caplog.records] == [
        f"bedrock InvokeModel model={TITAN} code=ThrottlingException retry=1/3 delay_ms=75",
        f"bedrock InvokeModel model={TITAN} code=ThrottlingException retry=2/3 delay_ms=150",
    ]
    assert ACCESS_KEY not in caplog.text and SECRET_KEY not in caplog.text


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ModelNotReadyException", 429),
        ("ServiceQuotaExceededException", 400),
        ("InternalServerException", 500),
        ("ServiceUnavailableException", 503),
        ("InternalFailure", 500),
        ("ServiceUnavailable", 503),
    ],
)
async def test_transient_converse_errors_are_retried(emulator, make_integration, code, status):
    integration, sleeps = await make_integration(emulator)
    await add_fault(emulator, code=code, status=status)
    result = await integration.infer(claude(integration), HELLO, Slots(emulator))
    assert isinstance(result, CompletionResult)
    assert len(await recorded(emulator)) == 2
    assert len(sleeps.delays) == 1


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ValidationException", 400),
        ("AccessDeniedException", 403),
        ("ResourceNotFoundException", 404),
        ("ModelTimeoutException", 408),
        ("ModelErrorException", 424),
        ("ConflictException", 400),
        ("InvalidSignatureException", 403),
    ],
)
async def test_other_errors_are_not_retried(emulator, make_integration, code, status):
    integration, sleeps = await make_integration(emulator)
    await add_fault(emulator, code=code, status=status)
    slots = Slots(emulator)
    with pytest.raises(ProviderError) as caught:
        await integration.infer(titan(integration), InferenceRequest(inputs=["a"]), slots)
    assert caught.value.code == code
    assert len(await recorded(emulator)) == 1
    assert (slots.calls_seen, sleeps.delays) == ([0], [])


async def test_retries_are_bounded_and_the_last_error_is_answered(emulator, make_integration):
    integration, sleeps = await make_integration(emulator)
    await add_fault(emulator, code="ThrottlingException", count=10, message="slow down")
    with pytest.raises(ProviderError) as caught:
        await integration.infer(claude(integration), HELLO, Slots(emulator))
    error = caught.value
    assert (error.status, error.code, error.headers) == (
        429,
        "ThrottlingException",
        {"Retry-After": "1"},
    )
    assert len(await recorded(emulator)) == 4
    assert sleeps.delays == pytest.approx([0.075, 0.15, 0.3])


async def test_backoff_doubles_up_to_its_cap(emulator, make_integration):
    integration, sleeps = await make_integration(
        emulator, jitter=lambda: 1.0, base_delay=0.1, max_delay=0.25, max_retries=4
    )
    await add_fault(emulator, code="InternalServerException", count=4)
    await integration.infer(claude(integration), HELLO, Slots(emulator))
    assert sleeps.delays == pytest.approx([0.1, 0.2, 0.25, 0.25])


async def test_connection_errors_are_retried(make_integration):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clients = BedrockClients(endpoint_url=f"http://127.0.0.1:{port}")
    integration, sleeps = await make_integration(None, clients=clients)
    entered = []

    @asynccontextmanager
    async def slot(tokens=0):
        entered.append(True)
        yield

    with pytest.raises(ProviderUnavailable, match="invoke model call failed"):
        await integration.infer(titan(integration), InferenceRequest(inputs=["a"]), slot)
    assert (len(entered), len(sleeps.delays)) == (4, 3)


async def test_a_read_timeout_is_retried(emulator, make_integration):
    clients = BedrockClients(endpoint_url=str(emulator.make_url("")).rstrip("/"), read_timeout=0.2)
    integration, _ = await make_integration(emulator, clients=clients)
    await add_fault(emulator, code="Hang")
    result = await integration.infer(claude(integration), HELLO, Slots(emulator))
    assert isinstance(result, CompletionResult)
    assert len(await recorded(emulator)) == 2


async def test_retries_stop_before_a_sleep_would_pass_the_deadline(emulator, make_integration):
    integration, sleeps = await make_integration(emulator, jitter=lambda: 1.0)
    await add_fault(emulator, code="ThrottlingException", count=10)
    # As the inference service runs a call: its deadline published to the retries within.
    with pytest.raises(ProviderError) as caught:
        async with asyncio.timeout(0.5) as scope:
            with deadline_at(scope.when()):
                await integration.infer(claude(integration), HELLO, Slots(emulator))
    # 150 and 300 ms fit in the 500 ms; 600 ms does not, so the third answer is the last.
    assert caught.value.code == "ThrottlingException"
    assert sleeps.delays == pytest.approx([0.15, 0.3])
    assert len(await recorded(emulator)) == 3


async def test_without_a_published_deadline_the_timeout_still_cuts_the_sleep(
    start_emulator, make_integration
):
    emulator = await start_emulator(retry_after="2")
    integration, _ = await make_integration(emulator, sleep=asyncio.sleep)
    await add_fault(emulator, code="ThrottlingException", count=10)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await integration.infer(claude(integration), HELLO, Slots(emulator))
    assert len(await recorded(emulator)) == 1


@pytest.mark.parametrize(("sent", "slept"), [("2", 2.0), ("0", 0.075), ("7", 3.0), ("soon", 0.075)])
async def test_retry_after_is_honoured_but_capped(start_emulator, make_integration, sent, slept):
    emulator = await start_emulator(retry_after=sent)
    integration, sleeps = await make_integration(emulator)
    await add_fault(emulator, code="ThrottlingException")
    await integration.infer(claude(integration), HELLO, Slots(emulator))
    assert sleeps.delays == pytest.approx([slept])


async def test_retry_after_past_the_deadline_is_not_waited(start_emulator, make_integration):
    emulator = await start_emulator(retry_after="2")
    integration, sleeps = await make_integration(emulator)
    await add_fault(emulator, code="ThrottlingException")
    with pytest.raises(ProviderError) as caught:
        async with asyncio.timeout(1.0) as scope:
            with deadline_at(scope.when()):
                await integration.infer(claude(integration), HELLO, Slots(emulator))
    assert caught.value.code == "ThrottlingException"
    assert sleeps.delays == []


async def test_one_input_failing_after_its_retries_fails_the_request(emulator, make_integration):
    integration, _ = await make_integration(emulator, max_retries=1)
    # Four first attempts draw four faults; the first retry draws the fifth and has no more.
    await add_fault(emulator, code="ThrottlingException", count=5)
    with pytest.raises(ProviderError) as caught:
        await integration.infer(
            titan(integration), InferenceRequest(inputs=["a", "b", "c", "d"]), Slots(emulator)
        )
    assert caught.value.code == "ThrottlingException"


async def collect(integration, endpoint, slots):
    return [text async for text in integration.stream(endpoint, HELLO, slots)]


async def test_stream_failing_before_its_answer_is_retried(emulator, make_integration):
    integration, sleeps = await make_integration(emulator)
    await add_fault(emulator, code="ServiceUnavailableException", operation="ConverseStream")
    slots = Slots(emulator)
    deltas = await collect(integration, claude(integration), slots)
    assert deltas
    assert slots.calls_seen == [0, 1]
    assert len(sleeps.delays) == 1


async def test_stream_failing_before_its_first_delta_is_retried(emulator, make_integration):
    integration, _ = await make_integration(emulator)
    # The first event is messageStart, which carries no text.
    await add_fault(emulator, code="ThrottlingException", after_events=1)
    slots = Slots(emulator)
    assert await collect(integration, claude(integration), slots)
    assert slots.calls_seen == [0, 1]


async def test_stream_is_not_retried_after_its_first_delta(emulator, make_integration):
    integration, sleeps = await make_integration(emulator)
    await add_fault(emulator, code="ThrottlingException", message="slow down", after_events=2)
    received = []
    with pytest.raises(ProviderError) as caught:
        async for text in integration.stream(claude(integration), HELLO, Slots(emulator)):
            received.append(text)
    assert len(received) == 1
    assert caught.value.reason == "AmazonBedrock StreamingChatProcessor failure: [slow down]"
    assert len(await recorded(emulator)) == 1
    assert sleeps.delays == []


def connections_in_use(client):
    """Connections the client's aiohttp pool has handed out and not yet got back (private API)."""
    sessions = client._endpoint.http_session._sessions
    return sum(len(session.connector._acquired) for session in sessions.values())


async def test_a_hanging_call_is_cut_at_the_deadline_and_frees_its_connection(
    emulator, make_integration
):
    clients = BedrockClients(
        endpoint_url=str(emulator.make_url("")).rstrip("/"), max_pool_connections=1
    )
    integration, sleeps = await make_integration(emulator, clients=clients)
    await add_fault(emulator, code="Hang", operation="Converse")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await integration.infer(claude(integration), HELLO, Slots(emulator))
    assert (len(await recorded(emulator)), sleeps.delays) == (1, [])
    assert connections_in_use(await clients.client_for(Keys())) == 0
    # With a pool of one, a leaked connection would leave the next calls waiting for ever.
    for _ in range(3):
        async with asyncio.timeout(5):
            await integration.infer(claude(integration), HELLO, Slots(emulator))
    assert connections_in_use(await clients.client_for(Keys())) == 0


async def test_a_hanging_stream_is_cut_at_the_deadline_and_frees_its_connection(
    emulator, make_integration
):
    clients = BedrockClients(
        endpoint_url=str(emulator.make_url("")).rstrip("/"), max_pool_connections=1
    )
    integration, _ = await make_integration(emulator, clients=clients)
    await add_fault(emulator, code="Hang", operation="ConverseStream")
    deltas = integration.stream(claude(integration), HELLO, Slots(emulator))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await anext(deltas)
    await deltas.aclose()
    assert connections_in_use(await clients.client_for(Keys())) == 0
    for _ in range(3):
        async with asyncio.timeout(5):
            assert await collect(integration, claude(integration), Slots(emulator))
    assert connections_in_use(await clients.client_for(Keys())) == 0
