"""Usage rollups per minute, hour and day, built off the request path, and retention.

Contract:
- The recorder marks each minute that received new usage rows (`RollupDirty`, in the rows'
  transaction). `build()` — the beat task, every minute — takes the marks and rebuilds exactly the
  buckets they touch: the minutes from the raw records, their hours from the minute rollups (or from
  the raw records once the minute rollups are pruned), their days from the hour rollups. A record
  that arrives late (a spill file replayed after an outage) marks its own minute, so it lands in the
  right minute, hour and day whenever it comes.
- Rebuilding a bucket deletes its rows and inserts the aggregate, in one transaction: rebuilding twice
  gives the same rows (every field merges by addition: counts, sums, Decimal costs, histograms).
- Hour and day rollups carry, beside one row per API key, rows for every key together
  (`key_id = EVERY_KEY`, merged over endpoint and outcome too, errors by class in columns) so that
  operator reports over weeks read one row per model a day.
- Retention (`prune()`): raw records after METRICS_RETENTION_DAYS, minute rollups after
  METRICS_ROLLUP_MINUTE_DAYS, hour rollups after METRICS_ROLLUP_HOUR_DAYS (never less than the raw
  retention: old hours are rebuilt from raw records), day rollups after METRICS_ROLLUP_DAY_DAYS; in
  batches of PRUNE_BATCH rows, each its own short transaction. A bucket whose raw records may already
  be pruned is never rebuilt (its marks are dropped).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import operator
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from analytics import histogram
from analytics.models import OutcomeClass, Resolution, RollupDirty, UsageRecord, UsageRollup

log = logging.getLogger(__name__)

EVERY_KEY = -1
STEP = {Resolution.MINUTE: timedelta(minutes=1), Resolution.HOUR: timedelta(hours=1), Resolution.DAY: timedelta(days=1)}
FINER = {Resolution.HOUR: Resolution.MINUTE, Resolution.DAY: Resolution.HOUR}
PRUNE_BATCH = 5000
MAX_MARKS = 200_000  # marks taken by one build; the rest wait for the next
LOCK = 0x4146_4D54_5352  # PostgreSQL advisory lock id ("AFMTSR")
ZERO = Decimal(0)

DIMS = ("model_pk", "public_id", "provider", "key_id", "endpoint", "outcome")
# Summed fields, in the order of an aggregate list; the two histograms last.
SUMS = ("requests", "errors", "free", "failovers", "tokens_in", "tokens_out", "lat_count", "lat_sum_us",
        "ttft_count", "ttft_sum_us", "cost", "reference_cost", "savings", "unpriced", "err_client",
        "err_rate_limited", "err_upstream", "err_timeout", "err_cancelled", "err_stream", "lat_hist", "ttft_hist")
MONEY_AT = (10, 11, 12)
LAT, TTFT = SUMS.index("lat_hist"), SUMS.index("ttft_hist")
HIST_AT = (LAT, TTFT)
ERR_AT = {
    OutcomeClass.CLIENT: 14, OutcomeClass.RATE_LIMITED: 15, OutcomeClass.UPSTREAM: 16, OutcomeClass.TIMEOUT: 17,
    OutcomeClass.CANCELLED: 18, OutcomeClass.STREAM_INTERRUPTED: 19,
}
RAW = ("e", "model_id", "public_id", "provider", "key_id", "endpoint", "status", "http_status", "is_free",
       "attempts", "tokens_in", "tokens_out", "latency_ms", "ttft_ms", "cost", "reference_cost")


SECONDS = {Resolution.MINUTE: 60, Resolution.HOUR: 3600, Resolution.DAY: 86400}


class Epoch(models.Func):
    """A datetime column as epoch seconds, on PostgreSQL: read this way, rows skip Django's
    per-value timezone loader (~14 µs a value on psycopg, most of a rollup's read time)."""

    output_field = models.FloatField()

    def as_postgresql(self, compiler, conn, **extra):
        return self.as_sql(compiler, conn, template="EXTRACT(EPOCH FROM %(expressions)s)::float8", **extra)


class Starts:
    """Bucket starts by epoch seconds, each datetime made once."""

    def __init__(self, res: str) -> None:
        self.step = SECONDS[res]
        self.made: dict[int, datetime] = {}

    def __call__(self, epoch: float | datetime) -> datetime:
        if isinstance(epoch, datetime):
            epoch = epoch.timestamp()
        k = int(epoch // self.step)
        start = self.made.get(k)
        if start is None:
            start = self.made[k] = datetime.fromtimestamp(k * self.step, UTC)
        return start


def timed(rows, field: str):
    """`rows` with the datetime `field` readable as "e": epoch seconds on PostgreSQL, the datetime
    elsewhere (Starts takes either)."""
    if connection.vendor == "postgresql":
        return rows.annotate(e=Epoch(field))
    return rows.annotate(e=models.F(field))


def floor(ts: datetime, res: str) -> datetime:
    ts = ts.astimezone(UTC)
    if res == Resolution.MINUTE:
        return ts.replace(second=0, microsecond=0)
    if res == Resolution.HOUR:
        return ts.replace(minute=0, second=0, microsecond=0)
    return ts.replace(hour=0, minute=0, second=0, microsecond=0)


@functools.lru_cache(maxsize=1024)
def outcome_of(status: str, http_status: int) -> str:
    """A request's outcome class from its recorded status (`ok` or the error code) and HTTP status."""
    if status in ("ok", "stream_capped"):  # a capped stream was served until the cap
        return OutcomeClass.OK
    if status == "stream_interrupted":
        return OutcomeClass.STREAM_INTERRUPTED
    if status in ("client_disconnected", "cancelled") or http_status == 499:
        return OutcomeClass.CANCELLED
    if http_status == 429 or status == "rate_limited":
        return OutcomeClass.RATE_LIMITED
    if "timeout" in status or http_status == 504:
        return OutcomeClass.TIMEOUT
    if 400 <= http_status < 500:
        return OutcomeClass.CLIENT
    if http_status >= 500:
        return OutcomeClass.UPSTREAM
    return OutcomeClass.OK if http_status < 400 else OutcomeClass.UPSTREAM


def savings_of(cost: Decimal | None, reference_cost: Decimal | None) -> Decimal:
    """What a request saved: the reference model's cost for the same tokens minus what it cost,
    never below zero; zero when either is unknown (README, "Savings")."""
    if cost is None or reference_cost is None:
        return ZERO
    return max(reference_cost - cost, ZERO)


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(str(value))  # SQLite hands back floats (shortest repr: exact at 8 places)


# ------------------------------------------------------------------ aggregation


def _empty() -> list[Any]:
    return [0] * 10 + [ZERO, ZERO, ZERO] + [0] * 9


def aggregate_raw(rows: Iterable[tuple], res: str, *, every: bool) -> dict[tuple, list[Any]]:
    """Raw record tuples (RAW order, the time as epoch seconds) → {(start, *DIMS): sums}; with
    `every`, also the rows of every key together (key_id EVERY_KEY)."""
    out: dict[tuple, list[Any]] = {}
    shift = histogram.SHIFT
    bucket = histogram.bucket
    starts = Starts(res)
    for (epoch, model_id, public_id, provider, key_id, endpoint, status, http_status, is_free, attempts,
         tokens_in, tokens_out, latency, ttft, cost, ref_cost) in rows:
        outcome = outcome_of(status, http_status)
        if cost is not None and not isinstance(cost, Decimal):
            cost = _decimal(cost)
        if ref_cost is not None and not isinstance(ref_cost, Decimal):
            ref_cost = _decimal(ref_cost)
        start = starts(epoch)
        keys = [(start, model_id or 0, public_id, provider, key_id or 0, endpoint, outcome)]
        if every:
            keys.append((start, model_id or 0, public_id, provider, EVERY_KEY, "", ""))
        for k in keys:
            a = out.get(k)
            if a is None:
                a = out[k] = _empty()
            a[0] += 1
            if outcome != OutcomeClass.OK:
                a[1] += 1
                a[ERR_AT[outcome]] += 1
            if is_free:
                a[2] += 1
            a[3] += max(attempts - 1, 0)
            a[4] += tokens_in
            a[5] += tokens_out
            if latency is not None:
                a[6] += 1
                a[7] += round(latency * 1000)
                a[LAT] += shift[bucket(latency)]
            if ttft is not None:
                a[8] += 1
                a[9] += round(ttft * 1000)
                a[TTFT] += shift[bucket(ttft)]
            if cost is None:
                a[13] += 1
            else:
                a[10] += cost
            if ref_cost is not None:
                a[11] += ref_cost
            a[12] += savings_of(cost, ref_cost)
    return out


def merge_rows(rows: Iterable[tuple], res: str, *, every: bool) -> dict[tuple, list[Any]]:
    """Finer rollup tuples (start as epoch seconds, *DIMS, *SUMS) → {(start at `res`, *DIMS): sums}. Rows of every key
    are merged into their own (`every`: from the per-key rows when the finer ones have none)."""
    out: dict[tuple, list[Any]] = {}
    add = operator.add
    lat, ttft = HIST_AT
    starts = Starts(res)
    for row in rows:
        start = starts(row[0])
        dims = row[1:7]
        sums = list(row[7:])
        sums[lat], sums[ttft] = histogram.from_bytes(sums[lat]), histogram.from_bytes(sums[ttft])
        for i in MONEY_AT:
            sums[i] = _decimal(sums[i])
        keys = [(start, *dims)]
        if every and dims[3] != EVERY_KEY:
            keys.append((start, *dims[:3], EVERY_KEY, "", ""))
        elif dims[3] == EVERY_KEY and every:
            keys = []  # rebuilt from the per-key rows above
        for k in keys:
            a = out.get(k)
            out[k] = sums[:] if a is None else list(map(add, a, sums))
    return out


# ------------------------------------------------------------------ writing buckets


def _insert(res: str, aggregates: dict[tuple, list[Any]]) -> int:
    if not aggregates:
        return 0
    quote = connection.ops.quote_name
    columns = ("res", "start", *DIMS, *SUMS)
    table = quote(UsageRollup._meta.db_table)
    adapt_ts = connection.ops.adapt_datetimefield_value
    adapt_dec = connection.ops.adapt_decimalfield_value
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    per = max(1, min(500, (connection.features.max_query_params or 10_000) // len(columns)))
    if connection.vendor == "postgresql":  # COPY: ~10x a multi-row INSERT's speed for big buckets
        with connection.cursor() as cursor, cursor.cursor.copy(
            f"COPY {table} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
        ) as copy:
            for (start, *dims), s in aggregates.items():
                copy.write_row((res, start, *dims, *s[:LAT], histogram.to_bytes(s[LAT]), histogram.to_bytes(s[TTFT])))
        return len(aggregates)
    rows = []
    for (start, *dims), s in aggregates.items():
        values = [*s[:LAT], histogram.to_bytes(s[LAT]), histogram.to_bytes(s[TTFT])]
        for i in MONEY_AT:
            values[i] = adapt_dec(values[i], 20, 8)
        rows.append((res, adapt_ts(start), *dims, *values))
    with connection.cursor() as cursor:
        for at in range(0, len(rows), per):
            chunk = rows[at:at + per]
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)}) VALUES {', '.join([one] * len(chunk))}",
                [v for row in chunk for v in row],
            )
    return len(rows)


