"""GET /api/free-models (free right now, with remaining quota) and /api/free-models/history;
quota learned from providers' rate-limit reports and from what AFMTS sends, reset on the window."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from registry.discovery import apply_listing
from registry.models import AIModel
from registry.providers.types import Listing, ModelRecord, RateLimitInfo, RateLimitWindow
from registry.quota import quota_count, quota_observe

pytestmark = pytest.mark.django_db


def free_models(client) -> dict[str, dict]:
    response = client.get("/api/free-models")
    assert response.status_code == 200, response.content
    return {m["publicId"]: m for m in response.json()["models"]}


def test_lists_only_what_is_free_and_usable_now(user_api, make_model):
    make_model("paid", input_price=1, output_price=1)
    make_model("llama3", provider="ollama", is_free=True)
    make_model("gone", provider="ollama", is_free=True, status="retired")
    make_model("off", provider="ollama", is_free=True, disabled=True)
    make_model("dead", provider="ollama", is_free=True, status="down")

    assert list(free_models(user_api)) == ["ollama/llama3"]


def test_configured_quota_shows_in_full_before_any_use(user_api, make_model):
    make_model("llama-3.1-8b-instant", provider="groq", is_free=True, free_rpm=30, free_rpd=14400)

    quota = free_models(user_api)["groq/llama-3.1-8b-instant"]["quota"]

    assert quota["scope"] == "model"
    assert quota["windows"]["requests/minute"]["limit"] == 30
    assert quota["windows"]["requests/minute"]["remaining"] == 30
    assert quota["remainingFraction"] == 1.0


def test_provider_headers_saying_the_quota_is_nearly_spent_show_up(user_api, make_model):
    model = make_model("llama-3.1-8b-instant", provider="groq", is_free=True, free_rpd=14400)
    info = RateLimitInfo(windows={
        "requests/day": RateLimitWindow(limit=14400, remaining=3, reset=600),
        "tokens/minute": RateLimitWindow(limit=6000, remaining=5900, reset=7.66),
    })

    quota_observe(provider_id=model.provider_id, model=model, info=info)

    quota = free_models(user_api)["groq/llama-3.1-8b-instant"]["quota"]
    assert quota["windows"]["requests/day"]["remaining"] == 3
    assert quota["windows"]["requests/day"]["source"] == "headers"
    assert quota["windows"]["tokens/minute"] == {**quota["windows"]["tokens/minute"], "limit": 6000, "remaining": 5900}
    assert quota["remainingFraction"] == pytest.approx(3 / 14400)


def test_requests_sent_are_counted_against_the_window_and_it_resets(make_model, user_api):
    model = make_model("m", provider="groq", is_free=True, free_rpm=30)
    t0 = timezone.now()

    for _ in range(4):
        quota_count(model=model, requests=1, tokens=100, now=t0)
    quota_observe(
        provider_id=model.provider_id, model=model, now=t0,
        info=RateLimitInfo(windows={"requests/minute": RateLimitWindow(limit=30, remaining=20, reset=60)}),
    )
    quota_count(model=model, requests=2, now=t0 + timedelta(seconds=5))

    quota = free_models(user_api)["groq/m"]["quota"]["windows"]["requests/minute"]
    assert quota["remaining"] == 18  # the provider's word, less what was sent after it

    quota_count(model=model, requests=1, now=t0 + timedelta(seconds=61))  # the window turned over
    from registry.models import QuotaState

    state = QuotaState.objects.get(window="requests/minute")
    assert state.used == 1 and state.remaining is None


def test_account_wide_quota_is_shared_by_all_the_accounts_free_models(make_model, user_api):
    a = make_model("a:free", provider="openrouter", is_free=True, quota_scope="account", free_rpm=20, free_rpd=50)
    make_model("b:free", provider="openrouter", is_free=True, quota_scope="account", free_rpm=20, free_rpd=50)

    for _ in range(5):
        quota_count(model=a)

    listed = free_models(user_api)
    assert listed["openrouter/b:free"]["quota"]["scope"] == "account"
    assert listed["openrouter/b:free"]["quota"]["windows"]["requests/day"]["remaining"] == 45
    assert listed["openrouter/a:free"]["quota"]["windows"]["requests/minute"]["remaining"] == 15


def test_a_429_blocks_the_model_until_retry_after(make_model, user_api):
    model = make_model("m", provider="groq", is_free=True)

    quota_observe(provider_id=model.provider_id, model=model, source="429", info=RateLimitInfo(retry_after=7))

    quota = free_models(user_api)["groq/m"]["quota"]
    assert quota["blockedUntil"] is not None and quota["remainingFraction"] == 0.0


def test_history_shows_when_models_became_and_stopped_being_free(make_provider, user_api):
    provider = make_provider("openrouter")
    t0 = timezone.now()
    apply_listing(provider.pk, Listing(models=[ModelRecord(id="x", name="x", input_price=Decimal(1), output_price=Decimal(1))]), now=t0)
    apply_listing(provider.pk, Listing(models=[ModelRecord(id="x", name="x", is_free=True, input_price=Decimal(0), output_price=Decimal(0))]), now=t0 + timedelta(minutes=1))
    apply_listing(provider.pk, Listing(models=[ModelRecord(id="x", name="x", input_price=Decimal(2), output_price=Decimal(2))]), now=t0 + timedelta(minutes=2))

    history = user_api.get("/api/free-models/history").json()["results"]

    assert [(h["model"], h["event"]) for h in history] == [
        ("openrouter/x", "model_stopped_being_free"), ("openrouter/x", "model_became_free")
    ]
    assert user_api.get("/api/free-models/history?provider=groq").json()["count"] == 0
    assert AIModel.objects.get().is_free is False
