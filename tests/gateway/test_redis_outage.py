"""Redis stopped under a running gateway: requests keep succeeding, fast, on each process's own live
state; /health says "degraded" within a second; and when Redis returns the state is shared again.
The test runs a Redis of its own (never the shared one) and a real server process on it."""

from __future__ import annotations

import shutil
import subprocess
import time

import httpx
import pytest

from tests.analytics.test_usage_durability import (
    CHAT,
    IN_CI,
    database_url_under_test,
    free_port,
    seed,
    server_env,
    start_gateway,
)


class OwnRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("own redis did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
def own_redis():
    if shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("redis-server is needed")
        pytest.skip("redis-server not installed")
    server = OwnRedis()
    server.start()
    yield server
    server.stop()


def test_redis_stopped_under_load_costs_no_request(own_redis, fake, transactional_db, tmp_path):
    secrets = seed(fake)
    env = server_env(database_url_under_test(), tmp_path, AFMTS_LIVE_SYNC_SECONDS="0.2")
    env["REDIS_URL"] = own_redis.url
    proc, url = start_gateway(env, tmp_path / "server.log")

    def chat(n: int) -> tuple[int, float]:
        started = time.monotonic()
        reply = httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=30,
                           headers={"authorization": f"Bearer {secrets[n % 2]}"})
        return reply.status_code, time.monotonic() - started

    try:
        before = [chat(n) for n in range(10)]
        own_redis.stop()
        during = [chat(n) for n in range(40)]
        started = time.monotonic()
        health = httpx.get(f"{url}/health", timeout=10)
        health_seconds = time.monotonic() - started
        own_redis.start()
        time.sleep(1.5)  # a second of skipping, then the next exchange finds it back
        after = [chat(n) for n in range(10)]
        health_after = httpx.get(f"{url}/health", timeout=10).json()
    finally:
        proc.terminate()
        proc.wait(30)

    log = (tmp_path / "server.log").read_text()
    assert [code for code, _ in before + during + after] == [200] * 60, log[-3000:]
    assert max(seconds for _, seconds in during) < 2.0  # never stuck waiting on Redis
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert health.json()["checks"]["liveState"]["ok"] is False
    assert health_seconds < 2.5
    assert health_after["checks"]["liveState"] == {"ok": True, "detail": "shared through Redis",
                                                   "ms": health_after["checks"]["liveState"]["ms"]}
