"""GET /metrics after known gateway traffic, parsed with prometheus_client's own text parser: the
gateway series and the seed's names carry the values the traffic implies (tokens, spend and savings
equal to the usage rows'), quota left and breakers are this process's live routing state, and no
label carries a user's input or a secret."""

from __future__ import annotations

import time
from decimal import Decimal

import httpx
import pytest
from django.db.models import Sum

from afmts import metrics as series
from analytics.models import UsageRecord
from registry.fakes import KEY
from registry.selectors import snapshot
from routing.gateway.runtime import runtime
from tests.analytics.test_metrics import CHAT, delta, scrape, total, value
from tests.gateway.conftest import flush

FREE = {"model_id": "llama-3.1-8b-instant", "is_free": True, "free_rpm": 30}
# The paid model savings are measured against (same type, a superset of the free model's capabilities).
PAID = {"model_id": "gpt-4o-mini", "input_price": "0.15", "output_price": "0.6"}


@pytest.fixture
def catalog(provider):
    series.clean_dead()  # earlier runs' files: this process's counts are what the deltas measure
    provider("groq", models=[FREE])
    provider("openai", models=[PAID])


def test_metrics_after_known_traffic_carry_its_names_and_values(client, gateway, catalog, user_secret):
    before, _ = scrape(client)
    auth = {"authorization": f"Bearer {user_secret}"}
    with httpx.Client(base_url=gateway, timeout=10) as http:
        for _ in range(3):
            assert http.post("/v1/chat/completions", json={"model": "free", "messages": CHAT}, headers=auth).status_code == 200
        with http.stream("POST", "/v1/chat/completions", headers=auth,
                         json={"model": "groq/llama-3.1-8b-instant", "messages": CHAT, "stream": True}) as reply:
            assert reply.status_code == 200
            reply.read()
        assert http.post("/v1/chat/completions", json={"model": "openai/gpt-4o-mini", "messages": CHAT},
                         headers=auth).status_code == 200
        assert http.post("/v1/chat/completions", json={"model": "no-such/model", "messages": CHAT},
                         headers=auth).status_code == 404
        assert http.post("/v1/chat/completions", json={"model": "free", "messages": CHAT}).status_code == 401
    assert flush() == 5  # the usage series are counted from the recorder's batches
    after, _ = scrape(client)

    free, paid = "groq/llama-3.1-8b-instant", "openai/gpt-4o-mini"
    requests = "afmts_gateway_requests_total"
    assert delta(after, before, requests, endpoint="chat.completions", provider="groq", model=free, status="ok") == 4
    assert delta(after, before, requests, endpoint="chat.completions", provider="openai", model=paid, status="ok") == 1
    assert delta(after, before, requests, endpoint="chat.completions", provider="none", model="none",
                 status="model_not_found") == 1
    assert delta(after, before, requests, endpoint="chat.completions", provider="none", model="none",
                 status="missing_api_key") == 1
    assert delta(after, before, "registry_requests_total") == 7  # the refused ones too
    assert delta(after, before, "registry_response_time_seconds_count") == 5
    assert delta(after, before, "afmts_gateway_latency_seconds_count", endpoint="chat.completions", provider="groq",
                 model=free) == 4
    assert delta(after, before, "afmts_gateway_latency_seconds_bucket", endpoint="chat.completions", provider="groq",
                 model=free, le="+Inf") == 4
    assert delta(after, before, "afmts_ttft_seconds_count", provider="groq", model=free) == 1
    assert delta(after, before, "afmts_gateway_overhead_seconds_count", endpoint="chat.completions") == 5
    assert delta(after, before, "afmts_fallbacks_total", endpoint="chat.completions") == 0

    rows = UsageRecord.objects.all()
    for direction, column in (("in", "tokens_in"), ("out", "tokens_out")):
        for slug in ("groq", "openai"):
            expected = rows.filter(provider=slug).aggregate(n=Sum(column))["n"]
            assert expected > 0
            assert delta(after, before, "afmts_tokens_total", direction=direction, provider=slug) == expected
    # Spend and savings, exact in Decimal in the rows, as floats here.
    spent = rows.filter(provider="openai").aggregate(c=Sum("cost"))["c"]
    assert spent > 0
    assert delta(after, before, "afmts_cost_usd_total", provider="openai") == pytest.approx(float(spent), rel=1e-9)
    assert delta(after, before, "afmts_cost_usd_total", provider="groq") == 0
    reference = rows.filter(provider="groq").aggregate(r=Sum("reference_cost"))["r"]
    assert reference > Decimal(0) and set(rows.filter(provider="groq").values_list("reference_model", flat=True)) == {paid}
    assert delta(after, before, "afmts_saved_usd_total", provider="groq") == pytest.approx(float(reference), rel=1e-9)
    assert delta(after, before, "afmts_saved_usd_total", provider="openai") == 0  # it is the reference

    # The seed's names: gauges from the registry and from the summed series.
    assert value(after, "registry_models_active") == 2
    assert value(after, "registry_agents_total") == 0
    assert value(after, "afmts_free_models", provider="groq") == 1
    assert value(after, "afmts_free_models", provider="openai") == 0
    latency_sum = value(after, "registry_response_time_seconds_sum")
    latency_count = value(after, "registry_response_time_seconds_count")
    assert value(after, "registry_response_time_avg") == pytest.approx(latency_sum / latency_count * 1000, rel=1e-3)
    errors = sum(v for (n, ls), v in after.items() if n == requests and ("status", "ok") not in ls)
    assert value(after, "registry_error_rate") == pytest.approx(errors / total(after, requests), abs=1e-6)

    # Quota left and breakers: this process's live routing state, as the router reads it.
    model = snapshot().by_public_id[free]
    left = runtime.live.quota_view(model, time.time())["windows"]["requests/minute"]["remaining"]
    assert left <= 30 - 4
    assert value(after, "afmts_free_quota_remaining", provider="groq", model=free, window="requests/minute") == left
    runtime.live.breakers.trip(f"model:{model.pk}", time.time())
    runtime.live.breakers.trip("provider:openai", time.time())
    now, _ = scrape(client)
    assert value(now, "afmts_circuit_state", provider="groq", model=free) == 2
    assert value(now, "afmts_circuit_state", provider="openai", model="") == 2


def test_labels_carry_neither_user_input_nor_a_secret(client, gateway, catalog, user_secret):
    typed = "sk-user-typed-0123456789abcdef"
    with httpx.Client(base_url=gateway, timeout=10) as http:
        http.post("/v1/chat/completions", json={"model": typed, "messages": CHAT},
                  headers={"authorization": f"Bearer {user_secret}", "x-request-id": "req-label-probe-42"})
        http.post("/v1/chat/completions", json={"model": "free", "messages": CHAT},
                  headers={"authorization": f"Bearer {user_secret}", "x-request-id": "req-label-probe-43"})
        http.post("/v1/chat/completions", json={"model": "free", "messages": CHAT},
                  headers={"authorization": "Bearer afmts_not-a-real-key-0123456789"})
    flush()
    _, text = scrape(client)

    for leaked in (typed, "req-label-probe", user_secret, user_secret[:16], "afmts_not-a-real-key", KEY):
        assert leaked not in text
