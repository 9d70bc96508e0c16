"""The live feed: a WebSocket client on /ws/events/ (or /, for the seeds' clients) with a valid key
receives every registry event in the seeds' envelope {"event", "data", "ts"}; anyone else is refused.

The publisher sends after commit, so these tests run with real transactions."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from rest_framework.test import APIClient

from afmts.asgi import application
from registry import services
from registry.models import ApiKey

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _close_worker_thread_connections():
    # database_sync_to_async runs in a worker thread whose connection outlives the test (CONN_MAX_AGE);
    # left open it keeps PostgreSQL from dropping the test database at the end of the run.
    yield
    await sync_to_async(connections.close_all)()


def register_model(model_id: str, provider: str = "openai") -> int:
    model, _ = services.model_register(
        provider_slug=provider, provider_kind=provider, endpoint=None, api_key=None,
        model_fields={"model_id": model_id, "name": model_id, "capabilities": ["text-generation"]},
    )
    return model.pk


async def receive_event(communicator: WebsocketCommunicator, event: str, *, timeout: float = 5.0, **data) -> dict:
    """The next message of this kind whose data has these values (other tests may share Redis)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"no {event} {data} within {timeout}s"
        message = await communicator.receive_json_from(timeout=left)
        if message.get("event") == event and all(message["data"].get(k) == v for k, v in data.items()):
            return message


