"""Account pools the live state enforces beside the minute and day windows: Cohere's calls a calendar
month and Cloudflare's neurons a day (a cost-weighted pool: a call reserves its estimated neurons and
settles with the reply's usage); in one process, and shared by several through Redis."""

from __future__ import annotations

import asyncio
import calendar
import json
import time

import pytest

from registry.providers import tables
from registry.selectors import snapshot
from tests.routing.test_live import T0, live, redis_url, run, shared_state  # noqa: F401 - live, redis_url: fixtures

pytestmark = pytest.mark.django_db

FEB_1 = calendar.timegm((2027, 2, 1, 0, 0, 0))  # T0 is 2027-01-15 00:00 UTC
DAY = 86400
# @cf/meta/llama-3.1-8b-instruct as the listing gives it (registry.fakes.catalog.CLOUDFLARE).
LLAMA_PROPS = {"context_window": "7968", "price": [
    {"unit": "per M input tokens", "price": 0.282, "currency": "USD"},
    {"unit": "per M output tokens", "price": 0.827, "currency": "USD"},
]}
NEURONS_IN, NEURONS_OUT = 0.282 / 0.011e-3 / 1e6, 0.827 / 0.011e-3 / 1e6  # per token, at $0.011 per 1,000


def small_pools_table(settings, tmp_path, *, calls_a_month: int, neurons_a_day: int) -> None:
    """The shipped free-tier table with pools small enough to fill (operators replace it the same way)."""
    table = json.loads((tables.HERE / "free_tiers.json").read_text())
    table["providers"]["cohere"]["default"]["requests_per_month"] = calls_a_month
    table["providers"]["cloudflare"]["default"]["neurons_per_day"] = neurons_a_day
    path = tmp_path / "free_tiers.json"
    path.write_text(json.dumps(table))
    settings.AFMTS_FREE_TIERS_FILE = str(path)


@pytest.fixture
def small_pools(settings, tmp_path):
    small_pools_table(settings, tmp_path, calls_a_month=3, neurons_a_day=100)


@pytest.fixture
def cohere(small_pools, make_model):
    make_model("command-a", provider="cohere", is_free=True, quota_scope="account", free_rpm=20)
    make_model("command-r7b", provider="cohere", is_free=True, quota_scope="account", free_rpm=20)
    snap = snapshot()
    return snap.by_public_id["cohere/command-a"], snap.by_public_id["cohere/command-r7b"]


@pytest.fixture
def cloudflare(small_pools, make_model):
    make_model("@cf/meta/llama-3.1-8b-instruct", provider="cloudflare", is_free=True, quota_scope="account",
               metadata={"properties": LLAMA_PROPS})
    return snapshot().by_public_id["cloudflare/@cf/meta/llama-3.1-8b-instruct"]


def chat(max_tokens: int | None = 500, text: str = "hello there") -> dict:
    body = {"model": "x", "messages": [{"role": "user", "content": text}]}
    return body if max_tokens is None else {**body, "max_tokens": max_tokens}


def test_a_monthly_pool_is_shared_by_the_accounts_models_and_resets_on_the_first(live, cohere):  # noqa: F811
    a, b = cohere
    assert a.free_rpmonth == 3
    for m in (a, b, a):
        assert run(live.reserve(m, T0 + 10)) is None

    reason, until = run(live.reserve(b, T0 + 11))
    assert reason == "free quota used up (requests/month) until 2027-02-01T00:00:00Z" and until == FEB_1
    assert live.blocked(a, T0 + 12) == (reason, FEB_1)
    assert live.blocked(a, T0 + 5 * DAY)[1] == FEB_1  # a new day does not refill a month
    assert live.quota_view(a, T0 + 12)["windows"]["requests/month"] == {"limit": 3, "remaining": 0, "resetAt": FEB_1}
    assert live.blocked(a, FEB_1) is None
    assert run(live.reserve(a, FEB_1 + 1)) is None


def test_two_processes_sharing_a_monthly_pool_stop_at_its_limit(redis_url, cohere):  # noqa: F811 - the fixture
    a, b = cohere
    one, two = shared_state(*redis_url), shared_state(*redis_url)

    async def race():
        results = await asyncio.gather(*(s.reserve(m, T0 + 5) for _ in range(6) for s in (one, two) for m in (a, b)))
        return sum(r is None for r in results)

    assert run(race()) == 3
    # Days later, in the same month, the other process still finds the pool spent.
    reason, until = run(two.reserve(b, T0 + 9 * DAY))
    assert "requests/month" in reason and until == FEB_1


