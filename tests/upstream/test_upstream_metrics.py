"""Forwarding failures in the scrape: each reason counted once, and a dead node shown down."""

from __future__ import annotations

import contextlib

import aiohttp

from tests.observability.conftest import matching, scrape, value


async def test_each_failure_counts_under_its_reason(start_forwarder, faulty_url):
    client = await start_forwarder(faulty_url, read_timeout=0.5)
    statuses = []
    for path in ("/garbage", "/reset", "/hang", "/truncated"):
        with contextlib.suppress(aiohttp.ClientPayloadError):
            async with client.get(path) as response:
                statuses.append(response.status)
                await response.read()
    assert statuses == [502, 502, 504, 200]
    samples = await scrape(client)
    errors = {
        dict(labels)["reason"]: count
        for labels, count in matching(samples, "esproxy_upstream_errors_total").items()
    }
    assert errors == {
        "invalid_answer": 1,
        "closed": 2,  # the reset, and the body cut short
        "read_timeout": 1,
        "connect": 0,
        "connect_timeout": 0,
    }
    assert value(samples, "esproxy_forwarded_requests_total", status_class="5xx") == 3
    assert value(samples, "esproxy_forwarded_requests_total", status_class="2xx") == 1
    assert value(samples, "esproxy_upstream_node_up", node=faulty_url) == 1


async def test_a_node_that_refuses_connections_is_down(start_forwarder, dead_url):
    client = await start_forwarder(dead_url)
    async with client.get("/_cluster/health") as response:
        assert response.status == 502
    samples = await scrape(client)
    assert value(samples, "esproxy_upstream_errors_total", reason="connect") == 1
    assert value(samples, "esproxy_forwarded_requests_total", status_class="5xx") == 1
    assert value(samples, "esproxy_upstream_node_up", node=dead_url) == 0
