"""The usage endpoints: /api/performance, /api/usage/{modelId}, /api/analytics/costs, CSV, /api/stats'
today, /api/keys/me — and who may see what."""

from __future__ import annotations

import csv
import io
import time
import warnings
from decimal import Decimal

import httpx
import pytest

from analytics import rollups
from analytics.recorder import write
from registry import services
from registry.models import KeyScope
from tests.analytics.test_rollups import rec


@pytest.fixture
def models(make_model):
    free = make_model("llama-3.1-8b-instant", provider="groq", is_free=True)
    paid = make_model("gpt-4o-mini", provider="openai", input_price="0.15", output_price="0.6")
    return free, paid


@pytest.fixture
def two_users(db):
    from rest_framework.test import APIClient

    made = []
    for name in ("alice", "bob"):
        key, secret = services.apikey_create(name=name, scope=KeyScope.USER)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        made.append((key, client))
    return made


@pytest.fixture
def traffic(models, two_users):
    """alice: 3 requests to the paid model; bob: 5 to the free one, one of them failed."""
    free, paid = models
    (alice, _), (bob, _) = two_users
    now = time.time()
    write([rec(paid, ts=now - i, key_id=alice.id, tokens=(1000, 100)) for i in range(3)]
          + [rec(free, ts=now - i, key_id=bob.id) for i in range(4)]
          + [rec(free, ts=now, key_id=bob.id, status="upstream_error", http=502)])
    rollups.build()
    return free, paid


def test_performance_reports_totals_models_providers_and_a_series(admin_api, traffic):
    body = admin_api.get("/api/performance?window=24h").json()

    assert body["resolution"] == "hour" and body["window"] == "24h"
    assert body["totals"]["requests"] == 8 and body["totals"]["errors"] == 1
    assert body["totals"]["errorRate"] == 0.125
    assert {m["model"]: m["requests"] for m in body["models"]} == {"groq/llama-3.1-8b-instant": 5, "openai/gpt-4o-mini": 3}
    assert {p["provider"]: p["requests"] for p in body["providers"]} == {"groq": 5, "openai": 3}
    assert 24 <= len(body["series"]) <= 25 and sum(p["requests"] for p in body["series"]) == 8
    assert body["totals"]["latencyMs"]["p95"] is not None


@pytest.mark.parametrize("window,resolution,points", [("1h", "minute", 61), ("7d", "hour", 169), ("30d", "day", 31)])
def test_each_window_has_a_series_at_a_resolution_that_fits_it(admin_api, traffic, window, resolution, points):
    body = admin_api.get(f"/api/performance?window={window}").json()

    assert body["resolution"] == resolution
    assert points - 1 <= len(body["series"]) <= points
    assert body["totals"]["requests"] == 8


def test_a_user_key_sees_only_its_own_usage(two_users, traffic, admin_api):
    (alice, alice_api), (bob, _) = two_users

    mine = alice_api.get("/api/performance?window=24h").json()
    assert mine["totals"]["requests"] == 3 and [m["model"] for m in mine["models"]] == ["openai/gpt-4o-mini"]
    assert alice_api.get(f"/api/performance?key={bob.id}").status_code == 403
    assert alice_api.get(f"/api/usage/{traffic[0].pk}").json()["totals"]["requests"] == 0
    assert {r["keyId"] for r in alice_api.get("/api/analytics/costs").json()["rows"]} == {alice.id}
    assert admin_api.get(f"/api/performance?key={bob.id}").json()["totals"]["requests"] == 5


def test_usage_takes_the_numeric_id_or_the_public_id(admin_api, traffic):
    free, _ = traffic
    by_pk = admin_api.get(f"/api/usage/{free.pk}?window=1h").json()
    by_name = admin_api.get("/api/usage/groq/llama-3.1-8b-instant?window=1h").json()

    assert by_pk["totals"] == by_name["totals"] and by_pk["totals"]["requests"] == 5
    assert by_pk["model"] == "groq/llama-3.1-8b-instant" and by_name["modelId"] == free.pk
    assert admin_api.get("/api/usage/nobody/nothing").status_code == 404
    assert admin_api.get("/api/usage/999999").status_code == 404


def test_costs_are_by_day_key_and_provider(admin_api, traffic, two_users):
    (alice, _), (bob, _) = two_users
    rows = admin_api.get("/api/analytics/costs?window=24h").json()["rows"]

    by = {(r["key"], r["provider"]): r for r in rows}
    assert set(by) == {("alice", "openai"), ("bob", "groq")}
    assert Decimal(by[("alice", "openai")]["costUsd"]) == 3 * (Decimal(1000) * Decimal("0.15") + Decimal(100) * Decimal("0.6")) / 10**6
    assert Decimal(by[("bob", "groq")]["costUsd"]) == 0 and Decimal(by[("bob", "groq")]["savingsUsd"]) > 0


