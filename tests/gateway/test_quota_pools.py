"""The account pools over real HTTP: Cohere's calls a month and Cloudflare's neurons a day stop the
gateway from sending once spent (503 with the true Retry-After when that is the only reason), and
/api/free-models shows what the gateway's live state counted in them."""

from __future__ import annotations

import calendar
import time
import uuid

import httpx
import pytest
from django.conf import settings as django_settings
from prometheus_client.parser import text_string_to_metric_families

from registry import services, tracker
from registry.fakes import KEY
from tests.routing.test_live import _clean
from tests.routing.test_quota_pools import NEURONS_IN, NEURONS_OUT, small_pools_table

LLAMA = "cloudflare/@cf/meta/llama-3.1-8b-instruct"


@pytest.fixture
def live(gateway):
    """The gateway's live state, on Redis in the server-mode pass (a prefix of its own)."""
    from routing.gateway.runtime import runtime
    from routing.live import LiveState

    if not django_settings.REDIS_URL:
        yield runtime.live
        return
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    runtime.live = LiveState(redis_url=django_settings.REDIS_URL, prefix=prefix)
    yield runtime.live
    _clean(prefix)


@pytest.fixture
def small_pools(settings, tmp_path):
    """3 Cohere calls a month; 5 Cloudflare neurons a day, which a few of the fake's short replies spend."""
    small_pools_table(settings, tmp_path, calls_a_month=3, neurons_a_day=5)


def discovered(fake, kind: str) -> None:
    services.provider_create(slug=kind, kind=kind, base_url=fake.base_url(kind), api_key=KEY)
    assert all(r.ok for r in tracker.discover([kind]))


def chat(url: str, secret: str, model: str, **fields) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "count my neurons"}], **fields}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10,
                      headers={"authorization": f"Bearer {secret}"})


def pool(url: str, secret: str, provider: str) -> dict:
    reply = httpx.get(f"{url}/api/free-models", params={"provider": provider}, timeout=10,
                      headers={"authorization": f"Bearer {secret}"})
    assert reply.status_code == 200
    return reply.json()["pools"][0]


def upstream_calls(fake, kind: str) -> int:
    return sum(1 for r in fake.state.requests(kind) if r["path"].endswith(("/chat/completions", "/v2/chat")))


def test_spent_neurons_stop_the_calls_until_midnight(gateway, live, fake, user_secret, small_pools):
    discovered(fake, "cloudflare")
    replies = []
    for _ in range(12):  # each call may write 20 tokens (1.5 neurons); the fake's replies write about 12
        replies.append(chat(gateway, user_secret, LLAMA, max_tokens=20))
        if replies[-1].status_code != 200:
            break

    *served, refused = replies
    # Settled with their usage, the calls spend about 1 neuron each: at their reserved 1.7, two would fill the pool.
    assert len(served) >= 3 and all(r.status_code == 200 for r in served)
    assert upstream_calls(fake, "cloudflare") == len(served)  # the refused call never left
    assert refused.status_code == 503
    assert "free quota used up (neurons/day) until 00:00:00Z" in refused.json()["error"]["message"]
    to_midnight = 86400 - time.time() % 86400
    assert abs(int(refused.headers["retry-after"]) - to_midnight) <= 5

    spent = sum(r.json()["usage"]["prompt_tokens"] * NEURONS_IN + r.json()["usage"]["completion_tokens"] * NEURONS_OUT
                for r in served)
    window = pool(gateway, user_secret, "cloudflare")["windows"]["neurons/day"]
    assert window["source"] == "live" and window["limit"] == 5
    assert window["used"] == pytest.approx(spent, abs=0.02)  # settled with the replies' usage
    assert window["remaining"] == pytest.approx(5 - spent, abs=0.02)
    assert window["remaining"] < 20 * NEURONS_OUT  # what the refused call might have written does not fit


def test_a_monthly_pool_stops_the_calls_until_the_first(gateway, live, fake, user_secret, small_pools):
    discovered(fake, "cohere")
    codes = [chat(gateway, user_secret, model).status_code
             for model in ("cohere/command-a-03-2025", "cohere/command-r7b-12-2024") * 2]

    assert codes == [200, 200, 200, 503]  # 3 calls a month for the whole account
    assert upstream_calls(fake, "cohere") == 3
    refused = chat(gateway, user_secret, "cohere/command-a-03-2025")
    t = time.gmtime()
    first = calendar.timegm((t.tm_year + t.tm_mon // 12, t.tm_mon % 12 + 1, 1, 0, 0, 0))
    assert "free quota used up (requests/month)" in refused.json()["error"]["message"]
    assert abs(int(refused.headers["retry-after"]) - (first - time.time())) <= 5

    window = pool(gateway, user_secret, "cohere")["windows"]["requests/month"]
    assert (window["used"], window["remaining"], window["limit"]) == (3, 0, 3)
    assert window["resetAt"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(first))
    # /metrics shows the pool's window like the minute and day ones (an account pool: no model label).
    assert quota_gauges(gateway)[("cohere", "", "requests/month")] == 0


def test_metrics_show_the_neuron_pool_left(gateway, live, fake, user_secret, small_pools):
    discovered(fake, "cloudflare")
    assert chat(gateway, user_secret, LLAMA, max_tokens=20).status_code == 200

    left = pool(gateway, user_secret, "cloudflare")["windows"]["neurons/day"]["remaining"]
    assert 0 < left < 5
    assert quota_gauges(gateway)[("cloudflare", "", "neurons/day")] == pytest.approx(left, abs=0.01)


def quota_gauges(url: str) -> dict[tuple[str, str, str], float]:
    reply = httpx.get(f"{url}/metrics", timeout=10)
    assert reply.status_code == 200
    return {(s.labels["provider"], s.labels["model"], s.labels["window"]): s.value
            for family in text_string_to_metric_families(reply.text) for s in family.samples
            if s.name == "afmts_free_quota_remaining"}
