"""The gateway's /v1/* for browsers: CORS preflights answered without a key for configured origins
only (CORS_ORIGINS, as on /api/*), the allowed origin on replies, and the security headers on
every reply, JSON and event streams alike."""

from __future__ import annotations

import httpx

APP = "https://app.example"
SECURITY = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "same-origin",
            "cross-origin-opener-policy": "same-origin"}


def preflight(url: str, origin: str) -> httpx.Response:
    return httpx.options(f"{url}/v1/chat/completions", headers={
        "origin": origin, "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, x-stainless-os"}, timeout=5)


def test_a_preflight_is_answered_without_a_key_for_configured_origins_only(gateway, settings):
    settings.CORS_ALLOWED_ORIGINS = [APP]

    allowed, evil = preflight(gateway, APP), preflight(gateway, "http://evil.example")

    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == APP
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "x-stainless-os" in allowed.headers["access-control-allow-headers"]
    assert evil.status_code == 204 and "access-control-allow-origin" not in evil.headers


def test_replies_to_an_allowed_origin_carry_it(gateway, settings, user_secret):
    settings.CORS_ALLOWED_ORIGINS = [APP]

    ok = httpx.get(f"{gateway}/v1/models", headers={"origin": APP, "authorization": f"Bearer {user_secret}"}, timeout=5)
    refused = httpx.get(f"{gateway}/v1/models", headers={"origin": APP}, timeout=5)
    evil = httpx.get(f"{gateway}/v1/models", headers={"origin": "http://evil.example",
                                                      "authorization": f"Bearer {user_secret}"}, timeout=5)

    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == APP
    assert "x-request-id" in ok.headers["access-control-expose-headers"]
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == APP
    assert evil.status_code == 200 and "access-control-allow-origin" not in evil.headers


def test_every_gateway_reply_has_the_security_headers(gateway, provider, user_secret):
    provider("groq", models=[{"model_id": "llama-3.1-8b-instant", "is_free": True}])
    auth = {"authorization": f"Bearer {user_secret}"}
    body = {"model": "free", "messages": [{"role": "user", "content": "hi"}]}

    replies = [
        httpx.get(f"{gateway}/v1/models", timeout=5),  # 401
        httpx.get(f"{gateway}/v1/models", headers=auth, timeout=5),
        httpx.post(f"{gateway}/v1/chat/completions", json=body, headers=auth, timeout=5),
        httpx.post(f"{gateway}/v1/chat/completions", json={**body, "stream": True}, headers=auth, timeout=5),
    ]

    assert [r.status_code for r in replies] == [401, 200, 200, 200]
    for reply in replies:
        for name, value in SECURITY.items():
            assert reply.headers[name] == value, (reply.request.url, name)
        assert "default-src 'none'" in reply.headers["content-security-policy"]
