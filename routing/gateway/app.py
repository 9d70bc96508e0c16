"""The gateway's `/v1/*` hot path: a bare ASGI app mounted beside Django in afmts/asgi.py.

OpenAI's API (`POST /v1/chat/completions`, `POST /v1/completions`, `POST /v1/embeddings`,
`GET /v1/models`, `GET /v1/models/{id}`) and Anthropic's (`POST /v1/messages`), in their exact
request, response and error shapes, so their SDKs work by changing only the base URL and key.
Every response carries x-request-id, x-afmts-model, x-afmts-provider, x-afmts-attempts and
x-afmts-overhead-ms. A request reads only memory: the cached key, the routing view, the live state.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from analytics.metrics import count_refused
from analytics.recorder import Outcome, recorder, request_id_for
from audit.service import key_uses
from audit.service import note_scope as note_key_use
from registry import auth
from routing import limits
from routing.gateway import anthropic, validate
from routing.gateway.asgi import (
    BodyTooLarge,
    ClientGone,
    DisconnectWatch,
    Receive,
    Scope,
    Send,
    dumps,
    end_body,
    read_body,
    request_headers,
    send_json,
    send_sse,
    start_sse,
)
from routing.gateway.engine import (
    Call,
    GatewayError,
    OpenStream,
    attempt,
    close_stream,
    current_call,
    finish_stream,
    summarize,
)
from routing.gateway.requests import requirements, upstream_body
from routing.gateway.runtime import RegistryUnavailable, runtime
from routing.router import POLICY_NAMES, Plan, Requirements, UnknownModel, plan

OPENAI = "openai"
# A non-streaming call starts watching for its client's disconnect only after this long: most
# replies from a fast upstream come sooner, and a client gone meanwhile still cancels the rest.
WATCH_AFTER_SECONDS = 0.05
log = logging.getLogger(__name__)


def openai_error(exc: GatewayError) -> dict[str, Any]:
    return {"error": {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}}


async def check_key_limit(principal: auth.Principal, now: float) -> None:
    """Per-key requests per minute (the key's own limit, else AFMTS_DEFAULT_KEY_RATE_PER_MINUTE; 0 =
    unlimited), on the counter the REST API counts on too (routing.limits), shared by every process
    through Redis when it answers (routing.live.LiveState.admit_key)."""
    limit = limits.key_limit(principal)
    if not limit:
        return
    wait = await runtime.live.admit_key(limits.ident(principal), limit, now)
    if wait is not None:
        raise GatewayError(429, f"This key is limited to {limit} requests a minute.", type="rate_limit_error",
                           code="rate_limit_exceeded", headers={"retry-after": limits.retry_after(wait)})


def _too_many_failures(wait: float) -> GatewayError:
    return GatewayError(429, "Too many failed authentications from this address; try again later.",
                        type="rate_limit_error", code="too_many_auth_failures",
                        headers={"retry-after": limits.retry_after(wait)})


async def authenticate(headers: dict[str, str], scope: Scope | None = None) -> auth.Principal:
    """The caller of a request (an API key, or a user's JWT), within its rate limit. An address with
    too many failed authentications this minute (routing.limits) gets 429 whatever it presents."""
    now = time.time()
    ip = None
    if limits.blocked_ips and scope is not None:  # a dict check: nothing on the usual path
        ip = limits.scope_ip(scope, headers)
        wait = limits.blocked_for(ip, now)
        if wait is not None:
            raise _too_many_failures(wait)
    secret = auth.secret_from_headers(headers)
    if not secret:
        raise GatewayError(401, "No API key: send 'Authorization: Bearer <key>' (or 'x-api-key').",
                           type="authentication_error", code="missing_api_key")
    jwt = auth.looks_like_jwt(secret)
    cache = auth._cache.peek()
    digest = "" if jwt else hashlib.sha256(secret.encode()).hexdigest()
    if jwt:
        principal = auth.principal_for_jwt(secret)  # an HS256 check in memory, no query
    elif cache is not None and digest in cache and not auth._cache.stale():
        principal = cache[digest]
        if principal is not None:
            auth.usage.touch(principal.key_id)
    else:
        try:
            principal = await sync_to_async(auth.principal_from_store, thread_sensitive=False)(secret)
        except auth.KeyStoreUnavailable:
            raise GatewayError(503, "The key store is unavailable; try again shortly.", type="api_error",
                               code="key_store_unavailable") from None
    if principal is None:
        if scope is not None:
            wait = await limits.failed(runtime.live, ip or limits.scope_ip(scope, headers), now)
            if wait is not None:
                raise _too_many_failures(wait)
        if jwt:
            raise GatewayError(401, "Invalid or expired token.", type="authentication_error", code="invalid_token")
        raise GatewayError(401, "Invalid or revoked API key.", type="authentication_error", code="invalid_api_key")
    await check_key_limit(principal, now)
    return principal


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(400, f"The body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise GatewayError(400, "The body must be a JSON object.", code="invalid_json")
    return body


def require(body: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = body.get(name)
    if value is None:
        raise GatewayError(400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
    if not isinstance(value, kind) or (isinstance(value, (list, str)) and not value):
        raise GatewayError(400, f"'{name}' must be {what}.", param=name, code="invalid_type")
    return value


def _call_of(request_id: str) -> Call | None:
    """This request's call, once it became one (the context variable may hold an earlier one's)."""
    call = current_call.get()
    return call if call is not None and call.request_id == request_id else None


async def _routing_view():
    try:
        return await runtime.view()
    except RegistryUnavailable:
        raise GatewayError(503, "The model registry is unavailable; try again shortly.", type="api_error",
                           code="registry_unavailable") from None


def response_headers(call: Call) -> dict[str, str]:
    headers = {"x-request-id": call.request_id, "x-afmts-attempts": str(call.attempts),
               "x-afmts-overhead-ms": f"{call.overhead_ms():.3f}"}
    if call.served_by is not None:
        headers["x-afmts-model"] = call.served_by.public_id
        headers["x-afmts-provider"] = call.served_by.provider
    return headers


class _Sent:
    """`send`, noting whether the response has started (then an error can no longer be a reply)."""

    __slots__ = ("send", "started")

    def __init__(self, send: Send):
        self.send, self.started = send, False

    async def __call__(self, message: dict) -> None:
        self.started = True
        await self.send(message)


class FreshConnections(ThreadPoolExecutor):
    """The loop's default executor (sync_to_async without thread sensitivity runs there): each job
    first drops its thread's database connection if it broke or expired, so after a database restart
    no worker thread keeps failing on a dead connection (CONN_HEALTH_CHECKS checks the next one)."""

    def submit(self, fn, /, *args, **kwargs):
        return super().submit(_fresh_connection_call, fn, args, kwargs)


def _fresh_connection_call(fn: Callable, args: tuple, kwargs: dict) -> Any:
    close_old_connections()
    return fn(*args, **kwargs)


async def lifespan(receive: Receive, send: Send) -> None:
    """ASGI lifespan. Startup installs FreshConnections; shutdown (after the server drained its
    connections) writes the usage and key-usage buffers, in a thread, before the process exits."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            asyncio.get_running_loop().set_default_executor(FreshConnections())
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await asyncio.to_thread(recorder.close)
            await asyncio.to_thread(auth.usage.close)
            await asyncio.to_thread(key_uses.close)
            await send({"type": "lifespan.shutdown.complete"})
            return


