"""The audit log: who did what, when, from where — REST writes by admin keys, the admin site's
actions, logins, and each API key's first use per day and address (noted in memory, written in a
batch). Readable, filterable and read-only in admin."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import Entry
from audit.service import key_uses
from registry.models import AIModel

AGENT = "audit-tests/1.0"


@pytest.fixture(autouse=True)
def _fresh_key_uses():
    # Key ids repeat across rolled-back tests: start each with nothing seen and nothing pending.
    key_uses._after_fork()
    yield
    key_uses._after_fork()


@pytest.fixture
def staff_client(client, django_user_model):
    """A staff user logged in through the login form, as a person would (and as axes expects)."""
    django_user_model.objects.create_superuser("admin", "admin@example.test", "admin-password-1")
    assert client.post("/admin/login/", {"username": "admin", "password": "admin-password-1"}).status_code == 302
    return client


def entries(**filters) -> list[Entry]:
    return list(Entry.objects.filter(**filters).order_by("id"))


def test_rest_writes_by_an_admin_key_are_audited_with_who_what_and_where(admin_api, admin_key):
    meta = {"REMOTE_ADDR": "203.0.113.7", "HTTP_USER_AGENT": AGENT}
    created = admin_api.post("/api/providers/", {"slug": "acme", "kind": "openai_compatible",
                                                 "baseUrl": "http://127.0.0.1:9/v1"}, format="json", **meta)
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert admin_api.patch(f"/api/providers/{pk}", {"enabled": False}, format="json", **meta).status_code == 200
    assert admin_api.delete(f"/api/providers/{pk}", **meta).status_code == 204

    rows = entries(source="api")
    assert [(e.action, e.target_type, e.target_id) for e in rows] == [
        ("create", "provider", str(pk)), ("update", "provider", str(pk)), ("delete", "provider", str(pk))]
    first = rows[0]
    assert first.target == "acme"
    assert first.actor.startswith("test admin (afmts_") and admin_key not in first.actor
    assert (first.ip, first.user_agent) == ("203.0.113.7", AGENT)
    assert first.detail == {"method": "POST", "path": "/api/providers/", "status": 201}


def test_reads_queries_and_refused_writes_are_not_audited_as_writes(user_api, admin_api, make_model):
    make_model("gpt-4o-mini", provider="openai")
    assert user_api.get("/api/models").status_code == 200
    assert user_api.post("/api/models/find", {"capabilities": ["text-generation"]}, format="json").status_code == 200
    assert user_api.post("/api/providers/", {"slug": "x", "kind": "openai"}, format="json").status_code == 403
    assert entries(source="api") == []


def test_x_forwarded_for_counts_only_from_a_trusted_proxy(admin_api, settings):
    settings.AFMTS_TRUSTED_PROXIES = ["10.0.0.0/8"]
    body = {"slug": "via-proxy", "kind": "openai_compatible", "baseUrl": "http://127.0.0.1:9/v1"}
    admin_api.post("/api/providers/", body, format="json", REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="198.51.100.9")
    body["slug"] = "direct"
    admin_api.post("/api/providers/", body, format="json", REMOTE_ADDR="203.0.113.7",
                   HTTP_X_FORWARDED_FOR="198.51.100.9")

    assert {e.target: e.ip for e in entries(source="api")} == {"via-proxy": "198.51.100.9", "direct": "203.0.113.7"}


def test_admin_site_actions_are_mirrored_with_the_address(staff_client, make_model):
    one = make_model("gpt-4o-mini", provider="openai")
    many = [make_model(name, provider="openai") for name in ("a", "b")]
    meta = {"REMOTE_ADDR": "192.0.2.44", "HTTP_USER_AGENT": AGENT}
    staff_client.post(reverse("admin:registry_aimodel_delete", args=[one.pk]), {"post": "yes"}, **meta)
    staff_client.post(reverse("admin:registry_aimodel_changelist"), {
        "action": "delete_selected", "_selected_action": [m.pk for m in many], "post": "yes"}, **meta)

    assert AIModel.objects.count() == 0
    rows = entries(source="admin", action="delete")
    assert sorted(e.target_id for e in rows) == sorted(str(m.pk) for m in [one, *many])
    assert {(e.actor, e.target_type, e.ip, e.user_agent) for e in rows} == {("admin", "aimodel", "192.0.2.44", AGENT)}


def test_logins_and_failed_logins_are_audited(client, django_user_model):
    django_user_model.objects.create_superuser("ops", "ops@example.test", "right-password-1")
    meta = {"REMOTE_ADDR": "198.51.100.20", "HTTP_USER_AGENT": AGENT}
    client.post("/admin/login/", {"username": "ops", "password": "wrong"}, **meta)
    client.post("/admin/login/", {"username": "ops", "password": "right-password-1"}, **meta)

    rows = entries(action__in=["login", "login_failed"])
    assert [(e.action, e.actor, e.ip) for e in rows] == [
        ("login_failed", "ops", "198.51.100.20"), ("login", "ops", "198.51.100.20")]
    assert all("wrong" not in str(e.detail) for e in rows)


def test_a_key_use_is_written_once_per_day_and_address_in_a_batch(user_api, user_key):
    for _ in range(3):
        assert user_api.get("/api/models", REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT=AGENT).status_code == 200
    assert user_api.get("/api/models", REMOTE_ADDR="203.0.113.8").status_code == 200
    assert entries(action="key_used") == []  # noted in memory, not written on the request

    assert key_uses.flush() == 2
    rows = entries(action="key_used")
    assert [(e.ip, e.source, e.target_type) for e in rows] == [("203.0.113.7", "api", "key"), ("203.0.113.8", "api", "key")]
    assert rows[0].user_agent == AGENT and rows[0].actor.startswith("test user (afmts_")
    assert user_key not in rows[0].actor


def test_the_next_day_counts_as_a_first_use_again(db):
    principal = type("P", (), {"key_id": 7, "name": "k", "prefix": "afmts_abc123"})()
    day = 86400 * 20_000
    assert key_uses.note(principal, source="gateway", ip="192.0.2.1", now=day + 10)
    assert not key_uses.note(principal, source="gateway", ip="192.0.2.1", now=day + 20_000)
    assert key_uses.note(principal, source="gateway", ip="192.0.2.1", now=day + 86400 + 5)
    assert key_uses.flush() == 2


def test_the_audit_log_is_readable_filterable_and_read_only_in_admin(staff_client, admin_api):
    admin_api.post("/api/providers/", {"slug": "acme", "kind": "openai_compatible", "baseUrl": "http://127.0.0.1:9/v1"},
                   format="json")
    entry = entries(source="api")[0]
    listing = staff_client.get("/admin/audit/entry/?action__exact=create&source__exact=api")
    assert listing.status_code == 200 and "acme" in listing.content.decode()
    assert staff_client.get(f"/admin/audit/entry/{entry.pk}/change/").status_code == 200
    assert staff_client.get("/admin/audit/entry/add/").status_code == 403
    assert staff_client.post(f"/admin/audit/entry/{entry.pk}/change/", {"actor": "someone else"}).status_code == 403
    assert staff_client.post(f"/admin/audit/entry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    entry.refresh_from_db()
    assert entry.actor.startswith("test admin")
