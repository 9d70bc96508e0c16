"""The routing playground and "why this model": the router's explanation (the logic of
POST /api/routing/explain), and a prompt sent through the gateway in-process.

The browser never holds an API key: a staff user's session reaches `playground_run`, which signs a
short-lived access token for that user (the gateway accepts users' JWTs, checked in memory) and
calls the gateway's ASGI app in this process, exactly as an SDK's request would be served (routing,
failover, usage record). The answer is passed on as JSON lines: `meta` (what served it), `text`
deltas, then `done` or `error`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from routing.gateway.engine import GatewayError
from routing.gateway.requests import requirements
from routing.gateway.runtime import _view, runtime
from routing.router import UnknownModel, plan

POLICIES = ("auto", "free", "cheap", "fast")
MAX_PROMPT = 20_000


def explain(body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Candidates (best first, with score parts), rejections and their reasons for `body` (a chat or
    embeddings request), without sending it; {"error": ...} when the request is not valid."""
    model = body.get("model")
    kind = "embedding" if "input" in body and "messages" not in body else "chat"
    try:
        req = requirements(body, headers or {}, kind=kind)
    except GatewayError as exc:
        return {"model": model, "error": exc.message}
    view = _view.get()
    try:
        p = plan(model, req, view.snap, live=runtime.live, now=time.time(), aliases=view.aliases, max_candidates=10,
                 explain=True)
    except UnknownModel:
        return {"model": model, "error": f"The model '{model}' does not exist."}
    return {
        "model": model, "policy": p.policy,
        "requirements": {"capabilities": sorted(req.capabilities), "minContext": req.min_context,
                         "maxPrice": req.max_price, "excludeProviders": sorted(req.exclude_providers)},
        "candidates": [c.as_dict() for c in p.candidates],
        "rejected": [r.as_dict() for r in p.rejections],
        "rejectedCount": p.rejected_count,
        "explanation": p.explain() if not p.candidates else None,
    }


def playground_body(form) -> tuple[dict[str, Any], str | None]:
    """The gateway request the playground's form describes, and an error for the form if any."""
    prompt = (form.get("prompt") or "").strip()
    policy = form.get("policy") or "auto"
    if policy not in POLICIES:
        return {}, "Pick a policy: auto, free, cheap or fast."
    if len(prompt) > MAX_PROMPT:
        return {}, f"The prompt is over {MAX_PROMPT} characters."
    ours: dict[str, Any] = {}
    caps = [c.strip() for c in (form.get("capabilities") or "").split(",") if c.strip()]
    if caps:
        ours["capabilities"] = caps
    for field, name, cast in (("minContext", "min_context", int), ("maxPrice", "max_price", float)):
        raw = (form.get(field) or "").strip()
        if raw:
            try:
                ours[name] = cast(raw)
            except ValueError:
                return {}, f"{field} must be a number."
    exclude = [p.strip() for p in (form.get("exclude") or "").split(",") if p.strip()]
    if exclude:
        ours["providers"] = {"exclude": exclude}
    body: dict[str, Any] = {"model": policy, "messages": [{"role": "user", "content": prompt or "Hello"}],
                            "max_tokens": 512}
    if ours:
        body["afmts"] = ours
    return body, None


def _user_ok(user, *, staff: bool) -> bool:
    return bool(user.is_authenticated and user.is_active and (user.is_staff or not staff))


@require_POST
async def playground_explain(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    if not _user_ok(user, staff=False):
        return HttpResponse("Log in first.", status=401)
    body, error = playground_body(request.POST)
    result = {"error": error} if error else await sync_to_async(explain)(body)
    return render(request, "dashboard/parts/explain.html", {"x": result})


def _token(user) -> str:
    from registry.auth import TokenObtainSerializer

    return str(TokenObtainSerializer.get_token(user).access_token)


@require_POST
async def playground_run(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    if not _user_ok(user, staff=True):
        return HttpResponse("Only staff users can send prompts.", status=403)
    body, error = playground_body(request.POST)
    if error:
        return HttpResponse(orjson.dumps({"type": "error", "message": error}) + b"\n", status=400,
                            content_type="application/x-ndjson")
    token = await sync_to_async(_token)(user)
    response = StreamingHttpResponse(_answer({**body, "stream": True}, token), content_type="application/x-ndjson")
    response["Cache-Control"] = "no-store"
    response["X-Accel-Buffering"] = "no"
    return response


async def _answer(body: dict[str, Any], token: str) -> AsyncIterator[bytes]:
    """Serve `body` with the gateway in this process and yield the answer as JSON lines."""
    from afmts.asgi import gateway

    messages: asyncio.Queue = asyncio.Queue()
    raw = orjson.dumps(body)
    delivered = False
    gone = asyncio.Event()

    async def receive() -> dict:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        await messages.put(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"",
        "headers": [(b"authorization", f"Bearer {token}".encode()), (b"content-type", b"application/json"),
                    (b"x-request-id", f"playground-{int(time.time() * 1000)}".encode())],
        "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 0),
    }
    task = asyncio.create_task(gateway(scope, receive, send))
    buffer = b""
    status = 200
    try:
        while True:
            message = await messages.get()
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = {k.decode(): v.decode() for k, v in message.get("headers", [])}
                yield _line(type="meta", status=status, model=headers.get("x-afmts-model"),
                            provider=headers.get("x-afmts-provider"), attempts=headers.get("x-afmts-attempts"),
                            requestId=headers.get("x-request-id"))
                continue
            buffer += message.get("body", b"")
            if status != 200:
                if not message.get("more_body"):
                    yield _line(type="error", message=_error_text(buffer))
                    break
                continue
            *frames, buffer = buffer.split(b"\n\n")
            for frame in frames:
                for out in _frame(frame):
                    yield out
            if not message.get("more_body"):
                yield _line(type="done")
                break
    finally:
        gone.set()
        if not task.done():
            task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):  # noqa: BLE001 - the gateway logs its own failures
            pass


def _line(**fields: Any) -> bytes:
    return orjson.dumps(fields) + b"\n"


def _error_text(raw: bytes) -> str:
    try:
        return str(json.loads(raw)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return "The gateway could not serve this request."


def _frame(frame: bytes) -> list[bytes]:
    out = []
    for line in frame.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            continue
        try:
            chunk = json.loads(data)
        except ValueError:
            continue
        if "error" in chunk:
            out.append(_line(type="error", message=str(chunk["error"].get("message", "stream error"))))
            continue
        for choice in chunk.get("choices") or []:
            text = (choice.get("delta") or {}).get("content")
            if text:
                out.append(_line(type="text", text=text))
        if chunk.get("usage"):
            out.append(_line(type="usage", usage=chunk["usage"]))
    return out
