"""The one event publisher (DESIGN.md). Every registry change — API, admin, discovery, health,
router — calls `publish`, which, inside the caller's transaction:

1. bumps the registry version (so every process rebuilds its in-memory snapshots),
2. appends the event to the bounded recent-events table (GET /api/events),

and after commit sends it to the Channels group `events` in the seeds' envelope
`{"event": ..., "data": ..., "ts": ...}` (WebSocket feed at /ws/events/ and /).

Every string of an event's data is redacted of secrets before it is stored or sent
(afmts.logging.redact), and readers that are not admins get it through `for_audience`.
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

from afmts.logging import redact, redact_data
from registry import bulk, version
from registry.models import Event, RegistryState, envelope

log = logging.getLogger(__name__)

GROUP = "events"
# Identifies this process's events (see dashboard.relay).
ORIGIN = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


# What an event may carry of a failure (upstream words, even redacted): for admins only. Other
# audiences — user-scope keys on GET /api/events, WebSocket clients that are neither admin keys nor
# staff — get the same events without these fields (see `for_audience`).
DETAIL_FIELDS = frozenset({"error", "errors", "lastError", "detail"})


def _stored(events: list[tuple[str, dict[str, Any]]], *, json_ready: bool) -> list[tuple[dict[str, Any], str]]:
    """Each event's data as stored and sent — JSON types, every string redacted of secrets — with
    its JSON text. Each is serialised once; the redactor reads all of them in one pass (a discovery
    cycle publishes thousands) and event by event only when something was masked."""
    texts = [json.dumps(data, cls=JSONEncoder) for _, data in events]
    # Every text is a JSON object ("{...}"), so no secret's pattern can run from one into the next.
    joined = "\n".join(texts)
    if redact(joined) == joined:
        if json_ready:
            return [(data, text) for (_, data), text in zip(events, texts, strict=True)]
        return [(json.loads(text), text) for text in texts]
    return [_redacted(text, data, json_ready=json_ready) for (_, data), text in zip(events, texts, strict=True)]


def _redacted(text: str, data: dict[str, Any], *, json_ready: bool) -> tuple[dict[str, Any], str]:
    clean = redact(text)
    if clean == text:
        return (data if json_ready else json.loads(text)), text
    try:
        return json.loads(clean), clean
    except ValueError:  # a mask landed inside an escape sequence: redact value by value
        data = redact_data(json.loads(text))
        return data, json.dumps(data, cls=JSONEncoder)


def for_audience(envelope: dict[str, Any], *, admin: bool) -> dict[str, Any]:
    """The envelope as this audience may see it: whole for admins, without DETAIL_FIELDS (at the
    top of `data` and one level down) for anyone else."""
    data = envelope.get("data")
    if admin or not isinstance(data, dict):
        return envelope
    if not _has_detail(data):
        return envelope
    cut = {k: (_strip(v) if isinstance(v, dict) else v) for k, v in data.items() if k not in DETAIL_FIELDS}
    return {**envelope, "data": cut}


def _has_detail(data: dict[str, Any]) -> bool:
    return any(k in DETAIL_FIELDS or (isinstance(v, dict) and not DETAIL_FIELDS.isdisjoint(v)) for k, v in data.items())


def _strip(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in DETAIL_FIELDS}


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
        stored = _stored(events, json_ready=json_ready)
        ids = bulk.insert_rows(Event, [
            {"event": name, "data": bulk.JSONText(text), "ts": now, "version": db_version, "origin": ORIGIN}
            for (name, _), (_, text) in zip(events, stored, strict=True)
        ])
        last = ids[-1]
        if last // 100 != (last - len(ids)) // 100:
            Event.objects.filter(id__lte=last - settings.AFMTS_EVENTS_KEEP).delete()
    if registry_change:
        version.bump_local()
    ts = now.isoformat()  # once for the batch
    messages = [envelope(pk, name, data, ts) for pk, (name, _), (data, _) in zip(ids, events, stored, strict=True)]
    transaction.on_commit(lambda: _after_commit(messages, db_version if registry_change else None))
    return messages


def _after_commit(messages: list[dict[str, Any]], db_version: int | None) -> None:
    if db_version is not None:
        version.bump_local(db_version)
    broadcast(*messages)


# Envelopes per channel-layer message. A channel holds 100 messages (the layers' default capacity)
# and a group send to a full one is dropped: sent one by one, a discovery cycle's thousands of
# events were lost to a client past its first hundred (and cost the loop a send each).
ENVELOPES_PER_MESSAGE = 500


async def send_envelopes(layer, envelopes: list[dict[str, Any]]) -> None:
    """Send envelopes to the `events` group, many to a message (dashboard.consumers unpacks them)."""
    for start in range(0, len(envelopes), ENVELOPES_PER_MESSAGE):
        await layer.group_send(GROUP, {"type": "event.messages",
                                       "messages": envelopes[start:start + ENVELOPES_PER_MESSAGE]})


def broadcast(*messages: dict[str, Any]) -> None:
    """Send envelopes to every WebSocket client, in one go (a discovery cycle publishes thousands);
    a broken channel layer never fails the write."""
    layer = get_channel_layer()
    if layer is None or not messages:
        return

    try:
        async_to_sync(send_envelopes)(layer, list(messages))
    except Exception as exc:  # noqa: BLE001 - the write is committed; losing a live notification is not fatal
        # One line: while the channel layer's Redis is away this happens on every publish.
        log.warning("could not broadcast %d event(s): %s", len(messages), type(exc).__name__)
