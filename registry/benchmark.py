"""The model benchmark (the seeds' ModelBenchmark, `manage.py benchmark_models`): a small fixed set
of prompts sent to each selected chat model through its adapter, with latency, time to first token,
tokens/s and success recorded per model, and a report (JSON) naming a top performer.

Selection (`select_models`): routable chat models only (type llm/chat/vision, not disabled, provider
enabled and not down, model neither down nor retired); never embedding, image, audio or rerank models.
Free models whose quota is account-wide and scarce (registry.health.scarce_account_quota, e.g.
OpenRouter's 50 requests/day) are skipped unless asked for, or unless the provider allows probes
(`probe_enabled`) or is local — the same rule as the health probes.

Running (`run_benchmark`): every prompt is sent once per round, streamed (for the time to first
token), with a small `max_tokens` and a per-call deadline. A model's calls run one after another (so
they do not slow each other down); models run concurrently, at most `concurrency` at once. An error
never stops the other models. After a rate limit no more calls go to that model: the provider said
stop, and the rest of its calls are counted as `skipped`.

Per model:
    calls            calls sent (rate-limited ones included, skipped ones not)
    successRate      successes / calls
    latencyMs        p50 and mean of the successful calls' total durations
    ttftMs           p50 time to the first content token of the successful calls
    tokensPerSecond  completion tokens / seconds, summed over the successful calls (completion tokens
                     as the provider reported them, else estimated as characters / 4)
    errors           counts by kind: rate_limited, timeout, upstream_unavailable, auth, ...
    score            successRate × speed, with speed = 1 / (1 + p50 / 1000 ms)

The score is in [0, 1]: a model that always answers in an instant scores 1, one that answers in one
second 0.5, one that never answered 0. (Speed uses the same 1000 ms reference as registry.scoring's
latency part.) The top performer is the highest score among models with at least one success; ties
go to the higher tokens/s, then the public id.

Recording (`record`): every call that was not rate-limited becomes health evidence (source
"benchmark") and counts against the model's free quota; the provider's rate-limit report of each
call is observed. A rate-limited call is not ill health: only the block is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q
from django.utils import timezone

from registry import health, quota
from registry.models import AIModel, ModelStatus
from registry.stats import percentile as _percentile

CHAT_TYPES = ("llm", "chat", "vision")
MAX_TOKENS = 64
LATENCY_REF_MS = 1000.0

# The fixed prompts: short, cheap, and different in kind (recall, code, summarising).
PROMPTS: tuple[dict[str, str], ...] = (
    {"name": "factual", "content": "What is the capital of France? Answer in one short sentence."},
    {"name": "code", "content": "Write a Python function that returns the sum of a list of numbers. Code only."},
    {
        "name": "summarize",
        "content": (
            "Summarize in one sentence: The library extended its opening hours to 9 pm on weekdays after a "
            "survey showed that most students study in the evening, and it added forty seats to the reading room."
        ),
    },
)


# ------------------------------------------------------------------ selection


@dataclass
class Selection:
    models: list[AIModel]
    scarce: list[AIModel] = field(default_factory=list)  # skipped: scarce account-wide free quota
    not_found: list[str] = field(default_factory=list)  # named with --model but not benchmarkable


def select_models(
    *, providers: list[str] | None = None, models: list[str] | None = None, free_only: bool = False,
    capability: str | None = None, limit: int | None = None, include_scarce: bool = False,
) -> Selection:
    """The models to benchmark: routable chat models matching the filters (see the module docstring)."""
    from registry.providers import adapter_class

    qs = (
        AIModel.objects.select_related("provider")
        .filter(type__in=CHAT_TYPES, disabled=False, provider__enabled=True)
        .exclude(status__in=[ModelStatus.DOWN, ModelStatus.RETIRED])
        .exclude(provider__status="down")
        .order_by("provider__slug", "model_id")
    )
    if providers:
        qs = qs.filter(provider__slug__in=providers)
    if models:
        named = Q(pk__in=[])
        for public_id in models:
            slug, _, model_id = public_id.partition("/")
            named |= Q(provider__slug=slug, model_id=model_id)
        qs = qs.filter(named)
    if free_only:
        qs = qs.filter(is_free=True)
    candidates = list(qs)
    if capability:
        candidates = [m for m in candidates if capability in (m.capabilities or [])]

    selection = Selection(models=[])
    if models:
        found = {m.public_id for m in candidates}
        selection.not_found = [p for p in models if p not in found]

    # The scarce-quota rule looks at every free chat model of the provider, not only the selected ones.
    free_by_provider: dict[int, list[AIModel]] = defaultdict(list)
    provider_ids = {m.provider_id for m in candidates if m.is_free}
    for model in AIModel.objects.filter(provider_id__in=provider_ids, is_free=True, type__in=CHAT_TYPES):
        free_by_provider[model.provider_id].append(model)
    allowed: dict[int, bool] = {}
    for model in candidates:
        if model.is_free and not include_scarce:
            if model.provider_id not in allowed:
                p = model.provider
                allowed[model.provider_id] = (
                    p.probe_enabled or adapter_class(p.kind).is_local(p.base_url)
                    or not health.scarce_account_quota(p, free_by_provider[model.provider_id])
                )
            if not allowed[model.provider_id]:
                selection.scarce.append(model)
                continue
        selection.models.append(model)
    if limit is not None:
        selection.models = selection.models[: max(limit, 0)]
    return selection


# ------------------------------------------------------------------ running


@dataclass
class Call:
    prompt: str
    ok: bool
    rate_limited: bool = False
    latency_ms: float | None = None
    ttft_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error_kind: str = ""
    error: str = ""
    report: Any = None  # the provider's RateLimitInfo for this call
    report_source: str = "headers"

    @property
    def tokens_per_second(self) -> float | None:
        if not self.ok or not self.latency_ms:
            return None
        return self.completion_tokens / (self.latency_ms / 1000)




def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class ModelResult:
    model: AIModel
    calls: list[Call] = field(default_factory=list)
    skipped: int = 0

    @property
    def public_id(self) -> str:
        return self.model.public_id

    @property
    def successes(self) -> list[Call]:
        return [c for c in self.calls if c.ok]

    @property
    def success_rate(self) -> float:
        return len(self.successes) / len(self.calls) if self.calls else 0.0

    @property
    def latency_p50(self) -> float | None:
        return _percentile([c.latency_ms for c in self.successes if c.latency_ms is not None], 0.5)

    @property
    def latency_mean(self) -> float | None:
        values = [c.latency_ms for c in self.successes if c.latency_ms is not None]
        return statistics.fmean(values) if values else None

    @property
    def ttft_p50(self) -> float | None:
        return _percentile([c.ttft_ms for c in self.successes if c.ttft_ms is not None], 0.5)

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.successes)

    @property
    def tokens_per_second(self) -> float | None:
        seconds = sum(c.latency_ms or 0 for c in self.successes) / 1000
        return self.completion_tokens / seconds if seconds > 0 else None

    @property
    def score(self) -> float:
        p50 = self.latency_p50
        if p50 is None:
            return 0.0
        return self.success_rate * (1.0 / (1.0 + max(p50, 0.0) / LATENCY_REF_MS))

    def as_dict(self) -> dict[str, Any]:
        errors = Counter(c.error_kind for c in self.calls if not c.ok)
        last_error = next((c.error for c in reversed(self.calls) if not c.ok), None)
        tps = self.tokens_per_second
        return {
            "model": self.public_id,
            "provider": self.model.provider.slug,
            "modelId": self.model.model_id,
            "isFree": self.model.is_free,
            "calls": len(self.calls),
            "successes": len(self.successes),
            "successRate": round(self.success_rate, 4),
            "rateLimited": errors.get("rate_limited", 0),
            "skipped": self.skipped,
            "latencyMs": {"p50": _round(self.latency_p50), "mean": _round(self.latency_mean)},
            "ttftMs": {"p50": _round(self.ttft_p50)},
            "completionTokens": self.completion_tokens,
            "tokensPerSecond": _round(tps, 2),
            "errors": dict(sorted(errors.items())),
            "lastError": last_error,
            "score": round(self.score, 4),
            "prompts": [
                {"prompt": c.prompt, "ok": c.ok, "latencyMs": _round(c.latency_ms), "ttftMs": _round(c.ttft_ms),
                 "completionTokens": c.completion_tokens, "tokensPerSecond": _round(c.tokens_per_second, 2),
                 "error": c.error or None}
                for c in self.calls
            ],
        }


@dataclass
class Report:
    results: list[ModelResult]
    generated_at: str = field(default_factory=lambda: timezone.now().isoformat().replace("+00:00", "Z"))
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def top(self) -> ModelResult | None:
        ranked = [r for r in self.results if r.successes]
        if not ranked:
            return None
        return min(ranked, key=lambda r: (-r.score, -(r.tokens_per_second or 0.0), r.public_id))

    def as_dict(self) -> dict[str, Any]:
        calls = sum(len(r.calls) for r in self.results)
        ok = sum(len(r.successes) for r in self.results)
        top = self.top
        return {
            "generatedAt": self.generated_at,
            "settings": self.settings,
            "models": [r.as_dict() for r in self.results],
            "summary": {
                "topPerformer": top.public_id if top else None,
                "topScore": round(top.score, 4) if top else None,
                "averageScore": round(statistics.fmean(r.score for r in self.results), 4) if self.results else None,
                "modelsTested": len(self.results),
                "calls": calls,
                "successes": ok,
                "successRate": round(ok / calls, 4) if calls else None,
            },
        }


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


async def _call(adapter, model: AIModel, prompt: dict[str, str], *, max_tokens: int, timeout: float) -> Call:
    from registry.providers.errors import ProviderError, RateLimited
    from registry.providers.types import RateLimitInfo

    request = {
        "model": model.model_id, "messages": [{"role": "user", "content": prompt["content"]}],
        "max_tokens": max_tokens, "temperature": 0,
    }
    call = Call(prompt=prompt["name"], ok=False, prompt_tokens=_estimate_tokens(prompt["content"]))
    adapter.last_rate_limit = None
    started = time.perf_counter()
    text: list[str] = []
    usage = None
    try:
        async with asyncio.timeout(timeout):
            async with contextlib.aclosing(adapter.stream(request)) as chunks:
                async for item in chunks:
                    if item.get("usage"):
                        usage = item["usage"]
                    for choice in item.get("choices") or ():
                        delta = choice.get("delta") or {}
                        piece = (delta.get("content") or "") + (delta.get("reasoning_content") or "")
                        if delta.get("tool_calls"):
                            piece += "".join(
                                (c.get("function") or {}).get("arguments") or "" for c in delta["tool_calls"]
                            )
                        if piece:
                            if call.ttft_ms is None:
                                call.ttft_ms = (time.perf_counter() - started) * 1000
                            text.append(piece)
        call.latency_ms = (time.perf_counter() - started) * 1000
        call.ok = True
        if usage and usage.get("completion_tokens"):
            call.completion_tokens = int(usage["completion_tokens"])
        else:
            call.completion_tokens = _estimate_tokens("".join(text))
        if usage and usage.get("prompt_tokens"):
            call.prompt_tokens = int(usage["prompt_tokens"])
    except RateLimited as exc:
        # Out of quota is not ill health: keep the block, not a failure of the model.
        info = exc.rate_limit or RateLimitInfo(retry_after=exc.retry_after)
        if exc.retry_after and not info.retry_after:
            info.retry_after = exc.retry_after
        call.rate_limited, call.error_kind, call.error = True, exc.kind, f"rate limited: {exc.message}"[:255]
        call.report, call.report_source = info, "429"
        return call
    except ProviderError as exc:
        call.error_kind, call.error = exc.kind, f"{type(exc).__name__}: {exc}"[:255]
    except TimeoutError:
        call.error_kind, call.error = "timeout", f"Timeout: no complete reply within {timeout:g} s"
    call.report = adapter.last_rate_limit
    return call


async def _run(
    models: list[AIModel], prompts: list[dict[str, str]], *, rounds: int, concurrency: int, timeout: float,
    max_tokens: int,
) -> list[ModelResult]:
    from registry.providers.http import close_clients
    from registry.tracker import adapter_for

    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(model: AIModel) -> ModelResult:
        result = ModelResult(model)
        planned = [prompt for _ in range(rounds) for prompt in prompts]
        async with gate:
            try:
                adapter = adapter_for(model.provider)
            except Exception as exc:  # noqa: BLE001 - e.g. an undecryptable key: report, go on
                result.calls.append(Call(prompt=planned[0]["name"] if planned else "", ok=False,
                                         error_kind="setup", error=f"{type(exc).__name__}: {exc}"[:255]))
                result.skipped = len(planned) - 1
                return result
            for n, prompt in enumerate(planned):
                call = await _call(adapter, model, prompt, max_tokens=max_tokens, timeout=timeout)
                result.calls.append(call)
                if call.rate_limited:
                    result.skipped = len(planned) - n - 1
                    break
        return result

    try:
        return list(await asyncio.gather(*(one(m) for m in models)))
    finally:
        await close_clients()


def run_benchmark(
    models: list[AIModel], prompts: list[dict[str, str]] | tuple[dict[str, str], ...] = PROMPTS, *,
    rounds: int = 1, concurrency: int = 4, timeout: float = 30.0, max_tokens: int = MAX_TOKENS,
    save: bool = True,
) -> Report:
    """Benchmark the models (loaded with their provider) and, unless `save` is False, record every
    call as health evidence and free-quota use (`record`)."""
    prompts = list(prompts)
    results = asyncio.run(_run(models, prompts, rounds=max(1, rounds), concurrency=concurrency,
                               timeout=timeout, max_tokens=max_tokens)) if models else []
    if save:
        record(results)
    return Report(results, settings={
        "prompts": [p["name"] for p in prompts], "rounds": max(1, rounds), "maxTokens": max_tokens,
        "timeoutSeconds": timeout, "concurrency": concurrency,
    })


def record(results: list[ModelResult]) -> None:
    """Health evidence (source "benchmark") for every call that was not rate-limited; free quota
    counted per call, then the provider's report of that call observed (it already includes it)."""
    health.health_record([
        health.Sample(r.model.pk, c.ok, c.latency_ms if c.ok else None, source="benchmark", error=c.error)
        for r in results for c in r.calls if not c.rate_limited and c.error_kind != "setup"
    ])
    for r in results:
        for c in r.calls:
            if c.error_kind == "setup":
                continue
            if not c.rate_limited and r.model.is_free:
                quota.quota_count(model=r.model, tokens=c.prompt_tokens + c.completion_tokens)
            if c.report:
                quota.quota_observe(provider_id=r.model.provider_id, model=r.model, info=c.report,
                                    source=c.report_source)
