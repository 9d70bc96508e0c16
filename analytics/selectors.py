"""Reads of usage: reports over a window from the rollups (never the raw records), costs by day ×
key × provider, today's figures, a key's month-to-date spend.

Every report takes `key_id`: None for every key (operators), or one key's id (what a user key sees).
Money is Decimal throughout, summed exactly; percentiles come from the merged histograms
(analytics.histogram: within +9.05 % / -8.30 % of the exact value).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from analytics import histogram
from analytics.models import OutcomeClass, Resolution, UsageRollup
from analytics.rollups import ERR_AT, EVERY_KEY, LAT, MONEY_AT, STEP, SUMS, ZERO, Starts, cutoffs, floor, timed
from registry.budget import month_start

WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
RES_NAMES = {Resolution.MINUTE: "minute", Resolution.HOUR: "hour", Resolution.DAY: "day"}
ERROR_NAMES = {
    OutcomeClass.CLIENT: "client", OutcomeClass.RATE_LIMITED: "rateLimited", OutcomeClass.UPSTREAM: "upstream",
    OutcomeClass.TIMEOUT: "timeout", OutcomeClass.CANCELLED: "cancelled",
    OutcomeClass.STREAM_INTERRUPTED: "streamInterrupted",
}
QS = (0.5, 0.95, 0.99)
MONEY = Decimal("0.00000001")


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime
    res: str
    name: str = ""


def resolution_for(since: datetime, until: datetime, now: datetime) -> str:
    """The finest rollup that keeps a chart readable (≤ ~200 points) and still covers `since`."""
    span = until - since
    cut = cutoffs(now)
    if span <= timedelta(hours=3) and since >= cut[Resolution.MINUTE]:
        return Resolution.MINUTE
    if span <= timedelta(days=8) and since >= cut[Resolution.HOUR]:
        return Resolution.HOUR
    return Resolution.DAY


def window(name: str | None = None, since: datetime | None = None, until: datetime | None = None, *,
           now: datetime | None = None) -> Window:
    """A named window ending now, or [since, until) (until defaults to now). Bounds snap to the
    chosen resolution's buckets: a report covers whole buckets."""
    now = now or timezone.now()
    until = until or now
    if name:
        since = now - WINDOWS[name]
    elif since is None:
        since = now - WINDOWS["24h"]
    # Nothing is kept before the oldest day rollup or recorded after now: a window reaching centuries
    # either way would only walk empty buckets.
    oldest = floor(cutoffs(now)[Resolution.DAY], Resolution.DAY)
    since = min(max(since, oldest), now)
    until = min(max(until, since), now + STEP[Resolution.DAY])
    res = resolution_for(since, until, now)
    start = floor(since, res)
    end = floor(until, res)
    if end < until:
        end += STEP[res]
    return Window(start, end, res, name or "")


# ------------------------------------------------------------------ reading and merging rollups


def _rows(w: Window, *, key_id: int | None, model: tuple[int, str] | None = None,
          extra: dict | None = None):
    rows = UsageRollup.objects.filter(res=w.res, start__gte=w.since, start__lt=w.until, **(extra or {}))
    if key_id is not None:
        rows = rows.filter(key_id=key_id)
    elif w.res != Resolution.MINUTE:
        rows = rows.filter(key_id=EVERY_KEY)  # minute rollups have no every-key rows: sum them all
    if model is not None:
        pk, public_id = model
        rows = rows.filter(model_pk=pk) if pk else rows.filter(public_id=public_id)
    return rows.order_by()


SCALARS = SUMS[:LAT]  # everything but the two histograms, summed by the database
ZEROS = (0,) * 10 + (ZERO, ZERO, ZERO) + (0,) * 7


