"""Outbound HTTP for the adapters: one pooled client per (event loop, kind, base URL), and the two
calls adapters make through it — `fetch` (a whole reply) and `open_stream` (a reply read as it
arrives) — so the adapters never touch a client library's objects.

Three transports (setting AFMTS_UPSTREAM_TRANSPORT), measured in README "Gateway performance":
- "native": aiohttp's ClientSession directly — the fastest here, the default;
- "aiohttp": httpx's API on aiohttp's connection pool (httpx-aiohttp);
- "httpx": plain httpx.AsyncClient (it collapses under concurrency on this hardware, FIELD.md).
Pooling is per loop because a client is bound to the loop that first used it; in production each
process has one loop. Every call has explicit connect/read/write/pool timeouts, plus a total
deadline enforced by the adapter.

Every transport enforces the outbound URL policy (afmts/urlpolicy.py) where it connects: aiohttp
through `PolicyConnector` (every resolved, cached or literal address), plain httpx through
`PolicyBackend` (it resolves, checks, then connects to the checked address, so a rebinding name
cannot swap it). A refused call raises `PolicyRefused` and opens no connection. Redirects are never
followed, and replies are capped (AFMTS_UPSTREAM_MAX_REPLY_BYTES whole, AFMTS_UPSTREAM_MAX_LINE_BYTES
per stream line): past the cap the call fails with `ReplyTooLarge`. No client keeps cookies: each is
shared by every caller of its provider."""

from __future__ import annotations

import asyncio
import functools
import socket
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import aiohttp
import httpcore
import httpx
from django.conf import settings

from afmts import urlpolicy
from registry.providers.errors import MalformedReply, ProviderError

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
        global _from_settings
        values = getattr(settings, "AFMTS_UPSTREAM_TIMEOUTS", None)
        seen, timeouts = _from_settings
        if values is not seen:  # a changed setting is a new object (settings are never edited in place)
            timeouts = cls(**{k: float(v) for k, v in (values or {}).items() if k in cls.__dataclass_fields__})
            _from_settings = (values, timeouts)
        return timeouts

    def httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


# The setting last read and its Timeouts: an adapter is made per gateway request.
_from_settings: tuple[Any, Timeouts] = (object(), Timeouts())


class PolicyRefused(ProviderError):
    """The outbound URL policy refused the call before any connection was made. `provider_code` is
    the policy's rule (link_local, metadata, private, ...). Not retryable: the URL stays refused."""

    kind = "refused"
    retryable = False


class ReplyTooLarge(MalformedReply):
    """A reply (or one line of a stream) larger than its cap: refused, never buffered whole."""

    kind = "reply_too_large"


def max_reply_bytes() -> int:
    return getattr(settings, "AFMTS_UPSTREAM_MAX_REPLY_BYTES", 32 * 1024 * 1024)


def max_line_bytes() -> int:
    return getattr(settings, "AFMTS_UPSTREAM_MAX_LINE_BYTES", 1024 * 1024)


def refused(exc: urlpolicy.Refused, kind: str) -> PolicyRefused:
    return PolicyRefused(f"outbound URL policy ({exc.rule}): {exc.message}", provider=kind, provider_code=exc.rule)


