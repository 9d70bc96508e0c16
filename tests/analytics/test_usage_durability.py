"""Usage survives the process and the database: a real gateway server (the command `manage.py serve`
runs) stopped by a signal writes what it buffered, and one whose PostgreSQL goes away and comes back
answers every request and loses no record. The outage uses a PostgreSQL cluster of its own."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection

from analytics.models import UsageRecord
from registry import services
from registry.fakes import KEY
from registry.management.commands.serve import web_command

ROOT = Path(settings.BASE_DIR)
IN_CI = os.environ.get("CI", "").lower() == "true"
SERVER_VARS = {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY", "FERNET_KEYS", "AFMTS_ALLOW_GENERATED_SECRETS"}
CHAT = {"model": "free", "messages": [{"role": "user", "content": "hi"}]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SERVER_VARS}
    env.update({
        "DATABASE_URL": database_url, "AFMTS_ALLOW_GENERATED_SECRETS": "1", "SECRET_KEY": settings.SECRET_KEY,
        "FERNET_KEYS": ",".join(settings.FERNET_KEYS), "AFMTS_DATA_DIR": str(data_dir), "AFMTS_DEMO": "0",
        "DJANGO_SETTINGS_MODULE": "afmts.settings",
        # Load tests send more than the default per-key limit allows; limits have their own tests.
        "AFMTS_DEFAULT_KEY_RATE_PER_MINUTE": "0", **extra,
    })
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    return env


def database_url_under_test() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def start_gateway(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(web_command("127.0.0.1", port), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            httpx.get(f"{url}/v1/models", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail(f"the gateway did not start: {log.read_text()}")


def seed(fake) -> list[str]:
    """A free model at the fake provider, and two keys."""
    services.provider_create(slug="groq", kind="groq", base_url=fake.base_url("groq"), api_key=KEY)
    services.model_register(provider_slug="groq", provider_kind="groq", endpoint=None, api_key=None, model_fields={
        "name": "llama", "model_id": "llama-3.1-8b-instant", "is_free": True,
        "capabilities": ["text-generation", "streaming"], "context_window": 131072,
    })
    return [services.apikey_create(name=f"user {n}")[1] for n in range(2)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_the_server_writes_every_buffered_record(sig, fake, transactional_db, tmp_path):
    secret = seed(fake)[0]
    env = server_env(database_url_under_test(), tmp_path, AFMTS_USAGE_FLUSH_SECONDS="3600")  # nothing written before the stop
    proc, url = start_gateway(env, tmp_path / "server.log")
    try:
        for n in range(5):
            reply = httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=10,
                               headers={"authorization": f"Bearer {secret}", "x-request-id": f"stop-{n}"})
            assert reply.status_code == 200 and reply.headers["x-request-id"] == f"stop-{n}"
            assert "server" not in reply.headers  # the server software is nobody's business
        assert UsageRecord.objects.count() == 0

        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()

    stored = sorted(UsageRecord.objects.values_list("request_id", flat=True))
    assert stored == [f"stop-{n}" for n in range(5)], (tmp_path / "server.log").read_text()


def test_an_unusable_request_id_is_replaced_and_the_reply_says_which(fake, transactional_db, tmp_path):
    secret = seed(fake)[0]
    env = server_env(database_url_under_test(), tmp_path, AFMTS_USAGE_FLUSH_SECONDS="0.2")
    proc, url = start_gateway(env, tmp_path / "server.log")
    try:
        reply = httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=10,
                           headers={"authorization": f"Bearer {secret}", "x-request-id": "r" * 100})
        used = reply.headers["x-request-id"]
        deadline = time.monotonic() + 10
        while not UsageRecord.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    assert reply.status_code == 200 and used.startswith("req_") and len(used) <= 64
    assert list(UsageRecord.objects.values_list("request_id", flat=True)) == [used]


# ------------------------------------------------------------------ PostgreSQL down, then back


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    return None


class Cluster:
    """A throw-away PostgreSQL cluster on its own port: never the shared one."""

    def __init__(self, folder: Path, port: int):
        self.folder, self.port = folder, port
        self.data = folder / "data"
        self.as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *argv: str) -> None:
        subprocess.run([*self.as_owner, *argv], check=True, capture_output=True, timeout=60)

    def create(self) -> None:
        initdb = _pg_bin("initdb")
        if initdb is None or _pg_bin("pg_ctl") is None:
            raise RuntimeError("initdb/pg_ctl not found")
        self.folder.mkdir(parents=True)
        if self.as_owner:
            shutil.chown(self.folder, "postgres")
        self._run(initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.start()
        self._run(_pg_bin("psql") or "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                  "-c", "CREATE DATABASE afmts")

    def start(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "log"), "-w", "-o",
                  f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/afmts"


@pytest.fixture
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    port = free_port()  # not a fixed one: two runs at once must not collide
    made = Cluster(Path(f"/tmp/afmts-outage-{os.getpid()}"), port)
    shutil.rmtree(made.folder, ignore_errors=True)
    try:
        made.create()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        made.destroy()
        detail = getattr(exc, "stderr", b"") or b""
        message = f"cannot create a PostgreSQL cluster on port {port}: {exc} {detail.decode(errors='replace')}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    yield made
    made.destroy()


SEED = """
import json, django
django.setup()
from registry import services
services.provider_create(slug="groq", kind="groq", base_url={base!r}, api_key={key!r})
services.model_register(provider_slug="groq", provider_kind="groq", endpoint=None, api_key=None, model_fields={{
    "name": "llama", "model_id": "llama-3.1-8b-instant", "is_free": True,
    "capabilities": ["text-generation", "streaming"], "context_window": 131072}})
