"""Browser-facing safety and the files: CORS only for configured origins, WebSockets refused from a
page of another origin, security headers and a CSP on every page, HTTPS settings in production, one
log line per disallowed Host, the admin login locked after repeated failures, a private data folder."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from afmts.asgi import application

ROOT = Path(__file__).resolve().parent.parent
APP = "https://app.example"
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def an_ip() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def test_cors_preflight_is_answered_for_configured_origins_only(client, settings):
    settings.CORS_ALLOWED_ORIGINS = [APP]
    ask = {"HTTP_ACCESS_CONTROL_REQUEST_METHOD": "POST", "HTTP_ACCESS_CONTROL_REQUEST_HEADERS": "authorization"}

    allowed = client.options("/api/models/find", HTTP_ORIGIN=APP, **ask)
    evil = client.options("/api/models/find", HTTP_ORIGIN="http://evil.example", **ask)

    assert allowed.status_code == 200
    assert allowed["Access-Control-Allow-Origin"] == APP
    assert "authorization" in allowed["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Origin" not in evil
    assert "Access-Control-Allow-Credentials" not in allowed  # keys travel in headers, never cookies


def test_a_cors_reply_from_an_allowed_origin_exposes_the_request_id(db, client, settings):
    settings.CORS_ALLOWED_ORIGINS = [APP]
    response = client.get("/api/models", HTTP_ORIGIN=APP)

    assert response.status_code == 401
    assert response["Access-Control-Allow-Origin"] == APP
    assert "retry-after" in response["Access-Control-Expose-Headers"]


@pytest.mark.parametrize("path", ["/health", "/api/models", "/admin/login/", "/api/docs/", "/no/such/page"])
def test_every_page_has_the_security_headers_and_a_csp(db, client, path):
    response = client.get(path)

    for name, value in HEADERS.items():
        assert response[name] == value, name
    csp = response["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-eval" not in csp


def test_the_api_docs_page_needs_no_inline_script(db, client):
    page = client.get("/api/docs/").content.decode()
    scripts = re.findall(r"<script([^>]*)>", page)

    assert scripts and all("src=" in attrs for attrs in scripts)
    script = re.search(r'<script src="(/api/docs/\?script=[^"]*)"', page).group(1)
    assert client.get(script).status_code == 200


def test_https_settings_are_on_in_production_and_off_by_default():
    def settings_with(**env: str) -> dict:
        code = ("import django, json; django.setup(); from django.conf import settings as s; print(json.dumps("
                "[s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE]))")
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("SECURE_", "AFMTS_HTTPS", "DEBUG"))}
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                             env={**clean, "DJANGO_SETTINGS_MODULE": "afmts.settings", **env}, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    assert settings_with() == [False, 0, False, False]  # `make run` on http://127.0.0.1
    assert settings_with(AFMTS_HTTPS="1") == [True, 31_536_000, True, True]


def test_https_redirect_spares_health_and_metrics(db, client, settings):
    settings.SECURE_SSL_REDIRECT = True

    assert client.get("/api/models").status_code == 301
    assert client.get("/health").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_a_disallowed_host_is_one_log_line(db, client):
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep()
    loggers = [logging.getLogger(), logging.getLogger("django.security.DisallowedHost"), logging.getLogger("django.request")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        response = client.get("/health", HTTP_HOST="evil.example")
    finally:
        for logger in loggers:
            logger.removeHandler(handler)

    assert response.status_code == 400
    lines = [logging.Formatter().format(r) for r in seen if "evil.example" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]


# ---------------------------------------------------------------- WebSocket origin

async def ws_connect(headers: list[tuple[bytes, bytes]]) -> bool:
    communicator = WebsocketCommunicator(application, "/ws/events/", headers=headers)
    ok, _ = await communicator.connect(timeout=5)
    await communicator.disconnect()
    return ok


@pytest.mark.django_db(transaction=True)
async def test_a_websocket_from_another_origin_is_refused_even_with_a_staff_session(admin_client):
    cookie = (b"cookie", f"sessionid={admin_client.cookies['sessionid'].value}".encode())

    assert not await ws_connect([cookie, (b"origin", b"http://evil.example")])
    assert await ws_connect([cookie, (b"origin", b"http://127.0.0.1:3001")])
    assert await ws_connect([cookie])  # a program sends no Origin (and must still authenticate)


# ---------------------------------------------------------------- admin login lockout

def test_the_admin_login_locks_after_repeated_failures(db, django_user_model, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # tests only
    settings.AFMTS_AUTH_FAILURES_PER_MINUTE = 0  # the lockout alone, not the per-address limit
    django_user_model.objects.create_superuser("root", password="pw-correct-horse")
    ip = an_ip()
    client = Client(REMOTE_ADDR=ip)

    codes = [client.post("/admin/login/", {"username": "root", "password": f"wrong{n}"}).status_code
             for n in range(30)]
    locked = client.post("/admin/login/", {"username": "root", "password": "pw-correct-horse"})

    assert codes[: settings.AXES_FAILURE_LIMIT - 1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)  # the form again
    assert set(codes[settings.AXES_FAILURE_LIMIT:]) == {429}
    assert locked.status_code == 429 and int(locked["Retry-After"]) == settings.AXES_COOLOFF_TIME.total_seconds()
    # The same account from another address is not locked.
    other = Client(REMOTE_ADDR=an_ip()).post("/admin/login/", {"username": "root", "password": "pw-correct-horse"})
    assert other.status_code == 302


def test_failed_logins_count_against_the_address(db, django_user_model, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # tests only
    settings.AFMTS_AUTH_FAILURES_PER_MINUTE = 3
    client = Client(REMOTE_ADDR=an_ip())

    codes = [client.post("/api/auth/token/", {"username": f"user{n}", "password": "x"},
                         content_type="application/json").status_code for n in range(5)]

    assert codes[:3] == [401, 401, 401] and codes[-1] == 429


# ---------------------------------------------------------------- files

def test_the_data_folder_is_private(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "afmts.sqlite3").touch(mode=0o644)  # made by an older version
    # Modes are read while the database is open (its WAL and SHM go away when it closes).
    code = ("import django, json, os, pathlib; django.setup(); from django.db import connection;"
            "from afmts.settings import BROKER_DIR, DATA_DIR;"
            "c = connection.cursor(); c.execute('CREATE TABLE t (x int)'); c.execute('INSERT INTO t VALUES (1)');"
            "(pathlib.Path(BROKER_DIR) / 'queue' / 'm.msg').write_text('x');"
            "print(json.dumps({str(p.relative_to(DATA_DIR)): [p.is_dir(), oct(p.stat().st_mode & 0o777)]"
            " for p in [DATA_DIR, *DATA_DIR.rglob('*')] if 'static' not in p.parts}))")
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60, capture_output=True,
                         text=True, env={**clean, "DJANGO_SETTINGS_MODULE": "afmts.settings", "AFMTS_DATA_DIR": str(data)})
    modes = json.loads(out.stdout.strip().splitlines()[-1])

    assert {"afmts.sqlite3", "afmts.sqlite3-wal", "afmts.sqlite3-shm", "secret_key", "fernet_keys",
            "broker/queue/m.msg"} <= set(modes)
    assert {path: mode for path, (is_dir, mode) in modes.items()} == {
        path: oct(0o700 if is_dir else 0o600) for path, (is_dir, _) in modes.items()}