class PolicyConnector(aiohttp.TCPConnector):
    """aiohttp's connector with the outbound URL policy checked on every address it is about to
    connect to. `_resolve_host` is the one place aiohttp turns a host into addresses — resolved,
    from its DNS cache, or an IP literal (which skips any custom resolver) — so it is hooked here."""

    def __init__(self, *, kind: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.kind = kind

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list[Any]:
        urlpolicy.check_host(host)  # metadata names are refused before they are looked up
        hosts = await super()._resolve_host(host, port, traces=traces)
        urlpolicy.check_connect(host, port, [h["host"] for h in hosts], kind=self.kind)
        return hosts


class PolicyBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the outbound URL policy: resolve, check every address, then
    connect to a checked address (TLS still verifies and sends SNI for the URL's host)."""

    def __init__(self, kind: str):
        self.kind = kind
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options: Iterable[Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        urlpolicy.check_host(host)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        urlpolicy.check_connect(host, port, addresses, kind=self.kind)
        last: Exception = httpcore.ConnectError(f"no address for {host}")
        for address in addresses:
            try:
                return await self.inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                    socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not outbound URLs")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def policy_transport(kind: str, limits: httpx.Limits | None = None) -> httpx.AsyncHTTPTransport:
    """Plain httpx's transport with the outbound URL policy (see PolicyBackend)."""
    transport = httpx.AsyncHTTPTransport(limits=limits or httpx.Limits(), trust_env=False)
    pool = transport._pool
    if not isinstance(pool, httpcore.AsyncConnectionPool):  # a proxy pool would connect elsewhere
        raise RuntimeError("the outbound URL policy needs httpcore's plain connection pool")
    pool._network_backend = PolicyBackend(kind)  # httpx takes no backend argument; httpcore does
    return transport


def policy_session(kind: str, **connector: Any) -> aiohttp.ClientSession:
    """An aiohttp session whose connections obey the outbound URL policy for `kind`."""
    # trust_env=False: no proxy from the environment may see provider keys. No cookie jar: the
    # session serves every caller of the provider, so a cookie one reply set would ride along on
    # everybody's next request.
    return aiohttp.ClientSession(connector=PolicyConnector(kind=kind, **connector), trust_env=False,
                                 cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=True,
                                 skip_auto_headers=("User-Agent",))


async def read_capped(chunks: AsyncIterator[bytes], declared: str | None, cap: int, kind: str) -> bytes:
    """A whole body, refused as soon as it is known to pass `cap` (its Content-Length or its bytes)."""
    if declared and declared.isdigit() and int(declared) > cap:
        raise ReplyTooLarge(f"reply of {declared} bytes is over the {cap}-byte cap", provider=kind)
    out = bytearray()
    async for data in chunks:
        out += data
        if len(out) > cap:
            raise ReplyTooLarge(f"reply is over the {cap}-byte cap", provider=kind)
    return bytes(out)


async def lines_capped(chunks: AsyncIterator[bytes], cap: int, kind: str) -> AsyncIterator[bytes]:
    """Pass a stream through, refusing it when one line (an SSE event's line, an NDJSON object)
    passes `cap` bytes: the decoders buffer a line until its end."""
    run = 0  # bytes of the line still open at the end of the last chunk
    async for data in chunks:
        end = max(data.rfind(b"\n"), data.rfind(b"\r"))
        if end < 0:
            run += len(data)
        else:
            # Only a chunk longer than the cap can hold a whole over-long line; a shorter one can
            # only extend the open line, up to its first line end.
            first = min(i for i in (data.find(b"\n"), data.find(b"\r")) if i >= 0)
            lines = (data[:end].splitlines() or [b""]) if len(data) > cap else [data[:first]]
            if run + len(lines[0]) > cap or any(len(line) > cap for line in lines[1:]):
                raise ReplyTooLarge(f"a stream line is over the {cap}-byte cap", provider=kind)
            run = len(data) - end - 1
        if run > cap:
            raise ReplyTooLarge(f"a stream line is over the {cap}-byte cap", provider=kind)
        yield data


def shared_client(kind: str, base_url: str, timeouts: Timeouts) -> httpx.AsyncClient:
    per_loop = _of_this_loop(_clients)
    key = (kind, base_url)
    client = per_loop.get(key)
    if client is None or client.is_closed:
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=30)
        client = per_loop[key] = httpx.AsyncClient(
            timeout=timeouts.httpx(),
            limits=limits,
            transport=_transport(kind, limits),
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment may see provider keys
            cookies=no_cookies(),  # shared by every caller: keeps no cookie a reply sets
        )
    return client


def no_cookies() -> CookieJar:
    """A cookie jar that stores nothing (httpx has no switch to turn its jar off)."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def transport_name() -> str:
    return getattr(settings, "AFMTS_UPSTREAM_TRANSPORT", "native")


def _transport(kind: str, limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    """httpx's API on aiohttp's connection pool: plain httpx.AsyncClient collapses under concurrency
    on this hardware (FIELD.md, "Measured on this machine"). Either way through the URL policy."""
    if transport_name() == "aiohttp":
        try:
            from httpx_aiohttp import AiohttpTransport
        except ImportError:
            pass
        else:
            keepalive = limits.keepalive_expiry or 30
            return AiohttpTransport(limits=limits, trust_env=False, client=lambda: policy_session(
                kind, limit=limits.max_connections or 0, keepalive_timeout=keepalive))
    return policy_transport(kind, limits)


_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], aiohttp.ClientSession]] = (
    weakref.WeakKeyDictionary()
)


def shared_session(kind: str, base_url: str) -> aiohttp.ClientSession:
    per_loop = _of_this_loop(_sessions)
    session = per_loop.get((kind, base_url))
    if session is None or session.closed:
        session = per_loop[(kind, base_url)] = policy_session(kind, limit=256, keepalive_timeout=30,
                                                              ttl_dns_cache=300)
    return session


@functools.lru_cache(maxsize=64)
def _aiohttp_timeout(t: Timeouts, idle: bool = True) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, connect=t.connect, sock_connect=t.connect, sock_read=t.read if idle else None)


@dataclass(slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    content: bytes


# What a failed transport raises, for the adapters' error mapping.
TRANSPORT_ERRORS = (httpx.HTTPError, aiohttp.ClientError)


async def fetch(kind: str, base_url: str, timeouts: Timeouts, method: str, url: str, *, headers: Mapping[str, str],
                params: Mapping[str, Any] | None = None, content: bytes | None = None,
                client: httpx.AsyncClient | None = None, idle_timeout: bool = True) -> Reply:
    """One request, its whole reply read (up to AFMTS_UPSTREAM_MAX_REPLY_BYTES). `idle_timeout=False`
    when the caller's own deadline ends within `timeouts.read`: aiohttp then re-arms no read timer
    on every chunk (it could never fire first)."""
    cap = max_reply_bytes()
    try:
        if client is None and transport_name() == "native":
            session = shared_session(kind, base_url)
            async with session.request(method, url, headers=headers, params=params, data=content,
                                       timeout=_aiohttp_timeout(timeouts, idle_timeout), allow_redirects=False,
                                       ) as response:
                declared = response.headers.get("content-length")
                if (declared and declared.isdigit() and int(declared) <= cap
                        and response.headers.get("content-encoding", "identity") == "identity"):
                    # One read: the parser stops at the declared length (not compressed, so that is
                    # the size); the chunk loop cost ~8 µs more on each gateway request.
                    body = await response.read()
                else:
                    body = await read_capped(response.content.iter_chunked(65536), declared, cap, kind)
                return Reply(response.status, response.headers, body)
        client = client or shared_client(kind, base_url, timeouts)
        request = client.build_request(method, url, headers=headers, params=params, content=content,
                                       timeout=timeouts.httpx())
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            body = await read_capped(response.aiter_bytes(), response.headers.get("content-length"), cap, kind)
        finally:
            await response.aclose()
        return Reply(response.status_code, response.headers, body)
    except urlpolicy.Refused as exc:
        raise refused(exc, kind) from None


class StreamReply:
    """A reply whose body is read as it arrives: `status`, `headers`, `read()`, `chunks()`."""

    def __init__(self, status: int, headers: Mapping[str, str], read: Callable[[], Awaitable[bytes]],
                 chunks: Callable[[], AsyncIterator[bytes]]):
        self.status, self.headers, self.read, self.chunks = status, headers, read, chunks


@asynccontextmanager
async def open_stream(kind: str, base_url: str, timeouts: Timeouts, method: str, url: str, *,
                      headers: Mapping[str, str], content: bytes,
                      client: httpx.AsyncClient | None = None) -> AsyncIterator[StreamReply]:
    """A reply read as it arrives: `read()` reads it whole (capped like `fetch`), `chunks()` passes
    it through with each line capped at AFMTS_UPSTREAM_MAX_LINE_BYTES."""
    cap, line_cap = max_reply_bytes(), max_line_bytes()
    try:
        if client is None and transport_name() == "native":
            session = shared_session(kind, base_url)
            async with session.request(method, url, headers=headers, data=content,
                                       timeout=_aiohttp_timeout(timeouts), allow_redirects=False) as response:
                length = response.headers.get("content-length")
                yield StreamReply(response.status, response.headers,
                                  lambda: read_capped(response.content.iter_chunked(65536), length, cap, kind),
                                  lambda: lines_capped(response.content.iter_any(), line_cap, kind))
            return
        client = client or shared_client(kind, base_url, timeouts)
        async with client.stream(method, url, headers=headers, content=content, timeout=timeouts.httpx(),
                                 follow_redirects=False) as resp:
            length = resp.headers.get("content-length")
            yield StreamReply(resp.status_code, resp.headers,
                              lambda: read_capped(resp.aiter_bytes(), length, cap, kind),
                              lambda: lines_capped(resp.aiter_bytes(), line_cap, kind))
    except urlpolicy.Refused as exc:  # raised while connecting, before the reply is yielded
        raise refused(exc, kind) from None


def _of_this_loop(by_loop: weakref.WeakKeyDictionary) -> dict:
    """This loop's clients in `by_loop`; the loop's first client also starts the task that closes
    them when the loop ends."""
    loop = asyncio.get_running_loop()
    per_loop = by_loop.get(loop)
    if per_loop is None:
        per_loop = by_loop[loop] = {}
        if loop not in _closers:
            _closers[loop] = loop.create_task(_close_when_the_loop_ends(), name="afmts-close-upstream-clients")
    return per_loop


_closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task] = weakref.WeakKeyDictionary()


async def _close_when_the_loop_ends() -> None:
    """Waits for its loop's end: asyncio.run and asyncio.Runner (uvicorn, asgiref's async_to_sync,
    pytest-asyncio) cancel the tasks left before they close the loop, and this one then closes the
    loop's clients while the loop still runs. Without it a loop whose owner never calls
    `close_clients()` (the gateway's under uvicorn, an async view's under a sync caller) would leave
    their sockets open until exit, where aiohttp warns "Unclosed client session"."""
    loop = asyncio.get_running_loop()
    try:
        await loop.create_future()
    finally:
        _closers.pop(loop, None)
        await close_clients()


async def close_clients() -> None:
    """Close this loop's clients (process shutdown, end of a test)."""
    loop = asyncio.get_running_loop()
    for client in (_clients.pop(loop, None) or {}).values():
        await client.aclose()
    for session in (_sessions.pop(loop, None) or {}).values():
        await session.close()


def left_open() -> list[str]:
    """The clients ("kind base_url") of event loops closed while they were open — a loop closed
    without ending its tasks, so `_close_when_the_loop_ends` never ran — forgotten as they are named.
    Their sockets stay open until exit, where aiohttp warns "Unclosed client session"."""
    found = []
    for by_loop in (_clients, _sessions):
        for loop in [loop for loop in list(by_loop.keys()) if loop.is_closed()]:
            found += [f"{kind} {base_url}" for (kind, base_url), client in by_loop.pop(loop).items()
                      if not getattr(client, "is_closed", getattr(client, "closed", True))]
    return found
