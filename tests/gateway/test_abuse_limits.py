"""Abuse limits: one per-key counter for REST and gateway (a default for keys without their own), a
per-address limit on failed authentication and on anonymous endpoints; every 429 has Retry-After.

REST and gateway are called over real HTTP on the one ASGI app (the gateway fixture's server). In
the server-mode pass the counters live in Redis, as between several web processes."""

from __future__ import annotations

import random
import time
import uuid

import httpx
import pytest
from django.conf import settings as django_settings
from django.test import Client

from registry import services
from routing import limits
from routing.live import LiveState

CHAT = {"model": "free", "messages": [{"role": "user", "content": "hi"}]}


def fresh_minute() -> None:
    """Counters are per UTC minute: a test's few requests must not straddle two of them."""
    left = 60 - time.time() % 60
    if left < 5:
        time.sleep(left + 0.05)


def an_ip() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


@pytest.fixture
def shared(gateway):
    """The gateway's live state on Redis in the server-mode pass (a prefix of its own), else local."""
    from routing.gateway.runtime import runtime

    if django_settings.REDIS_URL:
        runtime.live = LiveState(redis_url=django_settings.REDIS_URL, prefix=f"test:{uuid.uuid4().hex[:8]}:")
    return runtime.live


@pytest.fixture
def behind_proxy(settings):
    """Requests come through a trusted proxy that names the client in X-Forwarded-For, so each test
    can be its own address (the blocks of one test must not reach the next)."""
    settings.AFMTS_TRUSTED_PROXIES = ["127.0.0.1/32"]
    made: list[str] = []

    def ip() -> str:
        made.append(an_ip())
        return made[-1]

    yield ip
    for address in made:
        limits.blocked_ips.pop(address, None)


def chat(url: str, secret: str, ip: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {secret}", **({"x-forwarded-for": ip} if ip else {})}
    return httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=headers, timeout=5)


def rest(url: str, secret: str, ip: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {secret}", **({"x-forwarded-for": ip} if ip else {})}
    return httpx.get(f"{url}/api/models", headers=headers, timeout=5)


def test_rest_and_gateway_count_a_key_on_one_counter(gateway, shared, provider):
    provider("groq", models=[{"model_id": "llama-3.1-8b-instant", "is_free": True}])
    secret = services.apikey_create(name="split", scope="user", rate_limit_per_minute=2)[1]
    fresh_minute()

    first, second = chat(gateway, secret), rest(gateway, secret)
    third_gateway, third_rest = chat(gateway, secret), rest(gateway, secret)

    assert (first.status_code, second.status_code) == (200, 200)
    assert third_gateway.status_code == 429 and third_gateway.json()["error"]["code"] == "rate_limit_exceeded"
    assert third_rest.status_code == 429 and third_rest.json()["error"]["type"] == "rate_limit_error"
    for response in (third_gateway, third_rest):
        assert 1 <= int(response.headers["retry-after"]) <= 61


def test_a_key_without_a_limit_gets_the_default_and_zero_means_unlimited(gateway, shared, provider, settings):
    provider("groq", models=[{"model_id": "llama-3.1-8b-instant", "is_free": True}])
    settings.AFMTS_DEFAULT_KEY_RATE_PER_MINUTE = 2
    default = services.apikey_create(name="default", scope="user")[1]
    unlimited = services.apikey_create(name="unlimited", scope="user", rate_limit_per_minute=0)[1]
    fresh_minute()

    assert [rest(gateway, default).status_code for _ in range(3)] == [200, 200, 429]
    assert [chat(gateway, unlimited).status_code for _ in range(3)] == [200, 200, 200]
    assert [rest(gateway, unlimited).status_code for _ in range(2)] == [200, 200]


def test_failed_authentications_from_an_address_get_429_on_rest_and_gateway(gateway, shared, behind_proxy,
                                                                            user_secret):
    ip, other = behind_proxy(), behind_proxy()
    fresh_minute()

    codes = [rest(gateway, f"afmts_wrong{n}", ip=ip).status_code
             for n in range(django_settings.AFMTS_AUTH_FAILURES_PER_MINUTE + 1)]
    assert codes == [401] * django_settings.AFMTS_AUTH_FAILURES_PER_MINUTE + [429]

    # Now every authenticated request from there is refused, REST and gateway, even with a good key.
    for response in (rest(gateway, user_secret, ip=ip), chat(gateway, user_secret, ip=ip)):
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "too_many_auth_failures"
        assert 1 <= int(response.headers["retry-after"]) <= 61
    # Another address is not.
    assert rest(gateway, user_secret, ip=other).status_code == 200


def test_failed_authentications_on_the_gateway_count_too(gateway, shared, behind_proxy, user_secret):
    ip = behind_proxy()
    fresh_minute()

    codes = [chat(gateway, f"afmts_wrong{n}", ip=ip).status_code
             for n in range(django_settings.AFMTS_AUTH_FAILURES_PER_MINUTE + 1)]

    assert codes == [401] * django_settings.AFMTS_AUTH_FAILURES_PER_MINUTE + [429]
    assert rest(gateway, user_secret, ip=ip).status_code == 429


def test_anonymous_endpoints_are_limited_per_address(db, settings):
    settings.AFMTS_ANON_RATE_PER_MINUTE = 3
    ip, other = an_ip(), an_ip()
    client = Client(REMOTE_ADDR=ip)
    fresh_minute()

    codes = [client.get(path).status_code for path in ("/health", "/metrics", "/api/schema/", "/health")]
    refused = client.get("/admin/login/")

    assert codes == [200, 200, 200, 429]
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert Client(REMOTE_ADDR=other).get("/health").status_code == 200


def test_x_forwarded_for_counts_only_from_a_trusted_proxy(settings):
    assert limits.client_ip("203.0.113.9", "10.1.1.1") == "203.0.113.9"  # no trusted proxy: the peer
    settings.AFMTS_TRUSTED_PROXIES = ["127.0.0.1", "172.16.0.0/12"]
    assert limits.client_ip("127.0.0.1", "10.1.1.1") == "10.1.1.1"
    # The right-most hop that is not a trusted proxy; what the client wrote further left is ignored.
    assert limits.client_ip("172.18.0.2", "6.6.6.6, 198.51.100.7, 172.18.0.5") == "198.51.100.7"
    assert limits.client_ip("203.0.113.9", "10.1.1.1") == "203.0.113.9"  # an untrusted peer's header