class Acc:
    """Sums of rollup rows: the scalars (SCALARS order) and the two histograms as ints."""

    __slots__ = ("sums", "lat", "ttft")

    def __init__(self) -> None:
        self.sums: list[Any] = list(ZEROS)
        self.lat = self.ttft = 0

    def add(self, sums) -> None:
        self.sums = list(map(operator.add, self.sums, sums))

    def merge(self, other: Acc) -> None:
        self.sums = list(map(operator.add, self.sums, other.sums))
        self.lat += other.lat
        self.ttft += other.ttft

    def summary(self) -> dict[str, Any]:
        s = self.sums
        requests, errors = s[0], s[1]
        lat = histogram.percentiles(self.lat, QS)
        ttft = histogram.percentiles(self.ttft, QS)
        return {
            "requests": requests,
            "errors": errors,
            "errorRate": round(errors / requests, 6) if requests else 0.0,
            "errorsByClass": {name: s[ERR_AT[cls]] for cls, name in ERROR_NAMES.items()},
            "failovers": s[3],
            "freeRequests": s[2],
            "tokensIn": s[4],
            "tokensOut": s[5],
            "latencyMs": _dist(s[6], s[7], lat),
            "ttftMs": _dist(s[8], s[9], ttft),
            "costUsd": _money(s[10]),
            "referenceCostUsd": _money(s[11]),
            "savingsUsd": _money(s[12]),
            "unpricedRequests": s[13],
        }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def _dist(count: int, total_us: int, ps: list[float | None]) -> dict[str, float | None]:
    r = _r
    return {"avg": r(total_us / count / 1000) if count else None, "p50": r(ps[0]), "p95": r(ps[1]), "p99": r(ps[2])}


def _money(value: Decimal) -> str:
    return str(Decimal(value).quantize(MONEY))


def _decimal(value: Any) -> Decimal:
    if value is None:
        return ZERO
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _grouped(rows, *by: str):
    """The scalars summed by the database per `by`: (by values, sums)."""
    sums = {f"s_{name}": Sum(name) for name in SCALARS}
    for row in rows.values(*by).annotate(**sums).order_by():
        yield tuple(row[b] for b in by), [
            _decimal(row[f"s_{n}"]) if i in MONEY_AT else (row[f"s_{n}"] or 0) for i, n in enumerate(SCALARS)]


def _report(rows, res: str, *, per_model: bool) -> tuple[Acc, dict[datetime, Acc], dict[tuple, Acc]]:
    """Totals, per bucket start and (with `per_model`) per (model pk, public id, provider): two
    GROUP BYs sum the scalars in the database, one narrow pass merges the histograms."""
    series: dict[datetime, Acc] = {}
    models: dict[tuple, Acc] = {}
    starts = Starts(res)
    for (start,), sums in _grouped(rows, "start"):
        series.setdefault(starts(start), Acc()).add(sums)
    if per_model:
        for key, sums in _grouped(rows, "model_pk", "public_id", "provider"):
            models.setdefault(key, Acc()).add(sums)
    by_pk = {(pk, public_id): acc for (pk, public_id, _), acc in models.items()}
    from_bytes = histogram.from_bytes
    spare = Acc()
    for e, pk, public_id, lat, ttft in timed(rows, "start").values_list("e", "model_pk", "public_id", "lat_hist",
                                                                          "ttft_hist"):
        lat, ttft = from_bytes(lat), from_bytes(ttft)
        point = series.get(starts(e)) or spare
        point.lat += lat
        point.ttft += ttft
        if per_model:
            acc = by_pk.get((pk, public_id)) or spare
            acc.lat += lat
            acc.ttft += ttft
    total = Acc()
    for acc in series.values():
        total.merge(acc)
    return total, series, models


def _series(w: Window, per_start: dict[datetime, Acc]) -> list[dict[str, Any]]:
    points = []
    at, step = w.since, STEP[w.res]
    empty = Acc()
    while at < w.until:
        s = (per_start.get(at) or empty).summary()
        points.append({
            "start": at.isoformat().replace("+00:00", "Z"), "requests": s["requests"], "errors": s["errors"],
            "errorRate": s["errorRate"], "latencyMs": s["latencyMs"], "ttftMs": s["ttftMs"],
            "tokensIn": s["tokensIn"], "tokensOut": s["tokensOut"], "costUsd": s["costUsd"],
            "savingsUsd": s["savingsUsd"],
        })
        at += step
    return points


def _head(w: Window) -> dict[str, Any]:
    return {"window": w.name or None, "since": w.since.isoformat().replace("+00:00", "Z"),
            "until": w.until.isoformat().replace("+00:00", "Z"), "resolution": RES_NAMES[w.res]}


