"""The one event publisher (DESIGN.md). Every registry change — API, admin, discovery, health,
router — calls `publish`, which, inside the caller's transaction:

1. bumps the registry version (so every process rebuilds its in-memory snapshots),
2. appends the event to the bounded recent-events table (GET /api/events),

and after commit sends it to the Channels group `events` in the seeds' envelope
`{"event": ..., "data": ..., "ts": ...}` (WebSocket feed at /ws/events/ and /).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from rest_framework.utils.encoders import JSONEncoder

from registry import bulk, version
from registry.models import Event, RegistryState

log = logging.getLogger(__name__)

GROUP = "events"
# Identifies this process's events (see dashboard.relay).
ORIGIN = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data, cls=JSONEncoder))


def publish(event: str, data: dict[str, Any]) -> dict[str, Any]:
    """Record and broadcast one event; returns its envelope."""
    return publish_many([(event, data)])[0]


def publish_many(
    events: list[tuple[str, dict[str, Any]]], *, registry_change: bool = True, json_ready: bool = False,
) -> list[dict[str, Any]]:
    """Record and broadcast several events with one version bump and one insert (discovery).
    Events that change nothing in the registry (request_routed, circuit_*) pass
    `registry_change=False`: they do not make every process rebuild its snapshot."""
    if not events:
        return []
    now = timezone.now()
    with transaction.atomic():
        if registry_change and not RegistryState.objects.filter(pk=1).update(version=F("version") + 1):
            RegistryState.objects.get_or_create(pk=1, defaults={"version": 1})
        db_version = RegistryState.objects.values_list("version", flat=True).filter(pk=1).first() or 0
        rows = bulk.insert(Event, [
            Event(event=name, data=data if json_ready else _jsonable(data), ts=now, version=db_version, origin=ORIGIN)
            for name, data in events
        ])
        last = rows[-1].id
        if last // 100 != (last - len(rows)) // 100:
            Event.objects.filter(id__lte=last - settings.AFMTS_EVENTS_KEEP).delete()
    if registry_change:
        version.bump_local()
    messages = [row.envelope() for row in rows]
    transaction.on_commit(lambda: _after_commit(messages, db_version if registry_change else None))
    return messages


def _after_commit(messages: list[dict[str, Any]], db_version: int | None) -> None:
    if db_version is not None:
        version.bump_local(db_version)
    broadcast(*messages)


def broadcast(*messages: dict[str, Any]) -> None:
    """Send envelopes to every WebSocket client, in one go (a discovery cycle publishes thousands);
    a broken channel layer never fails the write."""
    layer = get_channel_layer()
    if layer is None or not messages:
        return

    async def send_all() -> None:
        for message in messages:
            await layer.group_send(GROUP, {"type": "event.message", "message": message})

    try:
        async_to_sync(send_all)()
    except Exception:  # noqa: BLE001 - the write is committed; losing a live notification is not fatal
        log.exception("could not broadcast %d event(s)", len(messages))