def _replace(res: str, lo: datetime, hi: datetime, aggregates: dict[tuple, list[Any]]) -> int:
    with transaction.atomic():
        UsageRollup.objects.filter(res=res, start__gte=lo, start__lt=hi).delete()
        return _insert(res, aggregates)


def rebuild_from_raw(res: str, lo: datetime, hi: datetime) -> int:
    """Rebuild the `res` buckets in [lo, hi) from the raw records; returns the rows written."""
    rows = UsageRecord.objects.filter(ts__gte=lo, ts__lt=hi).order_by()
    rows = timed(rows, "ts").values_list(*RAW)
    return _replace(res, lo, hi, aggregate_raw(rows.iterator(chunk_size=10_000), res, every=res != Resolution.MINUTE))


def rebuild_from_finer(res: str, lo: datetime, hi: datetime) -> int:
    """Rebuild the `res` buckets in [lo, hi) from the next finer rollups."""
    finer = FINER[res]
    rows = (UsageRollup.objects.filter(res=finer, start__gte=lo, start__lt=hi).order_by()
            )
    rows = timed(rows, "start").values_list("e", *DIMS, *SUMS)
    if res == Resolution.DAY:  # hours carry their every-key rows: merge those, not the per-key ones twice
        per_key = merge_rows((r for r in rows if r[4] != EVERY_KEY), res, every=False)
        every = merge_rows((r for r in rows if r[4] == EVERY_KEY), res, every=False)
        return _replace(res, lo, hi, {**per_key, **every})
    return _replace(res, lo, hi, merge_rows(rows, res, every=True))


