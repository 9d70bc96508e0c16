"""The security trial's SSRF read-back, replayed against the running gateway: a model whose
endpoint answers with what must stay inside (a metadata server), registered before the outbound
URL policy existed, is refused at connect time and nothing of its body reaches the client."""

from __future__ import annotations

import contextlib

import httpx
import pytest

from registry import services
from tests.outbound import completion, send

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
SECRET = "AKIA-METADATA-SECRET-BODY"


@pytest.fixture
def strict(settings):
    settings.AFMTS_ALLOW_PRIVATE_UPSTREAMS = False
    settings.AFMTS_ALLOWED_UPSTREAM_HOSTS = []
    settings.AFMTS_DEMO = False
    return settings


def test_the_gateway_cannot_read_back_an_endpoint_registered_before_the_policy(gateway, user_secret, spot, strict):
    """The security trial's read-back: a model whose endpoint answers with what must stay inside."""
    server = spot(lambda h: send(h, completion(SECRET)))
    strict.AFMTS_ALLOW_PRIVATE_UPSTREAMS = True  # as the database was before the policy
    services.model_register(provider_slug="evil", provider_kind="openai", endpoint=f"http://localhost:{server.port}",
                            api_key="k-evil", model_fields={"model_id": "gpt-x", "name": "gpt-x", "is_free": True,
                                                            "capabilities": ["text-generation"]})
    strict.AFMTS_ALLOW_PRIVATE_UPSTREAMS = False

    with contextlib.closing(httpx.Client(base_url=gateway, timeout=20)) as client:
        reply = client.post("/v1/chat/completions", json={**CHAT, "model": "evil/gpt-x"},
                            headers={"authorization": f"Bearer {user_secret}"})

    assert reply.status_code == 502, reply.text
    assert SECRET not in reply.text
    assert "evil/gpt-x: upstream refused" in reply.json()["error"]["message"]
    assert server.accepts == 0
