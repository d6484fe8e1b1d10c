"""DecisionCache: bounded, expiring, and keyed by a salted hash of the credentials."""

from __future__ import annotations

from esproxy.authorization.decisions import ALLOWED, Decision, DecisionCache
from esproxy.authorization.privileges import Credentials

ALICE = Credentials("Basic YWxpY2U6c2VjcmV0")
BOB = Credentials("Basic Ym9iOnNlY3JldA==")


class Clock:
    now = 100.0

    def __call__(self):
        return self.now


def test_a_decision_lasts_its_ttl():
    clock = Clock()
    cache = DecisionCache(ttl=30, size=10, clock=clock)
    key = cache.key(ALICE, "monitor_inference")
    cache.put(key, ALLOWED)
    clock.now += 29.9
    assert cache.get(key) is ALLOWED
    clock.now += 0.1
    assert cache.get(key) is None
    assert len(cache) == 0


def test_keys_differ_by_credentials_run_as_and_privilege_and_hold_no_credential():
    cache = DecisionCache(ttl=30, size=10)
    keys = {
        cache.key(ALICE, "monitor_inference"),
        cache.key(ALICE, "manage_inference"),
        cache.key(BOB, "monitor_inference"),
        cache.key(Credentials(ALICE.authorization, "carol"), "monitor_inference"),
        cache.key(Credentials(), "monitor_inference"),
    }
    assert len(keys) == 5
    key = cache.key(ALICE, "monitor_inference")
    assert b"YWxpY2U" not in key and len(key) == 32
    # Another process (another salt) cannot recompute them.
    assert DecisionCache(ttl=30, size=10).key(ALICE, "monitor_inference") != key


def test_the_least_recently_used_go_first():
    cache = DecisionCache(ttl=30, size=2)
    a, b, c = (cache.key(Credentials(f"Basic {n}"), "p") for n in "abc")
    cache.put(a, ALLOWED)
    cache.put(b, Decision("denied"))
    assert cache.get(a) is ALLOWED  # a is now the most recent
    cache.put(c, ALLOWED)
    assert cache.get(b) is None
    assert cache.get(a) is ALLOWED and cache.get(c) is ALLOWED


def test_a_zero_ttl_caches_nothing():
    cache = DecisionCache(ttl=0, size=2)
    key = cache.key(ALICE, "p")
    cache.put(key, ALLOWED)
    assert cache.get(key) is None


def test_credentials_are_not_in_reprs():
    assert "YWxpY2U" not in repr(ALICE)


def test_a_zero_ttl_stores_nothing():
    cache = DecisionCache(ttl=0, size=2)
    cache.put(cache.key(ALICE, "p"), ALLOWED)
    assert len(cache) == 0
