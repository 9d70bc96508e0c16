"""Sending a request to its candidates, in order, until one answers.

Failover: a retryable error (timeout, 5xx, 429, connection error, malformed reply — and an upstream
that refuses our own credentials or no longer has the model) moves to the next candidate, within
AFMTS_GATEWAY_MAX_ATTEMPTS and the request's deadline. A bad request is returned at once with the
upstream's message; a context-too-long error moves only to a candidate with a larger window.
A 429 blocks the model's quota scope until its Retry-After; it is not a failure of the model.
A stream fails over only until its first chunk is ready; after that, an upstream failure ends the
stream with an error event.

Every attempt feeds the live state (breakers, quota, load) at once and the recorder (usage, passive
health, quota reports) for the batched flush.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from analytics.recorder import Outcome
from registry.selectors import ModelView
from routing.gateway.runtime import View, runtime
from routing.providers import adapter_class
from routing.providers.errors import (
    AuthError,
    BadRequest,
    ContextTooLong,
    MalformedReply,
    NotFoundError,
    ProviderError,
    RateLimited,
    Timeout,
)
from routing.providers.types import RateLimitInfo
from routing.router import Plan

DEFAULT_RETRY_AFTER = 30.0


class GatewayError(Exception):
    """An error for the client, rendered in the caller's API format (OpenAI or Anthropic)."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.headers = headers or {}


@dataclass
class Call:
    request_id: str
    endpoint: str
    requested_model: str
    body: dict[str, Any]
    started: float = field(default_factory=time.perf_counter)
    deadline: float = 0.0
    upstream_seconds: float = 0.0
    attempts: int = 0
    outcome: Outcome | None = None
    served_by: ModelView | None = None

    def remaining(self) -> float:
        return self.deadline - time.perf_counter()

    def attempt_timeout(self) -> float:
        from django.conf import settings

        return max(0.001, min(self.remaining(), settings.AFMTS_GATEWAY_ATTEMPT_SECONDS))

    def overhead_ms(self) -> float:
        return max(0.0, (time.perf_counter() - self.started - self.upstream_seconds) * 1000)


def _adapter(view: View, m: ModelView):
    cfg = view.providers.get(m.provider)
    if cfg is None:
        raise AuthError("provider configuration missing", provider=m.provider, retryable=True)
    return adapter_class(cfg.kind)(base_url=cfg.base_url, api_key=cfg.api_key)


def _upstream_body(body: dict[str, Any], m: ModelView) -> dict[str, Any]:
    return {**body, "model": m.public_id.split("/", 1)[1]}


def _failed(call: Call, m: ModelView, exc: BaseException, now: float, latency: float) -> tuple[bool, str]:
    """Record a failed attempt; returns (may fail over, reason)."""
    live = runtime.live
    outcome = call.outcome
    reason = f"{m.public_id}: {exc}"[:300]
    if isinstance(exc, RateLimited):
        info = exc.rate_limit or RateLimitInfo()
        if info.retry_after is None:
            info.retry_after = exc.retry_after or DEFAULT_RETRY_AFTER
        live.observe(m, info, now)
        outcome.reports.append((m.pk, info, "429"))
        return True, reason
    if isinstance(exc, BadRequest) and not isinstance(exc, (AuthError, NotFoundError)):
        return False, reason  # the client's request: no model is to blame
    ok_for_health = isinstance(exc, ContextTooLong)
    if not ok_for_health:
        outcome.samples.append((m.pk, False, latency * 1000, f"{type(exc).__name__}"[:255]))
        for key, change in live.record(m, False, now, retry_after=getattr(exc, "retry_after", None)):
            outcome.breaker_changes.append((f"circuit_{change}", key))
    retryable = isinstance(exc, (AuthError, NotFoundError, asyncio.TimeoutError)) or getattr(exc, "retryable", False)
    return retryable, reason


def _succeeded(call: Call, m: ModelView, adapter, now: float, latency: float, usage: dict | None) -> None:
    live = runtime.live
    outcome = call.outcome
    outcome.samples.append((m.pk, True, latency * 1000, ""))
    for key, change in live.record(m, True, now):
        outcome.breaker_changes.append((f"circuit_{change}", key))
    if adapter.last_rate_limit:
        live.observe(m, adapter.last_rate_limit, now)
        outcome.reports.append((m.pk, adapter.last_rate_limit, "headers"))
    _note_served(call, m, usage)
    live.count(m, requests=1, tokens=outcome.tokens_in + outcome.tokens_out, now=now)


def _note_served(call: Call, m: ModelView, usage: dict | None) -> None:
    """The outcome names the model that answered and the tokens it reported."""
    outcome = call.outcome
    usage = usage or {}
    call.served_by = m
    outcome.model_pk, outcome.public_id, outcome.provider = m.pk, m.public_id, m.provider
    outcome.provider_id, outcome.is_free = m.provider_id, m.is_free
    outcome.tokens_in = int(usage.get("prompt_tokens") or 0)
    outcome.tokens_out = int(usage.get("completion_tokens") or 0)


