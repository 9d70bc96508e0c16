"""Usage records and rollups in Django admin: read-only, filterable by key, model, provider, outcome
and date; each record shows its savings. A key's budget is set in admin too."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.urls import reverse

from analytics import rollups
from analytics.models import OutcomeClass, UsageRecord
from analytics.recorder import write
from registry import services
from registry.models import ApiKey
from tests.analytics.test_rollups import rec
from tests.registry.test_admin import form_data


@pytest.fixture
def records(make_model):
    free = make_model("llama-3.1-8b-instant", provider="groq", is_free=True)
    make_model("gpt-4o-mini", provider="openai", input_price="0.15", output_price="0.6")
    key, _ = services.apikey_create(name="alice")
    write([rec(free, key_id=key.id, tokens=(1000, 1000)), rec(free, status="rate_limited", http=429),
           rec(free, status="upstream_timeout", http=504)])
    rollups.build()
    return key


def test_usage_records_are_listed_read_only_with_their_savings(admin_client, records):
    url = reverse("admin:analytics_usagerecord_changelist")
    page = admin_client.get(url)

    assert page.status_code == 200
    saved = (Decimal(1000) * Decimal("0.15") + Decimal(1000) * Decimal("0.6")) / 10**6
    assert str(saved.quantize(Decimal("0.00000001"))) in page.content.decode()
    assert admin_client.get(reverse("admin:analytics_usagerecord_add")).status_code == 403
    record = UsageRecord.objects.first()
    change = admin_client.post(reverse("admin:analytics_usagerecord_change", args=[record.pk]), {"status": "x"})
    assert change.status_code == 403 and UsageRecord.objects.get(pk=record.pk).status == record.status


@pytest.mark.parametrize("query,count", [
    ("outcome=rate_limited", 1), ("outcome=timeout", 1), ("outcome=ok", 1), ("provider=groq", 3),
    ("model=groq/llama-3.1-8b-instant", 3), ("provider=openai", 0),
])
def test_usage_records_filter_by_outcome_provider_and_model(admin_client, records, query, count):
    page = admin_client.get(reverse("admin:analytics_usagerecord_changelist") + "?" + query)

    assert page.status_code == 200 and page.context["cl"].result_count == count


def test_usage_records_filter_by_key_and_date(admin_client, records):
    url = reverse("admin:analytics_usagerecord_changelist")
    assert admin_client.get(f"{url}?key={records.id}").context["cl"].result_count == 1
    y, m, d = time.gmtime()[:3]
    assert admin_client.get(f"{url}?ts__year={y}&ts__month={m}&ts__day={d}").context["cl"].result_count == 3
    assert admin_client.get(f"{url}?ts__year={y - 1}").context["cl"].result_count == 0


def test_rollups_are_listed_read_only_and_filter_by_resolution_and_outcome(admin_client, records):
    url = reverse("admin:analytics_usagerollup_changelist")
    every_key = admin_client.get(f"{url}?res=d&key=-1")  # one row per model, over endpoints and outcomes
    limited = admin_client.get(f"{url}?res=d&outcome={OutcomeClass.RATE_LIMITED}")

    assert every_key.status_code == 200 and every_key.context["cl"].result_count == 1
    assert limited.context["cl"].result_count == 1
    assert admin_client.get(reverse("admin:analytics_usagerollup_add")).status_code == 403


def test_an_admin_sets_a_keys_budget_in_admin(admin_client, records):
    url = reverse("admin:registry_apikey_change", args=[records.pk])
    response = admin_client.post(url, form_data(admin_client.get(url)) | {"monthly_budget_usd": "12.50"})

    assert response.status_code == 302
    assert ApiKey.objects.get(pk=records.pk).monthly_budget_usd == Decimal("12.50")
