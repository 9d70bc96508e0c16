"""Embedded mode: events written by another process (the Celery worker) reach this process's sockets."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.utils import timezone

from afmts.asgi import application
from registry import services
from registry.events import ORIGIN
from registry.models import Event

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(settings.SERVER_MODE, reason="with Redis every process shares the channel layer"),
]


@database_sync_to_async
def admin_secret() -> str:
    return services.apikey_create(name="ws", scope="admin")[1]


@database_sync_to_async
def write_event_as_another_process(name: str) -> None:
    Event.objects.create(event=name, data={"from": "worker"}, ts=timezone.now(), version=1, origin="worker:1:abc")


async def test_events_of_other_processes_are_relayed_to_websocket_clients(settings):
    settings.AFMTS_EVENT_RELAY_SECONDS = 0.05
    secret = await admin_secret()
    client = WebsocketCommunicator(application, f"/ws/events/?api_key={secret}")
    connected, _ = await client.connect()
    assert connected

    await write_event_as_another_process("model_registered")

    message = await client.receive_json_from(timeout=3)
    assert message["event"] == "model_registered" and message["data"] == {"from": "worker"}
    await client.disconnect()


async def test_this_process_events_are_not_sent_twice(settings):
    settings.AFMTS_EVENT_RELAY_SECONDS = 0.05
    secret = await admin_secret()
    client = WebsocketCommunicator(application, f"/ws/events/?api_key={secret}")
    await client.connect()

    await database_sync_to_async(services.agent_register)(name="a", fields={})

    first = await client.receive_json_from(timeout=3)
    assert first["event"] == "agent_connected"
    assert await database_sync_to_async(Event.objects.filter(origin=ORIGIN).exists)()
    assert await client.receive_nothing(timeout=0.4)
    await client.disconnect()


async def test_a_burst_of_another_process_events_is_relayed_whole(settings):
    # A discovery cycle in the worker writes hundreds of events at once; a channel holds 100 messages.
    settings.AFMTS_EVENT_RELAY_SECONDS = 0.05
    secret = await admin_secret()
    client = WebsocketCommunicator(application, f"/ws/events/?api_key={secret}")
    assert (await client.connect())[0]

    await database_sync_to_async(Event.objects.bulk_create)([
        Event(event="model_registered", data={"n": n}, ts=timezone.now(), version=1, origin="worker:1:abc")
        for n in range(300)
    ])

    received = [(await client.receive_json_from(timeout=3))["data"]["n"] for _ in range(300)]
    assert received == list(range(300))
    await client.disconnect()
