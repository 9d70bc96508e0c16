"""Embedded mode only: forward events published by other processes (the Celery worker) to this
process's WebSocket clients.

With Redis, every process shares the channel layer and needs no relay. The in-memory layer lives in
one process, so a web process polls the recent-events table for rows another process wrote and
broadcasts them. It runs only while a WebSocket client is connected.
"""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings

from registry.events import ORIGIN, send_envelopes
from registry.models import Event

log = logging.getLogger(__name__)

_task: asyncio.Task | None = None
_clients = 0


def needed() -> bool:
    return isinstance(get_channel_layer(), InMemoryChannelLayer)


@database_sync_to_async
def _latest_id() -> int:
    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


@database_sync_to_async
def _foreign_since(last_id: int) -> list[Event]:
    return list(Event.objects.filter(id__gt=last_id).order_by("id")[:500])


async def _run(last_id: int) -> None:
    layer = get_channel_layer()
    while _clients > 0:
        await asyncio.sleep(settings.AFMTS_EVENT_RELAY_SECONDS)
        try:
            rows = await _foreign_since(last_id)
        except Exception:  # noqa: BLE001 - try again next tick
            log.exception("event relay could not read events")
            continue
        if rows:
            last_id = rows[-1].id
            await send_envelopes(layer, [row.envelope() for row in rows if row.origin != ORIGIN])


async def client_joined() -> None:
    global _task, _clients
    _clients += 1
    loop = asyncio.get_running_loop()
    if needed() and (_task is None or _task.done() or _task.get_loop() is not loop):
        # Read the starting point before the client is told it is connected, so nothing written
        # after that is missed.
        _task = loop.create_task(_run(await _latest_id()))


def client_left() -> None:
    global _clients
    _clients = max(0, _clients - 1)
