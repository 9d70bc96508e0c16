"""GET /health: is every part this process depends on reachable?

Each check runs at the same time as the others and has CHECK_SECONDS to answer, so /health answers
within about a second whatever is down. 200 "ok" when all answer; 200 "degraded" when only parts
the gateway can do without are away (cache, channel layer, broker, the live state's Redis: requests
are still served, from this process's own state); 503 "unavailable" when the database is.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections, connection
from django.http import JsonResponse

from afmts.logging import sanitize

CHECK_SECONDS = 1.0
ESSENTIAL = ("database",)


async def _check(fn) -> dict:
    started = time.perf_counter()
    try:
        if asyncio.iscoroutinefunction(fn):
            detail = await asyncio.wait_for(fn(), CHECK_SECONDS)
        else:
            detail = await asyncio.wait_for(sync_to_async(fn, thread_sensitive=False)(), CHECK_SECONDS)
        result = {"ok": True}
        if detail:
            result["detail"] = detail
    except TimeoutError:
        result = {"ok": False, "error": f"no answer within {CHECK_SECONDS:g} s"}
    except Exception as exc:  # noqa: BLE001 - any failure is reported, not raised
        result = {"ok": False, "error": sanitize(f"{type(exc).__name__}: {exc}", 300)}
    result["ms"] = round((time.perf_counter() - started) * 1000, 2)
    return result


def check_database() -> str:
    close_old_connections()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close_if_unusable_or_obsolete()
    return connection.vendor


def check_cache() -> str:
    token = uuid.uuid4().hex
    cache.set("afmts:health", token, 10)
    if cache.get("afmts:health") != token:
        raise RuntimeError("cache did not return what was written")
    return settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]


async def check_channel_layer() -> str:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "health.ping"})
    message = await layer.receive(channel)
    if message.get("type") != "health.ping":
        raise RuntimeError("channel layer returned something else")
    return type(layer).__name__


def check_broker() -> str:
    from afmts.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=CHECK_SECONDS)
        return conn.transport.driver_type


async def check_live_state() -> str:
    from routing.gateway.runtime import runtime

    live = runtime.live
    if live.shared is None:
        return "this process"
    await live.shared.call(lambda client: client.ping())
    return "shared through Redis"


async def run_checks() -> dict[str, dict]:
    """Every check at once, by name."""
    names = ("database", "cache", "channelLayer", "broker", "liveState")
    fns = (check_database, check_cache, check_channel_layer, check_broker, check_live_state)
    results = await asyncio.gather(*(_check(fn) for fn in fns))
    return dict(zip(names, results, strict=True))


def run_checks_sync() -> dict[str, dict]:
    """`run_checks` for synchronous callers (the monitor CLI)."""
    return async_to_sync(run_checks)()


async def health(request) -> JsonResponse:
    checks = await run_checks()
    if all(c["ok"] for c in checks.values()):
        status, code = "ok", 200
    elif all(checks[name]["ok"] for name in ESSENTIAL):
        status, code = "degraded", 200
    else:
        status, code = "unavailable", 503
    return JsonResponse({"status": status, "mode": settings.MODE, "checks": checks}, status=code)
