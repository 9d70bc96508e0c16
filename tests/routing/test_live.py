"""Live state: free quota counted and learned from providers, 429 blocks, pacing, load, breakers
(in memory, and shared through Redis in server mode)."""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings

from registry.selectors import snapshot
from routing.live import LiveState, RedisQuota
from routing.providers.types import RateLimitInfo, RateLimitWindow

pytestmark = pytest.mark.django_db

DAY = 86400.0
T0 = 1_800_000_000.0 - (1_800_000_000.0 % DAY)  # a UTC midnight


@pytest.fixture(params=["memory", "redis"])
def live(request):
    if request.param == "memory":
        yield LiveState()
        return
    if not settings.REDIS_URL:
        pytest.skip("Redis-backed live state runs in the server-mode pass")
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    state = LiveState(redis_client=client)
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    state.quotas.PREFIX = prefix + "quota:"
    state.breakers.store.prefix = prefix + "brk:"
    yield state
    for key in client.scan_iter(prefix + "*"):
        client.delete(key)


@pytest.fixture
def free_model(make_model):
    make_model("llama", provider="groq", is_free=True, free_rpm=3, free_rpd=100)
    return snapshot().by_public_id["groq/llama"]


def test_counted_requests_use_up_the_minute_window_and_it_resets(live, free_model):
    for _ in range(3):
        assert live.blocked(free_model, T0 + 1) is None
        live.count(free_model, requests=1, tokens=50, now=T0 + 1)

    reason, until = live.blocked(free_model, T0 + 2)
    assert reason == "free quota used up (requests/minute)" and until == T0 + 60
    assert live.blocked(free_model, T0 + 61) is None


def test_provider_report_overrides_the_count(live, free_model):
    info = RateLimitInfo(windows={"requests/day": RateLimitWindow(limit=100, remaining=2, reset=3600)})
    live.observe(free_model, info, now=T0 + 10)
    live.count(free_model, now=T0 + 11)
    live.count(free_model, now=T0 + 70)

    reason, until = live.blocked(free_model, T0 + 80)
    assert reason == "free quota used up (requests/day)" and until == T0 + 10 + 3600


def test_retry_after_blocks_until_then(live, free_model):
    live.observe(free_model, RateLimitInfo(retry_after=7), now=T0)

    assert live.blocked(free_model, T0 + 6)[0] == "rate-limited by the provider (429)"
    assert live.blocked(free_model, T0 + 7.5) is None


def test_daily_quota_spent_faster_than_the_day_scores_lower(live, free_model):
    fresh = live.quota(free_model, T0 + 60)
    for _ in range(50):
        live.count(free_model, now=T0 + 61 + _ * 0.001 + 60)  # half the day's quota in the first minutes

    assert fresh == 1.0
    assert live.quota(free_model, T0 + 200) == pytest.approx(0.5 / ((DAY - 200) / DAY), rel=1e-3)
    assert live.quota(free_model, T0 + DAY * 0.75) == 1.0  # the same remainder is ample late in the day


def test_account_wide_quota_is_shared(live, make_model):
    make_model("a:free", provider="openrouter", is_free=True, quota_scope="account", free_rpm=2)
    make_model("b:free", provider="openrouter", is_free=True, quota_scope="account", free_rpm=2)
    a, b = snapshot().by_public_id["openrouter/a:free"], snapshot().by_public_id["openrouter/b:free"]

    live.count(a, now=T0)
    live.count(a, now=T0)

    assert live.blocked(b, T0 + 1)[0] == "free quota used up (requests/minute)"


def test_paid_models_have_no_quota(live, make_model):
    make_model("gpt", input_price=1, output_price=1)
    paid = snapshot().by_public_id["openai/gpt"]
    live.count(paid, now=T0)

    assert live.quota(paid, T0) == 1.0 and live.blocked(paid, T0) is None


def test_failures_open_the_model_and_provider_breakers(live, free_model):
    changes = [live.record(free_model, False, now=T0 + i) for i in range(4)]

    assert changes[-1] == [(f"model:{free_model.pk}", "opened"), ("provider:groq", "opened")]
    assert live.blocked(free_model, T0 + 5)[0] == "circuit open"


def test_load_falls_as_requests_are_in_flight(free_model):
    live = LiveState(capacity=4)
    live.started(free_model)
    live.started(free_model)

    assert live.load(free_model) == 0.5
    live.finished(free_model)
    assert live.load(free_model) == 0.75


def test_redis_quota_roundtrips_observations(live, free_model):
    if not isinstance(live.quotas, RedisQuota):
        pytest.skip("Redis only")
    live.observe(free_model, RateLimitInfo(windows={"tokens/minute": RateLimitWindow(limit=6000, remaining=10, reset=5)}), now=T0)

    assert live.quota_view(free_model, T0 + 1)["windows"]["tokens/minute"]["remaining"] == 10