def performance(w: Window, *, key_id: int | None = None) -> dict[str, Any]:
    """Overall, per model, per provider and a time series over `w`."""
    total, series, models = _report(_rows(w, key_id=key_id), w.res, per_model=True)
    providers: dict[str, Acc] = {}
    for (_pk, _public_id, provider), acc in models.items():
        providers.setdefault(provider, Acc()).merge(acc)
    by_model = [{"modelId": pk or None, "model": public_id, "provider": provider, **acc.summary()}
                for (pk, public_id, provider), acc in models.items()]
    by_provider = [{"provider": provider, **acc.summary()} for provider, acc in providers.items()]
    by_model.sort(key=lambda m: (-m["requests"], m["model"]))
    by_provider.sort(key=lambda p: (-p["requests"], p["provider"]))
    return {**_head(w), "totals": total.summary(), "models": by_model, "providers": by_provider,
            "series": _series(w, series)}


def model_usage(w: Window, model: tuple[int, str], *, key_id: int | None = None) -> dict[str, Any]:
    """One model's figures and series over `w`: `model` is (pk, public id); pk 0 reads by public id."""
    total, series, _ = _report(_rows(w, key_id=key_id, model=model), w.res, per_model=False)
    return {**_head(w), "totals": total.summary(), "series": _series(w, series)}


def costs(w: Window, *, key_id: int | None = None) -> list[dict[str, Any]]:
    """Spend and savings by day × key × provider (day rollups, one row per key)."""
    from registry.models import ApiKey

    day = Window(floor(w.since, Resolution.DAY), w.until if w.until == floor(w.until, Resolution.DAY)
                 else floor(w.until, Resolution.DAY) + STEP[Resolution.DAY], Resolution.DAY)
    rows = UsageRollup.objects.filter(res=Resolution.DAY, start__gte=day.since, start__lt=day.until)
    rows = rows.filter(key_id=key_id) if key_id is not None else rows.exclude(key_id=EVERY_KEY)
    grouped = (rows.order_by().values("start", "key_id", "provider")
               .annotate(requests=Sum("requests"), tokens_in=Sum("tokens_in"), tokens_out=Sum("tokens_out"),
                         cost=Sum("cost"), reference_cost=Sum("reference_cost"), savings=Sum("savings"),
                         unpriced=Sum("unpriced")).order_by("start", "key_id", "provider"))
    grouped = list(grouped)
    names = dict(ApiKey.objects.filter(id__in={g["key_id"] for g in grouped}).values_list("id", "name"))
    return [{
        "day": g["start"].date().isoformat(), "keyId": g["key_id"] or None, "key": names.get(g["key_id"], ""),
        "provider": g["provider"], "requests": g["requests"], "tokensIn": g["tokens_in"],
        "tokensOut": g["tokens_out"], "costUsd": _money(g["cost"] or ZERO),
        "referenceCostUsd": _money(g["reference_cost"] or ZERO), "savingsUsd": _money(g["savings"] or ZERO),
        "unpricedRequests": g["unpriced"],
    } for g in grouped]


def today(*, key_id: int | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Today's (UTC) requests, error rate, p95 latency, spend and savings."""
    now = now or timezone.now()
    start = floor(now, Resolution.DAY)
    w = Window(start, start + STEP[Resolution.DAY], Resolution.DAY)
    total, _, _ = _report(_rows(w, key_id=key_id), w.res, per_model=False)
    s = total.summary()
    return {"requests": s["requests"], "errorRate": s["errorRate"], "latencyP95Ms": s["latencyMs"]["p95"],
            "spendUsd": s["costUsd"], "savingsUsd": s["savingsUsd"]}


def month_spend(key_ids: list[int], *, now: datetime | None = None) -> dict[int, Decimal]:
    """Each key's spend this month (UTC), from the day rollups: exact Decimal sums."""
    now = now or timezone.now()
    spent: dict[int, Decimal] = {}
    rows = (UsageRollup.objects.filter(res=Resolution.DAY, start__gte=month_start(now), key_id__in=key_ids)
            .order_by().values_list("key_id", "cost"))
    for key_id, cost in rows:
        spent[key_id] = spent.get(key_id, ZERO) + Decimal(str(cost))
    return spent

