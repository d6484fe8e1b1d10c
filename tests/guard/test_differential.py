"""The differential fuzzer, bounded: Hypothesis builds requests from the index-expression grammar
and the red-team cases, and the real node's own resolver (`_resolve/index`, or `_cat/indices`
for `?index=`) says whether each one reaches the reserved index. The guard must refuse every one
that does, and refuse under 1% of the everyday ones that do not, whether the reserved index is
open or closed (the guard does not track which).

`ESPROXY_GUARD_FUZZ_EXAMPLES` sets the number of examples (scripts/bench/guard-fuzz runs many).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings

from tests.guard.fuzzing import Case, FuzzNode, cases, either_state

EXAMPLES = int(os.environ.get("ESPROXY_GUARD_FUZZ_EXAMPLES", "600"))


@pytest.fixture(scope="module")
def fuzz_node(opensearch_url: str) -> FuzzNode:
    node = FuzzNode(opensearch_url)
    node.create()
    return node


def test_the_guard_refuses_whatever_the_cluster_resolves_to_its_index(fuzz_node):
    guard = fuzz_node.guard()
    seen = {"ordinary": 0, "false_refusals": 0, "reaching": 0}
    false_refusals: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases(fuzz_node))
    def judge(case: Case) -> None:
        decision = guard.check(case.method, case.target)
        reaches = fuzz_node.includes_reserved(case.oracle)
        if reaches:
            seen["reaching"] += 1
            assert decision is not None, f"{case.method} {case.target} reaches {case.oracle}"
        if case.ordinary:
            seen["ordinary"] += 1
            # A refusal is false only if the request reaches nothing reserved in either state.
            if (
                decision is not None
                and not reaches
                and not fuzz_node.includes_reserved(either_state(case.oracle))
            ):
                seen["false_refusals"] += 1
                false_refusals.append(f"{case.method} {case.target}: {decision}")

    judge()
    print(f"guard fuzz: {seen}")
    assert seen["reaching"] > 0 and seen["ordinary"] > EXAMPLES // 4, seen
    assert seen["false_refusals"] < seen["ordinary"] / 100, "\n".join(false_refusals[:20])
