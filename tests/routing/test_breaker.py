"""Circuit breakers judge failure rates over a minimum volume (or consecutive failures at low
traffic), half-open with a few trial calls, and never shorten a deadline."""

from __future__ import annotations

import random

import pytest

from routing.breaker import CLOSED, HALF_OPEN, OPEN, BreakerConfig, Breakers

T0 = 1_800_000_000.0


@pytest.fixture
def breakers() -> Breakers:
    return Breakers(BreakerConfig(window=60, min_requests=10, ratio=0.5, consecutive=5, cooldown=10,
                                  max_cooldown=120, trials=2))


def state(b: Breakers, key: str, now: float) -> str:
    return b.states[key].effective(now) if key in b.states else CLOSED


def test_a_few_failures_among_much_traffic_never_open_it(breakers):
    # The old rule ("more than 3 failures a minute") opened on this: 1 failure a second at 100 rps.
    for second in range(60):
        for i in range(100):
            assert breakers.record("model:1", i != 0, T0 + second + i / 100) is None
    assert state(breakers, "model:1", T0 + 60) == CLOSED


def test_independent_failures_of_a_few_percent_never_open_it(breakers):
    rng = random.Random(7)
    opened = [breakers.record("model:1", rng.random() > 0.10, T0 + i * 0.05) for i in range(5000)]
    assert "opened" not in opened


def test_half_failing_over_the_minimum_volume_opens_it(breakers):
    changes = [breakers.record("model:1", i % 2 == 0, T0 + i) for i in range(10)]
    assert changes[:-1] == [None] * 9 and changes[-1] == "opened"
    assert breakers.allow("model:1", T0 + 11) == (False, pytest.approx(8.0))  # opened at T0+9 for 10 s


def test_consecutive_failures_open_it_at_low_traffic(breakers):
    changes = [breakers.record("model:1", False, T0 + i * 10) for i in range(5)]
    assert changes == [None, None, None, None, "opened"]


def test_a_success_resets_the_consecutive_count(breakers):
    for i in range(4):
        breakers.record("model:1", False, T0 + i)
    breakers.record("model:1", True, T0 + 4)
    assert [breakers.record("model:1", False, T0 + 5 + i) for i in range(4)] == [None] * 4


def test_failures_older_than_the_window_are_forgotten(breakers):
    for i in range(4):
        breakers.record("model:1", False, T0 + i)
        breakers.record("model:1", True, T0 + i + 0.5)
    # 4 failures of 8 — but they are over a minute old when the next ones come.
    assert breakers.record("model:1", False, T0 + 100) is None
    assert breakers.states["model:1"].requests == 1


def test_half_open_lets_a_few_trials_through_and_their_successes_close_it(breakers):
    for i in range(5):
        breakers.record("model:1", False, T0 + i)
    now = T0 + 4 + 10
    assert state(breakers, "model:1", now) == HALF_OPEN
    assert breakers.allow("model:1", now) == (True, 0.0)
    assert breakers.allow("model:1", now) == (True, 0.0)
    assert breakers.allow("model:1", now)[0] is False  # two trials in flight: the rest wait
    assert breakers.record("model:1", True, now + 1) is None
    assert breakers.record("model:1", True, now + 1) == "closed"
    assert breakers.allow("model:1", now + 2) == (True, 0.0)


def test_a_trial_that_never_reports_frees_its_slot(breakers):
    for i in range(5):
        breakers.record("model:1", False, T0 + i)
    now = T0 + 20
    breakers.allow("model:1", now)
    breakers.allow("model:1", now)
    assert breakers.allow("model:1", now + 29)[0] is False
    assert breakers.allow("model:1", now + 31)[0] is True


def test_a_failed_trial_reopens_with_a_doubled_cooldown(breakers):
    for i in range(5):
        breakers.record("model:1", False, T0 + i)
    now = T0 + 15
    breakers.allow("model:1", now)
    assert breakers.record("model:1", False, now) == "opened"
    assert breakers.states["model:1"].cooldown == 20
    assert breakers.allow("model:1", now + 19)[0] is False
    assert breakers.allow("model:1", now + 20)[0] is True


def test_the_upstream_retry_after_is_the_least_cooldown_and_never_shortened(breakers):
    for i in range(4):
        breakers.record("model:1", False, T0 + i)
    assert breakers.record("model:1", False, T0 + 4, retry_after=40) == "opened"
    assert breakers.states["model:1"].open_until == T0 + 44
    breakers.adopt("model:1", T0 + 20)  # another process's shorter opening changes nothing
    assert breakers.states["model:1"].open_until == T0 + 44


def test_adopting_a_closing_from_another_process(breakers):
    for i in range(5):
        breakers.record("model:1", False, T0 + i)
    assert breakers.adopt("model:1", None) == "closed"
    assert breakers.allow("model:1", T0 + 5) == (True, 0.0)


def test_openings_and_closings_are_kept_for_sharing(breakers):
    for i in range(5):
        breakers.record("model:1", False, T0 + i)
    assert breakers.transitions == [("model:1", "opened", T0 + 14, 10)]


def test_idle_closed_keys_are_forgotten(breakers):
    breakers.record("model:1", True, T0)
    breakers.record("model:2", False, T0)
    for i in range(5):
        breakers.record("model:3", False, T0 + i)
    breakers.prune(T0 + 601)
    assert set(breakers.states) == {"model:3"}


def test_snapshot_shows_open_keys_and_failure_rates(breakers):
    for i in range(5):
        breakers.record("model:1", False, T0 + i)
    breakers.record("model:2", True, T0)
    snap = breakers.snapshot(T0 + 5)
    assert set(snap) == {"model:1"}
    assert snap["model:1"]["state"] == OPEN and snap["model:1"]["failureRate"] == 1.0
