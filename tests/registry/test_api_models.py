"""POST /api/models/register, GET /api/models, GET/PUT/PATCH/DELETE /api/models/{id},
GET /api/models/{id}/communication — the seeds' calls with an Authorization header added."""

from __future__ import annotations

import pytest
from django.db import connection

from registry.models import AIModel, Event, Provider

pytestmark = pytest.mark.django_db

SEED_OPENAI = {
    "name": "gpt-4",
    "type": "llm",
    "provider": "openai",
    "endpoint": "https://api.openai.com",
    "apiKey": "your-openai-api-key",
    "description": "OpenAI GPT-4 - Most capable model",
    "capabilities": ["text-generation", "reasoning", "code-generation"],
}
SEED_OLLAMA = {
    "name": "llama2",
    "type": "llm",
    "provider": "ollama",
    "endpoint": "http://localhost:11434",
    "description": "Local Llama2 model via Ollama",
}


def test_seed_openai_payload_registers_model_and_creates_provider(admin_api):
    response = admin_api.post("/api/models/register", SEED_OPENAI, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["publicId"] == "openai/gpt-4"
    assert body["provider"] == "openai" and body["providerKind"] == "openai"
    assert body["capabilities"] == ["text-generation", "reasoning", "code-generation"]
    assert body["isFree"] is False
    assert body["inputPrice"] is None and body["outputPrice"] is None  # unknown, not $0
    assert body["source"] == "manual"
    provider = Provider.objects.get(slug="openai")
    assert provider.base_url == "https://api.openai.com"
    assert provider.api_key == "your-openai-api-key"
    assert "apiKey" not in body and "your-openai-api-key" not in response.content.decode()


def test_seed_ollama_payload_registers_a_free_local_model(admin_api):
    response = admin_api.post("/api/models/register", SEED_OLLAMA, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["publicId"] == "ollama/llama2"
    assert body["isFree"] is True and body["freeReason"] == "local server"
    assert body["inputPrice"] == 0 and body["outputPrice"] == 0


def test_local_model_is_not_free_when_the_payload_says_so(admin_api):
    response = admin_api.post("/api/models/register", {**SEED_OLLAMA, "isFree": False}, format="json")

    assert response.json()["isFree"] is False


def test_openai_compatible_server_on_localhost_is_free(admin_api):
    payload = {"name": "qwen", "provider": "my-vllm", "providerKind": "openai_compatible", "endpoint": "http://127.0.0.1:8000"}
    response = admin_api.post("/api/models/register", payload, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["isFree"] is True
    assert Provider.objects.get(slug="my-vllm").kind == "openai_compatible"


def test_remote_model_takes_free_flag_prices_and_quota_from_payload(admin_api):
    payload = {
        "name": "llama-3.3-70b-versatile", "provider": "groq", "isFree": True, "freeReason": "Groq free plan",
        "freeQuota": {"requestsPerMinute": 30, "requestsPerDay": 1000}, "quotaScope": "model",
        "contextWindow": 131072,
    }
    body = admin_api.post("/api/models/register", payload, format="json").json()

    assert body["isFree"] is True and body["freeReason"] == "Groq free plan"
    assert body["freeQuota"] == {"requestsPerMinute": 30, "requestsPerDay": 1000, "tokensPerMinute": None, "tokensPerDay": None}
    assert body["contextWindow"] == 131072


def test_snake_case_input_is_accepted_too(admin_api):
    body = admin_api.post(
        "/api/models/register",
        {"name": "m", "provider": "openai", "context_window": 8192, "input_price": "2.5", "output_price": 10},
        format="json",
    ).json()

    assert body["contextWindow"] == 8192
    assert body["inputPrice"] == 2.5 and body["outputPrice"] == 10


def test_registering_the_same_model_twice_is_a_conflict(admin_api):
    admin_api.post("/api/models/register", SEED_OPENAI, format="json")
    response = admin_api.post("/api/models/register", SEED_OPENAI, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["type"] == "conflict_error"
    assert "openai/gpt-4" in response.json()["error"]["message"]
    assert AIModel.objects.count() == 1


def test_upsert_updates_the_existing_model(admin_api):
    first = admin_api.post("/api/models/register", SEED_OPENAI, format="json").json()
    response = admin_api.post(
        "/api/models/register?upsert=true", {**SEED_OPENAI, "description": "new words"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["id"] == first["id"]
    assert response.json()["description"] == "new words"
    assert AIModel.objects.count() == 1


def test_model_ids_may_contain_slashes(admin_api):
    payload = {"name": "meta-llama/llama-3.3-70b-instruct:free", "provider": "openrouter", "isFree": True}
    body = admin_api.post("/api/models/register", payload, format="json").json()

    assert body["publicId"] == "openrouter/meta-llama/llama-3.3-70b-instruct:free"
    assert body["modelId"] == "meta-llama/llama-3.3-70b-instruct:free"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"providerKind": "nonsense", "provider": "x1"}, "providerKind"),
        ({"type": "hologram"}, "type"),
        ({"status": "sleepy"}, "status"),
        ({"endpoint": "not a url"}, "endpoint"),
        ({"inputPrice": -1}, "inputPrice"),
        ({"outputPrice": "cheap"}, "outputPrice"),
        ({"capabilities": "text-generation"}, "capabilities"),
        ({"contextWindow": 0}, "contextWindow"),
        ({"name": None}, "name"),
        ({"freeQuota": {"requestsPerDay": -5}}, "freeQuota.requestsPerDay"),
    ],
)
def test_bad_register_input_is_a_400_naming_the_field(admin_api, change, field):
    response = admin_api.post("/api/models/register", {**SEED_OPENAI, **change}, format="json")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == field
    assert field in error["fields"]
    assert not AIModel.objects.exists() and not Provider.objects.exists()  # nothing half-written


def test_missing_required_field_is_named(admin_api):
    response = admin_api.post("/api/models/register", {"type": "llm"}, format="json")

    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"name", "provider"}


def test_malformed_json_is_a_400(admin_api):
    response = admin_api.generic("POST", "/api/models/register", "{bad json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_json_sent_without_a_content_type_is_still_read(admin_api):
    import json

    response = admin_api.generic(
        "POST", "/api/models/register", json.dumps(SEED_OLLAMA), content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 201


def test_oversized_body_is_a_413(admin_api, settings):
    settings.AFMTS_MAX_BODY_BYTES = 1000
    response = admin_api.post("/api/models/register", {**SEED_OPENAI, "description": "x" * 2000}, format="json")

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert not AIModel.objects.exists()


def test_existing_provider_with_another_endpoint_is_refused(admin_api):
    admin_api.post("/api/models/register", SEED_OPENAI, format="json")
    response = admin_api.post(
        "/api/models/register", {**SEED_OPENAI, "name": "gpt-4o", "endpoint": "https://elsewhere.example"}, format="json"
    )

    assert response.status_code == 409  # the body is well formed; the stored provider disagrees
    assert "exists with endpoint" in response.json()["error"]["message"]


def test_registering_with_a_new_key_rotates_the_provider_key(admin_api):
    admin_api.post("/api/models/register", SEED_OPENAI, format="json")
    admin_api.post("/api/models/register", {**SEED_OPENAI, "name": "gpt-4o", "apiKey": "sk-rotated-key-123"}, format="json")

    assert Provider.objects.get(slug="openai").api_key == "sk-rotated-key-123"


# ------------------------------------------------------------------ list


def test_list_is_paginated_and_filterable(user_api, make_model):
    make_model("gpt-4o", input_price=2.5, output_price=10, capabilities=["text-generation", "vision"])
    make_model("text-embedding-3-small", type="embedding", capabilities=["embeddings"])
    make_model("llama3", provider="ollama", is_free=True)

    everything = user_api.get("/api/models").json()
    assert everything["count"] == 3
    assert [m["publicId"] for m in everything["results"]] == [
        "ollama/llama3", "openai/gpt-4o", "openai/text-embedding-3-small"
    ]

    def ids(query: str) -> list[str]:
        response = user_api.get(f"/api/models?{query}")
        assert response.status_code == 200, response.content
        return [m["publicId"] for m in response.json()["results"]]

    assert ids("type=embedding") == ["openai/text-embedding-3-small"]
    assert ids("provider=ollama") == ["ollama/llama3"]
    assert ids("capability=vision") == ["openai/gpt-4o"]
    assert ids("free=true") == ["ollama/llama3"]
    assert ids("free=false") == ["openai/gpt-4o", "openai/text-embedding-3-small"]
    assert ids("search=EMBEDDING") == ["openai/text-embedding-3-small"]
    assert ids("status=down") == []
    page = user_api.get("/api/models?pageSize=2&page=2").json()
    assert page["count"] == 3 and len(page["results"]) == 1 and page["previous"]


@pytest.mark.parametrize("query, param", [("type=banana", "type"), ("status=zzz", "status"), ("free=maybe", "free")])
def test_list_rejects_unknown_filter_values(user_api, query, param):
    response = user_api.get(f"/api/models?{query}")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_list_sees_writes_at_once(user_api, admin_api):
    assert user_api.get("/api/models").json()["count"] == 0
    admin_api.post("/api/models/register", SEED_OLLAMA, format="json")
    assert user_api.get("/api/models").json()["count"] == 1


def test_list_serves_from_memory_without_queries_per_request(user_api, make_model, django_assert_max_num_queries):
    for i in range(30):
        make_model(f"m{i}")
    user_api.get("/api/models")  # builds the snapshot and caches the key
    # The registry version, read by every REST read (so other processes' writes show at once), and at
    # most once a second by the key cache; the models themselves come from memory.
    with django_assert_max_num_queries(2):
        assert user_api.get("/api/models?pageSize=500").json()["count"] == 30


# ------------------------------------------------------------------ detail


def test_get_update_and_delete_a_model(admin_api, make_model):
    model = make_model("gpt-4o", input_price=2.5, output_price=10)

    assert admin_api.get(f"/api/models/{model.id}").json()["publicId"] == "openai/gpt-4o"

    patched = admin_api.patch(f"/api/models/{model.id}", {"priority": 5, "tags": ["prod"]}, format="json")
    assert patched.status_code == 200
    assert patched.json()["priority"] == 5 and patched.json()["tags"] == ["prod"]

    put = admin_api.put(f"/api/models/{model.id}", {"displayName": "GPT-4o", "status": "degraded", "contextWindow": 128000},
                        format="json")
    assert put.json()["status"] == "degraded" and put.json()["contextWindow"] == 128000
    assert put.json()["tags"] == [] and put.json()["priority"] == 0  # PUT replaces: fields not sent take defaults

    assert admin_api.delete(f"/api/models/{model.id}").status_code == 204
    assert admin_api.get(f"/api/models/{model.id}").status_code == 404
    assert Event.objects.filter(event="model_deleted").count() == 1


def test_editing_a_discovered_model_pins_the_edited_fields(admin_api, make_model):
    model = make_model("gpt-4o", input_price=2.5, output_price=10)
    AIModel.objects.filter(pk=model.pk).update(source="discovered")

    body = admin_api.patch(f"/api/models/{model.id}", {"inputPrice": 2, "priority": 3}, format="json").json()

    assert body["pinnedFields"] == ["input_price"]


def test_bad_update_changes_nothing(admin_api, make_model):
    model = make_model("gpt-4o")
    response = admin_api.patch(f"/api/models/{model.id}", {"priority": 5, "type": "nope"}, format="json")

    assert response.status_code == 400
    assert AIModel.objects.get(pk=model.pk).priority == 0


def test_unknown_model_is_a_404_in_the_envelope(user_api):
    response = user_api.get("/api/models/999999")

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


def test_communication_schema_has_formats_and_no_secret(user_api, make_model):
    model = make_model("claude-sonnet-4-5", provider="anthropic", api_key="sk-ant-secret-value-123")

    body = user_api.get(f"/api/models/{model.id}/communication").json()

    assert body["requestFormat"] == "anthropic-messages"
    assert body["authMethod"] == "x-api-key"
    assert body["endpoint"] == "https://api.anthropic.com/v1/messages"
    assert body["gateway"]["model"] == "anthropic/claude-sonnet-4-5"
    assert "sk-ant-secret-value-123" not in str(body)


def test_stored_provider_key_is_encrypted_at_rest(admin_api):
    admin_api.post("/api/models/register", SEED_OPENAI, format="json")

    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key_encrypted FROM registry_provider WHERE slug = 'openai'")
        stored = cursor.fetchone()[0]
    assert stored and "your-openai-api-key" not in stored


def test_every_registry_write_publishes_an_event(admin_api):
    admin_api.post("/api/models/register", SEED_OPENAI, format="json")

    names = list(Event.objects.exclude(event__startswith="api_key").values_list("event", flat=True))
    assert names == ["provider_registered", "model_registered"]
    event = Event.objects.get(event="model_registered")
    assert event.data["publicId"] == "openai/gpt-4"
    assert "your-openai-api-key" not in str(event.data)
