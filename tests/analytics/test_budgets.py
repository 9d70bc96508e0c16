"""Budgets end to end, through the real gateway and the fake providers: a key's spend crosses 80 %
(budget_warning), then its limit (budget_exhausted); past it the key is served by free models only,
and refused with 402 naming the budget when no free model can serve."""

from __future__ import annotations

from decimal import ROUND_UP, Decimal

import httpx
import openai
import pytest

from analytics.budgets import key_budget_set
from analytics.models import UsageRecord
from analytics.tasks import rollup_build
from registry import services
from registry.models import ApiKey, Event
from tests.gateway.conftest import flush, gateway, gateway_url, provider  # noqa: F401 - the gateway fixtures

FREE = {"model_id": "llama-3.1-8b-instant", "is_free": True, "free_rpm": 1000}
# Dear on purpose: one short request costs dollars, so a budget (whole cents) is crossed in two.
PAID = {"model_id": "gpt-4o-mini", "input_price": "100000", "output_price": "100000",
        "capabilities": ["text-generation", "streaming", "vision"]}
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def capped(gateway, provider):  # noqa: F811
    provider("groq", models=[FREE])
    provider("openai", models=[PAID])
    key, secret = services.apikey_create(name="capped")
    return key, openai.OpenAI(base_url=f"{gateway}/v1", api_key=secret, max_retries=0)


def events(name: str, key: ApiKey) -> list[dict]:
    return [e.data for e in Event.objects.filter(event=name) if e.data.get("keyId") == key.id]


def test_a_key_past_its_budget_is_served_free_only_then_refused_with_402(capped, admin_api, gateway_url):  # noqa: F811
    key, client = capped
    first = client.chat.completions.with_raw_response.create(model="openai/gpt-4o-mini", messages=HI)
    assert first.headers["x-afmts-provider"] == "openai"
    flush()
    rollup_build()
    cost = UsageRecord.objects.get(key_id=key.id).cost
    assert cost > 0
    # A budget the first request used ~85 % of: warned at once; the next paid request crosses it.
    key_budget_set(key=key, limit=(cost / Decimal("0.85")).quantize(Decimal("0.01"), rounding=ROUND_UP))
    assert len(events("budget_warning", key)) == 1 and not events("budget_exhausted", key)

    client.chat.completions.create(model="openai/gpt-4o-mini", messages=HI)  # still allowed: under the limit
    flush()
    rollup_build()
    assert len(events("budget_exhausted", key)) == 1

    served = client.chat.completions.with_raw_response.create(model="auto", messages=HI)
    assert served.headers["x-afmts-provider"] == "groq"  # free only
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=HI)
    assert refused.value.status_code == 402
    assert refused.value.body["code"] == "budget_exceeded" and "budget" in refused.value.body["message"]
    with pytest.raises(openai.APIStatusError) as needs_vision:  # no free model has vision
        client.chat.completions.create(model="auto", messages=HI, extra_body={"afmts": {"capabilities": ["vision"]}})
    assert needs_vision.value.status_code == 402

    me = httpx.get(f"{gateway_url}/api/keys/me", headers={"Authorization": f"Bearer {client.api_key}"}).json()
    assert me["budget"]["exhausted"] is True and Decimal(me["budget"]["remainingUsd"]) == 0
    assert Decimal(me["budget"]["spentUsd"]) == 2 * cost

    # Raising the limit lifts the restriction at once (the key's cache follows the registry version).
    assert admin_api.put(f"/api/keys/{key.id}/budget", {"monthlyBudgetUsd": "100000"}, format="json").status_code == 200
    again = client.chat.completions.with_raw_response.create(model="openai/gpt-4o-mini", messages=HI)
    assert again.headers["x-afmts-provider"] == "openai"
    rollup_build()
    assert len(events("budget_exhausted", key)) == 1  # published once


def test_a_key_without_a_budget_is_never_limited(capped):
    key, client = capped
    for _ in range(2):
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=HI)
    flush()
    rollup_build()

    assert client.chat.completions.with_raw_response.create(model="openai/gpt-4o-mini", messages=HI).headers[
        "x-afmts-provider"] == "openai"
    assert not events("budget_warning", key) and not events("budget_exhausted", key)
