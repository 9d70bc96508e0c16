"""Several processes, one truth: two gateway processes sending to a model with a 10-a-minute free
quota make at most 10 upstream calls in that minute, because each request is reserved in Redis
before it is sent."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from registry import services
from registry.fakes import KEY
from tests.analytics.test_usage_durability import (
    CHAT,
    database_url_under_test,
    server_env,
    start_gateway,
)
from tests.gateway.test_redis_outage import own_redis  # noqa: F401 - a fixture

MODEL = "llama-3.1-8b-instant"


def test_two_processes_make_at_most_the_free_quota_of_upstream_calls(own_redis, fake, transactional_db, tmp_path):  # noqa: F811
    services.provider_create(slug="groq", kind="groq", base_url=fake.base_url("groq"), api_key=KEY)
    services.model_register(provider_slug="groq", provider_kind="groq", endpoint=None, api_key=None, model_fields={
        "name": "llama", "model_id": MODEL, "is_free": True, "free_rpm": 10,
        "capabilities": ["text-generation", "streaming"], "context_window": 131072,
    })
    secret = services.apikey_create(name="user")[1]
    # Stay clear of a minute's end: both processes must count in the same window.
    if time.time() % 60 > 45:
        time.sleep(61 - time.time() % 60)
    servers = []
    try:
        for n in range(2):
            env = server_env(database_url_under_test(), tmp_path / f"p{n}")
            env["REDIS_URL"] = own_redis.url
            env["AFMTS_LIVE_REDIS_TIMEOUT_SECONDS"] = "2"  # a loaded test machine must not send a process on alone
            (tmp_path / f"p{n}").mkdir()
            servers.append(start_gateway(env, tmp_path / f"server{n}.log"))

        def chat(n: int) -> int:
            url = servers[n % 2][1]
            return httpx.post(f"{url}/v1/chat/completions", json={**CHAT, "model": f"groq/{MODEL}"}, timeout=30,
                              headers={"authorization": f"Bearer {secret}"}).status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(chat, range(24)))
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(30)

    upstream_calls = [r for r in fake.state.requests("groq") if r["path"].endswith("/chat/completions")]
    assert len(upstream_calls) == 10
    assert codes.count(200) == 10 and codes.count(503) == 14
