"""Circuit breakers: closed → open → half-open → closed, with LiteLLM-like defaults."""

from __future__ import annotations

import pytest
from django.conf import settings

from routing.breaker import BreakerConfig, Breakers, MemoryStore, RedisStore


@pytest.fixture(params=["memory", "redis"])
def breakers(request):
    if request.param == "redis":
        if not settings.REDIS_URL:
            pytest.skip("Redis store is exercised in the server-mode pass")
        import uuid

        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        store = RedisStore(client, prefix=f"test:brk:{uuid.uuid4().hex[:8]}:")
        yield Breakers(store)
        for key in client.scan_iter(store.prefix + "*"):
            client.delete(key)
        return
    yield Breakers(MemoryStore())


def test_more_than_three_failures_a_minute_open_the_breaker(breakers):
    for t in range(3):
        assert breakers.record("m", False, now=float(t)) is None
    assert breakers.allow("m", now=3.0) == (True, 0.0)

    assert breakers.record("m", False, now=3.5) == "opened"

    allowed, wait = breakers.allow("m", now=4.0)
    assert not allowed and wait == pytest.approx(4.5)


def test_failures_spread_beyond_the_window_do_not_open_it(breakers):
    for t in (0.0, 30.0, 61.0, 95.0, 130.0):
        assert breakers.record("m", False, now=t) is None
        breakers.record("m", True, now=t + 1)
    assert breakers.allow("m", now=131.0)[0]


def test_half_failing_over_enough_requests_opens_it(breakers):
    outcomes = [True, False, True, False, True, False]
    changes = [breakers.record("m", ok, now=float(i)) for i, ok in enumerate(outcomes)]

    assert changes == [None] * 5 + ["opened"]  # 3 of 6 failing: ≥ 50 % over ≥ 5 requests


def test_after_the_cooldown_one_trial_goes_through_and_success_closes(breakers):
    for t in range(4):
        breakers.record("m", False, now=float(t))

    assert breakers.allow("m", now=9.5) == (True, 0.0)  # cool-down over: the half-open trial
    assert breakers.allow("m", now=9.6)[0] is False  # only one trial at a time
    assert breakers.record("m", True, now=9.8) == "closed"
    assert breakers.allow("m", now=9.9) == (True, 0.0)


def test_a_failed_trial_reopens_with_a_longer_cooldown(breakers):
    for t in range(4):
        breakers.record("m", False, now=float(t))
    breakers.allow("m", now=9.0)

    assert breakers.record("m", False, now=9.0) == "opened"

    assert breakers.allow("m", now=18.0)[0] is False  # 10 s now, not 5
    assert breakers.allow("m", now=19.1)[0] is True


def test_retry_after_sets_the_cooldown_and_is_never_shortened(breakers):
    assert breakers.record("m", False, now=0.0, retry_after=30.0) == "opened"
    breakers.record("m", False, now=1.0)
    breakers.record("m", False, now=2.0)
    breakers.record("m", False, now=3.0)  # would trip a 5 s cooldown: must not shorten the 30 s one

    assert breakers.allow("m", now=20.0)[0] is False
    assert breakers.allow("m", now=30.5)[0] is True


def test_keys_are_independent_and_state_is_visible(breakers):
    for t in range(4):
        breakers.record("model:1", False, now=float(t))

    assert breakers.allow("model:2", now=4.0)[0]
    state = breakers.snapshot(now=4.0)
    assert state["model:1"]["state"] == "open" and state["model:1"]["recentFailures"] == 4


def test_custom_config(breakers):
    tight = Breakers(breakers.store, BreakerConfig(failures=0, cooldown=1.0))
    assert tight.record("x", False, now=0.0) == "opened"
    assert tight.allow("x", now=1.5)[0]
