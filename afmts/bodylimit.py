"""The request body cap for everything Django serves (REST API, admin, pages), enforced while the
ASGI body is read. Django's ASGIHandler reads (and spools to disk) the whole body before any
middleware runs, so a check of Content-Length in a middleware lets a chunked upload of any size
through; this wrapper counts the bytes as they arrive instead. The gateway's /v1/* reads its own
bodies with its own cap (AFMTS_GATEWAY_MAX_BODY_BYTES)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings

from afmts.errors import envelope

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


async def too_large(send: Send, limit: int) -> None:
    body = json.dumps(envelope(
        f"Request body is over {limit} bytes.", type="invalid_request_error", code="request_too_large",
    )).encode()
    await send({
        "type": "http.response.start", "status": 413,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close")],
    })
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: a body over `AFMTS_MAX_BODY_BYTES` gets a 413 in the error envelope, as soon
    as its Content-Length says so or, for a chunked body, as soon as that many bytes have arrived;
    the app is not called. A chunked body under the cap reaches the app with the Content-Length it
    turned out to have (DRF reads no body from a request without one)."""

    def __init__(self, app: App):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit: int = settings.AFMTS_MAX_BODY_BYTES
        length = None
        for name, value in scope.get("headers", ()):
            if name.lower() == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None
        if length is not None:
            if length > limit:
                await too_large(send, limit)
                return
            await self.app(scope, receive, send)  # the server stops at Content-Length bytes
            return

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await too_large(send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        if size:
            headers = [(k, v) for k, v in scope.get("headers", ()) if k.lower() != b"transfer-encoding"]
            scope = {**scope, "headers": [*headers, (b"content-length", str(size).encode())]}
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
