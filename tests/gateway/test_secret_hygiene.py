"""Secret hygiene, end to end: upstreams that quote the key they were sent (the fake's `echo_key`
scenario) are driven through every path that keeps or shows upstream text — gateway replies
(errors, streams, a client's 400), discovery's lastError and provider_down, probes' health samples,
/api/tasks/route — and then every place a key could surface is read back: API responses, /api/events
for a user and an admin key, the WebSocket for both, /metrics, the admin pages and the logs. The
provider keys appear nowhere; failure detail reaches admins only."""

from __future__ import annotations

import json
import logging
import secrets

import httpx
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client

from afmts.asgi import application
from afmts.logging import RedactSecrets
from audit.models import Entry
from audit.service import key_uses
from registry import services, tracker
from registry.events import DETAIL_FIELDS
from registry.models import AIModel, Event, HealthSample, KeyScope, Provider
from tests.gateway.conftest import flush

pytestmark = pytest.mark.django_db(transaction=True)

# No known key shape: only the redactor's memory of decrypted provider keys can mask it.
PLAIN = "zq" + secrets.token_hex(16)
SHAPED = "sk-ant-api03-" + secrets.token_hex(16)
OPENAI_MODEL = {"model_id": "gpt-4o-mini", "input_price": "0.15", "output_price": "0.6", "is_free": False}
ANTHROPIC_MODEL = {"model_id": "claude-haiku-4-5-20251001", "input_price": "1", "output_price": "5", "is_free": False}
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(autouse=True)
async def _close_worker_thread_connections():
    yield
    await sync_to_async(connections.close_all)()


def _setup(fake) -> dict[str, str]:
    fake.state.key = PLAIN  # the fake accepts PLAIN, so the openai-kind provider also answers normally
    for slug, kind, key, spec in (("echo", "openai", PLAIN, OPENAI_MODEL), ("echo-ant", "anthropic", SHAPED, ANTHROPIC_MODEL)):
        services.provider_create(slug=slug, kind=kind, base_url=fake.base_url(kind), api_key=key)
        services.model_register(provider_slug=slug, provider_kind=kind, endpoint=None, api_key=None,
                                model_fields={"name": spec["model_id"], "capabilities": ["text-generation", "streaming"],
                                              "context_window": 131072, **spec})
    return {
        "user": services.apikey_create(name="hygiene user", scope=KeyScope.USER)[1],
        "admin": services.apikey_create(name="hygiene admin", scope=KeyScope.ADMIN)[1],
    }


def _discover_and_probe(fake) -> None:
    fake.state.push("openai", "echo_key", count=2)
    fake.state.push("anthropic", "echo_key", count=2, status=500)
    tracker.discover(["echo", "echo-ant"])
    Provider.objects.update(next_discovery_at=None)
    tracker.discover(["echo", "echo-ant"])
    fake.state.push("openai", "echo_key")
    fake.state.push("anthropic", "echo_key", status=400)
    tracker.probe(list(AIModel.objects.select_related("provider")))


def _admin_pages() -> list[str]:
    password = "pw-" + secrets.token_hex(8)
    get_user_model().objects.create_superuser("hygiene-staff", "staff@example.test", password)
    client = Client()
    assert client.post("/admin/login/", {"username": "hygiene-staff", "password": password}).status_code == 302
    down = Event.objects.filter(event="provider_down").first()
    paths = ["/admin/registry/provider/", "/admin/registry/aimodel/", "/admin/registry/event/",
             *(f"/admin/registry/provider/{p.pk}/change/" for p in Provider.objects.all()),
             *(f"/admin/registry/aimodel/{m.pk}/change/" for m in AIModel.objects.all()),
             *([f"/admin/registry/event/{down.pk}/change/"] if down else []), "/admin/audit/entry/"]
    pages = []
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, path
        pages.append(response.content.decode())
    return pages


async def _drain(communicator: WebsocketCommunicator) -> list[dict]:
    messages = []
    while not await communicator.receive_nothing(timeout=0.5):
        messages.append(await communicator.receive_json_from())
    return messages


