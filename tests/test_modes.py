"""Embedded and server modes as a fresh process sees them, and `manage.py serve` (what `make run`
runs): web + Celery worker/beat come up, answer, and stop together on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
SERVER_VARS = {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY", "FERNET_KEYS", "AFMTS_ALLOW_GENERATED_SECRETS"}
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in SERVER_VARS}


def django_eval(expr: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess:
    code = f"import django, json; django.setup(); from django.conf import settings as s; print(json.dumps({expr}))"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**CLEAN_ENV, "DJANGO_SETTINGS_MODULE": "afmts.settings", "AFMTS_DATA_DIR": str(data_dir), **env},
    )


def test_embedded_mode_generates_secrets_once_with_private_permissions(tmp_path):
    first = django_eval("[s.MODE, s.SECRET_KEY, s.FERNET_KEYS]", tmp_path)
    second = django_eval("[s.MODE, s.SECRET_KEY, s.FERNET_KEYS]", tmp_path)

    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == json.loads(second.stdout)  # persisted, so stored keys survive restarts
    assert json.loads(first.stdout)[0] == "embedded"
    for name in ("secret_key", "fernet_keys"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


def test_embedded_mode_uses_sqlite_wal_a_file_cache_and_inmemory_layer(tmp_path):
    out = django_eval(
        "[s.DATABASES['default']['ENGINE'], s.CACHES['default']['BACKEND'], s.CHANNEL_LAYERS['default']['BACKEND'], s.CELERY_BROKER_URL]",
        tmp_path,
    )
    engine, cache, layer, broker = json.loads(out.stdout)

    assert engine == "django.db.backends.sqlite3"
    assert cache.endswith("FileBasedCache") and layer.endswith("InMemoryChannelLayer")
    assert broker == "filesystem://"
    wal = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.db import connection as c; "
         "cur = c.cursor(); cur.execute('PRAGMA journal_mode'); print(cur.fetchone()[0])"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**CLEAN_ENV, "DJANGO_SETTINGS_MODULE": "afmts.settings", "AFMTS_DATA_DIR": str(tmp_path)},
    )
    assert wal.stdout.strip() == "wal", wal.stderr


def test_redis_url_switches_cache_layer_and_broker(tmp_path):
    out = django_eval(
        "[s.MODE, s.CACHES['default']['BACKEND'], s.CHANNEL_LAYERS['default']['BACKEND'], s.CELERY_BROKER_URL]",
        tmp_path, REDIS_URL="redis://127.0.0.1:6379/3", SECRET_KEY="x" * 50, FERNET_KEYS="Cm1yb0R6M3pJbzVqSmVwY3pLb1ZyZVZzV2xwY3JqN2s=",
    )
    mode, cache, layer, broker = json.loads(out.stdout)

    assert mode == "server"
    assert cache.endswith("RedisCache") and layer.endswith("RedisChannelLayer")
    assert broker == "redis://127.0.0.1:6379/3"


def test_server_mode_refuses_to_generate_secrets(tmp_path):
    out = django_eval("s.MODE", tmp_path, DATABASE_URL="postgres://postgres@127.0.0.1:5432/test")

    assert out.returncode != 0
    assert "SECRET_KEY must be set" in out.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(settings.SERVER_MODE, reason="serve's embedded stack is exercised in the embedded pass")
def test_serve_runs_web_and_worker_and_ctrl_c_stops_them_all(tmp_path):
    env = {**CLEAN_ENV, "AFMTS_DATA_DIR": str(tmp_path), "AFMTS_DEMO": "0"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=120)
    port = free_port()
    output_file = tmp_path / "serve.log"
    with open(output_file, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port), "--concurrency", "1"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        health = None
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                if "ready" in output_file.read_text().lower():  # and the Celery worker is up
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        assert health is not None and health.status_code == 200, health and health.text
        assert health.json()["mode"] == "embedded"
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) == 2  # the web server and the Celery worker (with beat)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    output = output_file.read_text().lower()
    assert "celery" in output and "ready" in output
    time.sleep(0.5)
    assert [pid for pid in children if Path(f"/proc/{pid}").exists()] == []


def test_several_web_processes_are_uvicorn_workers_and_daphne_refuses_them(settings):
    from django.core.management.base import CommandError

    from registry.management.commands.serve import web_command

    settings.AFMTS_SERVER = "uvicorn"
    argv = web_command("127.0.0.1", 3001, workers=3)
    assert argv[argv.index("--workers") + 1] == "3"
    assert "--workers" not in web_command("127.0.0.1", 3001)

    settings.AFMTS_SERVER = "daphne"
    with pytest.raises(CommandError, match="uvicorn"):
        web_command("127.0.0.1", 3001, workers=2)


@pytest.mark.parametrize(("server", "twisted"), [("uvicorn", False), ("daphne", True)])
def test_only_a_daphne_deployment_loads_twisted(tmp_path, server, twisted):
    """Daphne's app (for `runserver`) imports Twisted and Autobahn, ~17 MB of every process under
    uvicorn and of every Celery worker: it is installed only when Daphne serves."""
    code = "import sys, afmts.asgi; print('twisted' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**CLEAN_ENV, "DJANGO_SETTINGS_MODULE": "afmts.settings", "AFMTS_DATA_DIR": str(tmp_path),
                              "AFMTS_SERVER": server})

    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == str(twisted)
