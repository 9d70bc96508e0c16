"""Usage analytics at scale: 1,000,000 usage records over 30 days, rolled up, then the reports timed.

    .venv/bin/python bench/analytics.py                      # PostgreSQL at 127.0.0.1:5432 (default)
    .venv/bin/python bench/analytics.py --db sqlite          # embedded SQLite
    .venv/bin/python bench/analytics.py --records 200000     # smaller

The records go in with COPY (PostgreSQL) or big executemany batches (SQLite) into a database of the
bench's own (PostgreSQL: a new database on the server, dropped at the end), with realistic skew:
20 keys and 50 models (Zipf), four endpoints, 6 % errors of every class, log-normal latencies. The
rollups are then built from the marks as the beat task builds them (the backfill is timed), a
further 100,000 records land in one hour and that hour's rollup is timed, and the REST endpoints are
timed over HTTP against the project's ASGI server (uvicorn, one client, admin key).

Targets (issue 10): /api/performance?window=30d p95 < 200 ms, /api/usage/{id} p95 < 100 ms, a rollup
of one hour of 100,000 records < 5 s.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = "postgres://postgres@127.0.0.1:5432"

PROVIDERS = {"groq": True, "openrouter": True, "gemini": True, "cerebras": True, "mistral": True,
             "openai": False, "anthropic": False, "together": False}
ENDPOINTS = [("chat.completions", 0.80), ("messages", 0.12), ("embeddings", 0.05), ("completions", 0.03)]
OUTCOMES = [("ok", 200, 0.94), ("rate_limited", 429, 0.02), ("upstream_error", 502, 0.015),
            ("upstream_timeout", 504, 0.01), ("context_length_exceeded", 400, 0.005),
            ("client_disconnected", 499, 0.005), ("stream_interrupted", 200, 0.005)]
COLUMNS = ("uid", "ts", "request_id", "key_id", "key_name", "endpoint", "requested_model", "model_id", "public_id",
           "provider", "is_free", "stream", "tokens_in", "tokens_out", "latency_ms", "ttft_ms", "overhead_ms",
           "attempts", "status", "http_status", "cost", "reference_cost", "reference_model")
MILLION = Decimal(1_000_000)
EIGHT = Decimal("0.00000001")


def setup(db: str) -> tuple[Path, str | None]:
    data_dir = Path(tempfile.mkdtemp(prefix="afmts-bench-analytics-"))
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    os.environ.update(AFMTS_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="afmts.settings", LOG_LEVEL="WARNING",
                      AFMTS_ALLOW_GENERATED_SECRETS="1", AFMTS_USAGE_FLUSH_SECONDS="3600")
    name = None
    if db == "postgres":
        import psycopg

        name = f"afmts_bench_analytics_{os.getpid()}"
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        os.environ["DATABASE_URL"] = f"{PG}/{name}"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return data_dir, name


def drop(name: str | None) -> None:
    if not name:
        return
    from django.db import connections

    connections.close_all()
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def zipf(n: int, s: float) -> list[float]:
    return [1 / (i + 1) ** s for i in range(n)]


def seed(rng: random.Random):
    from registry import services
    from registry.models import KeyScope

    models = []
    prices = [0.05, 0.1, 0.15, 0.25, 0.5, 0.6, 1.0, 2.5, 3.0, 5.0, 10.0, 15.0]
    for i in range(50):
        provider = list(PROVIDERS)[i % len(PROVIDERS)]
        free = PROVIDERS[provider] and i % 3 != 0
        fields = {"name": f"model-{i}", "model_id": f"model-{i}", "is_free": free, "capabilities": ["text-generation"]}
        if not free:
            p = Decimal(str(rng.choice(prices)))
            fields.update(input_price=p, output_price=p * 4)
        m, _ = services.model_register(provider_slug=provider, provider_kind=provider, endpoint=None, api_key=None,
                                       model_fields=fields)
        models.append(m)
    keys = [services.apikey_create(name=f"key-{i}", scope=KeyScope.USER)[0] for i in range(20)]
    admin_key, admin_secret = services.apikey_create(name="bench admin", scope=KeyScope.ADMIN)
    return models, keys, admin_secret


def generate(n: int, start: float, span: float, models, keys, rng: random.Random, tag: str):
    """n record tuples (COLUMNS order, values ready for the database) with timestamps in [start, start+span)."""
    paid = [m for m in models if not m.is_free]
    ref = min(paid, key=lambda m: m.input_price + m.output_price)
    mw, kw = zipf(len(models), 1.2), zipf(len(keys), 1.1)
    picked_models = rng.choices(models, mw, k=n)
    picked_keys = rng.choices(keys, kw, k=n)
    endpoints = rng.choices([e for e, _ in ENDPOINTS], [w for _, w in ENDPOINTS], k=n)
    outcomes = rng.choices(OUTCOMES, [w for *_, w in OUTCOMES], k=n)
    info = {m.pk: (f"{m.provider.slug}/{m.model_id}", m.provider.slug) for m in models}
    ref_id = info[ref.pk][0]
    for i in range(n):
        m, k, endpoint, (status, http, _) = picked_models[i], picked_keys[i], endpoints[i], outcomes[i]
        ts = datetime.fromtimestamp(start + rng.random() * span, UTC)
        tin, tout = int(rng.lognormvariate(6, 1)), (0 if endpoint == "embeddings" else int(rng.lognormvariate(5, 1)))
        latency = rng.lognormvariate(math.log(600), 0.8)
        stream = endpoint != "embeddings" and rng.random() < 0.4
        ttft = latency * rng.uniform(0.1, 0.4) if stream else None
        cost = Decimal(0) if m.is_free else ((tin * m.input_price + tout * m.output_price) / MILLION).quantize(EIGHT)
        ref_cost = ((tin * ref.input_price + tout * ref.output_price) / MILLION).quantize(EIGHT)
        public, slug = info[m.pk]
        yield (f"{tag}{i:x}", ts, f"req-{tag}{i}", k.id, k.name, endpoint, "auto", m.pk, public, slug,
               m.is_free, stream, tin, tout, round(latency, 3), None if ttft is None else round(ttft, 3), 0.2,
               1 + (rng.random() < 0.03), status, http, cost, ref_cost, ref_id)


def insert(rows) -> tuple[int, set[int]]:
    """Insert the rows; returns how many and the minutes (epoch // 60) they fall in."""
    from django.db import connection

    minutes: set[int] = set()
    count = 0

    def track(it):
        nonlocal count
        for row in it:
            minutes.add(int(row[1].timestamp() // 60))
            count += 1
            yield row

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY analytics_usagerecord ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in track(rows):
                    copy.write_row(row)
        return count, minutes
    from itertools import islice

    adapt_ts, adapt_dec = connection.ops.adapt_datetimefield_value, connection.ops.adapt_decimalfield_value
    sql = f"INSERT INTO analytics_usagerecord ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
    it = track(rows)
    with connection.cursor() as cursor:
        while batch := list(islice(it, 50_000)):
            cursor.executemany(sql, [(*r[:1], adapt_ts(r[1]), *r[2:20], adapt_dec(r[20], 14, 8), adapt_dec(r[21], 14, 8),
                                      r[22]) for r in batch])
    return count, minutes


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_http(secret: str, paths: list[tuple[str, str, float | None]], runs: int, data_dir: Path):
    import httpx

    from registry.management.commands.serve import web_command

    port = free_port()
    rows = []
    with open(data_dir / "server.log", "wb") as log:
        server = subprocess.Popen(web_command("127.0.0.1", port), cwd=ROOT, env=os.environ.copy(), stdout=log,
                                  stderr=subprocess.STDOUT)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {secret}"},
                              timeout=60) as client:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if client.get("/health").status_code in (200, 503):
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("the server did not start: " + (data_dir / "server.log").read_text()[-500:])
                    time.sleep(0.2)
                for label, path, target in paths:
                    for _ in range(3):  # warm up
                        client.get(path).raise_for_status()
                    samples = []
                    for _ in range(runs):
                        t0 = time.perf_counter()
                        r = client.get(path)
                        samples.append((time.perf_counter() - t0) * 1000)
                        r.raise_for_status()
                    rows.append((label, samples, target))
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--hour-records", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=10)
    args = parser.parse_args()
    data_dir, dbname = setup(args.db)
    try:
        return run(args, data_dir)
    finally:
        drop(dbname)


def run(args, data_dir: Path) -> int:
    from django.db import connection
    from django.utils import timezone

    from analytics import rollups, selectors
    from analytics.models import RollupDirty, UsageRollup

    rng = random.Random(args.seed)
    models, keys, admin_secret = seed(rng)
    now = time.time()
    lines = []

    t0 = time.perf_counter()
    n, minutes = insert(generate(args.records, now - 30 * 86400 + 3600, 30 * 86400 - 3 * 3600, models, keys, rng, "a"))
    lines.append(f"{n:,} records over 30 days inserted ({connection.vendor}) in {time.perf_counter() - t0:.1f} s")
    RollupDirty.objects.bulk_create([RollupDirty(minute=datetime.fromtimestamp(m * 60, UTC)) for m in minutes],
                                    batch_size=10_000)
    t0 = time.perf_counter()
    done = rollups.build()
    lines.append(f"backfill of every rollup: {done['minutes']:,} minutes, {done['hours']:,} hours, {done['days']} days,"
                 f" {done['rows']:,} rows in {time.perf_counter() - t0:.1f} s")

    # One hour (two hours ago, so its minutes are within retention) gets 100,000 more records.
    hour = rollups.floor(timezone.now() - timedelta(hours=2), "h")
    extra, hour_minutes = insert(generate(args.hour_records, hour.timestamp(), 3600, models, keys, rng, "b"))
    rollups.mark(datetime.fromtimestamp(m * 60, UTC) for m in hour_minutes)
    t0 = time.perf_counter()
    done = rollups.build()
    hour_s = time.perf_counter() - t0
    lines.append(f"rollup rows stored: {UsageRollup.objects.count():,}")

    busiest = models[0]  # the Zipf head
    total = args.records + extra
    t0 = time.perf_counter()
    report = selectors.performance(selectors.window("30d"))
    in_process = (time.perf_counter() - t0) * 1000
    assert report["totals"]["requests"] == total, (report["totals"]["requests"], total)

    paths = [
        ("`GET /api/performance?window=30d` (admin: every key)", "/api/performance?window=30d", 200.0),
        ("`GET /api/performance?window=7d`", "/api/performance?window=7d", None),
        ("`GET /api/performance?window=24h`", "/api/performance?window=24h", None),
        ("`GET /api/performance?window=1h`", "/api/performance?window=1h", None),
        ("`GET /api/usage/{id}` (busiest model, 24h)", f"/api/usage/{busiest.pk}", 100.0),
        ("`GET /api/usage/{id}?window=30d`", f"/api/usage/{busiest.pk}?window=30d", 100.0),
        ("`GET /api/performance?window=30d&key=` (one key)", f"/api/performance?window=30d&key={keys[0].id}", None),
        ("`GET /api/analytics/costs?window=30d`", "/api/analytics/costs?window=30d", None),
    ]
    rows = time_http(admin_secret, paths, args.runs, data_dir)
    print()
    print("\n".join(f"- {line}" for line in lines))
    print(f"- `selectors.performance` for 30d in-process: {in_process:.0f} ms")
    print()
    print("| operation | n | p50 ms | p95 ms | target | met? |")
    print("|---|---:|---:|---:|---:|---|")
    for label, samples, target in rows:
        p95 = percentile(samples, 0.95)
        met = "—" if target is None else ("yes" if p95 < target else "NO")
        print(f"| {label} | {len(samples)} | {percentile(samples, 0.5):.1f} | {p95:.1f} | "
              f"{'—' if target is None else f'< {target:g} ms'} | {met} |")
    print(f"| rollup of one hour of {extra:,} records (60 minutes, the hour, its day) | 1 | {hour_s * 1000:.0f} | "
          f"{hour_s * 1000:.0f} | < 5000 ms | {'yes' if hour_s < 5 else 'NO'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
