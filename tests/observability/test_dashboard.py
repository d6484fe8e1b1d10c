"""docs/grafana/esproxy.json: every series a query names is one a real scrape holds."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from tests.observability.conftest import scrape
from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "esproxy.json"
SERIES = re.compile(r"\b(?:esproxy|process)_[a-z0-9_]+")


def queries(node: Any) -> list[str]:
    """Every PromQL text in the dashboard: panel targets and template-variable queries."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, item in node.items():
            promql = key in ("expr", "definition") or (key == "query" and "(" in str(item))
            if promql and isinstance(item, str):
                found.append(item)
            else:
                found += queries(item)
    elif isinstance(node, list):
        for item in node:
            found += queries(item)
    return found


async def test_every_dashboard_query_names_a_real_series(observed: TestClient) -> None:
    response = await observed.put(
        "/_inference/completion/chat", data=json.dumps(TITAN_COMPLETION), headers=JSON_HEADERS
    )
    assert response.status == 200
    response = await observed.post(
        "/_inference/chat", data=json.dumps({"input": "x"}), headers=JSON_HEADERS
    )
    assert response.status == 200
    assert (await observed.get("/_cluster/health")).status == 200
    names = {name for name, _ in await scrape(observed)}

    dashboard = json.loads(DASHBOARD.read_text())
    texts = queries(dashboard)
    assert len(texts) >= 20
    named = {name for text in texts for name in SERIES.findall(text)}
    assert len(named) >= 15
    assert sorted(named - names) == []
    # And the dashboard covers every esproxy family the scrape has.
    families = {re.sub(r"_(bucket|sum|count)$", "", name) for name in names}
    esproxy = {name for name in families if name.startswith("esproxy_")}
    covered = {re.sub(r"_(bucket|sum|count)$", "", name) for name in named}
    assert sorted(esproxy - covered) == []