async def connected(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    ok, code = await communicator.connect(timeout=5)
    assert ok, f"{path} refused (close code {code})"
    return communicator


@pytest.mark.parametrize("path", ["/ws/events/", "/"])
async def test_a_client_with_a_key_receives_model_registered(user_key, path):
    communicator = await connected(f"{path}?api_key={user_key}")
    try:
        model_id = f"gpt-{uuid.uuid4().hex[:8]}"
        pk = await database_sync_to_async(register_model)(model_id)
        message = await receive_event(communicator, "model_registered", modelId=model_id)
    finally:
        await communicator.disconnect()

    assert set(message) >= {"event", "data", "ts"}
    assert message["data"]["id"] == pk
    assert message["data"]["publicId"] == f"openai/{model_id}"
    assert datetime.fromisoformat(message["ts"])


async def test_a_registration_through_the_rest_api_reaches_the_feed(admin_key, user_key):
    communicator = await connected(f"/ws/events/?api_key={user_key}")
    model_id = f"llama-{uuid.uuid4().hex[:8]}"

    def post():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {admin_key}")
        return client.post(
            "/api/models/register",
            {"name": model_id, "type": "llm", "provider": "groq", "apiKey": "gsk_NeverOnTheFeed0123456789",
             "capabilities": ["text-generation"]},
            format="json",
        )

    try:
        response = await sync_to_async(post)()
        assert response.status_code == 201
        provider = await receive_event(communicator, "provider_registered", slug="groq")
        model = await receive_event(communicator, "model_registered", modelId=model_id)
    finally:
        await communicator.disconnect()
    assert model["data"]["id"] == response.json()["id"]
    assert model["data"]["provider"] == "groq"
    assert "gsk_NeverOnTheFeed0123456789" not in str(provider) + str(model)


async def test_updates_and_deletes_reach_the_feed(user_key):
    communicator = await connected(f"/ws/events/?api_key={user_key}")
    model_id = f"m-{uuid.uuid4().hex[:8]}"

    def update_then_delete(pk: int) -> None:
        from registry.models import AIModel

        model = AIModel.objects.select_related("provider").get(pk=pk)
        services.model_update(model=model, fields={"priority": 5})
        services.model_delete(model=AIModel.objects.select_related("provider").get(pk=pk))

    try:
        pk = await database_sync_to_async(register_model)(model_id)
        await database_sync_to_async(update_then_delete)(pk)
        await receive_event(communicator, "model_registered", id=pk)
        updated = await receive_event(communicator, "model_updated", id=pk)
        deleted = await receive_event(communicator, "model_deleted", id=pk)
    finally:
        await communicator.disconnect()
    assert updated["data"]["priority"] == 5
    assert updated["data"]["changed"] == ["priority"]
    assert deleted["data"]["modelId"] == model_id


async def test_a_rolled_back_write_sends_nothing(user_key):
    communicator = await connected(f"/ws/events/?api_key={user_key}")
    model_id = f"ghost-{uuid.uuid4().hex[:8]}"

    def register_then_fail() -> None:
        from django.db import transaction

        with transaction.atomic():
            register_model(model_id)
            raise RuntimeError("rolled back")

    try:
        with pytest.raises(RuntimeError):
            await database_sync_to_async(register_then_fail)()
        marker = f"after-{uuid.uuid4().hex[:8]}"
        await database_sync_to_async(register_model)(marker)
        # Events arrive in commit order: once the later one is here, the rolled-back one never will.
        seen = []
        while True:
            message = await communicator.receive_json_from(timeout=5)
            seen.append(message["data"].get("modelId"))
            if message["event"] == "model_registered" and message["data"]["modelId"] == marker:
                break
    finally:
        await communicator.disconnect()
    assert model_id not in seen


@pytest.mark.parametrize("header", [b"x-api-key", b"authorization"])
async def test_a_key_in_a_header_also_works(user_key, header):
    value = user_key if header == b"x-api-key" else f"Bearer {user_key}"
    communicator = await connected("/ws/events/", headers=[(header, value.encode())])
    try:
        model_id = f"hdr-{uuid.uuid4().hex[:8]}"
        await database_sync_to_async(register_model)(model_id)
        message = await receive_event(communicator, "model_registered", modelId=model_id)
    finally:
        await communicator.disconnect()
    assert message["data"]["publicId"] == f"openai/{model_id}"


async def refused(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> int | None:
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    ok, code = await communicator.connect(timeout=5)
    await communicator.disconnect()
    assert not ok
    return code


@pytest.mark.parametrize("path", ["/ws/events/", "/"])
async def test_a_client_without_a_key_is_refused(path):
    assert await refused(path) == 4401


async def test_an_unknown_key_is_refused(db):
    assert await refused("/ws/events/?api_key=afmts_notarealkey0123456789") == 4401
    assert await refused("/ws/events/", headers=[(b"x-api-key", b"afmts_notarealkey0123456789")]) == 4401


async def test_a_revoked_key_is_refused(user_key):
    # Connect once so the key sits in this process's lookup cache: revocation must still win.
    communicator = await connected(f"/ws/events/?api_key={user_key}")
    await communicator.disconnect()

    def revoke() -> None:
        services.apikey_revoke(key=ApiKey.objects.get(name="test user"))

    await database_sync_to_async(revoke)()
    assert await refused(f"/ws/events/?api_key={user_key}") == 4401


async def test_ping_is_answered_with_pong(user_key):
    communicator = await connected(f"/ws/events/?api_key={user_key}")
    try:
        await communicator.send_json_to({"type": "ping"})
        message = await receive_event(communicator, "pong")
    finally:
        await communicator.disconnect()
    assert message["data"] == {}


async def test_a_staff_session_of_the_admin_site_is_accepted(admin_client):
    cookie = f"sessionid={admin_client.cookies['sessionid'].value}".encode()
    communicator = await connected("/ws/events/", headers=[(b"cookie", cookie)])
    try:
        model_id = f"staff-{uuid.uuid4().hex[:8]}"
        await database_sync_to_async(register_model)(model_id)
        await receive_event(communicator, "model_registered", modelId=model_id)
    finally:
        await communicator.disconnect()


async def test_a_session_of_a_non_staff_user_is_refused(client, django_user_model):
    user = await database_sync_to_async(django_user_model.objects.create_user)("viewer", password="pw-123456")
    await sync_to_async(client.force_login)(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    assert await refused("/ws/events/", headers=[(b"cookie", cookie)]) == 4401