print(json.dumps([services.apikey_create(name=f"user {{n}}")[1] for n in range(3)]))
"""


class Load:
    """Requests from a few threads, each with its own request id, until stopped."""

    def __init__(self, url: str, secrets: list[str], threads: int = 3):
        self.url, self.secrets = url, secrets
        self.results: list[tuple[str, int, str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]

    def _run(self, n: int) -> None:
        with httpx.Client(timeout=30) as client:
            i = 0
            while not self._stop.is_set():
                rid = f"outage-{n}-{i}"
                try:
                    reply = client.post(f"{self.url}/v1/chat/completions", json=CHAT, headers={
                        "authorization": f"Bearer {self.secrets[i % len(self.secrets)]}", "x-request-id": rid})
                    self.results.append((rid, reply.status_code, reply.text[:300] if reply.status_code != 200 else ""))
                except httpx.HTTPError as exc:
                    self.results.append((rid, 0, repr(exc)))
                i += 1
                time.sleep(0.02)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(40)


@pytest.mark.skipif(not settings.SERVER_MODE, reason="runs in the server-mode pass (PostgreSQL)")
def test_postgresql_down_then_back_costs_no_request_and_no_record(cluster, fake, tmp_path):
    import psycopg

    env = server_env(cluster.url, tmp_path, AFMTS_USAGE_FLUSH_SECONDS="0.5", AFMTS_REGISTRY_POLL_SECONDS="0.5",
                     AFMTS_USAGE_SPILL_DIR=str(tmp_path / "spill"))
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=120,
                   capture_output=True)
    seeded = subprocess.run([sys.executable, "-c", SEED.format(base=fake.base_url("groq"), key=KEY)], cwd=ROOT, env=env,
                            check=True, timeout=60, capture_output=True, text=True)
    secrets = __import__("json").loads(seeded.stdout.strip().splitlines()[-1])
    proc, url = start_gateway(env, tmp_path / "server.log")
    try:
        with Load(url, secrets) as load:
            time.sleep(3)  # every key used once: known to the gateway before the outage
            cluster.stop()
            time.sleep(10)
            cluster.start()
            time.sleep(10)
        sent = {rid for rid, _, _ in load.results}

        deadline = time.monotonic() + 30
        stored = -1
        while time.monotonic() < deadline:
            with psycopg.connect(f"host=127.0.0.1 port={cluster.port} user=postgres dbname=afmts") as db:
                stored, distinct = db.execute(
                    "SELECT count(*), count(DISTINCT request_id) FROM analytics_usagerecord").fetchone()
            if stored >= len(sent):
                break
            time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    failed = [r for r in load.results if r[1] != 200]
    assert failed == [], (failed[:5], (tmp_path / "server.log").read_text()[-3000:])
    assert len(sent) > 100
    assert stored == distinct == len(sent)


# ------------------------------------------------------------------ keys while the database is away


def test_a_known_key_is_served_from_memory_while_the_database_is_down(db, monkeypatch):
    from django.db import OperationalError

    from registry import auth, version

    secret = services.apikey_create(name="known")[1]
    assert auth.principal_from_store(secret).name == "known"
    version.bump_local()  # any registry change drops the key cache

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(auth.ApiKey.objects, "filter", down)

    assert auth.principal_from_store(secret).name == "known"
    with pytest.raises(auth.KeyStoreUnavailable):
        auth.principal_from_store("afmts_never_seen")


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_a_key_store_outage_is_a_503_in_the_endpoint_envelope(path, monkeypatch):
    from registry import auth, version
    from routing.gateway.app import Gateway

    def down(secret):
        raise auth.KeyStoreUnavailable("OperationalError")

    monkeypatch.setattr(auth, "principal_from_store", down)
    version.bump_local()
    transport = httpx.ASGITransport(app=Gateway(fallback=None))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        reply = await client.post(path, json=CHAT, headers={"authorization": "Bearer afmts_unknown"})

    assert reply.status_code == 503 and reply.headers["x-request-id"]
    body = reply.json()
    assert "key store is unavailable" in body["error"]["message"]
    assert body.get("type") == "error" if path == "/v1/messages" else body["error"]["code"] == "key_store_unavailable"
