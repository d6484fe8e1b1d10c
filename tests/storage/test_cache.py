"""What the cache adds to the store contract: freshness, stale-if-error, LRU, single-flight."""

import asyncio

import pytest

from esproxy.errors import EndpointAlreadyExists, EndpointNotFound, StoreUnavailable
from esproxy.storage.base import EndpointRecord
from esproxy.storage.cache import CachedEndpointStore
from esproxy.storage.memory import InMemoryEndpointStore

TTL = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingStore(InMemoryEndpointStore):
    """The shared backend: counts reads, can be taken down, and can hold answers at a gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0
        self.counted = asyncio.Condition()
        self.down = False
        self.gate: asyncio.Event | None = None

    async def get(self, inference_id: str) -> EndpointRecord:
        async with self.counted:
            self.gets += 1
            self.counted.notify_all()
        if self.down:
            raise StoreUnavailable("upstream node [http://127.0.0.1:1] answered with status [500]")
        # Read first, answer later: the answer can be out of date by the time it arrives.
        found = await super().get(inference_id) if inference_id in self._records else None
        if self.gate is not None:
            await self.gate.wait()
        if found is None:
            raise EndpointNotFound(inference_id)
        return found


async def reads_started(backend: CountingStore, count: int) -> None:
    async with backend.counted:
        await backend.counted.wait_for(lambda: backend.gets >= count)


def record(inference_id: str, model: str = "m1") -> EndpointRecord:
    config = {"inference_id": inference_id, "task_type": "completion", "model": model}
    return EndpointRecord(inference_id, config, {}, "v1.sealed")


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def backend():
    return CountingStore()


@pytest.fixture
def cache(backend, clock):
    return CachedEndpointStore(backend, ttl_seconds=TTL, clock=clock)


@pytest.fixture
def other(backend, clock):
    """Another esproxy instance's cache over the same backend."""
    return CachedEndpointStore(backend, ttl_seconds=TTL, clock=clock)


async def test_gets_within_the_ttl_read_the_backend_once(cache, backend, clock):
    await backend.create(record("e"))

    for _ in range(3):
        assert await cache.get("e") == record("e")
        clock.advance(TTL / 4)

    assert backend.gets == 1


async def test_misses_are_cached_too(cache, backend, clock):
    for _ in range(3):
        with pytest.raises(EndpointNotFound):
            await cache.get("unknown")

    assert backend.gets == 1
    clock.advance(TTL)
    with pytest.raises(EndpointNotFound):
        await cache.get("unknown")
    assert backend.gets == 2


async def test_another_instances_replace_shows_up_after_the_ttl_not_before(cache, other, clock):
    await other.create(record("e", model="old"))
    assert (await cache.get("e")).config["model"] == "old"

    await other.replace(record("e", model="new"))
    clock.advance(TTL - 0.01)
    assert (await cache.get("e")).config["model"] == "old"

    clock.advance(0.01)
    assert (await cache.get("e")).config["model"] == "new"


async def test_another_instances_create_and_delete_show_up_after_the_ttl(cache, other, clock):
    with pytest.raises(EndpointNotFound):
        await cache.get("e")
    await other.create(record("e"))
    clock.advance(TTL - 0.01)
    with pytest.raises(EndpointNotFound):
        await cache.get("e")
    clock.advance(0.01)
    assert await cache.get("e") == record("e")

    await other.delete("e")
    clock.advance(TTL - 0.01)
    assert await cache.get("e") == record("e")
    clock.advance(0.01)
    with pytest.raises(EndpointNotFound):
        await cache.get("e")


async def test_local_writes_are_seen_at_once_without_a_read(cache, backend):
    with pytest.raises(EndpointNotFound):
        await cache.get("e")

    await cache.create(record("e", model="first"))
    assert await cache.get("e") == record("e", model="first")
    await cache.replace(record("e", model="second"))
    assert await cache.get("e") == record("e", model="second")
    await cache.delete("e")
    with pytest.raises(EndpointNotFound):
        await cache.get("e")

    assert backend.gets == 1


async def test_a_failed_create_drops_the_cached_miss(cache, other, backend):
    with pytest.raises(EndpointNotFound):
        await cache.get("e")
    await other.create(record("e", model="theirs"))

    with pytest.raises(EndpointAlreadyExists):
        await cache.create(record("e", model="mine"))

    assert await cache.get("e") == record("e", model="theirs")
    assert backend.gets == 2


async def test_list_is_never_cached(cache, other):
    await cache.create(record("a"))
    assert await cache.list() == [record("a")]

    await other.create(record("b"))

    assert await cache.list() == [record("a"), record("b")]


async def test_an_expired_entry_is_served_while_the_backend_is_down(cache, backend, clock):
    await backend.create(record("e"))
    await cache.get("e")
    backend.down = True
    clock.advance(TTL * 100)

    assert await cache.get("e") == record("e")
    assert backend.gets == 2
    # Trusted for another ttl, so requests are not each held up by the dead backend.
    clock.advance(TTL - 0.01)
    assert await cache.get("e") == record("e")
    assert backend.gets == 2

    clock.advance(0.01)
    assert await cache.get("e") == record("e")
    assert backend.gets == 3


async def test_an_id_never_read_is_unavailable_while_the_backend_is_down(cache, backend):
    await backend.create(record("e"))
    backend.down = True

    with pytest.raises(StoreUnavailable, match=r"status \[500\]"):
        await cache.get("e")


async def test_the_fresh_record_replaces_the_stale_one_once_the_backend_is_back(
    cache, backend, clock
):
    await backend.create(record("e", model="old"))
    await cache.get("e")
    backend.down = True
    clock.advance(TTL)
    await cache.get("e")

    backend.down = False
    await backend.replace(record("e", model="new"))
    clock.advance(TTL)

    assert (await cache.get("e")).config["model"] == "new"


async def test_the_least_recently_used_entry_is_evicted(backend, clock):
    cache = CachedEndpointStore(backend, ttl_seconds=TTL, clock=clock, max_entries=2)
    for inference_id in "abc":
        await backend.create(record(inference_id))

    await cache.get("a")
    await cache.get("b")
    await cache.get("a")
    await cache.get("c")
    assert backend.gets == 3

    await cache.get("a")
    assert backend.gets == 3
    await cache.get("b")
    assert backend.gets == 4


async def test_concurrent_gets_of_one_id_share_one_read(cache, backend):
    backend.gate = asyncio.Event()
    await backend.create(record("e"))

    waiting = [asyncio.create_task(cache.get(i)) for i in ["e"] * 10 + ["missing"] * 10]
    await reads_started(backend, 2)
    await asyncio.sleep(0.01)
    backend.gate.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)

    assert results[:10] == [record("e")] * 10
    assert all(isinstance(result, EndpointNotFound) for result in results[10:])
    assert backend.gets == 2


async def test_one_caller_giving_up_does_not_cancel_the_shared_read(cache, backend):
    backend.gate = asyncio.Event()
    await backend.create(record("e"))
    first = asyncio.create_task(cache.get("e"))
    second = asyncio.create_task(cache.get("e"))
    await reads_started(backend, 1)

    first.cancel()
    backend.gate.set()

    assert await second == record("e")
    assert first.cancelled()
    assert backend.gets == 1


async def test_a_read_overlapping_a_local_create_does_not_hide_it(cache, backend):
    backend.gate = asyncio.Event()
    before = asyncio.create_task(cache.get("e"))
    await reads_started(backend, 1)

    await cache.create(record("e"))
    backend.gate.set()
    with pytest.raises(EndpointNotFound):
        await before

    assert await cache.get("e") == record("e")
