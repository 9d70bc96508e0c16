"""The free model tracker's entry points: a discovery cycle and a health-probe round, each run by a
Celery task, a management command, or a test. They build adapters for providers (the one place that
decrypts a provider's key for outbound use) and hand results to the services in
registry.discovery, registry.health and registry.quota."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings

from registry import discovery, health, quota
from registry.models import AIModel, Provider
from registry.providers import adapter_class
from registry.providers.base import Adapter

log = logging.getLogger(__name__)


def adapter_for(provider: Provider, **kwargs) -> Adapter:
    return adapter_class(provider.kind)(base_url=provider.base_url, api_key=provider.api_key or None, **kwargs)


def discover(slugs: list[str] | None = None) -> list[discovery.ProviderResult]:
    """One discovery cycle over the due providers (or the named ones), listed concurrently. Free
    offers that expired since the last cycle end first, whether or not their provider is due."""
    discovery.expire_due()
    providers = discovery.due_providers(slugs=slugs)
    if not providers:
        return []
    with collector_paused():
        results = asyncio.run(_discover(providers))
    try:
        discovery.keep_results(results)
    except Exception:  # noqa: BLE001 - the dashboard's view of it; the cycle itself is done
        log.warning("could not keep the discovery results for the dashboard", exc_info=True)
    return results


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a cycle runs. A first cycle allocates hundreds of thousands
    of objects (listings, rows, events) that live until their listing is written: the collector,
    set off by the count, walked them and the whole heap again and again — 0.3–0.6 s of CPU with
    the GIL held, a fifth of the cycle. They are freed by reference counting as each listing is
    done; the few cycles among them (tasks, tracebacks) wait for the collector's next run."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


async def _discover(providers: list[Provider]) -> list[discovery.ProviderResult]:
    from registry.providers.http import close_clients

    learn = sync_to_async(_learn_key, thread_sensitive=False)

    async def list_models(provider: Provider):
        # The account's limits in listing.rate_limit are recorded with the listing (registry.discovery).
        adapter = adapter_for(provider)
        listing = await adapter.list_models()
        if provider.kind == "openrouter" and provider.has_api_key:
            key = quota.openrouter_key_known(provider)
            if key is None:
                key = await _openrouter_key(adapter, provider)
                if key is not None:
                    await learn(provider.pk, key)
            quota.openrouter_apply_cap(listing, key)
        return listing

    try:
        return await discovery.run_cycle(providers, list_models)
    finally:
        await close_clients()


async def _openrouter_key(adapter: Adapter, provider: Provider) -> dict | None:
    """`GET /api/v1/key`: the account's free tier and credit. A failure costs the listing nothing."""
    try:
        return await asyncio.wait_for(adapter.key_info(), settings.AFMTS_DISCOVERY_TIMEOUT_SECONDS)
    except Exception as exc:  # noqa: BLE001 - the cap then stays what the table says
        log.warning("could not read the OpenRouter key of %s: %s", provider.slug, type(exc).__name__)
        return None


def _learn_key(provider_id: int, info: dict) -> dict:
    from django.db import connection

    try:
        return quota.openrouter_key_learned(provider_id, info)
    finally:
        connection.close()


@dataclass
class ProbeResult:
    model: str
    ok: bool | None  # None: no health evidence (the quota ran out, which says nothing of the model)
    latency_ms: float | None
    error: str = ""
    report: object | None = None  # the provider's rate-limit report (RateLimitInfo)
    report_source: str = "headers"


PROBE_REQUEST = {"messages": [{"role": "user", "content": "Reply with the word: ok"}], "max_tokens": 1, "temperature": 0}


def probe(models: list[AIModel] | None = None) -> list[ProbeResult]:
    """Send a one-token completion to every model that needs a probe (registry.health.probe_targets)
    and record the outcome as health evidence, with the quota it used and the provider's report."""
    models = health.probe_targets() if models is None else models
    if not models:
        return []
    results = asyncio.run(_probe(models))
    health.health_record([
        health.Sample(m.pk, r.ok, r.latency_ms, source="probe", error=r.error)
        for m, r in zip(models, results, strict=True) if r.ok is not None
    ])
    for model, result in zip(models, results, strict=True):
        # Count first, then the provider's report, which already includes this request.
        if result.ok is not None and model.is_free:
            quota.quota_count(model=model, tokens=len(PROBE_REQUEST["messages"][0]["content"]) // 4 + 1)
        if result.report is not None:
            quota.quota_observe(provider_id=model.provider_id, model=model, info=result.report, source=result.report_source)
    return results


async def _probe(models: list[AIModel]) -> list[ProbeResult]:
    from registry.providers.errors import ProviderError, RateLimited
    from registry.providers.http import close_clients
    from registry.providers.types import RateLimitInfo

    async def one(model: AIModel) -> ProbeResult:
        adapter = adapter_for(model.provider)
        started = time.perf_counter()
        try:
            await asyncio.wait_for(
                adapter.chat({**PROBE_REQUEST, "model": model.model_id}), settings.AFMTS_PROBE_TIMEOUT_SECONDS
            )
            result = ProbeResult(model.public_id, True, (time.perf_counter() - started) * 1000)
        except RateLimited as exc:
            # Out of quota is not ill health: record the block, not a failure of the model.
            info = exc.rate_limit or RateLimitInfo(retry_after=exc.retry_after)
            if exc.retry_after and not info.retry_after:
                info.retry_after = exc.retry_after
            return ProbeResult(model.public_id, None, None, f"rate limited: {exc.message}"[:255], info, "429")
        except (ProviderError, TimeoutError) as exc:
            result = ProbeResult(model.public_id, False, None, f"{type(exc).__name__}: {exc}"[:255])
        result.report = adapter.last_rate_limit
        return result

    try:
        return list(await asyncio.gather(*(one(m) for m in models)))
    finally:
        await close_clients()

