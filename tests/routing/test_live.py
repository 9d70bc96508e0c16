"""Live state: free quota reserved, counted and learned from providers, 429 cool-downs, pacing, load,
breakers per model first and per provider only when most of its models fail; in one process, and
shared by several through Redis — which may go away without failing a request."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid

import pytest
from django.conf import settings

from registry.providers.types import RateLimitInfo, RateLimitWindow
from registry.selectors import snapshot
from routing.live import LiveState

pytestmark = pytest.mark.django_db

DAY = 86400.0
T0 = 1_800_000_000.0 - (1_800_000_000.0 % DAY)  # a UTC midnight
IN_CI = os.environ.get("CI", "").lower() == "true"


def shared_state(url: str, prefix: str, timeout: float = 2.0) -> LiveState:
    # A generous timeout: on a loaded test machine a slow answer would make a state go on alone,
    # which is right in production and a false failure here. The outage test sets its own.
    return LiveState(redis_url=url, prefix=prefix, redis_timeout=timeout)


@pytest.fixture(params=["memory", "redis"])
def live(request):
    if request.param == "memory":
        yield LiveState()
        return
    if not settings.REDIS_URL:
        pytest.skip("Redis-backed live state runs in the server-mode pass")
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    yield shared_state(settings.REDIS_URL, prefix)
    _clean(prefix)


def _clean(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(prefix + "*"):
        client.delete(key)


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def free_model(make_model):
    make_model("llama", provider="groq", is_free=True, free_rpm=3, free_rpd=100)
    return snapshot().by_public_id["groq/llama"]


def test_reserved_requests_use_up_the_minute_window_and_it_resets(live, free_model):
    for _ in range(3):
        assert live.blocked(free_model, T0 + 1) is None
        assert run(live.reserve(free_model, T0 + 1)) is None

    reason, until = run(live.reserve(free_model, T0 + 2))
    assert reason.startswith("free quota used up (requests/minute)") and until == T0 + 60
    assert live.blocked(free_model, T0 + 2)[0].startswith("free quota used up (requests/minute)")
    assert live.blocked(free_model, T0 + 61) is None
    assert run(live.reserve(free_model, T0 + 61)) is None


def test_provider_report_overrides_the_count(live, free_model):
    info = RateLimitInfo(windows={"requests/day": RateLimitWindow(limit=100, remaining=2, reset=3600)})
    live.observe(free_model, info, now=T0 + 10)
    run(live.reserve(free_model, T0 + 11))
    run(live.reserve(free_model, T0 + 70))

    reason, until = live.blocked(free_model, T0 + 80)
    assert reason.startswith("free quota used up (requests/day)") and until == T0 + 10 + 3600


def test_retry_after_cools_the_scope_down_until_then(live, free_model):
    live.observe(free_model, RateLimitInfo(retry_after=7), now=T0)

    assert live.blocked(free_model, T0 + 6)[0].startswith("rate-limited by the provider (429)")
    assert live.blocked(free_model, T0 + 7.5) is None


def test_a_429s_retry_after_decides_even_when_its_window_reads_empty(live, free_model):
    # Groq/OpenAI-style: remaining 0 with a full-window reset of 50 s, but "retry after 2 s".
    info = RateLimitInfo(retry_after=2, windows={"requests/minute": RateLimitWindow(limit=30, remaining=0, reset=50)})
    live.observe(free_model, info, now=T0)

    assert live.blocked(free_model, T0 + 1)[1] == T0 + 2
    assert live.blocked(free_model, T0 + 3) is None


def test_a_429_cools_a_paid_model_down_too(live, make_model):
    make_model("gpt", input_price=1, output_price=1)
    paid = snapshot().by_public_id["openai/gpt"]
    live.observe(paid, RateLimitInfo(retry_after=5), now=T0)

    assert live.blocked(paid, T0 + 1)[1] == T0 + 5
    assert live.breakers.states == {}  # a cool-down, not a breaker failure


def test_daily_quota_spent_faster_than_the_day_scores_lower(live, make_model):
    make_model("daily", provider="groq", is_free=True, free_rpd=100)
    free_model = snapshot().by_public_id["groq/daily"]
    fresh = live.quota(free_model, T0 + 60)
    for i in range(50):
        run(live.reserve(free_model, T0 + 121 + i * 0.001))  # half the day's quota in the first minutes

    assert fresh == 1.0
    assert live.quota(free_model, T0 + 200) == pytest.approx(0.5 / ((DAY - 200) / DAY), rel=1e-3)
    assert live.quota(free_model, T0 + DAY * 0.75) == 1.0  # the same remainder is ample late in the day


def test_account_wide_quota_is_shared_by_its_models(live, make_model):
    make_model("a:free", provider="openrouter", is_free=True, quota_scope="account", free_rpm=2)
    make_model("b:free", provider="openrouter", is_free=True, quota_scope="account", free_rpm=2)
    a, b = snapshot().by_public_id["openrouter/a:free"], snapshot().by_public_id["openrouter/b:free"]

    run(live.reserve(a, T0))
    run(live.reserve(a, T0))

    assert live.blocked(b, T0 + 1)[0].startswith("free quota used up (requests/minute)")


def test_paid_models_have_no_quota(live, make_model):
    make_model("gpt", input_price=1, output_price=1)
    paid = snapshot().by_public_id["openai/gpt"]
    assert run(live.reserve(paid, T0)) is None
    live.count(paid, tokens=100, now=T0)

    assert live.quota(paid, T0) == 1.0 and live.blocked(paid, T0) is None


def test_one_failing_model_opens_its_own_breaker_not_the_provider(live, make_model):
    make_model("a", provider="groq", is_free=True)
    make_model("b", provider="groq", is_free=True)
    a, b = snapshot().by_public_id["groq/a"], snapshot().by_public_id["groq/b"]
    changes = []
    for i in range(10):
        changes += live.record(a, False, now=T0 + i)
        changes += live.record(b, True, now=T0 + i)

    assert changes == [(f"model:{a.pk}", "opened")]
    assert live.blocked(a, T0 + 10)[0].startswith("circuit open")
    assert live.blocked(b, T0 + 10) is None


def test_most_of_a_providers_models_failing_at_once_opens_the_provider(live, make_model):
    for name in ("a", "b", "c"):
        make_model(name, provider="groq", is_free=True)
    make_model("d", provider="cerebras", is_free=True)
    snap = snapshot()
    a, b, c = (snap.by_public_id[f"groq/{n}"] for n in "abc")
    other = snap.by_public_id["cerebras/d"]
    live.record(c, True, now=T0)
    changes = []
    for i in range(3):
        changes += live.record(a, False, now=T0 + 1 + i)
        changes += live.record(b, False, now=T0 + 1 + i)

    assert ("provider:groq", "opened") in changes
    assert live.blocked(c, T0 + 5)[0].startswith("provider circuit open")
    assert live.blocked(other, T0 + 5) is None


def test_load_falls_as_requests_are_in_flight(free_model):
    live = LiveState(capacity=4)
    live.started(free_model)
    live.started(free_model)

    assert live.load(free_model) == 0.5
    live.finished(free_model)
    assert live.load(free_model) == 0.75
    live.finished(free_model)
    assert live.inflight == {}


def test_past_windows_are_pruned(live, free_model):
    for minute in range(5):
        run(live.reserve(free_model, T0 + minute * 60))
        live.count(free_model, tokens=10, now=T0 + minute * 60)
    live.prune(T0 + 5 * 60)

    state = live.quotas[f"m:{free_model.pk}"]
    assert "used:requests/minute" not in state and "used:tokens/minute" not in state
    assert state["used:requests/day"] == [int(T0 // DAY), 5]


def test_a_model_without_limits_or_reports_costs_no_bookkeeping(live, make_model):
    make_model("open", provider="groq", is_free=True)  # free, no quota known
    m = snapshot().by_public_id["groq/open"]
    for i in range(3):
        assert run(live.reserve(m, T0 + i)) is None

    assert live.quotas == {} and not live._pending_since and not live._pending_counts
    live.observe(m, RateLimitInfo(windows={"requests/day": RateLimitWindow(limit=9, remaining=5, reset=600)}), T0 + 5)
    run(live.reserve(m, T0 + 6))  # a provider's report is kept current from then on
    assert live.quota_view(m, T0 + 7)["windows"]["requests/day"]["remaining"] == 4


def test_key_limits_count_per_minute(live):
    assert [run(live.admit_key("k1", 2, T0 + i)) for i in range(3)] == [None, None, pytest.approx(58.0)]
    assert run(live.admit_key("k1", 2, T0 + 60)) is None
    assert run(live.admit_key("k2", 2, T0 + 3)) is None


# ------------------------------------------------------------------ several processes, one truth


@pytest.fixture
def redis_url():
    if not settings.REDIS_URL:
        # The embedded pass has no Redis by design; the server pass always sets REDIS_URL (and these
        # tests fail there if Redis does not answer: the states would each count alone).
        pytest.skip("needs Redis (server-mode pass)")
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    yield settings.REDIS_URL, prefix
    _clean(prefix)


def test_two_processes_share_a_free_quota_exactly(redis_url, make_model):
    make_model("tight", provider="groq", is_free=True, free_rpm=10)
    m = snapshot().by_public_id["groq/tight"]
    one, two = shared_state(*redis_url), shared_state(*redis_url)

    async def race():
        now = T0 + 5
        results = await asyncio.gather(*(state.reserve(m, now) for _ in range(15) for state in (one, two)))
        return sum(r is None for r in results)

    assert run(race()) == 10
    assert two.blocked(m, T0 + 6)[0].startswith("free quota used up")


def test_breakers_and_cool_downs_reach_the_other_processes(redis_url, make_model):
    make_model("a", provider="groq", is_free=True)
    m = snapshot().by_public_id["groq/a"]
    one, two = shared_state(*redis_url), shared_state(*redis_url)
    now = time.time()
    for i in range(5):
        one.record(m, False, now + i * 0.01)
    one.observe(m, RateLimitInfo(retry_after=30), now)
    run(two.reserve(m, now))  # `two` now follows this model's scope

    async def exchange():
        assert await one.sync(now + 0.1)
        assert await two.sync(now + 0.2)

    run(exchange())
    assert two.blocked(m, now + 1)[0].startswith("circuit open")
    assert two.quotas[f"m:{m.pk}"]["blocked_until"] == pytest.approx(now + 30)

    for key in list(one.breakers.states):  # `one` sees the model recover and closes it
        one.breakers.adopt(key, None)
        one.breakers.transitions.append((key, "closed", 0.0, 0.0))

    async def close():
        await one.sync(now + 0.3)
        await two.sync(now + 0.4)

    run(close())
    assert two.blocked(m, now + 1) is None or "circuit" not in two.blocked(m, now + 1)[0]


# ------------------------------------------------------------------ Redis goes away and comes back


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def own_redis():
    """A Redis of this test's own, which it may stop (never the shared one)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("redis-server is needed")
        pytest.skip("redis-server not installed")
    port = _free_port()

    def start():
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                return proc
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("own redis did not start")

    server = {"proc": start()}

    def stop():
        server["proc"].terminate()
        server["proc"].wait(5)

    def restart():
        server["proc"] = start()

    yield f"redis://127.0.0.1:{port}/0", stop, restart
    if server["proc"].poll() is None:
        stop()


