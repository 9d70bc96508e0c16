"""Optional JWT for Django users, beside API keys: POST /api/auth/token/ with a username and password
gives an access and a refresh token; the access token is a Bearer credential on the REST API and the
gateway, with admin scope for staff users and user scope for the others."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from registry import auth

pytestmark = pytest.mark.django_db

PASSWORD = "pw-correct-horse"


@pytest.fixture(autouse=True)
def fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # tests only


@pytest.fixture
def users(django_user_model):
    django_user_model.objects.create_user("ada", password=PASSWORD)
    django_user_model.objects.create_user("root", password=PASSWORD, is_staff=True)


def tokens(username: str, password: str = PASSWORD) -> dict:
    response = APIClient().post("/api/auth/token/", {"username": username, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_a_user_token_reads_but_cannot_write(users):
    client = bearer(tokens("ada")["access"])

    assert client.get("/api/me").json() == {"name": "ada", "scope": "user"}
    assert client.get("/api/models").status_code == 200
    assert client.get("/api/keys").status_code == 403


def test_a_staff_token_has_admin_scope(users):
    client = bearer(tokens("root")["access"])

    assert client.get("/api/me").json() == {"name": "root", "scope": "admin"}
    assert client.get("/api/keys").status_code == 200


def test_a_wrong_password_gets_no_token(users):
    response = APIClient().post("/api/auth/token/", {"username": "ada", "password": "nope"}, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_a_refresh_token_gives_a_new_access_token_with_the_current_scope(users, django_user_model):
    refresh = tokens("ada")["refresh"]
    django_user_model.objects.filter(username="ada").update(is_staff=True)

    response = APIClient().post("/api/auth/token/refresh/", {"refresh": refresh}, format="json")

    assert response.status_code == 200
    assert bearer(response.json()["access"]).get("/api/me").json()["scope"] == "admin"


def test_a_deleted_or_disabled_user_is_refused(users, django_user_model):
    pair = tokens("ada")
    django_user_model.objects.filter(username="ada").update(is_active=False)

    assert bearer(pair["access"]).get("/api/models").status_code == 401
    assert APIClient().post("/api/auth/token/refresh/", {"refresh": pair["refresh"]}, format="json").status_code == 401
    django_user_model.objects.filter(username="ada").delete()
    assert APIClient().post("/api/auth/token/refresh/", {"refresh": pair["refresh"]}, format="json").status_code == 401


def test_a_bad_or_expired_token_is_401(users):
    access = AccessToken(tokens("ada")["access"])
    access.set_exp(lifetime=-timedelta(seconds=1))
    forged = tokens("ada")["access"][:-4] + "AAAA"

    for token in (str(access), forged):
        response = bearer(token).get("/api/models")
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"


def test_the_gateway_checks_a_token_without_the_database(users):
    pair = tokens("root")
    principal = auth.principal_for_jwt(pair["access"])

    assert principal is not None and (principal.name, principal.scope, principal.key_id) == ("root", "admin", None)
    assert auth.principal_for_jwt(pair["refresh"]) is None  # a refresh token is no credential
    assert auth.principal_for_jwt(pair["access"][:-4] + "AAAA") is None

