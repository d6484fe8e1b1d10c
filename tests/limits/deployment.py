"""A deployment as users run it, for the cluster-wide limit tests: a Bedrock emulator process,
esproxy replicas as separate `esproxy serve` processes sharing one cluster, and open-loop load
or callers that wait for each answer.

Calls are counted where Bedrock would count them: in the emulator's request log.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from esproxy.secret_cipher import generate_key_text
from tests.ports import free_port

JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass
class Process:
    process: asyncio.subprocess.Process
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def start_process(args: list[str], port: int, log: Path, env: dict[str, str]) -> Process:
    handle = log.open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "esproxy",
        *args,
        env={**os.environ, **env},
        stdout=handle,
        stderr=asyncio.subprocess.STDOUT,
    )
    handle.close()
    started = Process(process, f"http://127.0.0.1:{port}", log)
    for _ in range(300):
        if process.returncode is not None:
            raise AssertionError(f"{args[0]} exited early:\n{started.output()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return started
    raise AssertionError(f"nothing listened on {port}:\n{started.output()}")


async def start_emulator(tmp_path: Path, quota_per_minute: int | None = None) -> Process:
    port = free_port()
    args = ["bedrock-emulator", "--listen", f"127.0.0.1:{port}"]
    if quota_per_minute:
        args += ["--quota-per-minute", str(quota_per_minute)]
    return await start_process(args, port, tmp_path / f"emulator-{port}.log", {})


@dataclass
class Deployment:
    """Replicas sharing one cluster, one secrets key, one endpoint index and one lease index."""

    tmp_path: Path
    upstream: str
    bedrock: str
    lease_seconds: float = 1.0
    key: str = field(default_factory=generate_key_text)
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    replicas: list[Process] = field(default_factory=list)

    async def start(self, count: int) -> list[Process]:
        # The first alone: it creates the endpoint index, which the others then find ready.
        first = await self.start_one()
        await asyncio.sleep(1.0)
        rest = await asyncio.gather(*(self.start_one() for _ in range(count - 1)))
        started = [first, *rest]
        self.replicas += started
        return started

    async def start_one(self) -> Process:
        port = free_port()
        data = self.tmp_path / f"replica-{port}"
        data.mkdir()
        args = ["serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data)]
        args += ["--upstream", self.upstream, "--bedrock-endpoint-url", self.bedrock]
        env = {
            "ESPROXY_SECRETS_KEY": self.key,
            "ESPROXY_STORAGE_INDEX": f".esproxy-test-{self.suffix}",
            "ESPROXY_LIMITS_INDEX": f".esproxy-test-{self.suffix}-leases",
            "ESPROXY_LIMITS_LEASE_SECONDS": str(self.lease_seconds),
            "ESPROXY_AUTH_MODE": "none",
        }
        return await start_process(args, port, data / "esproxy.log", env)

    async def stop(self) -> None:
        await asyncio.gather(*(replica.stop() for replica in self.replicas))


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as response:
        return await response.json()


async def put_endpoint(
    session: aiohttp.ClientSession, replica: Process, inference_id: str, body: dict[str, Any]
) -> None:
    url = f"{replica.url}/_inference/completion/{inference_id}"
    for _ in range(20):
        async with session.put(url, data=json.dumps(body), headers=JSON_HEADERS) as response:
            text = await response.text()
            # A node started a moment ago may not have the store's new index's shard ready.
            if response.status != 503:
                break
        await asyncio.sleep(0.5)
    assert response.status == 200, text


async def limits_of(session: aiohttp.ClientSession, replica: Process) -> dict[str, Any]:
    ready = await get_json(session, f"{replica.url}/_esproxy/ready")
    limits: dict[str, Any] = ready["checks"]["limits"]
    return limits


async def wait_for_processes(session: aiohttp.ClientSession, replicas: list[Process]) -> None:
    """Until every replica's lease round has seen all of them."""
    for _ in range(100):
        seen = [(await limits_of(session, r))["leases"]["processes"] for r in replicas]
        if all(count == len(replicas) for count in seen):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"replicas never saw each other: {seen}")


async def calls(session: aiohttp.ClientSession, emulator: Process) -> list[dict[str, Any]]:
    body = await get_json(session, f"{emulator.url}/_emulator/requests")
    return list(body["requests"])


def within(entries: list[dict[str, Any]], start: float, end: float) -> list[dict[str, Any]]:
    return [entry for entry in entries if start <= entry["at"] < end]


@dataclass
class Load:
    """Open-loop load: requests at a fixed rate whatever happens to earlier ones."""

    session: aiohttp.ClientSession
    statuses: list[int] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    offers: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self, url: str, body: dict[str, Any], per_minute: float, seconds: float) -> None:
        self.offers.append(asyncio.create_task(self.offer(url, body, per_minute, seconds)))

    async def offer(
        self, url: str, body: dict[str, Any], per_minute: float, seconds: float
    ) -> None:
        loop = asyncio.get_running_loop()
        began, interval, sent = loop.time(), 60.0 / per_minute, 0
        while began + sent * interval < began + seconds:
            await asyncio.sleep(max(0.0, began + sent * interval - loop.time()))
            task = asyncio.create_task(self._send(url, body))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            sent += 1

    async def _send(self, url: str, body: dict[str, Any]) -> None:
        try:
            async with self.session.post(
                url, data=json.dumps(body), headers=JSON_HEADERS
            ) as response:
                await response.read()
                self.statuses.append(response.status)
        except aiohttp.ClientError:
            self.statuses.append(0)

    async def stop(self) -> None:
        for task in [*self.offers, *self.tasks]:
            task.cancel()
        await asyncio.gather(*self.offers, *self.tasks, return_exceptions=True)


@dataclass
class Callers:
    """Closed-loop load: callers that each send a request, wait for its answer, and send again
    (an ingest's workers, a node's bounded client). `answered[url]` holds when each 200 came."""

    session: aiohttp.ClientSession
    answered: dict[str, list[float]] = field(default_factory=dict)
    other: list[int] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self, url: str, body: dict[str, Any], count: int) -> None:
        self.answered.setdefault(url, [])
        self.tasks += [asyncio.create_task(self._call(url, body)) for _ in range(count)]

    async def _call(self, url: str, body: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            async with self.session.post(
                url, data=json.dumps(body), headers=JSON_HEADERS
            ) as response:
                await response.read()
            if response.status == 200:
                self.answered[url].append(loop.time())
            else:
                self.other.append(response.status)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def unlimited_session() -> aiohttp.ClientSession:
    """No client-side connection cap: it would pace the load on its own."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=120)
    )
