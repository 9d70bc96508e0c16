"""The one attempt loop: sending a request to its candidates, in order, until one answers.

`attempt` serves both kinds of call. A non-streaming attempt has AFMTS_GATEWAY_ATTEMPT_SECONDS to
reply; a streaming one has AFMTS_GATEWAY_FIRST_BYTE_SECONDS to produce its first chunk, and fails
over only until then. Failover stays within AFMTS_GATEWAY_MAX_ATTEMPTS and the request's deadline
(which bounds failover, never a stream that is producing).

What each outcome means for the model:
- a timeout, 5xx, connection error or malformed reply is an upstream fault: the breaker hears of it
  and the next candidate is tried;
- a 429 cools the model's quota scope down until its Retry-After (routing.live); no breaker failure;
- an upstream that refuses our credentials or no longer has the model: fail over, and it counts;
- context too long moves only to a candidate with a larger window (stream or not);
- any other 4xx is the client's request: answered at once, and nobody's failure;
- a free model's request is reserved against its quota before it is sent (shared by processes).
Whatever happens — success, error, client gone, a bug — the caller writes exactly one usage record
(`Call.recorded`), and every upstream stream opened here is closed on every path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from afmts.logging import sanitize
from analytics.recorder import Outcome
from registry.providers import adapter_class
from registry.providers.errors import (
    AuthError,
    BadRequest,
    ContextTooLong,
    MalformedReply,
    NotFoundError,
    ProviderError,
    RateLimited,
    Timeout,
)
from registry.providers.types import RateLimitInfo
from registry.selectors import ModelView
from routing.gateway.runtime import View, runtime
from routing.router import Plan

log = logging.getLogger(__name__)

class GatewayError(Exception):
    """An error for the client, rendered in the caller's API format (OpenAI or Anthropic)."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.headers = headers or {}


class QuotaUsed(Exception):
    """A free model's quota window filled up between the plan and the attempt."""

    def __init__(self, reason: str, until: float):
        super().__init__(reason)
        self.until = until


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
    failovers: int = 0
    outcome: Outcome | None = None
    served_by: ModelView | None = None
    recorded: bool = False
    resumed_from: list[int] = field(default_factory=list)  # models whose stream broke mid-way

    def remaining(self) -> float:
        return self.deadline - time.perf_counter()

    def overhead_ms(self) -> float:
        return max(0.0, (time.perf_counter() - self.started - self.upstream_seconds) * 1000)


# The request being served by this task, for the gateway's catch-all (it records usage once).
current_call: ContextVar[Call | None] = ContextVar("current_call", default=None)


@dataclass
class OpenStream:
    """A stream whose first chunk is in hand: the rest follows from `rest`."""

    model: ModelView
    first: dict[str, Any]
    rest: AsyncIterator[dict[str, Any]]
    adapter: Any
    opened_at: float


def _adapter(view: View, m: ModelView):
    cfg = view.providers.get(m.provider)
    if cfg is None:
        raise AuthError("provider configuration missing", provider=m.provider, retryable=True)
    return adapter_class(cfg.kind)(base_url=cfg.base_url, api_key=cfg.api_key)


def _upstream_body(body: dict[str, Any], m: ModelView) -> dict[str, Any]:
    return {**body, "model": m.public_id.split("/", 1)[1]}


def summarize(m: ModelView, exc: BaseException) -> str:
    """Why an attempt failed, in our words: upstream text is untrusted (it can quote secrets)."""
    if isinstance(exc, QuotaUsed):
        return f"{m.public_id}: {exc}"
    if isinstance(exc, (TimeoutError, Timeout)):
        return f"{m.public_id}: timed out"
    if isinstance(exc, RateLimited):
        wait = f", retry after {exc.retry_after:g} s" if exc.retry_after else ""
        return f"{m.public_id}: rate-limited by the provider (429{wait})"
    if isinstance(exc, ProviderError):
        status = f" {exc.status}" if exc.status else ""
        what = exc.kind.replace("_", " ")
        return f"{m.public_id}: {what if what.startswith('upstream') else 'upstream ' + what}{status}"
    return f"{m.public_id}: upstream error ({type(exc).__name__})"


