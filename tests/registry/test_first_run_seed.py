"""A newcomer's first minute: base URLs typed the way SDKs want them, the seeds' own flow (types,
default capabilities, agent status), account quota pools, the CLI's explanations, and REST reads that
see every committed write at once."""

from __future__ import annotations

import socket
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import F

from registry import services, tracker
from registry.fakes import KEY
from registry.models import AIModel, Provider, RegistryState

pytestmark = pytest.mark.django_db

SEED_OLLAMA = {"name": "llama2", "type": "llm", "provider": "ollama", "endpoint": "http://localhost:11434",
               "description": "Local Llama2 model via Ollama"}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------ base URLs


@pytest.mark.parametrize(("kind", "typed", "stored"), [
    ("openai_compatible", "http://127.0.0.1:8000/v1", "http://127.0.0.1:8000"),
    ("openai_compatible", "http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000"),
    ("openai", "https://api.openai.com/v1", "https://api.openai.com"),
    ("openrouter", "https://openrouter.ai/api/v1", "https://openrouter.ai/api"),
    ("openrouter", "https://openrouter.ai", "https://openrouter.ai/api"),
    ("groq", "https://api.groq.com/openai/v1", "https://api.groq.com/openai"),
    ("gemini", "https://generativelanguage.googleapis.com/v1beta", "https://generativelanguage.googleapis.com"),
    ("ollama", "http://localhost:11434/api", "http://localhost:11434"),
    ("github", "https://models.github.ai/inference", "https://models.github.ai"),
    ("openai_compatible", "http://127.0.0.1:8000/proxy", "http://127.0.0.1:8000/proxy"),
])
def test_base_urls_are_stored_in_their_kinds_canonical_form(kind, typed, stored):
    assert services.canonical_base_url(kind, typed) == stored


