"""Agents (register, list, update, heartbeat), GET /api/stats and GET /api/events."""

from __future__ import annotations

import pytest

from registry.models import Agent, Event

pytestmark = pytest.mark.django_db

SEED_AGENT = {"name": "data-analysis-agent", "type": "specialist", "capabilities": ["data-analysis", "visualization", "reporting"]}


def test_seed_agent_payload_registers_an_online_agent(admin_api):
    response = admin_api.post("/api/agents/register", SEED_AGENT, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "online" and body["lastHeartbeat"]
    assert body["capabilities"] == SEED_AGENT["capabilities"]
    assert Event.objects.filter(event="agent_connected").count() == 1


def test_re_registering_the_same_agent_updates_it(admin_api):
    first = admin_api.post("/api/agents/register", SEED_AGENT, format="json").json()
    again = admin_api.post("/api/agents/register", {**SEED_AGENT, "endpoint": "http://localhost:9000"}, format="json")

    assert again.status_code == 200
    assert again.json()["id"] == first["id"] and again.json()["endpoint"] == "http://localhost:9000"
    assert Agent.objects.count() == 1


def test_list_and_filter_agents(admin_api, user_api):
    admin_api.post("/api/agents/register", SEED_AGENT, format="json")
    b = admin_api.post("/api/agents/register", {"name": "b"}, format="json").json()
    admin_api.patch(f"/api/agents/{b['id']}", {"status": "offline"}, format="json")

    assert user_api.get("/api/agents").json()["count"] == 2
    assert [a["name"] for a in user_api.get("/api/agents?status=offline").json()["results"]] == ["b"]


def test_status_change_publishes_connect_and_disconnect(admin_api):
    agent = admin_api.post("/api/agents/register", SEED_AGENT, format="json").json()

    admin_api.patch(f"/api/agents/{agent['id']}", {"status": "offline"}, format="json")
    admin_api.post(f"/api/agents/{agent['id']}/heartbeat")

    names = list(Event.objects.filter(event__startswith="agent").values_list("event", flat=True))
    assert names == ["agent_connected", "agent_disconnected", "agent_connected"]
    assert Agent.objects.get().status == "online"


def test_heartbeat_of_an_online_agent_is_quiet(admin_api):
    agent = admin_api.post("/api/agents/register", SEED_AGENT, format="json").json()
    before = Event.objects.count()

    response = admin_api.post(f"/api/agents/{agent['id']}/heartbeat")

    assert response.status_code == 200 and response.json()["lastHeartbeat"] >= agent["lastHeartbeat"]
    assert Event.objects.count() == before


def test_agent_errors(admin_api, user_api):
    assert admin_api.post("/api/agents/register", {"type": "x"}, format="json").status_code == 400
    assert admin_api.post("/api/agents/register", {"name": "a", "endpoint": "nope"}, format="json").json()["error"]["param"] == "endpoint"
    assert admin_api.put("/api/agents/9999", {"status": "offline"}, format="json").status_code == 404
    agent = admin_api.post("/api/agents/register", {"name": "a"}, format="json").json()
    assert admin_api.put(f"/api/agents/{agent['id']}", {"status": "asleep"}, format="json").status_code == 400
    assert user_api.post(f"/api/agents/{agent['id']}/heartbeat").status_code == 403


def test_stats_count_models_agents_and_free(user_api, admin_api, make_model):
    make_model("gpt-4o", input_price=1, output_price=1)
    make_model("emb", type="embedding")
    make_model("llama3", provider="ollama", is_free=True)
    make_model("old", provider="ollama", is_free=True, status="retired")
    admin_api.post("/api/agents/register", SEED_AGENT, format="json")

    stats = user_api.get("/api/stats").json()

    assert stats["models"]["total"] == 4
    assert stats["models"]["byStatus"] == {"available": 3, "retired": 1}
    assert stats["models"]["byType"] == {"embedding": 1, "llm": 3}
    assert stats["models"]["byProvider"] == {"ollama": 2, "openai": 2}
    assert stats["models"]["free"] == 1
    assert stats["agents"] == {"total": 1, "online": 1, "offline": 0}
    assert stats["providers"]["total"] == 2


def test_events_endpoint_pages_by_id_and_time(user_api, make_model):
    make_model("a")
    make_model("b")

    events = user_api.get("/api/events?event=model_registered").json()["events"]
    assert [e["data"]["publicId"] for e in events] == ["openai/a", "openai/b"]
    after_first = user_api.get(f"/api/events?event=model_registered&since={events[0]['id']}").json()["events"]
    assert [e["data"]["publicId"] for e in after_first] == ["openai/b"]
    by_time = user_api.get("/api/events", {"since": events[0]["ts"]}).json()["events"]
    assert events[1]["id"] in [e["id"] for e in by_time]
    assert user_api.get("/api/events?since=yesterday").status_code == 400
    assert set(events[0]) == {"id", "event", "data", "ts"}


def test_openapi_schema_describes_the_seed_endpoints(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    for path in ("/api/models/register", "/api/models/find", "/api/models/{id}", "/api/agents/register", "/api/stats"):
        assert path in schema["paths"], path