# ------------------------------------------------------------------ the build


def cutoffs(now: datetime) -> dict[str, datetime]:
    """The oldest time each store is complete at: raw records, and minute and hour rollups."""
    raw_days = settings.METRICS_RETENTION_DAYS
    return {
        "raw": now - timedelta(days=raw_days),
        Resolution.MINUTE: now - timedelta(days=settings.METRICS_ROLLUP_MINUTE_DAYS),
        Resolution.HOUR: now - timedelta(days=max(settings.METRICS_ROLLUP_HOUR_DAYS, raw_days + 1)),
        Resolution.DAY: now - timedelta(days=max(settings.METRICS_ROLLUP_DAY_DAYS, raw_days + 1)),
    }


def _ranges(minutes: list[datetime]) -> Iterator[tuple[datetime, datetime]]:
    """Sorted minutes → [lo, hi) runs of consecutive minutes."""
    one = STEP[Resolution.MINUTE]
    lo = prev = None
    for m in minutes:
        if lo is None:
            lo = prev = m
        elif m == prev + one:
            prev = m
        else:
            yield lo, prev + one
            lo = prev = m
    if lo is not None:
        yield lo, prev + one


@contextlib.contextmanager
def exclusive() -> Iterator[bool]:
    """One build at a time across processes: an advisory lock on PostgreSQL, the cache elsewhere
    (embedded mode has one worker host; SQLite serialises writers anyway)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK])
            got = cursor.fetchone()[0]
        try:
            yield got
        finally:
            if got:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK])
        return
    from django.core.cache import cache

    got = cache.add("afmts:rollup-build", 1, timeout=600)
    try:
        yield got
    finally:
        if got:
            cache.delete("afmts:rollup-build")


def mark(minutes: Iterable[datetime]) -> int:
    """Mark minutes for the next build (the recorder does this for every new row)."""
    marks = [RollupDirty(minute=m) for m in {floor(m, Resolution.MINUTE) for m in minutes}]
    RollupDirty.objects.bulk_create(marks)
    return len(marks)


def mark_epochs(timestamps: Iterable[float]) -> int:
    """`mark` for epoch seconds (the recorder's timestamps)."""
    return mark(datetime.fromtimestamp(m * 60, tz=UTC) for m in {int(ts // 60) for ts in timestamps})


def mark_range(since: datetime, until: datetime) -> int:
    """Mark every minute in [since, until) that has raw records (rebuilding rollups by hand)."""
    from django.db.models.functions import TruncMinute

    minutes = (UsageRecord.objects.filter(ts__gte=since, ts__lt=until).order_by()
               .annotate(m=TruncMinute("ts")).values_list("m", flat=True).distinct())
    return mark(minutes)


def build(*, now: datetime | None = None) -> dict[str, int]:
    """Rebuild every bucket touched by the marks; returns what was done (buckets and rows)."""
    now = now or timezone.now()
    done = {"marks": 0, "minutes": 0, "hours": 0, "days": 0, "rows": 0, "skipped": 0}
    with exclusive() as got:
        if not got:
            return done
        marks = list(RollupDirty.objects.order_by("id").values_list("id", "minute")[:MAX_MARKS])
        if not marks:
            return done
        done["marks"] = len(marks)
        cut = cutoffs(now)
        minutes = sorted({floor(m, Resolution.MINUTE) for _, m in marks})
        kept = [m for m in minutes if m >= cut["raw"]]
        done["skipped"] = len(minutes) - len(kept)
        if done["skipped"]:
            log.warning("%d marked minutes are older than the raw retention; not rolled up", done["skipped"])
        hours: dict[datetime, list[datetime]] = {}
        for m in kept:
            hours.setdefault(floor(m, Resolution.HOUR), []).append(m)
        hour = STEP[Resolution.HOUR]
        for h, ms in hours.items():
            fresh = [m for m in ms if m >= cut[Resolution.MINUTE]]
            for lo, hi in _ranges(fresh):
                done["rows"] += rebuild_from_raw(Resolution.MINUTE, lo, hi)
            done["minutes"] += len(fresh)
            if h >= cut[Resolution.MINUTE]:
                done["rows"] += rebuild_from_finer(Resolution.HOUR, h, h + hour)
            elif h >= cut["raw"]:
                done["rows"] += rebuild_from_raw(Resolution.HOUR, h, h + hour)
            else:
                continue  # straddles the raw retention: its raw records may be gone
            done["hours"] += 1
        for d in sorted({floor(h, Resolution.DAY) for h in hours}):
            if d >= cut[Resolution.HOUR]:
                done["rows"] += rebuild_from_finer(Resolution.DAY, d, d + STEP[Resolution.DAY])
                done["days"] += 1
        ids = [i for i, _ in marks]
        for at in range(0, len(ids), PRUNE_BATCH):
            RollupDirty.objects.filter(id__in=ids[at:at + PRUNE_BATCH]).delete()
    return done


# ------------------------------------------------------------------ retention


def _prune(model, field: str, cutoff: datetime, extra: dict | None = None, *, pause: float = 0.0) -> int:
    """Delete rows older than `cutoff` PRUNE_BATCH at a time (short transactions, short locks)."""
    total = 0
    base = model.objects.filter(**{f"{field}__lt": cutoff}, **(extra or {})).order_by()
    while True:
        ids = list(base.values_list("id", flat=True)[:PRUNE_BATCH])
        if not ids:
            return total
        total += model.objects.filter(id__in=ids).delete()[0]
        if pause:
            time.sleep(pause)  # lets other writers in between batches


def prune(*, now: datetime | None = None) -> dict[str, int]:
    """Apply the retention settings; returns the rows deleted per store."""
    now = now or timezone.now()
    cut = cutoffs(now)
    return {
        "raw": _prune(UsageRecord, "ts", cut["raw"]),
        "minute": _prune(UsageRollup, "start", cut[Resolution.MINUTE], {"res": Resolution.MINUTE}),
        "hour": _prune(UsageRollup, "start", cut[Resolution.HOUR], {"res": Resolution.HOUR}),
        "day": _prune(UsageRollup, "start", cut[Resolution.DAY], {"res": Resolution.DAY}),
    }
