"""The one redactor: it masks the provider keys this process has decrypted (whatever their shape)
and anything shaped like a credential, and it sits on every log handler — Django's, uvicorn's
(access lines carry query strings), Celery's (which replaces the root handlers)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from afmts import logging as redaction
from registry import crypto
from registry.events import for_audience
from routing.gateway.runtime import ProviderConfig

ROOT = Path(settings.BASE_DIR)


def test_a_decrypted_key_of_any_shape_is_masked_from_then_on():
    key = "plain" + secrets.token_hex(12)
    token = crypto.encrypt("x" * 4 + key)  # what is stored; remembering happens on use as well
    redaction._known, redaction._known_re = frozenset(), None  # a fresh process: nothing decrypted yet
    assert redaction.redact(f"upstream said: bad key xxxx{key}") == f"upstream said: bad key xxxx{key}"

    crypto.decrypt(token)

    assert redaction.redact(f"upstream said: bad key xxxx{key}!") == "upstream said: bad key ***!"


def test_credential_shapes_are_masked_and_setting_names_are_not():
    text = ("Authorization: Basic dXNlcjpwYXNzd29yZA== x-api-key: k3y-value-123 ?key=abcdefgh123&x=1 "
            "xai-AbCdEf0123456789 key-AbCdEf0123456789 Incorrect API key provided: q1w2e3r4t5y6.")
    assert redaction.redact(text) == ("Authorization: Basic *** x-api-key: *** ?key=***&x=1 *** *** "
                                      "Incorrect API key provided: ***")
    ordinary = "settings.AFMTS_DEFAULT_KEY_RATE_PER_MINUTE is 60; basic understanding; circuit key: openai/gpt-4o"
    assert redaction.redact(ordinary) == ordinary


def test_sanitize_folds_cuts_and_redacts():
    assert redaction.sanitize("bad\n\n key  sk-abcdefghijklmnop " + "x" * 500, 40) == "bad key *** " + "x" * 27 + "…"


def test_provider_config_repr_never_shows_the_key():
    cfg = ProviderConfig("groq", "groq", "https://api.groq.com/openai/v1", "gsk_" + secrets.token_hex(16))
    assert cfg.api_key not in repr(cfg) and "groq" in repr(cfg)


def test_failure_detail_is_cut_for_non_admins_only():
    envelope = {"id": 1, "event": "provider_down", "ts": "t",
                "data": {"provider": "groq", "error": "401 ***", "nested": {"lastError": "x", "slug": "groq"}}}
    assert for_audience(envelope, admin=True) is envelope
    assert for_audience(envelope, admin=False)["data"] == {"provider": "groq", "nested": {"slug": "groq"}}
    plain = {"id": 2, "event": "model_registered", "ts": "t", "data": {"id": 3}}
    assert for_audience(plain, admin=False) is plain


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    return {**env, "AFMTS_DATA_DIR": str(tmp_path), "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}


def test_uvicorn_access_lines_are_redacted(tmp_path):
    port = _free_port()
    secret = "afmts_" + secrets.token_hex(16)
    out = tmp_path / "uvicorn.log"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "afmts.asgi:application", "--host", "127.0.0.1", "--port", str(port),
             "--lifespan", "off"], cwd=ROOT, env=_env(tmp_path), stdout=sink, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/nowhere?api_key={secret}&key={secret}", timeout=2)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline and proc.poll() is None, out.read_text()
                    time.sleep(0.2)
            time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait(10)
    log = out.read_text()
    assert "GET /nowhere?api_key=***" in log  # the access line is there, masked
    assert secret not in log


CELERY_SCRIPT = """
import logging, django
django.setup()
from afmts.celery import app
from celery.utils.log import get_task_logger
app.log.setup(loglevel="INFO")
logging.getLogger("celery.app.trace").warning("task failed: upstream said Authorization: Bearer %s", SECRET)
get_task_logger("registry.tasks").error("listing failed: Incorrect API key provided: %s", SECRET)
"""


def test_celery_worker_handlers_are_redacted(tmp_path):
    secret = "sk-proj-" + secrets.token_hex(16)
    result = subprocess.run([sys.executable, "-c", f"SECRET = {secret!r}\n" + CELERY_SCRIPT], cwd=ROOT,
                            env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    assert "task failed: upstream said Authorization: Bearer ***" in log
    assert "Incorrect API key provided: ***" in log
    assert secret not in log


@pytest.mark.parametrize("name", ["uvicorn", "uvicorn.access", "daphne"])
def test_the_servers_loggers_write_through_the_redacting_handler(name):
    assert settings.LOGGING["loggers"][name]["handlers"] == ["console"]
    assert "secrets" in settings.LOGGING["handlers"]["console"]["filters"]


def test_a_password_in_a_url_is_masked():
    from afmts.logging import redact

    text = "Error 111 connecting to redis://:hunter22@10.0.0.1:6379; postgres://app:s3cret@db:5432/afmts"
    masked = redact(text)
    assert "hunter22" not in masked and "s3cret" not in masked
    assert "redis://:***@10.0.0.1:6379" in masked and "postgres://app:***@db:5432/afmts" in masked
    assert redact("see http://example.com/a@b") == "see http://example.com/a@b"


def test_every_credential_trigger_has_an_anchor():
    # redact() skips text with no anchor: a trigger without one would never be looked for.
    from afmts.logging import ANCHORS, TRIGGERS

    assert [t for t in TRIGGERS if not any(a in t for a in ANCHORS)] == []