def _failed(call: Call, m: ModelView, exc: BaseException, now: float, latency: float) -> bool:
    """Account for a failed attempt; True if another candidate may be tried."""
    live = runtime.live
    outcome = call.outcome
    if isinstance(exc, RateLimited):
        info = exc.rate_limit or RateLimitInfo()
        if info.retry_after is None:
            info.retry_after = exc.retry_after or live.rate_limit_cooldown
        live.observe(m, info, now)
        outcome.reports.append((m.pk, info, "429"))
        return True
    if isinstance(exc, ContextTooLong):
        return True
    if isinstance(exc, BadRequest) and not isinstance(exc, (AuthError, NotFoundError)):
        return False  # the client's request: no model is to blame
    outcome.samples.append((m.pk, False, latency * 1000, type(exc).__name__[:255]))
    for key, change in live.record(m, False, now, retry_after=getattr(exc, "retry_after", None)):
        outcome.breaker_changes.append((f"circuit_{change}", key))
    return True


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
    live.count(m, tokens=outcome.tokens_in + outcome.tokens_out, now=now)
    live.settle(m, call.body, now, tokens=(outcome.tokens_in, outcome.tokens_out))


def _note_served(call: Call, m: ModelView, usage: dict | None) -> None:
    """The outcome names the model that answered and the tokens it reported."""
    outcome = call.outcome
    usage = usage or {}
    call.served_by = m
    outcome.model_pk, outcome.public_id, outcome.provider = m.pk, m.public_id, m.provider
    outcome.provider_id, outcome.is_free = m.provider_id, m.is_free
    outcome.tokens_in = _int(usage.get("prompt_tokens"))
    outcome.tokens_out = _int(usage.get("completion_tokens"))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _retry_after(seconds: float) -> dict[str, str]:
    return {"retry-after": str(max(1, int(seconds + 0.999)))}


def _exhausted(plan: Plan, errors: list[tuple[BaseException, str, float | None]], deadline_hit: bool) -> GatewayError:
    """The error when no candidate answered: every candidate's real reason, and a Retry-After only
    when a known time will help (a quota resets, a breaker half-opens)."""
    now = time.time()
    reasons = [reason for _, reason, _ in errors] + [f"{r.model}: {r.reason}" for r in plan.rejections[:8]]
    more = plan.rejected_count - min(8, len(plan.rejections))
    detail = "; ".join(reasons) + (f"; and {more} more" if more > 0 else "")
    if deadline_hit:
        detail += "; the request's deadline passed"
    known = [until for _, _, until in errors if until] + [r.until for r in plan.rejections if r.until]
    waits = [t - now for t in known if t > now]
    attempted = [e for e, _, _ in errors if not isinstance(e, QuotaUsed)]
    if attempted and all(isinstance(e, RateLimited) for e in attempted):
        return GatewayError(429, f"Every candidate is rate-limited: {detail}", type="rate_limit_error",
                            code="rate_limited", headers=_retry_after(min(waits)) if waits else {})
    if not attempted:
        what = "No free model" if plan.policy == "free" else "No model"
        if not reasons:
            detail = plan.explain()
        return GatewayError(503, f"{what} can serve this request right now: {detail}", type="service_unavailable",
                            code="no_model_available", headers=_retry_after(min(waits)) if waits else {})
    if deadline_hit or isinstance(attempted[-1], (Timeout, TimeoutError)):
        return GatewayError(504, f"Upstream timed out: {detail}", type="timeout_error", code="upstream_timeout")
    return GatewayError(502, f"Every candidate failed: {detail}", type="upstream_error", code="upstream_error")


def _client_error(exc: ProviderError, m: ModelView) -> GatewayError:
    if isinstance(exc, ContextTooLong):
        return GatewayError(400, f"The request is longer than the context window of every candidate "
                                 f"(largest tried: {m.public_id}, {m.context_window or 'unknown'} tokens).",
                            code="context_length_exceeded", param="messages")
    # The upstream's words for the client's own mistake, sanitised and cut short: they describe the
    # request, but upstream text is untrusted (it may quote the key it was sent).
    message = sanitize(exc.message or exc.kind, 300)
    return GatewayError(400, f"{m.public_id} rejected the request: {message}", code=exc.provider_code or "bad_request")