def test_a_call_reserves_its_estimated_neurons_and_settles_with_its_usage(live, cloudflare):  # noqa: F811
    m = cloudflare
    assert m.free_neurons_per_day == 100 and m.pool_cost == pytest.approx((NEURONS_IN, NEURONS_OUT))
    estimate = live.estimate(m, chat(500))
    assert estimate == pytest.approx((len("hello there") // 4 + 4) * NEURONS_IN + 500 * NEURONS_OUT, abs=1e-3)
    assert live.estimate(m, chat(None)) == pytest.approx(live.estimate(m, chat(256)))  # Workers AI's default

    assert run(live.reserve(m, T0 + 10, chat(500))) is None
    assert run(live.reserve(m, T0 + 11, chat(500))) is None
    reason, until = run(live.reserve(m, T0 + 12, chat(500)))  # 2 x 37.7 reserved: another does not fit
    assert reason == "free quota used up (neurons/day) until 00:00:00Z" and until == T0 + DAY

    live.settle(m, chat(500), T0 + 13, tokens=(12, 20))  # the first reply's real usage
    used = 12 * NEURONS_IN + 20 * NEURONS_OUT + estimate
    remaining = live.quota_view(m, T0 + 13)["windows"]["neurons/day"]["remaining"]
    assert remaining == pytest.approx(100 - used, abs=1e-3)
    assert run(live.reserve(m, T0 + 14, chat(500))) is None  # now it fits

    live.settle(m, chat(500), T0 + 15, tokens=None)  # a call that got no reply costs nothing
    live.settle(m, chat(500), T0 + 15, tokens=(0, 0))  # a reply without usage keeps its estimate
    assert live.quota_view(m, T0 + 15)["windows"]["neurons/day"]["remaining"] == pytest.approx(
        100 - used, abs=1e-3)


def test_a_spent_neuron_pool_blocks_every_model_of_the_account_until_midnight(live, cloudflare, make_model):  # noqa: F811
    make_model("@cf/unpriced", provider="cloudflare", is_free=True, quota_scope="account")
    unpriced = snapshot().by_public_id["cloudflare/@cf/unpriced"]
    for i in range(2):
        assert run(live.reserve(cloudflare, T0 + i, chat(500))) is None
    live.settle(cloudflare, chat(500), T0 + 3, tokens=(100, 1200))  # used more than it reserved

    reason, until = live.blocked(unpriced, T0 + 4)
    assert reason == "free quota used up (neurons/day) until 00:00:00Z" and until == T0 + DAY
    assert live.quota(unpriced, T0 + 4) == 0.0
    assert live.blocked(unpriced, T0 + DAY) is None


def test_a_settlement_reaches_the_other_process(redis_url, cloudflare):  # noqa: F811 - the fixture
    m = cloudflare
    one, two = shared_state(*redis_url), shared_state(*redis_url)

    async def scenario():
        assert await one.reserve(m, T0 + 1, chat(500)) is None
        assert await two.reserve(m, T0 + 2, chat(500)) is None
        assert await one.reserve(m, T0 + 3, chat(500)) is not None  # 75 of 100 held
        one.settle(m, chat(500), T0 + 4, tokens=(10, 10))  # it cost 1 neuron, not 37.7
        assert await one.sync(T0 + 5)
        return await two.reserve(m, T0 + 6, chat(500))

    assert run(scenario()) is None
    assert run(two.sync(T0 + 7))
    state = two.quotas[f"a:{m.provider_id}"]["used:neurons/day"]
    assert state[1] == pytest.approx(10 * NEURONS_IN + 10 * NEURONS_OUT + 2 * one.estimate(m, chat(500)), abs=1e-3)


async def test_cloudflares_spent_allocation_waits_for_midnight(make_adapter, fake):
    from registry.providers.errors import RateLimited
    from tests.routing.conftest import chat_request

    fake.state.push("cloudflare", "quota_exhausted", retry_after=7)  # 3036: the day's free neurons are spent
    with pytest.raises(RateLimited) as caught:
        await make_adapter("cloudflare").chat(chat_request("cloudflare"))

    to_midnight = DAY - time.time() % DAY
    assert caught.value.retry_after == pytest.approx(to_midnight, abs=5)
    assert caught.value.rate_limit is None or caught.value.rate_limit.retry_after == caught.value.retry_after