def test_without_redis_each_process_goes_on_alone_and_reconciles_when_it_returns(own_redis, make_model):
    url, stop, restart = own_redis
    make_model("tight", provider="groq", is_free=True, free_rpm=10)
    m = snapshot().by_public_id["groq/tight"]
    live = shared_state(url, "t:", timeout=0.2)

    async def scenario():
        now = time.time()
        assert await live.reserve(m, now) is None
        stop()
        started = time.perf_counter()
        # Redis is gone: reservations go on locally, fast, and key limits still count.
        assert all([await live.reserve(m, now) is None for _ in range(4)])
        assert await live.admit_key("k", 100, now) is None
        assert await live.sync(now) is False
        elapsed = time.perf_counter() - started
        assert live.redis_ok is False
        restart()
        live.shared.down_until = 0  # don't wait out the skip second in a test
        assert await live.sync(now) is True
        return elapsed

    elapsed = run(scenario())
    assert elapsed < 1.0
    assert live.redis_ok is True
    import redis

    counted = redis.Redis.from_url(url).get(f"t:q:m:{m.pk}:requests/minute:{int(time.time() // 60)}")
    # The 4 made while Redis was away were pushed when it came back (the first one was lost with
    # the stopped server's memory, as Redis keeps nothing on disk here).
    assert counted is not None and int(counted) >= 4