def test_a_provider_registered_with_v1_is_stored_without_it_and_the_response_says_so(admin_api):
    created = admin_api.post("/api/providers/", {"slug": "vllm", "kind": "openai_compatible",
                                                 "baseUrl": "http://127.0.0.1:8000/v1"}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["baseUrl"] == "http://127.0.0.1:8000"
    assert "stored as http://127.0.0.1:8000" in body["notes"][0]

    changed = admin_api.patch(f"/api/providers/{body['id']}", {"baseUrl": "http://127.0.0.1:9000/v1/"}, format="json")
    assert changed.json()["baseUrl"] == "http://127.0.0.1:9000" and changed.json()["notes"]
    assert Provider.objects.get(slug="vllm").base_url == "http://127.0.0.1:9000"


def test_verify_refuses_an_unreachable_base_url_saying_what_was_tried(admin_api):
    port = closed_port()
    refused = admin_api.post("/api/providers/?verify=true", {"slug": "nowhere", "kind": "openai_compatible",
                                                             "baseUrl": f"http://127.0.0.1:{port}/v1"}, format="json")
    assert refused.status_code == 400
    message = refused.json()["error"]["fields"]["baseUrl"][0]
    assert f"tried GET http://127.0.0.1:{port}/v1/models" in message
    assert not Provider.objects.filter(slug="nowhere").exists()


def test_verify_accepts_a_base_url_that_lists_models(admin_api, fake):
    created = admin_api.post("/api/providers/?verify=true", {"slug": "local", "kind": "openai_compatible",
                                                             "baseUrl": fake.base_url("openai_compatible") + "/v1"},
                             format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["baseUrl"] == fake.base_url("openai_compatible").rstrip("/")


# ------------------------------------------------------------------ the seeds' flow


def test_a_model_registered_without_capabilities_gets_its_types_and_is_found(admin_api, user_api):
    created = admin_api.post("/api/models/register", SEED_OLLAMA, format="json").json()
    assert created["capabilities"] == ["text-generation"]

    found = user_api.post("/api/models/find", {"capability": "text-generation", "freeOnly": True}, format="json").json()
    assert [m["publicId"] for m in found["models"]] == ["ollama/llama2"]


def test_llm_is_the_umbrella_of_chat_and_completion(make_model, user_api):
    make_model("discovered-chat", provider="groq", type="chat")
    make_model("old-completion", provider="groq", type="completion")
    make_model("seed-llm", provider="groq", type="llm")
    make_model("embedder", provider="groq", type="embedding", capabilities=["embeddings"])

    found = user_api.post("/api/models/find", {"type": "llm"}, format="json").json()
    assert {m["modelId"] for m in found["models"]} == {"discovered-chat", "old-completion", "seed-llm"}
    listed = user_api.get("/api/models?type=llm").json()
    assert {m["modelId"] for m in listed["results"]} == {"discovered-chat", "old-completion", "seed-llm"}


def test_agent_status_accepts_busy_and_a_bad_one_lists_the_valid_values(admin_api):
    agent = admin_api.post("/api/agents/register", {"name": "worker", "capabilities": ["analysis"]}, format="json").json()

    assert admin_api.put(f"/api/agents/{agent['id']}", {"name": "worker", "status": "busy"},
                         format="json").json()["status"] == "busy"
    assert admin_api.post(f"/api/agents/{agent['id']}/heartbeat").json()["status"] == "busy"  # still busy
    bad = admin_api.patch(f"/api/agents/{agent['id']}", {"status": "asleep"}, format="json")
    assert bad.status_code == 400
    assert "online, offline, busy" in bad.json()["error"]["message"]


# ------------------------------------------------------------------ REST reads


def test_a_write_by_another_process_shows_in_the_next_rest_read(user_api, make_model, settings):
    settings.AFMTS_REGISTRY_POLL_SECONDS = 3600  # the snapshot's own poll would not see it for an hour
    make_model("first", provider="groq")
    assert user_api.get("/api/models").json()["count"] == 1

    # Another process (the CLI, the worker) commits a model and bumps the version: nothing local hears it.
    provider = Provider.objects.get(slug="groq")
    AIModel.objects.create(provider=provider, model_id="second", name="second", capabilities=["text-generation"])
    RegistryState.objects.filter(pk=1).update(version=F("version") + 1)

    assert user_api.get("/api/models").json()["count"] == 2
    found = user_api.post("/api/models/find", {"capability": "text-generation"}, format="json").json()
    assert found["count"] == 2


# ------------------------------------------------------------------ quota pools


def test_account_wide_free_quotas_are_one_pool_each(make_model, user_api):
    make_model("command-a", provider="cohere", is_free=True, quota_scope="account", free_rpm=20)
    make_model("command-r", provider="cohere", is_free=True, quota_scope="account", free_rpm=20)
    make_model("@cf/llama", provider="cloudflare", is_free=True, quota_scope="account")
    make_model("llama-3.1-8b-instant", provider="groq", is_free=True, free_rpm=30)  # per model: no pool

    body = user_api.get("/api/free-models").json()
    pools = {p["provider"]: p for p in body["pools"]}
    assert set(pools) == {"cohere", "cloudflare"}
    cohere = pools["cohere"]
    assert cohere["models"] == 2 and cohere["scope"] == "account"
    assert cohere["key"] == f"a:{Provider.objects.get(slug='cohere').pk}"  # the gateway's scope (routing.live)
    assert cohere["windows"]["requests/minute"]["limit"] == 20
    assert cohere["windows"]["requests/month"]["limit"] == 1000
    assert pools["cloudflare"]["windows"]["neurons/day"]["limit"] == 10000


@pytest.mark.django_db(transaction=True)
def test_openrouters_daily_cap_is_learned_from_its_key_once_a_window(fake, user_api, settings):
    settings.AFMTS_DISCOVERY_TIMEOUT_SECONDS = 3
    fake.state.openrouter_key = {"is_free_tier": False, "limit_remaining": 8.5}
    services.provider_create(slug="openrouter", kind="openrouter", base_url=fake.base_url("openrouter"), api_key=KEY)

    assert all(r.ok for r in tracker.discover())
    Provider.objects.filter(slug="openrouter").update(last_discovery_at=None)
    assert all(r.ok for r in tracker.discover(["openrouter"]))

    assert sum(1 for e in fake.state.requests("openrouter") if e["path"].endswith("/v1/key")) == 1
    free = AIModel.objects.filter(provider__slug="openrouter", is_free=True)
    assert free.exists() and {m.free_rpd for m in free} == {1000}  # bought credit: 1,000 a day, not 50
    pool = user_api.get("/api/free-models?provider=openrouter").json()["pools"][0]
    assert pool["windows"]["requests/day"]["limit"] == 1000 and pool["windows"]["requests/minute"]["limit"] == 20
    assert pool["account"]["isFreeTier"] is False and pool["account"]["limitRemaining"] == 8.5


# ------------------------------------------------------------------ CLI


def test_discover_lists_every_provider_with_backoff_and_the_full_error(make_provider):
    from datetime import timedelta

    from django.utils import timezone

    make_provider("groq", base_url="http://127.0.0.1:9/openai", enabled=False)
    error = "ConnectError: connection refused while listing http://127.0.0.1:9/openai/v1/models " + "x" * 150 + " END"
    make_provider("mistral", base_url="http://127.0.0.1:9")
    Provider.objects.filter(slug="mistral").update(
        failures=3, last_error=error, next_discovery_at=timezone.now() + timedelta(minutes=4))

    out = StringIO()
    call_command("discover", stdout=out)
    text = out.getvalue()

    assert "groq" in text and "disabled" in text
    assert "mistral" in text and "backing off (3 failure(s)), next try in 3m" in text
    assert "END" in text and "x" * 100 in text.replace("\n      ", "")  # the whole error, wrapped
    assert "0 listed, 0 error(s), 1 backing off" in text


def test_health_check_says_what_it_probed_and_why_not_the_others(make_model):
    make_model("gpt-4o", provider="openai", input_price=2.5, output_price=10)

    out = StringIO()
    call_command("health_check", stdout=out)
    text = out.getvalue()

    assert "0 model(s) probed, of 1 routable." in text
    assert "1 paid model(s) not down: judged by their traffic" in text
