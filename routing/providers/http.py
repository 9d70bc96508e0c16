"""Outbound HTTP for the adapters: one pooled client per (event loop, kind, base URL), and the two
calls adapters make through it — `fetch` (a whole reply) and `open_stream` (a reply read as it
arrives) — so the adapters never touch a client library's objects.

Three transports (setting AFMTS_UPSTREAM_TRANSPORT), measured in README "Gateway performance":
- "native": aiohttp's ClientSession directly — the fastest here, the default;
- "aiohttp": httpx's API on aiohttp's connection pool (httpx-aiohttp);
- "httpx": plain httpx.AsyncClient (it collapses under concurrency on this hardware, FIELD.md).
Pooling is per loop because a client is bound to the loop that first used it; in production each
process has one loop. Every call has explicit connect/read/write/pool timeouts, plus a total
deadline enforced by the adapter."""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
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
        return _timeouts(tuple(sorted((k, float(v)) for k, v in values.items() if k in cls.__dataclass_fields__)))

    def httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


@functools.lru_cache(maxsize=64)
def _timeouts(values: tuple[tuple[str, float], ...]) -> Timeouts:
    # Built once per distinct setting: an adapter is made per gateway request.
    return Timeouts(**dict(values))


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


def transport_name() -> str:
    return getattr(settings, "AFMTS_UPSTREAM_TRANSPORT", "native")


def _transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport | None:
    """httpx's API on aiohttp's connection pool: plain httpx.AsyncClient collapses under concurrency
    on this hardware (FIELD.md, "Measured on this machine")."""
    if transport_name() != "aiohttp":
        return None
    try:
        from httpx_aiohttp import AiohttpTransport
    except ImportError:
        return None
    return AiohttpTransport(limits=limits, trust_env=False)


_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], aiohttp.ClientSession]] = (
    weakref.WeakKeyDictionary()
)


def shared_session(kind: str, base_url: str) -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    per_loop = _sessions.setdefault(loop, {})
    session = per_loop.get((kind, base_url))
    if session is None or session.closed:
        connector = aiohttp.TCPConnector(limit=256, keepalive_timeout=30, ttl_dns_cache=300)
        # trust_env=False: no proxy from the environment may see provider keys.
        session = per_loop[(kind, base_url)] = aiohttp.ClientSession(
            connector=connector, trust_env=False, auto_decompress=True, skip_auto_headers=("User-Agent",),
        )
    return session


@functools.lru_cache(maxsize=64)
def _aiohttp_timeout(t: Timeouts) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, connect=t.connect, sock_connect=t.connect, sock_read=t.read)


@dataclass(slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    content: bytes


# What a failed transport raises, for the adapters' error mapping.
TRANSPORT_ERRORS = (httpx.HTTPError, aiohttp.ClientError)


async def fetch(kind: str, base_url: str, timeouts: Timeouts, method: str, url: str, *, headers: Mapping[str, str],
                params: Mapping[str, Any] | None = None, content: bytes | None = None,
                client: httpx.AsyncClient | None = None) -> Reply:
    """One request, its whole reply read."""
    if client is None and transport_name() == "native":
        session = shared_session(kind, base_url)
        async with session.request(method, url, headers=headers, params=params, data=content,
                                   timeout=_aiohttp_timeout(timeouts), allow_redirects=False) as response:
            return Reply(response.status, response.headers, await response.read())
    client = client or shared_client(kind, base_url, timeouts)
    response = await client.request(method, url, headers=headers, params=params, content=content,
                                    timeout=timeouts.httpx())
    return Reply(response.status_code, response.headers, response.content)


class StreamReply:
    """A reply whose body is read as it arrives: `status`, `headers`, `read()`, `chunks()`."""

    def __init__(self, status: int, headers: Mapping[str, str], read, chunks):
        self.status, self.headers, self.read, self.chunks = status, headers, read, chunks


@asynccontextmanager
async def open_stream(kind: str, base_url: str, timeouts: Timeouts, method: str, url: str, *,
                      headers: Mapping[str, str], content: bytes,
                      client: httpx.AsyncClient | None = None) -> AsyncIterator[StreamReply]:
    if client is None and transport_name() == "native":
        session = shared_session(kind, base_url)
        async with session.request(method, url, headers=headers, data=content, timeout=_aiohttp_timeout(timeouts),
                                   allow_redirects=False) as response:
            yield StreamReply(response.status, response.headers, response.read, response.content.iter_any)
        return
    client = client or shared_client(kind, base_url, timeouts)
    async with client.stream(method, url, headers=headers, content=content, timeout=timeouts.httpx()) as response:
        yield StreamReply(response.status_code, response.headers, response.aread, response.aiter_bytes)


async def close_clients() -> None:
    """Close this loop's clients (process shutdown, end of a test)."""
    loop = asyncio.get_running_loop()
    for client in (_clients.pop(loop, None) or {}).values():
        await client.aclose()
    for session in (_sessions.pop(loop, None) or {}).values():
        await session.close()
