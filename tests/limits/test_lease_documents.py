"""Lease documents as plain data: what a process writes, and what it makes of what it reads."""

import pytest

from esproxy.limits.leases import Lease, concrete_index, describe, error_type, parse_body

STORED = {
    "process": "host-1-ab12cd",
    "host": "host",
    "heartbeat": 1_700_000_000_123,
    "seq": 7,
    "lease_seconds": 5.0,
    "endpoints": {"amazonbedrock/a": {"demand": 12.5, "share": 60.0, "ok": 3.0}},
}


def test_a_lease_reads_back_as_it_was_written():
    lease = Lease.from_document(STORED)
    assert lease == Lease(
        "host-1-ab12cd",
        "host",
        1_700_000_000_123,
        7,
        5.0,
        {"amazonbedrock/a": {"demand": 12.5, "share": 60.0, "ok": 3.0}},
    )
    assert lease is not None and lease.to_document() == STORED


def test_values_are_read_as_the_types_a_lease_holds():
    lease = Lease.from_document(
        {
            "process": 42,
            "heartbeat": "1700000000000",
            "seq": 3.0,
            "lease_seconds": "2",
            "endpoints": {"k": {"demand": 1, "ok": "4"}, "bad": [1, 2], "none": None},
        }
    )
    assert lease == Lease("42", "", 1_700_000_000_000, 3, 2.0, {"k": {"demand": 1.0, "ok": 4.0}})
    assert Lease.from_document({**STORED, "endpoints": None}).endpoints == {}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "source",
    [
        None,
        "a lease",
        [STORED],
        {key: value for key, value in STORED.items() if key != "process"},
        {key: value for key, value in STORED.items() if key != "heartbeat"},
        {key: value for key, value in STORED.items() if key != "seq"},
        {key: value for key, value in STORED.items() if key != "lease_seconds"},
        {**STORED, "heartbeat": "soon"},
        {**STORED, "seq": None},
        {**STORED, "lease_seconds": [5]},
        {**STORED, "endpoints": ["amazonbedrock/a"]},
        {**STORED, "endpoints": {"amazonbedrock/a": {"demand": "lots"}}},
    ],
)
def test_a_document_that_is_not_a_lease_is_ignored(source):
    assert Lease.from_document(source) is None


def test_the_index_behind_the_alias_carries_the_schema_version():
    assert concrete_index(".esproxy-leases") == ".esproxy-leases-v1"


def test_answers_and_errors_are_read_without_raising():
    assert parse_body(b'{"a": 1}') == {"a": 1}
    assert parse_body(b"") is None
    assert parse_body(b"<html>") is None
    assert error_type({"error": {"type": "index_not_found_exception"}}) == (
        "index_not_found_exception"
    )
    assert error_type({"error": {"type": 3}}) is None
    assert error_type({"error": "no handler found"}) is None
    assert error_type(["error"]) is None
    assert describe(OSError("connection refused")) == "connection refused"
    assert describe(TimeoutError()) == "TimeoutError"
