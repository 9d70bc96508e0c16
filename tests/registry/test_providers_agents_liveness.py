"""/api/providers/ (admin key) and agents going offline when they miss heartbeats."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from registry import services
from registry.models import Agent, Event, Provider

pytestmark = pytest.mark.django_db


def test_admin_adds_lists_changes_and_removes_a_provider(admin_api):
    created = admin_api.post(
        "/api/providers/",
        {"slug": "groq-main", "kind": "groq", "apiKey": "gsk_secretsecret123", "freeQuota": {"requestsPerMinute": 30}},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["baseUrl"] == "https://api.groq.com/openai" and body["hasApiKey"] is True
    assert body["freeQuota"]["requestsPerMinute"] == 30
    assert "gsk_secretsecret123" not in created.content.decode()

    listed = admin_api.get("/api/providers/").json()["providers"]
    assert [p["slug"] for p in listed] == ["groq-main"]

    changed = admin_api.patch(f"/api/providers/{body['id']}", {"discoveryInterval": 300, "enabled": False}, format="json")
    assert changed.json()["discoveryInterval"] == 300 and changed.json()["enabled"] is False
    assert admin_api.patch(f"/api/providers/{body['id']}", {"kind": "openai"}, format="json").status_code == 409

    assert admin_api.delete(f"/api/providers/{body['id']}").status_code == 204
    assert not Provider.objects.exists()
    assert list(Event.objects.filter(event__startswith="provider").values_list("event", flat=True)) == [
        "provider_registered", "provider_updated", "provider_deleted"
    ]


def test_provider_api_needs_an_admin_key_even_to_read(user_api):
    assert user_api.get("/api/providers/").status_code == 403


def test_provider_input_is_validated(admin_api, make_provider):
    make_provider("openai")
    assert admin_api.post("/api/providers/", {"slug": "openai", "kind": "openai"}, format="json").status_code == 409
    bad = admin_api.post("/api/providers/", {"slug": "x", "kind": "skynet"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "kind"
    assert admin_api.post("/api/providers/", {"slug": "y", "kind": "groq", "discoveryInterval": 1}, format="json").status_code == 400


def test_agents_missing_heartbeats_go_offline_and_come_back(db):
    t0 = timezone.now()
    quiet, _ = services.agent_register(name="quiet", fields={})
    lively, _ = services.agent_register(name="lively", fields={})
    Agent.objects.filter(pk=quiet.pk).update(last_heartbeat=t0 - timedelta(minutes=5))

    stale = services.agents_mark_stale(now=t0, timeout_seconds=90)

    assert [a.name for a in stale] == ["quiet"]
    assert Agent.objects.get(name="quiet").status == "offline"
    assert Agent.objects.get(name="lively").status == "online"
    assert Event.objects.filter(event="agent_disconnected", data__name="quiet").exists()
    assert services.agents_mark_stale(now=t0, timeout_seconds=90) == []  # once

    services.agent_heartbeat(agent=Agent.objects.get(name="quiet"))
    assert Agent.objects.get(name="quiet").status == "online"
    assert Event.objects.filter(event="agent_connected", data__name="quiet").count() == 2


def test_the_beat_schedule_is_in_the_database(db):
    from django_celery_beat.models import PeriodicTask

    tasks = {t.task: t for t in PeriodicTask.objects.filter(name__startswith="AFMTS")}

    assert tasks["registry.tasks.discovery_cycle"].interval.every == 30
    assert tasks["registry.tasks.discovery_cycle"].expire_seconds < 30
    assert "registry.tasks.agents_check_liveness" in tasks