def test_large_key_limits_are_counted_locally_and_reconciled_through_redis(redis_url):
    one, two = shared_state(*redis_url), shared_state(*redis_url)
    now = T0 + 5

    async def scenario():
        assert [await one.admit_key("big", 200, now) for _ in range(150)] == [None] * 150
        assert await one.sync(now)
        assert [await two.admit_key("big", 200, now) for _ in range(60)] == [None] * 60  # within one interval
        assert await two.sync(now)
        return await two.admit_key("big", 200, now), await one.admit_key("big", 200, now)

    after_two, after_one = run(scenario())
    assert after_two == pytest.approx(55.0)  # two now knows of one's 150: 211 > 200
    assert after_one is None  # one still counts 151 until its next exchange ...
    run(one.sync(now))
    assert run(one.admit_key("big", 200, now)) == pytest.approx(55.0)  # ... then it knows too


def test_rest_and_gateway_keep_one_key_count_when_redis_goes_away(own_redis):
    from routing.limits import admit_sync

    url, stop, _ = own_redis
    live = shared_state(url, "t:", timeout=0.2)
    now = time.time()
    assert [admit_sync(live, "k", 3, now) for _ in range(3)] == [None] * 3  # REST calls, counted in Redis
    stop()

    # The gateway goes on alone from the count the REST side saw: the key's 4th call is over its limit.
    assert run(live.admit_key("k", 3, now)) is not None


