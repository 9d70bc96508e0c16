"""GET /health names every part this process depends on, answers within about a second, is "degraded"
when only parts the gateway can do without are away and 503 when the database is;
GET /metrics serves Prometheus text, open by default, closed to all but admin keys by a setting."""

from __future__ import annotations

import time

import pytest
from django.test import override_settings

from afmts import health

PARTS = {"database", "cache", "channelLayer", "broker", "liveState"}


def test_health_is_ok_when_every_part_answers(client, db):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == PARTS
    assert all(check["ok"] for check in body["checks"].values()), body


def test_health_needs_no_key_and_reports_the_mode(client, db, settings):
    body = client.get("/health").json()
    assert body["mode"] == settings.MODE
    assert body["checks"]["database"]["detail"] == ("postgresql" if "postgres" in settings.DATABASES["default"]["ENGINE"] else "sqlite")
    expected_layer = "RedisChannelLayer" if settings.REDIS_URL else "InMemoryChannelLayer"
    assert body["checks"]["channelLayer"]["detail"] == expected_layer


def test_health_is_degraded_quickly_naming_a_broken_cache(client, db):
    # A blackholed address (TEST-NET-1) never answers: the check must give up within its second.
    broken = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://192.0.2.1:6379/0",
                          "OPTIONS": {"socket_connect_timeout": 5, "socket_timeout": 5}}}
    started = time.monotonic()
    with override_settings(CACHES=broken):
        response = client.get("/health")
    assert time.monotonic() - started < health.CHECK_SECONDS + 1.0
    assert response.status_code == 200  # the gateway serves on without Redis
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["cache"]["ok"] is False
    assert "error" in body["checks"]["cache"]
    assert [name for name, check in body["checks"].items() if not check["ok"]] == ["cache"]


def test_health_is_degraded_naming_a_broken_broker(client, db, monkeypatch):
    def unreachable():
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(health, "check_broker", unreachable)
    response = client.get("/health")
    assert response.status_code == 200 and response.json()["status"] == "degraded"
    checks = response.json()["checks"]
    assert checks["broker"] == {"ok": False, "error": "ConnectionRefusedError: broker down", "ms": checks["broker"]["ms"]}
    assert all(checks[name]["ok"] for name in PARTS - {"broker"})


def test_health_is_degraded_naming_a_broken_channel_layer(client, db, monkeypatch):
    async def unreachable():
        raise OSError("channel layer down")

    monkeypatch.setattr(health, "check_channel_layer", unreachable)
    response = client.get("/health")
    assert response.status_code == 200 and response.json()["status"] == "degraded"
    assert response.json()["checks"]["channelLayer"]["ok"] is False


def test_health_is_503_naming_a_broken_database(client, db, monkeypatch):
    def unreachable():
        raise RuntimeError("could not connect to server")

    monkeypatch.setattr(health, "check_database", unreachable)
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["database"]["error"] == "RuntimeError: could not connect to server"


# ------------------------------------------------------------------ metrics


def test_metrics_are_open_by_default_and_in_prometheus_text(client, db):
    assert client.get("/health").status_code == 200
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert "# TYPE django_http_requests_total_by_method_total counter" in text
    assert 'django_http_requests_total_by_method_total{method="GET"}' in text


def test_metrics_count_requests(client, db):
    def gets() -> float:
        for line in client.get("/metrics").content.decode().splitlines():
            if line.startswith('django_http_requests_total_by_method_total{method="GET"}'):
                return float(line.rsplit(" ", 1)[-1])
        return 0.0

    before = gets()
    for _ in range(3):
        client.get("/health")
    # Three /health calls and the /metrics call that read `before`.
    assert gets() - before == 4


def test_metrics_never_carry_a_key(client, admin_key, user_api):
    user_api.get("/api/models")
    text = client.get("/metrics").content.decode()
    assert admin_key not in text
    assert admin_key[:12] not in text  # not even the visible prefix (series names start with "afmts_" too)


@override_settings(AFMTS_METRICS_REQUIRE_KEY=True)
def test_closed_metrics_refuse_a_call_without_a_key(client, db):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"


@override_settings(AFMTS_METRICS_REQUIRE_KEY=True)
def test_closed_metrics_refuse_an_unknown_key(client, db):
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer afmts_notarealkey0123456789").status_code == 401


@override_settings(AFMTS_METRICS_REQUIRE_KEY=True)
def test_closed_metrics_refuse_a_user_key(client, user_key):
    response = client.get("/metrics", HTTP_X_API_KEY=user_key)
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_error"


@pytest.mark.parametrize("header", ["HTTP_AUTHORIZATION", "HTTP_X_API_KEY"])
@override_settings(AFMTS_METRICS_REQUIRE_KEY=True)
def test_closed_metrics_serve_an_admin_key(client, admin_key, header):
    value = f"Bearer {admin_key}" if header == "HTTP_AUTHORIZATION" else admin_key
    response = client.get("/metrics", **{header: value})
    assert response.status_code == 200
    assert "django_http_requests" in response.content.decode()
