"""The README's quick start, as a newcomer runs it: `make run`'s steps (migrate, bootstrap, serve with
the demo providers) in a fresh data folder, then the README's curls in order and its gateway snippet.
The demo models are routable within 10 s of /health, and no request takes more than 2 s (no hidden
503 with a Retry-After for an SDK to wait on)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def readme_block(after: str, language: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(after)
    match = re.search(rf"```{language}\n(.*?)```", text[start:], re.S)
    assert match, f"no {language} block after {after!r}"
    return match.group(1)


def readme_curls() -> list[str]:
    """The quick start's curl commands in order, each as written (a JSON body may span lines)."""
    lines = [line for line in readme_block("## Using it: the seeds' calls", "bash").splitlines()
             if not line.startswith(("#", "KEY="))]
    return [c.strip() for c in re.split(r"\n(?=curl )", "\n".join(lines)) if c.strip().startswith("curl ")]


@pytest.fixture
def served(tmp_path):
    """`make run` in a fresh data folder: migrate, bootstrap (the printed key), serve with demo providers."""
    port, demo_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "AFMTS_ALLOW_PRIVATE_UPSTREAMS")}
    env |= {"AFMTS_DATA_DIR": str(tmp_path / "data"), "AFMTS_DEMO": "1", "AFMTS_DEMO_PORT": str(demo_port),
            "PORT": str(port)}
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=120,
                   capture_output=True)
    boot = subprocess.run([*manage, "bootstrap"], cwd=ROOT, env=env, check=True, timeout=60, capture_output=True,
                          text=True)
    key = re.search(r"^\s+(afmts_\S+)$", boot.stdout, re.M).group(1)
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([*manage, "serve", "--port", str(port)], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}", key
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_the_readme_quick_start_runs_without_a_stall(served, tmp_path):
    base, key = served
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "no /health within 60 s"
        time.sleep(0.2)
    healthy = time.monotonic()

    # The demo models are discovered as soon as the worker is up, and `auto` serves from them.
    auth = {"Authorization": f"Bearer {key}"}
    hello = {"model": "auto", "messages": [{"role": "user", "content": "Hello"}]}
    while httpx.post(f"{base}/v1/chat/completions", json=hello, headers=auth, timeout=5).status_code != 200:
        assert time.monotonic() - healthy < 10, "no demo model routable within 10 s of /health"
        time.sleep(0.2)

    # The README's curls, in order, as written (its host and port are this server's).
    curls = readme_curls()
    assert any("/api/models/register" in c for c in curls) and any("/v1/chat/completions" in c for c in curls)
    for curl in curls:
        command = curl.replace("http://localhost:3001", base).replace(
            "curl ", f"curl -sS -o {tmp_path}/body -w '%{{http_code}} %{{time_total}}' ", 1)
        ran = subprocess.run(["bash", "-c", command], env={**os.environ, "KEY": key}, capture_output=True,
                             text=True, timeout=10)
        status, seconds = ran.stdout.split()
        body = (tmp_path / "body").read_text()[:500]
        assert 200 <= int(status) < 300, f"{curl}\n-> {status} {body} {ran.stderr}"
        assert float(seconds) < 2, f"{curl} took {seconds} s"

    # The gateway snippet (OpenAI and Anthropic SDKs): no request takes 2 s, no hidden retry.
    snippet = readme_block("### The gateway: any OpenAI or Anthropic program", "python").replace(
        "http://localhost:3001", base)
    started = time.monotonic()
    exec(compile(snippet, "README.md", "exec"), {"KEY": key, "print": lambda *a: None})  # noqa: S102
    assert time.monotonic() - started < 4  # two requests
