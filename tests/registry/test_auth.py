"""Keys: `Authorization: Bearer` or `X-API-Key`; reads need any valid key, writes an admin key."""

from __future__ import annotations

import hashlib
from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from registry import auth, services
from registry.models import ApiKey

pytestmark = pytest.mark.django_db


def client_with(**headers) -> APIClient:
    client = APIClient()
    client.credentials(**headers)
    return client


def test_no_key_is_401_with_a_hint(api):
    response = api.get("/api/models")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_unknown_key_is_401(api):
    response = client_with(HTTP_AUTHORIZATION="Bearer afmts_nope").get("/api/models")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_bearer_and_x_api_key_both_work(user_key):
    assert client_with(HTTP_AUTHORIZATION=f"Bearer {user_key}").get("/api/models").status_code == 200
    assert client_with(HTTP_X_API_KEY=user_key).get("/api/models").status_code == 200


def test_user_key_reads_but_cannot_write(user_api):
    assert user_api.get("/api/stats").status_code == 200
    response = user_api.post("/api/models/register", {"name": "m", "provider": "openai"}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_error"


def test_admin_key_writes(admin_api):
    assert admin_api.post("/api/models/register", {"name": "m", "provider": "openai"}, format="json").status_code == 201


def test_open_endpoints_need_no_key(api):
    assert api.get("/health").status_code == 200
    assert api.get("/api/schema/").status_code == 200
    assert api.get("/api/docs/").status_code == 200
    assert api.get("/metrics").status_code == 200


def test_only_the_hash_and_prefix_are_stored(db):
    key, secret = services.apikey_create(name="k", scope="user")

    row = ApiKey.objects.get(pk=key.pk)
    assert row.hashed == hashlib.sha256(secret.encode()).hexdigest()
    assert secret.startswith(row.prefix) and len(row.prefix) < len(secret) // 2
    assert not ApiKey.objects.filter(hashed=secret).exists()


def test_revoked_key_stops_working_at_once(admin_api, user_key):
    client = client_with(HTTP_X_API_KEY=user_key)
    assert client.get("/api/models").status_code == 200  # now cached in memory
    key_id = ApiKey.objects.get(name="test user").id

    assert admin_api.delete(f"/api/keys/{key_id}").status_code == 204

    assert client.get("/api/models").status_code == 401


def test_key_lookup_is_cached(user_key, django_assert_num_queries):
    assert auth.principal_for_secret(user_key) is not None
    with django_assert_num_queries(0):
        for _ in range(20):
            assert auth.principal_for_secret(user_key).scope == "user"


def test_last_used_is_written_in_batches_not_per_request(user_api, django_assert_max_num_queries):
    user_api.get("/api/models")
    key = ApiKey.objects.get(name="test user")
    assert key.last_used_at is None  # not written on the request

    assert auth.usage.flush() >= 1
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_keys_api_is_admin_only_and_shows_secret_once(admin_api, user_api):
    assert user_api.get("/api/keys").status_code == 403
    created = admin_api.post("/api/keys", {"name": "ci", "scope": "user", "rateLimitPerMinute": 10}, format="json")

    assert created.status_code == 201
    secret = created.json()["key"]
    assert client_with(HTTP_X_API_KEY=secret).get("/api/me").json() == {"name": "ci", "scope": "user"}
    listed = admin_api.get("/api/keys").json()["keys"]
    assert secret not in str(listed) and {k["name"] for k in listed} >= {"ci"}


def test_per_key_rate_limit_answers_429_with_retry_after(admin_api):
    secret = admin_api.post("/api/keys", {"name": "tight", "rateLimitPerMinute": 2}, format="json").json()["key"]
    client = client_with(HTTP_X_API_KEY=secret)

    codes = [client.get("/api/models").status_code for _ in range(3)]

    assert codes == [200, 200, 429]
    response = client.get("/api/models")
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert int(response["Retry-After"]) > 0


def test_createapikey_command_prints_the_secret_once(db):
    out = StringIO()
    call_command("createapikey", "ops", "--scope", "admin", "--quiet", stdout=out)
    secret = out.getvalue().strip()

    assert auth.principal_for_secret(secret).scope == "admin"


def test_bootstrap_creates_one_admin_key_and_is_idempotent(db):
    first, second = StringIO(), StringIO()
    call_command("bootstrap", stdout=first)
    call_command("bootstrap", stdout=second)

    assert ApiKey.objects.filter(scope="admin").count() == 1
    assert "afmts_" in first.getvalue() and "afmts_" not in second.getvalue()
