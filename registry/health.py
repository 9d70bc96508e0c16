"""Model health without spending free quota (DESIGN.md).

Evidence comes first from live traffic (every gateway result, recorded in batches with
`health_record`). A provider's listing says nothing about a model's health: a failing listing only
backs the listing off (registry.discovery), and a provider it marked down is up again as soon as one
of its models answers. An active probe — a one-token completion — runs only for a model with no
recent evidence, never against a provider whose free quota is account-wide and scarce unless an
operator turned `probe_enabled` on for it; paid models are probed only when they are down.

Anything marked down gets a way back (DESIGN.md, "Breakers and health judge rates, not counts"): a
down chat model is probed again after 1, 2, 4, ... minutes (capped at
AFMTS_PROBE_MAX_BACKOFF_SECONDS), paid ones included (one output token); a down model no probe may
reach (not a chat model, or a scarce account-wide free quota) gets a trial request instead after the
same back-off (`health_trial`: down → degraded, so the router may try it).

From the rolling window (the last AFMTS_HEALTH_WINDOW samples within AFMTS_HEALTH_WINDOW_SECONDS):
    reliability = successes / samples
    latency     = EWMA of successful latencies (alpha AFMTS_HEALTH_EWMA_ALPHA)
    status      = down      if the last 3 samples failed, or the last failed and reliability < 0.5
                            over ≥ 4 samples
                  degraded  if reliability < 0.9 over ≥ 4 samples, or the last sample failed
                  available otherwise
A status change publishes `health_changed`; metric drift is written at once and announced by one
`health_updated` event at most every AFMTS_HEALTH_REFRESH_SECONDS (each process then refreshes its
snapshot).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from afmts.logging import sanitize
from registry.bulk import STATEMENT_PARAMS_BESIDE_A_LOOP, insert_rows
from registry.events import publish_many
from registry.models import AIModel, HealthSample, ModelStatus, Provider, ProviderStatus, QuotaScope
from registry.selectors import model_instance_representation


@dataclass(frozen=True)
class Sample:
    model_pk: int
    ok: bool
    latency_ms: float | None = None
    source: str = "traffic"
    error: str = ""
    at: datetime | None = None


def status_from(window: list[bool]) -> str:
    """`window` is newest first."""
    if len(window) >= 3 and not any(window[:3]):
        return ModelStatus.DOWN
    reliability = sum(window) / len(window) if window else 1.0
    if len(window) >= 4 and reliability < 0.5 and not window[0]:
        return ModelStatus.DOWN
    if (len(window) >= 4 and reliability < 0.9) or (window and not window[0]):
        return ModelStatus.DEGRADED
    return ModelStatus.AVAILABLE


@transaction.atomic
def health_record(samples: list[Sample], *, now: datetime | None = None) -> dict[str, int]:
    """Store a batch of evidence and derive each touched model's status, latency and reliability."""
    now = now or timezone.now()
    if not samples:
        return {"samples": 0, "changed": 0}
    # Plain rows (registry.bulk): the ORM's bulk_create spent ~65 µs a sample here, two thirds of the
    # usage writer's time, and that thread shares the GIL with the gateway's event loop.
    insert_rows(HealthSample, [
        {"model_id": s.model_pk, "ok": s.ok, "latency_ms": s.latency_ms, "source": s.source,
         "error": sanitize(s.error, 255) if s.error else "", "at": s.at or now}
        for s in samples
    ], max_params=STATEMENT_PARAMS_BESIDE_A_LOOP)
    by_model: dict[int, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_model[sample.model_pk].append(sample)
    alpha = settings.AFMTS_HEALTH_EWMA_ALPHA
    since = now - timedelta(seconds=settings.AFMTS_HEALTH_WINDOW_SECONDS)
    models = list(AIModel.objects.select_related("provider").select_for_update().filter(pk__in=by_model))
    events, changed = [], 0
    for model in models:
        window = list(
            HealthSample.objects.filter(model=model, at__gte=since).order_by("-at", "-id")
            .values_list("ok", flat=True)[: settings.AFMTS_HEALTH_WINDOW]
        )
        latency = model.latency_ms
        for sample in sorted(by_model[model.pk], key=lambda s: s.at or now):
            if sample.ok and sample.latency_ms is not None:
                latency = sample.latency_ms if latency is None else alpha * sample.latency_ms + (1 - alpha) * latency
        reliability = round(sum(window) / len(window), 4) if window else model.reliability
        status = model.status if model.status == ModelStatus.RETIRED or "status" in (model.pinned_fields or []) else status_from(window)
        old_status = model.status
        if (latency, reliability, status) == (model.latency_ms, model.reliability, old_status):
            continue
        model.latency_ms, model.reliability, model.status = latency, reliability, status
        model.save(update_fields=["latency_ms", "reliability", "status", "updated_at"])
        changed += 1
        if status != old_status:
            events.append(("health_changed", {
                **model_instance_representation(model, model.provider), "previousStatus": old_status,
            }))
    # A provider marked down by failing listings is up again as soon as one of its models answers.
    revived = {
        model.provider_id: model.provider for model in models
        if model.provider.status == ProviderStatus.DOWN and any(x.ok for x in by_model[model.pk])
    }
    if revived:
        Provider.objects.filter(pk__in=revived, status=ProviderStatus.DOWN).update(status=ProviderStatus.UP)
        events += [("provider_up", {"provider": p.slug, "via": "traffic"}) for p in revived.values()]
    global _last_refresh
    status_changed = bool(events)
    # Metric drift alone refreshes every process's snapshot at most every AFMTS_HEALTH_REFRESH_SECONDS,
    # so steady traffic does not make the registry rebuild itself every second.
    if changed and (status_changed or time.monotonic() - _last_refresh >= settings.AFMTS_HEALTH_REFRESH_SECONDS):
        events.append(("health_updated", {"models": changed}))
        _last_refresh = time.monotonic()
    if events:
        publish_many(events)
    return {"samples": len(samples), "changed": changed}


_last_refresh = float("-inf")


def scarce_account_quota(provider, free_models: list[AIModel]) -> bool:
    """True when the provider's free quota is shared by the account and small (OpenRouter's 50/day)."""
    for model in free_models:
        if model.quota_scope == QuotaScope.ACCOUNT:
            rpd = model.free_rpd or provider.free_rpd
            if rpd is None or rpd < settings.AFMTS_PROBE_SCARCE_RPD:
                return True
    return provider.free_rpd is not None and provider.free_rpd < settings.AFMTS_PROBE_SCARCE_RPD


CHAT_TYPES = ("llm", "chat", "vision")


def _probeable(models: list[AIModel]) -> list[AIModel]:
    """The models a one-token probe may be sent to: chat models; a free one only where it spends no
    scarce account-wide quota (local, `probe_enabled`, or a roomy quota); a paid one only when it is
    down (its probe costs one output token, and without it nothing would ever bring it back)."""
    from registry.providers import adapter_class

    free_by_provider: dict[int, list[AIModel]] = defaultdict(list)
    for model in models:
        if model.is_free:
            free_by_provider[model.provider_id].append(model)
    allowed = {
        pid for pid, free in free_by_provider.items()
        if free[0].provider.probe_enabled
        or adapter_class(free[0].provider.kind).is_local(free[0].provider.base_url)
        or not scarce_account_quota(free[0].provider, free)
    }
    return [
        m for m in models
        if m.type in CHAT_TYPES and (m.provider_id in allowed if m.is_free else m.status == ModelStatus.DOWN)
    ]


def _due(models: list[AIModel], now: datetime) -> list[AIModel]:
    """Those of `models` whose evidence is old enough: a healthy model after AFMTS_PROBE_IDLE_SECONDS
    without any, a failing one after 1, 2, 4, ... minutes (capped at AFMTS_PROBE_MAX_BACKOFF_SECONDS)
    from its latest failure."""
    idle = settings.AFMTS_PROBE_IDLE_SECONDS
    recent: dict[int, list[tuple[bool, datetime]]] = defaultdict(list)
    for model_id, ok, at in (
        HealthSample.objects.filter(model__in=models)
        .filter(at__gte=now - timedelta(seconds=settings.AFMTS_PROBE_MAX_BACKOFF_SECONDS + idle))
        .order_by("-at").values_list("model_id", "ok", "at")
    ):
        recent[model_id].append((ok, at))
    due = []
    for model in models:
        history = recent.get(model.pk, [])
        if not history:
            due.append(model)
            continue
        failures = 0
        for ok, _ in history:
            if ok:
                break
            failures += 1
        wait = min(60 * 2 ** (failures - 1), settings.AFMTS_PROBE_MAX_BACKOFF_SECONDS) if failures else idle
        if now - history[0][1] >= timedelta(seconds=wait):
            due.append(model)
    return due


def _live_models():
    return (
        AIModel.objects.select_related("provider")
        .filter(disabled=False, provider__enabled=True)
        .exclude(status=ModelStatus.RETIRED)
    )


def probe_targets(*, now: datetime | None = None) -> list[AIModel]:
    """Models that need an active probe now (see `_probeable` and `_due`): free or local models
    without recent evidence, and down models — paid ones included — once their back-off is over,
    so that a model passive health marked down comes back when it answers."""
    now = now or timezone.now()
    candidates = list(
        _live_models().filter(Q(is_free=True) | Q(status=ModelStatus.DOWN)).filter(type__in=CHAT_TYPES)
    )
    return _due(_probeable(candidates), now)


def trial_targets(*, now: datetime | None = None) -> list[AIModel]:
    """Down models no probe will reach (not chat models, or free on a scarce account-wide quota)
    whose back-off is over: they get a trial request instead (`health_trial`)."""
    now = now or timezone.now()
    down = [m for m in _live_models().filter(status=ModelStatus.DOWN) if "status" not in (m.pinned_fields or [])]
    probed = {m.pk for m in _probeable(down)}
    return _due([m for m in down if m.pk not in probed], now)


def health_trial(*, now: datetime | None = None) -> list[AIModel]:
    """Let traffic try the down models of `trial_targets` again: their status goes down → degraded,
    so the router may send them a request (after the healthy ones: degraded scores lower). The
    trial's result is ordinary evidence: a failure puts the model straight back down (its window
    still holds the failures) with a longer wait next time; successes bring it back."""
    now = now or timezone.now()
    models = trial_targets(now=now)
    if not models:
        return []
    with transaction.atomic():
        AIModel.objects.filter(pk__in=[m.pk for m in models], status=ModelStatus.DOWN).update(
            status=ModelStatus.DEGRADED, updated_at=now,
        )
        events = []
        for model in models:
            model.status = ModelStatus.DEGRADED
            events.append(("health_changed", {
                **model_instance_representation(model, model.provider), "previousStatus": ModelStatus.DOWN,
                "trial": True,
            }))
        publish_many(events)
    return models


def prune_samples(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    deleted, _ = HealthSample.objects.filter(at__lt=now - timedelta(seconds=settings.AFMTS_HEALTH_KEEP_SECONDS)).delete()
    return deleted