def test_an_attempt_its_quota_refuses_gives_back_its_half_open_trial_slots(free_model):
    live = LiveState()
    live.breakers.trip(f"model:{free_model.pk}", T0)
    live.breakers.trip(f"provider:{free_model.provider}", T0)
    for _ in range(3):
        run(live.reserve(free_model, T0 + 1))  # the minute's quota spent
    now = T0 + 30  # both breakers half-open

    assert live.admit(free_model, now) is None  # claims a trial slot of each breaker
    assert run(live.reserve(free_model, now)) is not None
    live.unadmit(free_model, now)

    # Both trials are still there for calls that are sent (before: held for 30 s by a call never made).
    assert live.admit(free_model, now + 1) is None and live.admit(free_model, now + 1) is None
    assert live.admit(free_model, now + 1)[0].startswith("provider circuit half-open")


def test_a_model_breaker_that_refuses_frees_the_provider_trial_it_passed(free_model):
    live = LiveState()
    live.breakers.trip(f"provider:{free_model.provider}", T0)
    live.breakers.trip(f"model:{free_model.pk}", T0 + 25)  # the model's own breaker is still open
    now = T0 + 30

    assert live.admit(free_model, now)[0].startswith("circuit open until")
    assert live.admit(free_model, now)[0].startswith("circuit open until")
    provider = live.breakers.states[f"provider:{free_model.provider}"]
    assert provider.trials == []  # no slot held for calls that were never let through