def _exhausted(plan: Plan, errors: list[tuple[BaseException, str]], policy_free: bool) -> GatewayError:
    if not errors:
        what = "No free model" if policy_free else "No model"
        retry_at = plan.retry_at()
        headers = {"retry-after": str(max(1, int(retry_at - time.time() + 0.999)))} if retry_at else {"retry-after": "30"}
        return GatewayError(
            503, f"{what} can serve this request right now: {plan.explain()}", type="service_unavailable",
            code="no_model_available", headers=headers,
        )
    reasons = "; ".join(reason for _, reason in errors)
    last = errors[-1][0]
    if all(isinstance(e, RateLimited) for e, _ in errors):
        wait = min((e.retry_after or DEFAULT_RETRY_AFTER) for e, _ in errors)
        return GatewayError(429, f"Every candidate is rate-limited: {reasons}", type="rate_limit_error",
                            code="rate_limited", headers={"retry-after": str(max(1, int(wait + 0.999)))})
    if isinstance(last, (Timeout, asyncio.TimeoutError)):
        return GatewayError(504, f"Upstream timed out: {reasons}", type="timeout_error", code="upstream_timeout")
    return GatewayError(502, f"Every candidate failed: {reasons}", type="upstream_error", code="upstream_error")


def _client_error(exc: ProviderError, m: ModelView) -> GatewayError:
    code = "context_length_exceeded" if isinstance(exc, ContextTooLong) else (exc.provider_code or "bad_request")
    return GatewayError(400, f"{m.public_id}: {exc.message or exc}", code=code)


async def run(call: Call, plan: Plan, view: View, *, method: str, max_attempts: int) -> dict[str, Any]:
    """A non-streaming call (`method` is the adapter's: "chat" or "embed")."""
    errors: list[tuple[BaseException, str]] = []
    live = runtime.live
    too_long_at: int | None = None
    last_too_long: ContextTooLong | None = None
    for cand in plan.candidates[:max_attempts]:
        m = cand.model
        if too_long_at is not None and (m.context_window or 0) <= too_long_at:
            continue
        if call.remaining() <= 0:
            break
        adapter = _adapter(view, m)
        call.attempts += 1
        live.started(m)
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(call.attempt_timeout()):  # no extra task, unlike wait_for
                result = await getattr(adapter, method)(_upstream_body(call.body, m))
        except (TimeoutError, ProviderError) as exc:
            latency = time.perf_counter() - t0
            call.upstream_seconds += latency
            may_retry, reason = _failed(call, m, exc, time.time(), latency)
            if isinstance(exc, ContextTooLong):
                too_long_at = m.context_window or 0
                errors.append((exc, reason))
                last_too_long = exc
                continue
            if not may_retry:
                raise _client_error(exc, m) from exc
            errors.append((exc, reason))
            continue
        finally:
            live.finished(m)
        latency = time.perf_counter() - t0
        call.upstream_seconds += latency
        _succeeded(call, m, adapter, time.time(), latency, result.get("usage"))
        return result
    if last_too_long is not None and errors and isinstance(errors[-1][0], ContextTooLong):
        raise _client_error(last_too_long, plan.candidates[0].model)
    raise _exhausted(plan, errors, plan.policy == "free")


@dataclass
class OpenStream:
    """A stream whose first chunk is in hand: the rest follows from `rest`."""

    model: ModelView
    first: dict[str, Any]
    rest: AsyncIterator[dict[str, Any]]
    adapter: Any
    opened_at: float


async def open_stream(call: Call, plan: Plan, view: View, *, max_attempts: int) -> OpenStream:
    """Try candidates until one produces its first chunk (failover happens only up to here)."""
    errors: list[tuple[BaseException, str]] = []
    live = runtime.live
    for cand in plan.candidates[:max_attempts]:
        m = cand.model
        if call.remaining() <= 0:
            break
        adapter = _adapter(view, m)
        call.attempts += 1
        t0 = time.perf_counter()
        live.started(m)
        stream = adapter.stream(_upstream_body(call.body, m))
        try:
            async with asyncio.timeout(call.attempt_timeout()):
                first = await anext(stream)
        except StopAsyncIteration:
            exc = MalformedReply("the stream ended before any chunk", provider=m.provider)
            error: BaseException = exc
        except (TimeoutError, ProviderError) as exc:
            error = exc
        else:
            call.upstream_seconds += time.perf_counter() - t0
            return OpenStream(m, first, stream, adapter, t0)
        live.finished(m)
        await _close(stream)
        latency = time.perf_counter() - t0
        call.upstream_seconds += latency
        may_retry, reason = _failed(call, m, error, time.time(), latency)
        if not may_retry and isinstance(error, ProviderError):
            raise _client_error(error, m) from error
        errors.append((error, reason))
    raise _exhausted(plan, errors, plan.policy == "free")


async def _close(stream) -> None:
    try:
        await stream.aclose()
    except Exception:  # noqa: BLE001 - closing a broken upstream stream
        pass


def finish_stream(call: Call, opened: OpenStream, usage: dict | None, error: BaseException | None) -> None:
    """Account for a stream that ended (well, or with `error` after its first chunk)."""
    live = runtime.live
    live.finished(opened.model)
    latency = time.perf_counter() - opened.opened_at
    now = time.time()
    if error is None or isinstance(error, asyncio.CancelledError):
        _succeeded(call, opened.model, opened.adapter, now, latency, usage)
    else:
        _failed(call, opened.model, error, now, latency)
        _note_served(call, opened.model, usage)
