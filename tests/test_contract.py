"""What the OpenAPI schema calls valid is accepted, what it calls invalid is refused: the cases
schemathesis found (tests/test_schemathesis.py), each stated once, by hand."""

from __future__ import annotations

import pytest

from registry import services

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("query", ["window=1h&since=2026-01-01T00:00:00Z", "until=2026-01-02T00:00:00Z",
                                   "window=7d&until=2026-01-02T00:00:00Z",
                                   "since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z"])
def test_every_combination_of_window_since_and_until_is_a_report(admin_api, query):
    for path in ("/api/performance", "/api/analytics/costs"):
        response = admin_api.get(f"{path}?{query}")

        assert response.status_code == 200, (path, query, response.content)
        assert response.json()["window"] is None  # a named window ends now; these do not


def test_until_alone_reads_the_window_before_it_and_an_until_before_since_reads_nothing(admin_api):
    before = admin_api.get("/api/performance?window=7d&until=2026-01-08T00:00:00Z").json()
    inverted = admin_api.get("/api/performance?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z").json()

    assert before["since"].startswith("2026-01-01") and before["until"].startswith("2026-01-08")
    assert inverted["series"] == [] and inverted["totals"]["requests"] == 0


@pytest.mark.parametrize("path, param", [("/api/models?type=", "type"), ("/api/agents?status=", "status"),
                                         ("/api/events?since=", "since"), ("/api/performance?window=", "window"),
                                         ("/api/free-models/history?until=", "until"),
                                         ("/api/analytics/costs?key=", "key")])
def test_an_empty_value_is_not_an_absent_one(admin_api, path, param):
    # The schema's enum, integer and date-time hold no empty string: a 400 naming it, not "no filter".
    response = admin_api.get(path)

    assert response.status_code == 400 and response.json()["error"]["param"] == param


@pytest.mark.parametrize("value, status", [(5, 200), ("5.25", 200), (None, 200), (5.5, 400), ("5.255", 400),
                                           ("-1", 400), (True, 400), ("", 400)])
def test_a_budget_is_a_whole_number_or_a_decimal_string(admin_api, value, status):
    key = services.apikey_create(name="budgeted", scope="user")[0]

    response = admin_api.put(f"/api/keys/{key.id}/budget", {"monthlyBudgetUsd": value}, format="json")

    assert response.status_code == status, response.content


def test_registering_under_a_provider_that_is_neither_stored_nor_a_kind_is_a_404(admin_api):
    response = admin_api.post("/api/models/register", {"name": "m", "provider": "acme"}, format="json")

    assert response.status_code == 404 and response.json()["error"]["code"] == "provider_not_found"


def test_a_body_at_odds_with_the_stored_provider_is_a_409(admin_api):
    created = admin_api.post("/api/providers/", {"slug": "local", "kind": "ollama"}, format="json").json()
    services.model_register(provider_slug="local", provider_kind=None, endpoint=None, api_key=None,
                            model_fields={"name": "m", "model_id": "m"})

    kind = admin_api.patch(f"/api/providers/{created['id']}", {"kind": "groq"}, format="json")
    slug = admin_api.patch(f"/api/providers/{created['id']}", {"slug": "other"}, format="json")
    register = admin_api.post("/api/models/register", {"name": "n", "provider": "local", "providerKind": "groq"},
                              format="json")

    assert (kind.status_code, slug.status_code, register.status_code) == (409, 409, 409)


@pytest.mark.parametrize("body", [{"name": "a", "models": []}, {"name": "a", "policy": ""}])
def test_the_schema_asks_an_alias_for_models_or_a_policy_not_empty(admin_api, body):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    either = schema["paths"]["/api/aliases"]["post"]["requestBody"]["content"]["application/json"]["schema"]["anyOf"]

    assert admin_api.post("/api/aliases", body, format="json").status_code == 400
    assert {"models": {"type": "array", "minItems": 1}} in [branch["properties"] for branch in either]
    assert {"policy": {"type": "string", "minLength": 1}} in [branch["properties"] for branch in either]