async def attempt(call: Call, plan: Plan, view: View, *, method: str, stream: bool = False,
                  max_attempts: int | None = None) -> dict[str, Any] | OpenStream:
    """Try the plan's candidates until one answers: the reply (`method` is the adapter's "chat" or
    "embed"), or with `stream` an OpenStream whose first chunk is in hand."""
    live = runtime.live
    max_attempts = max_attempts or settings.AFMTS_GATEWAY_MAX_ATTEMPTS
    errors: list[tuple[BaseException, str, float | None]] = []
    too_long: tuple[ContextTooLong, ModelView] | None = None
    deadline_hit = False
    for cand in plan.candidates:
        m = cand.model
        if call.attempts >= max_attempts:
            break
        if too_long is not None and (m.context_window or 0) <= (too_long[1].context_window or 0):
            continue
        remaining = call.remaining()
        if remaining <= 0:
            deadline_hit = True
            break
        now = time.time()
        held = live.admit(m, now)
        if held is None:
            held = await live.reserve(m, now, call.body)
            if held is not None:
                live.unadmit(m, now)  # not sent: its breakers' trial slots go to a call that is
        if held:
            errors.append((QuotaUsed(*held), f"{m.public_id}: {held[0]}", held[1]))
            continue
        adapter = _adapter(view, m)
        if call.attempts:
            call.failovers += 1
        call.attempts += 1
        live.started(m)
        t0 = time.perf_counter()
        upstream = None
        finished = False
        try:
            try:
                if stream:
                    upstream = adapter.stream(_upstream_body(call.body, m))
                    async with asyncio.timeout(min(remaining, settings.AFMTS_GATEWAY_FIRST_BYTE_SECONDS)):
                        first = await anext(upstream)
                    call.upstream_seconds += time.perf_counter() - t0
                    finished = True  # the stream's owner reports the end (finish_stream)
                    return OpenStream(m, first, upstream, adapter, t0)
                # One timer for the attempt, within the adapter's own total too (it then sets none).
                budget = adapter.caller_deadline = min(remaining, settings.AFMTS_GATEWAY_ATTEMPT_SECONDS,
                                                       adapter.timeouts.total)
                async with asyncio.timeout(budget):
                    result = await getattr(adapter, method)(_upstream_body(call.body, m))
            except StopAsyncIteration:
                error: BaseException = MalformedReply("the stream ended before any chunk", provider=m.provider)
            except (TimeoutError, ProviderError) as exc:
                error = exc
            except Exception as exc:  # noqa: BLE001 - an adapter that chokes on a reply: the upstream's fault
                log.warning("request %s: %s gave a reply the adapter could not read (%s)", call.request_id,
                            m.public_id, type(exc).__name__, exc_info=True)
                error = MalformedReply(type(exc).__name__, provider=m.provider)
            else:
                latency = time.perf_counter() - t0
                call.upstream_seconds += latency
                _succeeded(call, m, adapter, time.time(), latency, result.get("usage") if isinstance(result, dict) else None)
                return result
        finally:
            if not finished:
                live.finished(m)
                if upstream is not None:
                    await close_stream(upstream)
        latency = time.perf_counter() - t0
        call.upstream_seconds += latency
        if not isinstance(error, (TimeoutError, Timeout)):  # a timed-out call may still be spending
            live.settle(m, call.body, time.time(), tokens=None)
        if not _failed(call, m, error, time.time(), latency):
            raise _client_error(error, m) from error
        if isinstance(error, ContextTooLong):
            if too_long is None or (m.context_window or 0) > (too_long[1].context_window or 0):
                too_long = (error, m)
            continue
        until = None
        if isinstance(error, RateLimited):
            until = time.time() + (error.retry_after or live.rate_limit_cooldown)
        errors.append((error, summarize(m, error), until))
    if too_long is not None and not errors:
        raise _client_error(*too_long)
    if too_long is not None:
        errors.append((too_long[0], f"{too_long[1].public_id}: context too long", None))
    raise _exhausted(plan, errors, deadline_hit)


async def close_stream(stream) -> None:
    try:
        await stream.aclose()
    except BaseException:  # noqa: BLE001 - closing a broken upstream stream, even while cancelled
        pass


def finish_stream(call: Call, opened: OpenStream, usage: dict | None, error: BaseException | None) -> None:
    """Account for a stream that ended: well, cut by the client or by our own cap (None or
    CancelledError: the model did its part), or with an upstream `error` after its first chunk."""
    live = runtime.live
    live.finished(opened.model)
    latency = time.perf_counter() - opened.opened_at
    now = time.time()
    if error is None or isinstance(error, asyncio.CancelledError):
        _succeeded(call, opened.model, opened.adapter, now, latency, usage)
    else:
        _failed(call, opened.model, error, now, latency)
        _note_served(call, opened.model, usage)
