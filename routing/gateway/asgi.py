"""Bare ASGI plumbing for the gateway's hot path: read a bounded body, answer JSON, stream SSE,
notice a client that went away. No framework: Django's request cycle alone costs ~1.5 ms here
(FIELD.md, "Measured on this machine")."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def request_headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        body = message.get("body", b"")
        size += len(body)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(body)
        if not message.get("more_body"):
            return b"".join(chunks)


# On every gateway response, as Django's SecurityMiddleware and afmts.middleware send them on pages: the
# replies are JSON or event streams, never to be sniffed, framed or run as a page.
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
)


def _headers(content_type: bytes, extra: dict[str, str] | None) -> list[tuple[bytes, bytes]]:
    out = [(b"content-type", content_type), *SECURITY_HEADERS]
    for name, value in (extra or {}).items():
        out.append((name.encode("latin-1"), str(value).encode("latin-1")))
    return out


async def send_json(send: Send, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    payload = body if isinstance(body, bytes) else dumps(body)
    hs = _headers(b"application/json", headers)
    hs.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": hs})
    await send({"type": "http.response.body", "body": payload})


async def start_sse(send: Send, headers: dict[str, str] | None = None) -> None:
    hs = _headers(b"text/event-stream; charset=utf-8", headers)
    hs.append((b"cache-control", b"no-cache"))
    hs.append((b"x-accel-buffering", b"no"))
    await send({"type": "http.response.start", "status": 200, "headers": hs})


async def send_sse(send: Send, data: bytes, event: str | None = None) -> None:
    frame = (b"event: " + event.encode() + b"\n" if event else b"") + b"data: " + data + b"\n\n"
    await send({"type": "http.response.body", "body": frame, "more_body": True})


async def end_body(send: Send) -> None:
    await send({"type": "http.response.body", "body": b"", "more_body": False})


class DisconnectWatch:
    """Watches for the client's disconnect (after the body was read). With `cancel_on_leave`, the
    task that started it is cancelled when the client leaves, so upstream work for it stops. With
    `after`, watching begins only once that many seconds have passed: a reply quicker than that
    never pays for the watching task (starting and cancelling it took ~14 µs of the gateway's own
    ~130 µs a request), and a client that left meanwhile is noticed then."""

    def __init__(self, receive: Receive):
        self._receive = receive
        self.task: asyncio.Task | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.left = False

    def start(self, cancel_on_leave: bool = False, after: float = 0.0) -> None:
        owner = asyncio.current_task() if cancel_on_leave else None
        if after > 0:
            self._timer = asyncio.get_running_loop().call_later(after, self._begin, owner)
        else:
            self._begin(owner)

    def _begin(self, owner: asyncio.Task | None) -> None:
        self._timer = None
        self.task = asyncio.ensure_future(self._wait(owner))

    async def _wait(self, owner: asyncio.Task | None) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self.left = True
        if owner is not None:
            owner.cancel()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.task is not None and not self.task.done():
            self.task.cancel()

    @property
    def gone(self) -> bool:
        return self.left
