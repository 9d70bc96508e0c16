"""The shared async HTTP client: one `httpx.AsyncClient` per (event loop, kind, base URL).

Pooling is per loop because an httpx client is bound to the loop that first used it; in production
each process has one loop, so this is one pooled client per provider. Every call has explicit
connect/read/write/pool timeouts, plus a total deadline enforced by the adapter."""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass

import httpx
from django.conf import settings

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 5.0
    read: float = 60.0
    write: float = 10.0
    pool: float = 5.0
    total: float = 300.0

    @classmethod
    def from_settings(cls) -> Timeouts:
        values = getattr(settings, "AFMTS_UPSTREAM_TIMEOUTS", None) or {}
        return cls(**{k: float(v) for k, v in values.items() if k in cls.__dataclass_fields__})

    def httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


def shared_client(kind: str, base_url: str, timeouts: Timeouts) -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    per_loop = _clients.setdefault(loop, {})
    key = (kind, base_url)
    client = per_loop.get(key)
    if client is None or client.is_closed:
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=30)
        client = per_loop[key] = httpx.AsyncClient(
            timeout=timeouts.httpx(),
            limits=limits,
            transport=_transport(limits),
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment may see provider keys
        )
    return client


def _transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport | None:
    """httpx's API on aiohttp's connection pool: plain httpx.AsyncClient collapses under concurrency
    on this hardware (FIELD.md, "Measured on this machine"). AFMTS_UPSTREAM_TRANSPORT=httpx turns it off."""
    if getattr(settings, "AFMTS_UPSTREAM_TRANSPORT", "aiohttp") != "aiohttp":
        return None
    try:
        from httpx_aiohttp import AiohttpTransport
    except ImportError:
        return None
    return AiohttpTransport(limits=limits, trust_env=False)


async def close_clients() -> None:
    """Close this loop's clients (process shutdown, end of a test)."""
    loop = asyncio.get_running_loop()
    for client in (_clients.pop(loop, None) or {}).values():
        await client.aclose()
