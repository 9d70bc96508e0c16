"""GET /health: is every part this process depends on reachable? 200 when all are, else 503."""

from __future__ import annotations

import asyncio
import time
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse


def _check(fn) -> dict:
    started = time.perf_counter()
    try:
        detail = fn()
        result = {"ok": True}
        if detail:
            result["detail"] = detail
    except Exception as exc:  # noqa: BLE001 - any failure is reported, not raised
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["ms"] = round((time.perf_counter() - started) * 1000, 2)
    return result


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return connection.vendor


def check_cache() -> str:
    token = uuid.uuid4().hex
    cache.set("afmts:health", token, 10)
    if cache.get("afmts:health") != token:
        raise RuntimeError("cache did not return what was written")
    return settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]


def check_channel_layer() -> str:
    layer = get_channel_layer()

    async def roundtrip():
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "health.ping"})
        return await asyncio.wait_for(layer.receive(channel), timeout=2)

    message = async_to_sync(roundtrip)()
    if message.get("type") != "health.ping":
        raise RuntimeError("channel layer returned something else")
    return type(layer).__name__


def check_broker() -> str:
    from afmts.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        return conn.transport.driver_type


def health(request) -> JsonResponse:
    checks = {
        "database": _check(check_database),
        "cache": _check(check_cache),
        "channelLayer": _check(check_channel_layer),
        "broker": _check(check_broker),
    }
    ok = all(c["ok"] for c in checks.values())
    return JsonResponse(
        {"status": "ok" if ok else "unavailable", "mode": settings.MODE, "checks": checks},
        status=200 if ok else 503,
    )