async def test_keys_quoted_by_upstreams_surface_nowhere(gateway, fake, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(RedactSecrets())  # as on every handler in production (LOGGING, Celery)
    key_uses._after_fork()  # nothing seen yet: key ids repeat across rolled-back tests
    keys = await sync_to_async(_setup)(fake)
    feeds = {}
    for who in ("user", "admin"):
        feeds[who] = WebsocketCommunicator(application, f"/ws/events/?api_key={keys[who]}")
        feeds[who].scope["client"] = ("127.0.0.1", 50000)
        assert (await feeds[who].connect(timeout=5))[0]
    seen: list[str] = []  # every text a client, an operator or a log reader could see

    await sync_to_async(_discover_and_probe, thread_sensitive=False)(fake)

    user = {"authorization": f"Bearer {keys['user']}"}
    admin = {"authorization": f"Bearer {keys['admin']}"}
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:
        async def call(method: str, path: str, headers: dict, **kwargs) -> httpx.Response:
            response = await http.request(method, path, headers=headers, **kwargs)
            seen.append(json.dumps(dict(response.headers)) + response.text)
            return response

        chat = {"model": "echo/gpt-4o-mini", "messages": HI}
        fake.state.push("openai", "echo_key")  # 401 quoting the key: the one candidate fails
        failed = await call("POST", "/v1/chat/completions", user, json=chat)
        assert failed.status_code == 502 and "echo/gpt-4o-mini" in failed.json()["error"]["message"]
        fake.state.push("openai", "echo_key", status=500)  # 500 quoting the Authorization header
        assert (await call("POST", "/v1/chat/completions", user, json=chat)).status_code == 502
        fake.state.push("openai", "echo_key", status=400)  # the client's own 400: its words, sanitised
        rejected = await call("POST", "/v1/chat/completions", user, json=chat)
        assert rejected.status_code == 400 and "***" in rejected.json()["error"]["message"]
        fake.state.push("openai", "echo_key")
        assert (await call("POST", "/v1/chat/completions", user, json={**chat, "stream": True})).status_code == 502
        fake.state.push("anthropic", "echo_key")
        anthropic = {"model": "echo-ant/claude-haiku-4-5-20251001", "max_tokens": 16, "messages": HI}
        assert (await call("POST", "/v1/messages", user, json=anthropic)).status_code == 502
        fake.state.push("anthropic", "echo_key", status=400)
        assert (await call("POST", "/v1/messages", user, json=anthropic)).status_code == 400
        fake.state.push("openai", "echo_key")
        task = {"input": "hi", "model": "echo/gpt-4o-mini"}
        assert (await call("POST", "/api/tasks/route", user, json=task)).status_code == 503
        assert (await call("POST", "/v1/chat/completions", user, json=chat)).status_code == 200
        await sync_to_async(flush, thread_sensitive=False)()  # health samples, breaker and routed events

        for path in ("/api/models", "/api/free-models", "/api/stats", "/api/routing/state", "/api/me", "/health",
                     "/v1/models"):
            assert (await call("GET", path, user)).status_code == 200, path
        for path in ("/api/providers/", "/api/keys", "/metrics"):
            assert (await call("GET", path, admin)).status_code == 200, path
        providers = (await call("GET", "/api/providers/", admin)).json()["providers"]
        user_events = (await call("GET", "/api/events?limit=1000", user)).json()["events"]
        admin_events = (await call("GET", "/api/events?limit=1000", admin)).json()["events"]

    ws = {who: await _drain(feed) for who, feed in feeds.items()}
    for feed in feeds.values():
        await feed.disconnect()
    seen += [json.dumps(m) for m in ws["user"] + ws["admin"]]
    seen += await sync_to_async(_admin_pages)()
    stored = await sync_to_async(lambda: [
        *Provider.objects.values_list("last_error", flat=True),
        *HealthSample.objects.values_list("error", flat=True),
        *(json.dumps(e.data) for e in Event.objects.all()),
    ])()
    seen += stored + [caplog.text]

    # The key's first use today from this address, through the gateway and the WebSocket, is in the
    # audit log once written (never on the request); the log holds no key either.
    await sync_to_async(key_uses.flush, thread_sensitive=False)()
    uses = await sync_to_async(lambda: list(Entry.objects.filter(action="key_used").values_list("source", "ip", "actor")))()
    assert {(source, ip) for source, ip, _ in uses} >= {("gateway", "127.0.0.1"), ("websocket", "127.0.0.1"), ("api", "127.0.0.1")}
    seen += [actor for *_, actor in uses]
    assert not any(keys["user"] in text or keys["admin"] in text for text in seen)

    # The upstreams did quote the keys, and what was kept of their words says so, masked.
    assert {p["slug"]: "***" in p["lastError"] for p in providers} == {"echo": True, "echo-ant": True}
    assert any("***" in error for error in stored)
    leaks = [text[:200] for text in seen if PLAIN in text or SHAPED in text]
    assert leaks == []

    # Failure detail is for admins: a user key gets the same events without it.
    down = [e for e in admin_events if e["event"] == "provider_down"]
    assert {e["data"]["provider"] for e in down} == {"echo", "echo-ant"} and all("***" in e["data"]["error"] for e in down)
    assert [e["id"] for e in user_events] == [e["id"] for e in admin_events]
    for message in user_events + ws["user"]:
        assert DETAIL_FIELDS.isdisjoint(message["data"]), message
    assert any(m["event"] == "provider_down" and "error" in m["data"] for m in ws["admin"])
    assert any(m["event"] == "provider_down" and "error" not in m["data"] for m in ws["user"])
