"""Several web processes, one truth: `manage.py serve --workers 2` (what `make run WORKERS=2` runs)
starts two web processes behind one port, and a WebSocket client of either process receives every
event, whichever process made the write (embedded mode: relayed from the events table; server
mode: the Redis channel layer)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from django.conf import settings
from websockets.sync.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
SERVER_VARS = {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY", "FERNET_KEYS", "AFMTS_ALLOW_GENERATED_SECRETS"}

pytestmark = pytest.mark.django_db(transaction=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(data_dir: Path) -> dict[str, str]:
    """The environment of a fresh service: in the server pass, this test run's PostgreSQL database
    and Redis; otherwise embedded mode in its own data folder."""
    env = {k: v for k, v in os.environ.items() if k not in SERVER_VARS}
    env.update({"AFMTS_DATA_DIR": str(data_dir), "AFMTS_DEMO": "0", "AFMTS_EVENT_RELAY_SECONDS": "0.1",
                "DJANGO_SETTINGS_MODULE": "afmts.settings"})
    if settings.SERVER_MODE:
        db = settings.DATABASES["default"]
        env.update({
            "DATABASE_URL": f"postgres://{quote(db['USER'] or '')}:{quote(str(db['PASSWORD'] or ''))}@"
                            f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            "REDIS_URL": settings.REDIS_URL, "SECRET_KEY": settings.SECRET_KEY,
            "FERNET_KEYS": ",".join(settings.FERNET_KEYS),
        })
    return env


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        kids = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout.split()
        found += [int(k) for k in kids]
        todo += [int(k) for k in kids]
    return found


def serving_pid(client: ClientConnection, server_port: int, pids: list[int]) -> int | None:
    """The process holding the server end of this client's connection (from /proc: the socket
    whose remote end is the client's port, then which process has it open)."""
    client_port = client.socket.getsockname()[1]
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1].split(":"), fields[2].split(":")
        if int(local[1], 16) == server_port and int(remote[1], 16) == client_port:
            inode = fields[9]
    if inode is None:
        return None
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    if os.readlink(fd) == f"socket:[{inode}]":
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None


def next_event(client: ClientConnection, name: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(client.recv(timeout=max(0.01, deadline - time.monotonic())))
        if message["event"] == name:
            return message


def test_websocket_clients_of_every_web_process_receive_an_event_written_through_the_api(tmp_path):
    env = service_env(tmp_path)
    manage(env, "migrate", "--noinput", "-v", "0")
    secret = manage(env, "createapikey", "multi", "--scope", "admin", "--quiet").strip().splitlines()[-1]
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--no-worker", "--workers", "2", "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    clients: dict[int, ClientConnection] = {}
    with ExitStack() as sockets:
        sockets.callback(stop, proc)  # last: after the sockets are closed
        deadline = time.monotonic() + 60
        while len(clients) < 2 and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                client = sockets.enter_context(
                    connect(f"ws://127.0.0.1:{port}/ws/events/?api_key={secret}", open_timeout=5))
            except OSError:
                time.sleep(0.2)  # not listening yet
                continue
            pid = serving_pid(client, port, descendants(proc.pid))
            if pid is None or pid in clients:
                client.close()
            else:
                clients[pid] = client
        assert len(clients) == 2, f"every connection was served by one process\n{log.read_text()[-3000:]}"

        reply = httpx.post(f"http://127.0.0.1:{port}/api/agents/register", json={"name": "multi-agent"},
                           headers={"Authorization": f"Bearer {secret}"}, timeout=10)
        assert reply.status_code in (200, 201), reply.text

        for client in clients.values():
            message = next_event(client, "agent_connected", timeout=10)
            assert message["data"]["name"] == "multi-agent"
        for client in clients.values():  # and only once
            with pytest.raises(TimeoutError):
                next_event(client, "agent_connected", timeout=0.5)


def stop(proc: subprocess.Popen) -> None:
    """Ctrl-C, as an operator would; its whole process group if it lingers."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
