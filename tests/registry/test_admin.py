"""The Django admin is a first-class writer: every change goes through the one event publisher, and
secrets (provider keys, API-key secrets) are write-only."""

from __future__ import annotations

import hashlib

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.urls import reverse

from registry.models import AIModel, ApiKey, Event, Provider

PLAIN_KEY = "sk-admin-plain-secret-0123456789abcdef"


def form_data(response) -> dict:
    """The POST body the admin's add or change form would send back unchanged (its initial values)."""
    form = response.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif value is None:
            data[name] = ""
        elif isinstance(value, (list, tuple)):
            data[name] = list(value)
        else:
            data[name] = value
        if field.show_hidden_initial and name in data:
            data[f"initial-{name}"] = data[name]  # the hidden initial a browser sends back
    return data


def shown_secrets(response) -> list[str]:
    """The secrets the admin showed in its messages (the one message naming a new key)."""
    return [str(m).rsplit(" ", 1)[-1] for m in get_messages(response.wsgi_request) if "shown only now" in str(m)]


def events(name: str) -> list[Event]:
    return list(Event.objects.filter(event=name).order_by("id"))


def raw_key_column(slug: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key_encrypted FROM registry_provider WHERE slug = %s", [slug])
        return cursor.fetchone()[0]


@pytest.mark.parametrize("model", ["provider", "aimodel", "agent", "apikey", "event"])
def test_changelists_load(admin_client, make_model, model):
    make_model("gpt-4o-mini", provider="openai")
    response = admin_client.get(reverse(f"admin:registry_{model}_changelist"))
    assert response.status_code == 200


@pytest.mark.parametrize("model", ["provider", "aimodel", "agent", "apikey"])
def test_add_pages_load(admin_client, model):
    assert admin_client.get(reverse(f"admin:registry_{model}_add")).status_code == 200


def test_admin_needs_a_staff_login(client, db):
    response = client.get(reverse("admin:registry_provider_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_provider_created_in_admin_stores_its_key_encrypted(admin_client):
    url = reverse("admin:registry_provider_add")
    response = admin_client.post(url, form_data(admin_client.get(url)) | {
        "slug": "groq-main", "name": "Groq", "kind": "groq", "base_url": "https://api.groq.com/openai/v1",
        "api_key": PLAIN_KEY,
    })
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response

    provider = Provider.objects.get(slug="groq-main")
    stored = raw_key_column("groq-main")
    assert stored and PLAIN_KEY not in stored
    assert provider.api_key == PLAIN_KEY
    assert [e.data["slug"] for e in events("provider_registered")] == ["groq-main"]
    assert PLAIN_KEY not in str(events("provider_registered")[0].data)


def test_provider_change_page_never_shows_the_key(admin_client, make_provider):
    provider = make_provider("openai", api_key=PLAIN_KEY)
    page = admin_client.get(reverse("admin:registry_provider_change", args=[provider.pk])).content.decode()
    listing = admin_client.get(reverse("admin:registry_provider_changelist")).content.decode()
    assert PLAIN_KEY not in page
    assert provider.api_key_encrypted not in page
    assert PLAIN_KEY not in listing
    assert "set (hidden)" in listing


def test_provider_edit_with_empty_key_keeps_the_stored_key(admin_client, make_provider):
    provider = make_provider("openai", api_key=PLAIN_KEY)
    url = reverse("admin:registry_provider_change", args=[provider.pk])
    data = form_data(admin_client.get(url)) | {"name": "OpenAI (renamed)"}
    assert admin_client.post(url, data).status_code == 302
    provider.refresh_from_db()
    assert provider.name == "OpenAI (renamed)"
    assert provider.api_key == PLAIN_KEY
    assert [e.data["name"] for e in events("provider_updated")] == ["OpenAI (renamed)"]


def test_provider_key_can_be_removed_in_admin(admin_client, make_provider):
    provider = make_provider("openai", api_key=PLAIN_KEY)
    url = reverse("admin:registry_provider_change", args=[provider.pk])
    data = form_data(admin_client.get(url)) | {"clear_api_key": "on"}
    assert admin_client.post(url, data).status_code == 302
    provider.refresh_from_db()
    assert provider.api_key_encrypted == ""
    assert not provider.has_api_key


def test_editing_a_model_in_admin_publishes_model_updated(admin_client, make_model):
    model = make_model("gpt-4o-mini", provider="openai", input_price=0.15, output_price=0.6)
    url = reverse("admin:registry_aimodel_change", args=[model.pk])
    data = form_data(admin_client.get(url)) | {"name": "GPT-4o mini (edited)", "priority": "3"}
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response

    model.refresh_from_db()
    assert (model.name, model.priority) == ("GPT-4o mini (edited)", 3)
    updated = events("model_updated")
    assert len(updated) == 1
    assert updated[0].data["publicId"] == "openai/gpt-4o-mini"
    assert updated[0].data["name"] == "GPT-4o mini (edited)"


def test_editing_a_discovered_model_in_admin_pins_the_edited_fields(admin_client, make_model):
    model = make_model("llama-3.1-8b", provider="groq")
    AIModel.objects.filter(pk=model.pk).update(source="discovered")
    url = reverse("admin:registry_aimodel_change", args=[model.pk])
    data = form_data(admin_client.get(url)) | {"name": "Llama 3.1 8B (operator)", "priority": "2"}
    assert admin_client.post(url, data).status_code == 302
    model.refresh_from_db()
    # As through the API: discovery must keep the operator's edit (priority is an operator control).
    assert model.pinned_fields == ["name"]


def test_creating_a_model_in_admin_publishes_model_registered(admin_client, make_provider):
    provider = make_provider("openai")
    url = reverse("admin:registry_aimodel_add")
    response = admin_client.post(url, form_data(admin_client.get(url)) | {
        "provider": provider.pk, "model_id": "gpt-4.1", "name": "GPT-4.1",
        "capabilities": '["text-generation"]', "input_price": "2", "output_price": "8",
    })
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    assert [e.data["publicId"] for e in events("model_registered")] == ["openai/gpt-4.1"]


def test_deleting_a_model_in_admin_publishes_model_deleted(admin_client, make_model):
    model = make_model("gpt-4o-mini", provider="openai")
    response = admin_client.post(reverse("admin:registry_aimodel_delete", args=[model.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not AIModel.objects.filter(pk=model.pk).exists()
    deleted = events("model_deleted")
    assert [e.data["publicId"] for e in deleted] == ["openai/gpt-4o-mini"]
    assert deleted[0].data["id"] == model.pk


def test_bulk_delete_in_admin_publishes_one_event_per_model(admin_client, make_model):
    models = [make_model(name, provider="openai") for name in ("a", "b", "c")]
    response = admin_client.post(reverse("admin:registry_aimodel_changelist"), {
        "action": "delete_selected", "_selected_action": [m.pk for m in models], "post": "yes",
    })
    assert response.status_code == 302
    assert AIModel.objects.count() == 0
    assert sorted(e.data["publicId"] for e in events("model_deleted")) == ["openai/a", "openai/b", "openai/c"]


def test_disable_and_enable_actions(admin_client, make_model):
    kept = make_model("kept", provider="openai")
    chosen = [make_model(name, provider="openai") for name in ("m1", "m2")]
    url = reverse("admin:registry_aimodel_changelist")
    selected = [m.pk for m in chosen]

    response = admin_client.post(url, {"action": "disable", "_selected_action": selected}, follow=True)
    assert response.status_code == 200
    assert set(AIModel.objects.filter(disabled=True).values_list("pk", flat=True)) == set(selected)
    assert "2 model(s) disabled." in [str(m) for m in get_messages(response.wsgi_request)]
    assert sorted(e.data["id"] for e in events("model_updated")) == sorted(selected)
    assert all(e.data["disabled"] is True for e in events("model_updated"))

    response = admin_client.post(url, {"action": "enable", "_selected_action": selected}, follow=True)
    assert response.status_code == 200
    assert not AIModel.objects.filter(disabled=True).exists()
    assert len(events("model_updated")) == 4
    kept.refresh_from_db()
    assert kept.disabled is False


def test_editing_priority_in_the_model_list_publishes_model_updated(admin_client, make_model):
    model = make_model("gpt-4o-mini", provider="openai")
    response = admin_client.post(reverse("admin:registry_aimodel_changelist"), {
        "form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "1", "form-0-id": model.pk,
        "form-0-priority": "4", "form-0-disabled": "on", "_save": "Save",
    })
    assert response.status_code == 302
    model.refresh_from_db()
    assert (model.priority, model.disabled) == (4, True)
    assert [(e.data["priority"], e.data["disabled"]) for e in events("model_updated")] == [(4, True)]


def test_creating_an_api_key_in_admin_shows_the_secret_once(admin_client):
    response = admin_client.post(
        reverse("admin:registry_apikey_add"), {"name": "ci", "scope": "user", "rate_limit_per_minute": "60"},
        follow=True,
    )
    assert response.status_code == 200
    shown = shown_secrets(response)
    assert len(shown) == 1
    secret = shown[0]
    assert secret.startswith("afmts_")

    key = ApiKey.objects.get(name="ci")
    assert key.hashed == hashlib.sha256(secret.encode()).hexdigest()
    assert secret.startswith(key.prefix)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM registry_apikey WHERE id = %s", [key.pk])
        row = cursor.fetchone()
    assert all(secret not in str(value) for value in row)
    assert (key.scope, key.rate_limit_per_minute) == ("user", 60)
    assert [e.data["prefix"] for e in events("api_key_created")] == [key.prefix]

    # Shown once: neither the change page nor the list carries it afterwards.
    assert secret not in admin_client.get(reverse("admin:registry_apikey_change", args=[key.pk])).content.decode()
    assert secret not in admin_client.get(reverse("admin:registry_apikey_changelist")).content.decode()


def test_an_admin_created_key_works_on_the_api(admin_client, api):
    response = admin_client.post(
        reverse("admin:registry_apikey_add"), {"name": "admin-made", "scope": "admin"}, follow=True
    )
    [secret] = shown_secrets(response)
    assert api.get("/api/me", HTTP_AUTHORIZATION=f"Bearer {secret}").json() == {"name": "admin-made", "scope": "admin"}


def test_revoke_action_revokes_keys(admin_client, user_key, api):
    key = ApiKey.objects.get(name="test user")
    response = admin_client.post(
        reverse("admin:registry_apikey_changelist"), {"action": "revoke", "_selected_action": [key.pk]}
    )
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked
    assert [e.data["prefix"] for e in events("api_key_revoked")] == [key.prefix]
    assert api.get("/api/me", HTTP_X_API_KEY=user_key).status_code == 401
