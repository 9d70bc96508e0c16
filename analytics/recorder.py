"""Everything the gateway learns from a request, recorded off the request path.

The request path appends one `Outcome` to an in-memory buffer (no I/O). A flush — every
AFMTS_USAGE_FLUSH_SECONDS from a background task of the gateway process, in a worker thread —
writes the batch in a few statements: usage rows, health evidence (passive health), counts and
reports of free quota, breaker transitions and a sample of `request_routed` events. A failing flush
is logged and its batch dropped after a retry: it never slows or fails a request.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)

MILLION = Decimal(1_000_000)


@dataclass
class Outcome:
    ts: float
    request_id: str
    endpoint: str
    requested_model: str
    key_id: int | None = None
    key_name: str = ""
    model_pk: int | None = None
    public_id: str = ""
    provider: str = ""
    provider_id: int | None = None
    is_free: bool = False
    stream: bool = False
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float | None = None
    ttft_ms: float | None = None
    overhead_ms: float | None = None
    attempts: int = 1
    status: str = "ok"
    http_status: int = 200
    # (model pk, ok, latency ms, error) for every attempt: passive health
    samples: list[tuple[int, bool, float | None, str]] = field(default_factory=list)
    # (model pk, RateLimitInfo, source) reported by the provider
    reports: list[tuple[int, Any, str]] = field(default_factory=list)
    # ("circuit_opened"/"circuit_closed", key)
    breaker_changes: list[tuple[str, str]] = field(default_factory=list)


class Recorder:
    def __init__(self) -> None:
        self._buffer: list[Outcome] = []
        self._lock = threading.Lock()
        self._routed_sampled = 0

    def add(self, outcome: Outcome) -> None:
        self._buffer.append(outcome)  # list.append is atomic under the GIL: no lock on the hot path

    def pending(self) -> int:
        return len(self._buffer)

    def take(self) -> list[Outcome]:
        with self._lock:
            batch, self._buffer = self._buffer, []
        return batch

    def flush(self) -> int:
        """Write what is buffered (call from a thread, never from the event loop)."""
        batch = self.take()
        if batch:
            try:
                write(batch)
            except Exception:  # noqa: BLE001 - analytics never fail traffic; retried once
                log.exception("usage flush failed; retrying once")
                try:
                    write(batch)
                except Exception:  # noqa: BLE001
                    log.exception("usage flush failed again; %d records dropped", len(batch))
        return len(batch)


recorder = Recorder()


def _cost(tokens_in: int, tokens_out: int, input_price, output_price) -> Decimal | None:
    if input_price is None or output_price is None:
        return None
    return (Decimal(tokens_in) * Decimal(str(input_price)) + Decimal(tokens_out) * Decimal(str(output_price))) / MILLION


def reference_model(view, snap):
    """What the same tokens would have cost elsewhere: AFMTS_REFERENCE_MODEL if set, else the
    cheapest paid model of known price with the same type and at least the same capabilities."""
    chosen = settings.AFMTS_REFERENCE_MODEL
    if chosen:
        return snap.by_public_id.get(chosen)
    best, best_price = None, None
    for m in snap.ranked["cheap"]:
        if m.is_free or m.input_price is None or m.output_price is None or m.type != view.type:
            continue
        if not m.capabilities >= view.capabilities:
            continue
        price = m.input_price + m.output_price
        if best_price is None or price < best_price:
            best, best_price = m, price
    return best


def write(batch: list[Outcome]) -> None:
    from django.db import transaction

    from analytics.models import UsageRecord
    from registry.events import publish_many
    from registry.health import Sample, health_record
    from registry.models import AIModel
    from registry.quota import quota_count, quota_observe
    from registry.selectors import snapshot

    snap = snapshot()
    rows, samples = [], []
    counts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    reports: dict[int, tuple[Any, str]] = {}
    events: list[tuple[str, dict]] = []
    reference_cache: dict[int, Any] = {}
    for o in batch:
        view = snap.by_pk.get(o.model_pk) if o.model_pk else None
        cost = ref_cost = None
        ref_id = ""
        if view is not None:
            cost = Decimal(0) if view.is_free else _cost(o.tokens_in, o.tokens_out, view.input_price, view.output_price)
            if view.pk not in reference_cache:
                reference_cache[view.pk] = reference_model(view, snap)
            ref = reference_cache[view.pk]
            if ref is not None:
                ref_id = ref.public_id
                ref_cost = _cost(o.tokens_in, o.tokens_out, ref.input_price, ref.output_price)
        rows.append(UsageRecord(
            ts=datetime.fromtimestamp(o.ts, tz=UTC), request_id=o.request_id, key_id=o.key_id, key_name=o.key_name,
            endpoint=o.endpoint, requested_model=o.requested_model[:320], model_id=view.pk if view else None,
            public_id=o.public_id, provider=o.provider, is_free=o.is_free, stream=o.stream, tokens_in=o.tokens_in,
            tokens_out=o.tokens_out, latency_ms=o.latency_ms, ttft_ms=o.ttft_ms, overhead_ms=o.overhead_ms,
            attempts=o.attempts, status=o.status, http_status=o.http_status, cost=cost, reference_cost=ref_cost,
            reference_model=ref_id,
        ))
        for pk, ok, latency, error in o.samples:
            if pk in snap.by_pk:
                samples.append(Sample(pk, ok, latency, source="traffic", error=error, at=datetime.fromtimestamp(o.ts, tz=UTC)))
        if view is not None and view.is_free and o.status == "ok":
            counts[view.pk][0] += 1
            counts[view.pk][1] += o.tokens_in + o.tokens_out
        for pk, info, source in o.reports:
            reports[pk] = (info, source)
        for change, key in o.breaker_changes:
            events.append((change, {"key": key, "at": o.ts}))
    with transaction.atomic():
        UsageRecord.objects.bulk_create(rows, batch_size=1000)
    if samples:
        health_record(samples)
    if counts or reports:
        models = {m.pk: m for m in AIModel.objects.filter(pk__in=set(counts) | set(reports))}
        for pk, (requests, tokens) in counts.items():
            if pk in models:
                quota_count(model=models[pk], requests=requests, tokens=tokens)
        for pk, (info, source) in reports.items():
            if pk in models:
                quota_observe(provider_id=models[pk].provider_id, model=models[pk], info=info, source=source)
    last = batch[-1]
    if last.model_pk:
        # One request_routed event per flush: a live sample, not a log (the usage table is the log).
        events.append(("request_routed", {
            "requestId": last.request_id, "model": last.public_id, "provider": last.provider, "isFree": last.is_free,
            "attempts": last.attempts, "status": last.status, "latencyMs": last.latency_ms,
            "tokensIn": last.tokens_in, "tokensOut": last.tokens_out, "batch": len(batch),
        }))
    if events:
        publish_many(events, registry_change=False)
