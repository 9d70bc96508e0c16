"""The fake providers start as a command for demos and benchmarks, and answer only on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.routing.conftest import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("argv", [["manage.py", "fakeprovider"], ["-m", "routing.fakes"]])
def test_fake_provider_server_runs_as_a_command(argv):
    port = free_port()
    proc = subprocess.Popen([sys.executable, *argv, "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/_control/health", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "the fake provider server did not start"
                time.sleep(0.1)
        assert health.json()["status"] == "ok" and "openrouter" in health.json()["providers"]
        models = httpx.get(f"http://127.0.0.1:{port}/openrouter/api/v1/models", timeout=2).json()
        assert any(m["id"].endswith(":free") for m in models["data"])
    finally:
        proc.terminate()
        proc.wait(10)


def test_fake_listens_on_loopback_only(fake):
    assert fake.url.startswith("http://127.0.0.1:")


def test_control_log_shows_requests_without_secrets(fake):
    httpx.get(fake.base_url("openai") + "/v1/models", headers={"authorization": "Bearer fake-key"})
    (entry,) = httpx.get(fake.url + "/_control/log", params={"provider": "openai"}).json()
    assert entry["path"] == "/openai/v1/models" and entry["headers"]["authorization"] == "<redacted>"