CONTINUE = "Continue your reply exactly where it stopped. Do not repeat anything already written."


class _Said:
    """What a stream has said so far: its text, and whether a cut could be continued elsewhere."""

    __slots__ = ("parts", "resumable")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.resumable = True

    def note(self, chunk: dict[str, Any]) -> None:
        choices = chunk.get("choices")
        if not choices:
            return
        if len(choices) > 1:
            self.resumable = False
            return
        delta = choices[0].get("delta") or {}
        if delta.get("tool_calls") or delta.get("function_call"):
            self.resumable = False
        content = delta.get("content")
        if content and isinstance(content, str):
            self.parts.append(content)

    @property
    def text(self) -> str:
        return "".join(self.parts)


class Gateway:
    """ASGI: `/v1/*` here, everything else to `fallback` (Django and Channels)."""

    def __init__(self, fallback: Callable):
        self.fallback = fallback
        self.routes = {
            ("POST", "/v1/chat/completions"): self.chat_completions,
            ("POST", "/v1/completions"): self.completions,
            ("POST", "/v1/embeddings"): self.embeddings,
            ("GET", "/v1/models"): self.list_models,
            ("POST", "/v1/messages"): self.messages,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/v1/"):
            await self.fallback(scope, receive, send)
            return
        started = time.perf_counter()
        headers = request_headers(scope)
        request_id = request_id_for(headers.get("x-request-id"))
        anthropic_api = path == "/v1/messages"
        render = anthropic.error_body if anthropic_api else openai_error
        method = scope["method"]
        handler = self.routes.get((method, path))
        if handler is None and method == "GET" and path.startswith("/v1/models/"):
            handler = self.get_model
        sent = _Sent(send)
        try:
            if handler is None:
                raise GatewayError(404, f"Unknown endpoint {method} {path}.", code="unknown_url")
            principal = await authenticate(headers, scope)
            note_key_use(principal, scope, headers)  # the audit log's first use per day and address: memory only
            await handler(scope, receive, sent, headers=headers, principal=principal, request_id=request_id,
                          started=started)
        except GatewayError as exc:
            call = _call_of(request_id)
            if call is None or not call.recorded:
                count_refused(path, exc.status, exc.code or exc.type)  # refused before it became a usage record
            if not sent.started:
                await send_json(send, exc.status, render(exc), {**exc.headers, "x-request-id": request_id})
        except ClientGone:
            return
        except Exception:  # noqa: BLE001 - the catch-all: a bug answers in the endpoint's envelope, never bare
            log.exception("gateway request %s failed", request_id)
            call = _call_of(request_id)
            if call is None:
                count_refused(path, 500, "internal_error")  # failed before it became a usage record
            elif not call.recorded:
                call.outcome.status = "internal_error"
                self._record(call, 500)
            if not sent.started:
                error = GatewayError(500, f"The gateway failed on this request (request id {request_id}).",
                                     type="api_error", code="internal_error")
                try:
                    await send_json(send, 500, render(error), {"x-request-id": request_id})
                except Exception:  # noqa: BLE001 - the client may be gone
                    pass

    # ------------------------------------------------------------------ helpers

    async def _body(self, receive: Receive) -> dict[str, Any]:
        try:
            return parse_json(await read_body(receive, settings.AFMTS_GATEWAY_MAX_BODY_BYTES))
        except BodyTooLarge:
            raise GatewayError(413, f"The body is over {settings.AFMTS_GATEWAY_MAX_BODY_BYTES} bytes.",
                               code="request_too_large") from None

    async def _plan(self, model: str, body: dict[str, Any], headers: dict[str, str], kind: str, principal=None):
        view = await _routing_view()
        req = requirements(body, headers, kind=kind)
        over_budget = principal is not None and principal.budget_exhausted
        if over_budget:  # past its monthly budget: free models only (analytics.budgets)
            req = Requirements(**{**req.__dict__, "free_only": True})
        try:
            p = plan(model, req, view.snap, live=runtime.live, now=time.time(), aliases=view.aliases,
                     max_candidates=settings.AFMTS_GATEWAY_MAX_ATTEMPTS)
        except UnknownModel:
            raise GatewayError(404, f"The model '{model}' does not exist.", code="model_not_found",
                               param="model") from None
        if over_budget and not p.candidates:
            raise GatewayError(402, "This API key has used up its monthly budget: only free models may serve it, "
                                    f"and none can serve this request ({p.explain()}).",
                               type="insufficient_quota", code="budget_exceeded")
        return view, p

    def _call(self, request_id: str, endpoint: str, model: str, body: dict, principal, started: float, stream: bool) -> Call:
        call = Call(request_id=request_id, endpoint=endpoint, requested_model=model, body=body, started=started,
                    deadline=started + settings.AFMTS_GATEWAY_DEADLINE_SECONDS)
        call.outcome = Outcome(ts=time.time(), request_id=request_id, endpoint=endpoint, requested_model=model,
                               key_id=principal.key_id, key_name=principal.name, stream=stream)
        current_call.set(call)
        return call

    def _record(self, call: Call, status: int, error: GatewayError | None = None) -> None:
        """The request's one usage record (whatever path it ends on, it is written once)."""
        if call.recorded:
            return
        call.recorded = True
        o = call.outcome
        o.attempts, o.http_status = call.attempts, status
        o.latency_ms = (time.perf_counter() - call.started) * 1000
        o.overhead_ms = call.overhead_ms()
        if error is not None:
            o.status = error.code or error.type
        recorder.add(o)

    async def _execute(self, call: Call, view, p, send: Send, receive: Receive, *, method: str,
                       shape: Callable[[dict, Call], dict]) -> None:
        """Run a non-streaming call; a client that goes away cancels it (and so the upstream request)."""
        watch = DisconnectWatch(receive)
        watch.start(cancel_on_leave=True, after=WATCH_AFTER_SECONDS)
        try:
            result = await attempt(call, p, view, method=method)
        except GatewayError as exc:
            self._record(call, exc.status, exc)
            raise
        except asyncio.CancelledError:
            call.outcome.status = "client_disconnected" if watch.left else "cancelled"
            self._record(call, 499)
            if not watch.left:
                raise
            return
        finally:
            watch.cancel()
        body = shape(result, call)
        headers = response_headers(call)
        self._record(call, 200)  # before the reply: a client that reads its reply may count on it
        await send_json(send, 200, body, headers)

    # ------------------------------------------------------------------ OpenAI

    async def chat_completions(self, scope, receive, send, *, headers, principal, request_id, started) -> None:
        body = await self._body(receive)
        validate.chat(body)
        model = require(body, "model", str, "a model id, an alias or a policy (auto, free, cheap, fast)")
        require(body, "messages", list, "a non-empty list of messages")
        stream = bool(body.get("stream"))
        view, p = await self._plan(model, body, headers, "chat", principal)
        call = self._call(request_id, "chat.completions", model, upstream_body(body), principal, started, stream)
        if stream:
            await self._stream(call, view, p, send, receive, include_usage=bool((body.get("stream_options") or {}).get("include_usage")))
            return
        await self._execute(call, view, p, send, receive, method="chat", shape=_served)

    async def _stream(self, call: Call, view, p, send: Send, receive: Receive, *, include_usage: bool,
                      encode: Callable[[dict, Call], list[tuple[str | None, bytes]]] | None = None,
                      close: Callable[[Call, dict | None], list[tuple[str | None, bytes]]] | None = None,
                      error_frame: Callable[[GatewayError], tuple[str | None, bytes]] | None = None) -> None:
        """Stream chunks as they come. Failover happens before the first chunk; a later upstream failure
        ends the stream with an error event. A client that goes away cancels the upstream request."""
        try:
            opened: OpenStream = await attempt(call, p, view, method="chat", stream=True)
        except GatewayError as exc:
            self._record(call, exc.status, exc)
            raise
        call.served_by = opened.model
        watch = DisconnectWatch(receive)
        watch.start()
        usage: dict | None = None
        error: BaseException | None = None
        first_byte = None
        said = _Said()
        encode = encode or _openai_frames(include_usage)
        stream_cap = time.perf_counter() + settings.AFMTS_GATEWAY_STREAM_MAX_SECONDS
        capped = False
        try:
            await start_sse(send, response_headers(call))
            chunk = opened.first
            while True:
                if chunk.get("usage"):
                    usage = chunk["usage"]
                chunk["model"] = opened.model.public_id
                said.note(chunk)
                for event, data in encode(chunk, call):
                    await send_sse(send, data, event)
                if first_byte is None:
                    first_byte = time.perf_counter()
                if watch.gone:
                    raise asyncio.CancelledError()
                t0 = time.perf_counter()
                if t0 >= stream_cap:
                    capped = True
                    break
                fault: BaseException | None = None
                try:
                    # The idle gap is the upstream's; the overall cap is ours (not counted against it).
                    async with asyncio.timeout(min(settings.AFMTS_GATEWAY_IDLE_SECONDS, stream_cap - t0)):
                        chunk = await anext(opened.rest)
                except StopAsyncIteration:
                    break
                except TimeoutError as exc:
                    if time.perf_counter() >= stream_cap:
                        capped = True
                        break
                    fault = exc
                except Exception as exc:  # noqa: BLE001 - the upstream broke mid-stream
                    fault = exc
                finally:
                    call.upstream_seconds += time.perf_counter() - t0
                if fault is not None:
                    resumed = await self._resume(call, p, view, opened, fault, said)
                    if resumed is None:
                        raise fault
                    opened = resumed
                    chunk = opened.first
            if capped:
                gw = GatewayError(200, f"The stream reached the gateway's cap of "
                                       f"{settings.AFMTS_GATEWAY_STREAM_MAX_SECONDS:g} s and was ended.",
                                  type="api_error", code="stream_cap_reached")
                call.outcome.status = "stream_capped"
                frame = error_frame(gw) if error_frame else (None, dumps(openai_error(gw)))
                await send_sse(send, frame[1], frame[0])
            for event, data in (close(call, usage) if close else [(None, b"[DONE]")]):
                await send_sse(send, data, event)
        except asyncio.CancelledError:
            error = asyncio.CancelledError()
            call.outcome.status = "client_disconnected"
        except (Exception, TimeoutError) as exc:  # noqa: BLE001 - the upstream broke mid-stream
            error = exc
            gw = GatewayError(502, f"The upstream failed mid-stream ({summarize(opened.model, exc)}).",
                              type="upstream_error", code="stream_interrupted")
            call.outcome.status = "stream_interrupted"
            try:
                frame = error_frame(gw) if error_frame else (None, dumps(openai_error(gw)))
                await send_sse(send, frame[1], frame[0])
            except Exception:  # noqa: BLE001 - the client may be gone too
                pass
        finally:
            watch.cancel()
            try:
                await opened.rest.aclose()
            except Exception:  # noqa: BLE001
                pass
            if first_byte is not None:
                call.outcome.ttft_ms = (first_byte - call.started) * 1000
            finish_stream(call, opened, usage, error)
            self._record(call, 200)
            try:
                await end_body(send)
            except Exception:  # noqa: BLE001
                pass

    async def _resume(self, call: Call, p, view, broken: OpenStream, fault: BaseException,
                      said: _Said) -> OpenStream | None:
        """A stream cut after it produced text goes on from another candidate, which is given the
        text so far and asked to continue (LiteLLM calls this a mid-stream fallback). Not for tool
        calls or several choices, whose half cannot be continued; None when it cannot resume."""
        if not settings.AFMTS_GATEWAY_STREAM_RESUME or not said.resumable:
            return None
        call.resumed_from.append(broken.model.pk)
        await close_stream(broken.rest)
        tried = set(call.resumed_from)
        rest = Plan(policy=p.policy, candidates=[c for c in p.candidates if c.model.pk not in tried])
        original = call.body
        if said.text:
            call.body = {**original, "messages": [*original["messages"], {"role": "assistant", "content": said.text},
                                                  {"role": "user", "content": CONTINUE}]}
        try:
            resumed = await attempt(call, rest, view, method="chat", stream=True)
        except GatewayError:
            call.served_by = broken.model
            return None
        finally:
            call.body = original
        finish_stream(call, broken, None, fault)  # the model that broke: its failure counts
        call.served_by = resumed.model
        return resumed

    async def completions(self, scope, receive, send, *, headers, principal, request_id, started) -> None:
        body = await self._body(receive)
        validate.completion(body)
        model = require(body, "model", str, "a model id")
        prompt = body.get("prompt")
        if isinstance(prompt, list):
            if not all(isinstance(p, str) for p in prompt):
                raise GatewayError(400, "'prompt' must be a string or a list of strings.", param="prompt")
            prompt = "\n".join(prompt)
        if not isinstance(prompt, str):
            raise GatewayError(400, "Missing required parameter: 'prompt'.", param="prompt")
        chat = {k: v for k, v in body.items() if k not in ("prompt", "echo", "best_of", "suffix", "logprobs")}
        chat["messages"] = [{"role": "user", "content": prompt}]
        view, p = await self._plan(model, chat, headers, "chat", principal)
        call = self._call(request_id, "completions", model, upstream_body(chat), principal, started, bool(body.get("stream")))
        if body.get("stream"):
            await self._stream(call, view, p, send, receive, include_usage=False, encode=_completion_frames)
            return
        await self._execute(call, view, p, send, receive, method="chat", shape=_as_text_completion)

    async def embeddings(self, scope, receive, send, *, headers, principal, request_id, started) -> None:
        body = await self._body(receive)
        validate.embedding(body)
        model = require(body, "model", str, "a model id")
        value = body.get("input")
        if not (isinstance(value, str) and value) and not (isinstance(value, list) and value):
            raise GatewayError(400, "'input' must be a non-empty string or list.", param="input")
        view, p = await self._plan(model, body, headers, "embedding", principal)
        call = self._call(request_id, "embeddings", model, upstream_body(body), principal, started, False)
        await self._execute(call, view, p, send, receive, method="embed", shape=_served)

    async def list_models(self, scope, receive, send, *, headers, principal, request_id, started) -> None:
        view = await _routing_view()
        data = [_model_object(m) for m in view.snap.models if m.routable]
        data += [{"id": name, "object": "model", "created": 0, "owned_by": "afmts"} for name in sorted(POLICY_NAMES)]
        data += [{"id": name, "object": "model", "created": 0, "owned_by": "afmts-alias"} for name in sorted(view.aliases)]
        await send_json(send, 200, {"object": "list", "data": data}, {"x-request-id": request_id})

    async def get_model(self, scope, receive, send, *, headers, principal, request_id, started) -> None:
        model_id = scope["path"][len("/v1/models/"):]
        view = await _routing_view()
        if model_id in POLICY_NAMES or model_id in view.aliases:
            body = {"id": model_id, "object": "model", "created": 0, "owned_by": "afmts"}
        else:
            m = view.snap.by_public_id.get(model_id)
            if m is None:
                raise GatewayError(404, f"The model '{model_id}' does not exist.", code="model_not_found", param="model")
            body = _model_object(m)
        await send_json(send, 200, body, {"x-request-id": request_id})

    # ------------------------------------------------------------------ Anthropic

    async def messages(self, scope, receive, send, *, headers, principal, request_id, started) -> None:
        body = await self._body(receive)
        validate.messages(body)
        chat = anthropic.to_openai_request(body)
        model = chat["model"]
        view, p = await self._plan(model, chat, headers, "chat", principal)
        call = self._call(request_id, "messages", model, upstream_body(chat), principal, started, bool(chat.get("stream")))
        if chat.get("stream"):
            frames = anthropic.StreamFrames()
            await self._stream(call, view, p, send, receive, include_usage=True, encode=frames.encode,
                               close=frames.close, error_frame=anthropic.error_frame)
            return
        await self._execute(call, view, p, send, receive, method="chat", shape=anthropic.from_openai_response)


def _model_object(m) -> dict[str, Any]:
    return {"id": m.public_id, "object": "model", "created": 0, "owned_by": m.provider}


def _served(result: dict[str, Any], call: Call) -> dict[str, Any]:
    result["model"] = call.served_by.public_id
    return result


def _openai_frames(include_usage: bool):
    def encode(chunk: dict[str, Any], call: Call) -> list[tuple[str | None, bytes]]:
        if not chunk.get("choices") and chunk.get("usage"):
            return [(None, dumps(chunk))] if include_usage else []
        if not include_usage and "usage" in chunk:
            chunk = {k: v for k, v in chunk.items() if k != "usage"}
        return [(None, dumps(chunk))]

    return encode


def _as_text_completion(result: dict[str, Any], call: Call) -> dict[str, Any]:
    return {
        "id": result.get("id", call.request_id).replace("chatcmpl", "cmpl"), "object": "text_completion",
        "created": result.get("created", int(time.time())), "model": call.served_by.public_id,
        "choices": [
            {"text": (c.get("message") or {}).get("content") or "", "index": c.get("index", i), "logprobs": None,
             "finish_reason": c.get("finish_reason")}
            for i, c in enumerate(result.get("choices") or [])
        ],
        "usage": result.get("usage"),
    }


def _completion_frames(chunk: dict[str, Any], call: Call) -> list[tuple[str | None, bytes]]:
    if not chunk.get("choices"):
        return []
    out = {
        "id": chunk.get("id", call.request_id), "object": "text_completion", "created": chunk.get("created", 0),
        "model": chunk.get("model"),
        "choices": [{"text": (c.get("delta") or {}).get("content") or "", "index": c.get("index", 0),
                     "logprobs": None, "finish_reason": c.get("finish_reason")} for c in chunk["choices"]],
    }
    return [(None, dumps(out))]
