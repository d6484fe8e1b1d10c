"""A whole tool-calling loop (ask, tool call, tool result, answer) through each official client.

Each driver runs in its own process against esproxy on a real socket, backed by the emulator:
tests/clients/chat_python.py under elasticsearch-py 9.x and 8.19, tests/clients/js/chat.mjs
under @elastic/elasticsearch 9.x and 8.x, and the Java API client (tests/clients/java, built by
`scripts/setup-clients`). The emulated model calls `get_weather` with `{"city": "paris"}` and
then answers from the tool's result, so the assertions are exact.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from esproxy.bedrock_emulator import EmulatorSettings, create_emulator_app
from tests.chat_examples import parse_events

ROOT = Path(__file__).resolve().parents[2]
JS_DIR = ROOT / "tests" / "clients" / "js"
JAVA_TARGET = ROOT / "tests" / "clients" / "java" / "target"
TIMEOUT = 180
ANSWER = "Emulated anthropic reply from the tool result: 18 degrees and sunny."
SETUP = "run scripts/setup-clients to install the clients"


def command(driver: str, url: str) -> list[str]:
    if driver.startswith("py"):
        venv = ROOT / ".cache" / "clients" / driver
        if not (venv / ".esproxy-pins").is_file():
            pytest.fail(f"{venv} is missing: {SETUP}")
        return [str(venv / "bin" / "python"), str(ROOT / "tests/clients/chat_python.py"), url]
    if driver == "java":
        java = shutil.which("java")
        classpath = JAVA_TARGET / "chat.cp"
        if java is None or not (JAVA_TARGET / "classes" / "ChatDriver.class").is_file():
            pytest.fail(f"java or {JAVA_TARGET}/classes/ChatDriver.class is missing: {SETUP}")
        jars = classpath.read_text().strip()
        return [java, "-cp", f"{JAVA_TARGET / 'classes'}:{jars}", "ChatDriver", url]
    node = shutil.which("node")
    if node is None or not (JS_DIR / "node_modules" / driver / "package.json").is_file():
        pytest.fail(f"node or {JS_DIR}/node_modules/{driver} is missing: {SETUP}")
    return [node, str(JS_DIR / "chat.mjs"), driver, url]


async def drive(driver: str, url: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        *command(driver, url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"{driver} chat driver still running after {TIMEOUT} s")
    if process.returncode != 0:
        pytest.fail(f"{driver} chat driver exited {process.returncode}:\n{err.decode()}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


@pytest.fixture
async def emulator(aiohttp_server):
    """Streamed events spaced apart, so a streaming reader sees them arrive one by one."""
    settings = EmulatorSettings(keys={"<aws_access_key>": "<aws_secret_key>"}, stream_delay_ms=5)
    return await aiohttp_server(create_emulator_app(settings))


@pytest.fixture
async def url(proxy) -> str:
    return str(proxy.make_url("/"))


def check_put(put: dict[str, Any]) -> None:
    assert put["inference_id"] == "assistant"
    assert put["task_type"] == "chat_completion"
    assert put["service_settings"]["provider"] == "ANTHROPIC"


@pytest.mark.parametrize("driver", ["py9", "py8"])
async def test_python_client_tool_loop(driver, url, emulator_calls):
    seen = await drive(driver, url)
    assert seen["version"].startswith("9." if driver == "py9" else "8.19.")
    check_put(seen["put"])
    ask = seen["ask"]
    assert ask["object"] == "chat.completion"
    [choice] = ask["choices"]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "paris"}
    answer = seen["answer"]["choices"][0]
    assert answer["finish_reason"] == "stop"
    assert answer["message"] == {"content": ANSWER, "role": "assistant"}
    assert seen["stream_content_type"] == "text/event-stream"
    events = parse_events(seen["stream"])
    assert events[-1] == ("message", "[DONE]")
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert chunks[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "get_weather"
    bodies = [c["body"] for c in await emulator_calls() if c["operation"] == "Converse"]
    assert bodies[-1]["messages"][-1]["content"][0]["toolResult"]["toolUseId"] == call["id"]


@pytest.mark.parametrize("driver", ["es9", "es8"])
async def test_javascript_client_tool_loop(driver, url):
    seen = await drive(driver, url)
    check_put(seen["put"])
    ask = seen["ask"]
    assert (ask["status"], ask["product"], ask["content_type"]) == (
        200,
        "Elasticsearch",
        "text/event-stream",
    )
    assert ask["done"] and ask["objects"] == ["chat.completion.chunk"]
    assert ask["finish"] == "tool_calls"
    [call] = ask["calls"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "paris"}
    answer = seen["answer"]
    assert answer["finish"] == "stop" and answer["content"] == ANSWER and answer["calls"] == []
    assert answer["usage"]["total_tokens"] == (
        answer["usage"]["prompt_tokens"] + answer["usage"]["completion_tokens"]
    )
    streamed = seen["as_stream"]
    assert streamed["pieces"] > 1 and streamed["finish"] == "stop"


async def test_java_client_tool_loop(url):
    seen = await drive("java", url)
    check_put(seen["put"])
    assert seen["ask_finish"] == "tool_calls"
    assert seen["tool"] == "get_weather"
    assert json.loads(seen["arguments"]) == {"city": "paris"}
    assert seen["answer_finish"] == "stop"
    assert seen["answer"] == ANSWER
