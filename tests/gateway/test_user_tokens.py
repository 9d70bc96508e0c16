"""The gateway accepts a Django user's JWT (from /api/auth/token/) as it accepts an API key, checked
in memory (signature, expiry, type) with the scope the token carries."""

from __future__ import annotations

import httpx
from rest_framework.test import APIClient


def test_the_gateway_accepts_a_user_token(gateway, django_user_model, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # tests only
    django_user_model.objects.create_user("ada", password="pw-correct-horse")
    access = APIClient().post("/api/auth/token/", {"username": "ada", "password": "pw-correct-horse"},
                              format="json").json()["access"]

    ok = httpx.get(f"{gateway}/v1/models", headers={"authorization": f"Bearer {access}"}, timeout=5)
    bad = httpx.get(f"{gateway}/v1/models", headers={"authorization": f"Bearer {access[:-4]}AAAA"}, timeout=5)

    assert ok.status_code == 200 and ok.json()["object"] == "list"
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_token"
