"""Per-key rate limits on the gateway: 429 with Retry-After, shared by every process through Redis."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from django.conf import settings

from registry import services
from routing.live import LiveState


def test_a_limited_key_gets_429_with_retry_after(gateway, provider):
    provider("groq", models=[{"model_id": "llama-3.1-8b-instant", "is_free": True}])
    secret = services.apikey_create(name="tight", scope="user", rate_limit_per_minute=2)[1]
    body = {"model": "free", "messages": [{"role": "user", "content": "hi"}]}

    codes = [httpx.post(f"{gateway}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {secret}"}, timeout=5)
             for _ in range(3)]

    assert [r.status_code for r in codes] == [200, 200, 429]
    assert codes[2].json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(codes[2].headers["retry-after"]) <= 60


def test_processes_share_the_limit_through_redis():
    if not settings.REDIS_URL:
        pytest.skip("the shared limit runs in the server-mode pass")
    prefix = f"test:{uuid.uuid4().hex[:6]}:"
    one, two = LiveState(redis_url=settings.REDIS_URL, prefix=prefix), LiveState(redis_url=settings.REDIS_URL, prefix=prefix)

    async def calls():
        return [await one.admit_key("k", 3, 120.0), await two.admit_key("k", 3, 121.0),
                await one.admit_key("k", 3, 122.0), await two.admit_key("k", 3, 123.0),
                await two.admit_key("k", 3, 181.0)]  # the next minute starts afresh

    assert asyncio.run(calls()) == [None, None, None, 57.0, None]
