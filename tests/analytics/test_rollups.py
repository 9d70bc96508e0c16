"""Rollups on known records: percentiles within the documented bound, exact Decimal costs and
savings, late records in their own bucket, rebuilt buckets identical, retention in batches.

Records go in through the recorder's real write path (which marks their minutes), rollups through
`build()`, reports through the selectors and the REST API."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from analytics import histogram, rollups, selectors
from analytics.models import Resolution, RollupDirty, UsageRecord, UsageRollup
from analytics.recorder import Outcome, write
from registry.stats import percentile

FREE = {"model_id": "llama-3.1-8b-instant", "is_free": True}
PAID = {"model_id": "gpt-4o-mini", "input_price": "0.15", "output_price": "0.6"}


@pytest.fixture
def models(make_model):
    free = make_model("llama-3.1-8b-instant", provider="groq", is_free=True)
    paid = make_model("gpt-4o-mini", provider="openai", input_price="0.15", output_price="0.6")
    return free, paid


def rec(model=None, *, ts: float | None = None, key_id: int | None = None, latency: float = 100.0,
        ttft: float | None = None, tokens: tuple[int, int] = (10, 5), status: str = "ok", http: int = 200,
        attempts: int = 1, endpoint: str = "chat.completions") -> Outcome:
    o = Outcome(ts=time.time() if ts is None else ts, request_id="r", endpoint=endpoint, requested_model="auto",
                key_id=key_id, tokens_in=tokens[0], tokens_out=tokens[1], latency_ms=latency, ttft_ms=ttft,
                status=status, http_status=http, attempts=attempts)
    if model is not None:
        o.model_pk, o.public_id, o.provider, o.is_free = model.pk, f"{model.provider.slug}/{model.model_id}", \
            model.provider.slug, model.is_free
    return o


def rows(res: str) -> list[tuple]:
    fields = [f.name for f in UsageRollup._meta.fields if f.name != "id"]
    return sorted((tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
                   for r in UsageRollup.objects.filter(res=res).values_list(*fields)), key=repr)


def test_the_histogram_bound_holds_on_every_bucket_edge():
    for ms in [0.3, 1, 1.18, 2, 3.7, 50, 99.9, 100, 1234.5, 60_000, 1_000_000]:
        (p,) = histogram.percentiles(histogram.of([ms]), [0.5])
        assert abs(p / ms - 1) <= histogram.BOUND or (ms < 1 and abs(p - ms) <= 0.5)


def test_rollup_percentiles_equal_raw_percentiles_within_the_bound(models):
    free, _ = models
    rnd = random.Random(7)
    now = time.time()
    latencies = [rnd.lognormvariate(5.5, 0.9) + 1 for _ in range(2000)]  # ~250 ms, a long tail
    ttfts = [lat / 3 + 1 for lat in latencies]
    write([rec(free, ts=now - rnd.uniform(0, 3000), latency=lat, ttft=t) for lat, t in zip(latencies, ttfts, strict=True)])

    rollups.build()

    for name in ("1h", "24h", "7d", "30d"):  # minute, hour and day rollups
        report = selectors.performance(selectors.window(name))
        assert report["totals"]["requests"] == 2000
        for q, label in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            for got, raw in ((report["totals"]["latencyMs"][label], latencies), (report["totals"]["ttftMs"][label], ttfts)):
                exact = percentile(raw, q)
                assert abs(got / exact - 1) <= histogram.BOUND + 1e-6, (name, label, got, exact)


def test_costs_and_savings_are_exact_in_decimal(models, admin_api):
    free, paid = models
    now = time.time()
    batch = [rec(paid, ts=now - i, tokens=(1000 + i, 333 + i)) for i in range(50)]
    batch += [rec(free, ts=now - i, tokens=(777, 1 + i)) for i in range(50)]
    write(batch)
    rollups.build()

    in_price, out_price = Decimal("0.15"), Decimal("0.6")
    paid_cost = sum(((Decimal(1000 + i) * in_price + Decimal(333 + i) * out_price) / Decimal(10**6)
                     for i in range(50)), Decimal(0))
    # The free model's reference is the cheapest comparable paid model (gpt-4o-mini here).
    savings = sum(((Decimal(777) * in_price + Decimal(1 + i) * out_price) / Decimal(10**6) for i in range(50)), Decimal(0))
    stored = UsageRecord.objects.filter(model=paid)
    assert sum((r.cost for r in stored), Decimal(0)) == paid_cost

    totals = admin_api.get("/api/performance?window=24h").json()["totals"]
    assert Decimal(totals["costUsd"]) == paid_cost
    assert Decimal(totals["savingsUsd"]) == savings
    assert Decimal(totals["referenceCostUsd"]) == paid_cost + savings
    day = selectors.today()
    assert Decimal(day["spendUsd"]) == paid_cost and Decimal(day["savingsUsd"]) == savings
    costs = admin_api.get("/api/analytics/costs?window=24h").json()["rows"]
    assert sum(Decimal(r["costUsd"]) for r in costs) == paid_cost
    assert sum(Decimal(r["savingsUsd"]) for r in costs) == savings


def test_a_late_record_lands_in_its_own_minute_hour_and_day(models):
    free, _ = models
    now = datetime.now(UTC)
    write([rec(free, ts=now.timestamp(), latency=10)])
    rollups.build()
    then = now - timedelta(hours=3)

    write([rec(free, ts=then.timestamp(), latency=20)])  # arrives now, happened three hours ago
    done = rollups.build()

    assert done["minutes"] == 1 and RollupDirty.objects.count() == 0
    for res in (Resolution.MINUTE, Resolution.HOUR, Resolution.DAY):
        bucket = UsageRollup.objects.filter(res=res, start=rollups.floor(then, res), key_id=0)
        assert sum(b.requests for b in bucket) == 1 + (rollups.floor(then, res) == rollups.floor(now, res))
    assert sum(r.requests for r in UsageRollup.objects.filter(res=Resolution.DAY, key_id=0)) == 2


def test_a_late_record_older_than_the_minute_rollups_rebuilds_its_hour_from_raw(models, settings):
    free, _ = models
    old = datetime.now(UTC) - timedelta(days=5)  # minute rollups are kept 2 days
    write([rec(free, ts=old.timestamp()), rec(free, ts=old.timestamp() + 1)])

    rollups.build()

    assert not UsageRollup.objects.filter(res=Resolution.MINUTE).exists()
    hour = UsageRollup.objects.get(res=Resolution.HOUR, start=rollups.floor(old, Resolution.HOUR), key_id=0)
    assert hour.requests == 2


def test_a_rebuilt_bucket_is_identical(models):
    free, paid = models
    rnd = random.Random(3)
    now = time.time()
    write([rec(rnd.choice(models), ts=now - rnd.uniform(0, 7200), key_id=rnd.choice([None, 1, 2]),
               latency=rnd.uniform(1, 900), ttft=rnd.choice([None, 5.5]), attempts=rnd.choice([1, 2]),
               status=rnd.choice(["ok", "ok", "upstream_error"]), http=200) for _ in range(300)])
    rollups.build()
    before = {res: rows(res) for res in Resolution.values}

    rollups.mark_range(datetime.fromtimestamp(now - 7300, UTC), datetime.fromtimestamp(now + 1, UTC))
    rollups.build()

    assert {res: rows(res) for res in Resolution.values} == before
    assert sum(r[8] for r in before[Resolution.DAY] if r[5] == rollups.EVERY_KEY) == 300  # requests


def test_outcome_classes_and_failovers_are_counted(models):
    free, _ = models
    write([rec(free), rec(free, status="rate_limited", http=429), rec(free, status="upstream_timeout", http=504),
           rec(free, status="upstream_error", http=502, attempts=3), rec(free, status="client_disconnected", http=499),
           rec(free, status="stream_interrupted"), rec(free, status="context_length_exceeded", http=400)])
    rollups.build()

    totals = selectors.performance(selectors.window("1h"))["totals"]

    assert totals["requests"] == 7 and totals["errors"] == 6 and totals["failovers"] == 2
    assert totals["errorsByClass"] == {"client": 1, "rateLimited": 1, "upstream": 1, "timeout": 1, "cancelled": 1,
                                       "streamInterrupted": 1}


def test_retention_prunes_raw_records_in_batches_and_keeps_the_rollups(models, monkeypatch):
    free, _ = models
    old = time.time() - 40 * 86400
    write([rec(free, ts=old + i) for i in range(12)] + [rec(free)])
    rollups.mark_range(datetime.fromtimestamp(old - 60, UTC), datetime.now(UTC))  # as if rolled up back then
    rollups.build(now=datetime.fromtimestamp(old + 3600, UTC))
    deletes = []
    real = UsageRecord.objects.filter

    def counting(*args, **kwargs):
        if "id__in" in kwargs:
            deletes.append(len(kwargs["id__in"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(rollups, "PRUNE_BATCH", 5)
    monkeypatch.setattr(UsageRecord.objects, "filter", counting)

    pruned = rollups.prune()

    assert pruned["raw"] == 12 and deletes == [5, 5, 2]
    assert UsageRecord.objects.count() == 1
    assert UsageRollup.objects.filter(res=Resolution.DAY, key_id=0).exists()  # the old day is still reported


def test_the_beat_schedule_has_the_rollup_and_retention_tasks(db):
    from django_celery_beat.models import PeriodicTask

    tasks = {t.task: t for t in PeriodicTask.objects.filter(name__startswith="AFMTS")}
    assert tasks["analytics.tasks.rollup_build"].interval.every == 60
    assert tasks["analytics.tasks.rollup_build"].expire_seconds < 60
    assert tasks["analytics.tasks.usage_prune"].enabled