def test_format_csv_answers_a_table(admin_api, traffic):
    response = admin_api.get("/api/analytics/costs?window=24h&format=csv")

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="costs.csv"'
    table = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert {(r["key"], r["provider"], r["requests"]) for r in table} == {("alice", "openai", "3"), ("bob", "groq", "5")}

    perf = admin_api.get("/api/performance?window=24h&format=csv")
    lines = list(csv.reader(io.StringIO(perf.content.decode())))
    assert lines[0][:4] == ["model", "modelId", "provider", "requests"] and lines[1][:4] == ["(all)", "", "", "8"]
    usage = admin_api.get(f"/api/usage/{traffic[0].pk}?window=1h&format=csv")
    assert usage.content.decode().startswith("start,requests,errors")


def test_a_csv_served_over_asgi_comes_without_a_warning(asgi_url, transactional_db):
    secret = services.apikey_create(name="csv reader", scope=KeyScope.ADMIN)[1]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        response = httpx.get(f"{asgi_url}/api/analytics/costs?window=24h&format=csv", timeout=10,
                             headers={"authorization": f"Bearer {secret}"})

    assert response.status_code == 200 and response.text.startswith("day,keyId,key,provider")
    assert [str(w.message) for w in caught if "StreamingHttpResponse" in str(w.message)] == []


def test_invalid_queries_answer_400_in_the_envelope_even_for_csv(admin_api, db):
    # Every combination of window, since and until is a report (tests/test_contract.py).
    for query in ("window=2h", "since=yesterday", "window=", "key=0", "format=xml"):
        response = admin_api.get(f"/api/performance?{query}")
        assert response.status_code in (400, 404), query
        if response.status_code == 400:
            assert response["Content-Type"].startswith("application/json") and "error" in response.json()
    bad_csv = admin_api.get("/api/performance?window=2h&format=csv")
    assert bad_csv.status_code == 400 and bad_csv.json()["error"]["param"] == "window"


def test_since_and_until_choose_the_resolution(admin_api, traffic):
    body = admin_api.get("/api/performance", {"since": "2020-01-01T00:00:00Z", "until": "2020-01-02T00:00:00Z"}).json()
    assert body["resolution"] == "day" and body["totals"]["requests"] == 0


def test_stats_gains_todays_usage(admin_api, traffic):
    today = admin_api.get("/api/stats").json()["today"]

    assert today["requests"] == 8 and today["errorRate"] == 0.125 and today["latencyP95Ms"] is not None
    assert Decimal(today["spendUsd"]) > 0 and Decimal(today["savingsUsd"]) > 0


def test_keys_me_shows_spend_and_remaining_budget(two_users, traffic, admin_api):
    (alice, alice_api), _ = two_users
    assert admin_api.put(f"/api/keys/{alice.id}/budget", {"monthlyBudgetUsd": "1.00"}, format="json").status_code == 200

    me = alice_api.get("/api/keys/me").json()

    spent = 3 * (Decimal(1000) * Decimal("0.15") + Decimal(100) * Decimal("0.6")) / 10**6
    assert me["name"] == "alice" and me["budget"]["monthlyBudgetUsd"] == "1.00"
    assert Decimal(me["budget"]["spentUsd"]) == spent
    assert Decimal(me["budget"]["remainingUsd"]) == Decimal("1.00") - spent and me["budget"]["exhausted"] is False


def test_only_an_admin_sets_a_budget(two_users, admin_api):
    (alice, alice_api), _ = two_users

    assert alice_api.put(f"/api/keys/{alice.id}/budget", {"monthlyBudgetUsd": "5"}, format="json").status_code == 403
    assert admin_api.put(f"/api/keys/{alice.id}/budget", {"monthlyBudgetUsd": "-1"}, format="json").status_code == 400
    assert admin_api.put("/api/keys/999999/budget", {"monthlyBudgetUsd": "5"}, format="json").status_code == 404
    cleared = admin_api.put(f"/api/keys/{alice.id}/budget", {"monthlyBudgetUsd": None}, format="json").json()
    assert cleared["monthlyBudgetUsd"] is None and cleared["remainingUsd"] is None


def test_a_window_reaching_centuries_back_or_ahead_is_bounded_by_what_is_kept(admin_api, traffic, settings):
    # It walked every day bucket since year 1 (hundreds of thousands of empty points, tens of seconds).
    body = admin_api.get("/api/performance", {"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T00:00:00Z"}).json()

    assert body["resolution"] == "day" and body["totals"]["requests"] == 8
    assert len(body["series"]) <= settings.METRICS_ROLLUP_DAY_DAYS + 2
    assert admin_api.get("/api/analytics/costs", {"since": "0001-01-01T00:00:00Z"}).status_code == 200


def test_the_key_list_shows_each_budget(admin_api, two_users):
    (alice, _), _ = two_users
    admin_api.put(f"/api/keys/{alice.id}/budget", {"monthlyBudgetUsd": "7.5"}, format="json")

    keys = {k["name"]: k for k in admin_api.get("/api/keys").json()["keys"]}

    assert keys["alice"]["monthlyBudgetUsd"] == "7.50" and keys["bob"]["monthlyBudgetUsd"] is None
