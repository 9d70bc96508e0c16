"""Cost of a Prometheus scrape with 10,000 models registered (issue 10: < 100 ms, nothing queried per model).

    .venv/bin/python bench/metrics.py [--models 10000] [--runs 50] [--breakers 500]

Self-contained: bench/find.py's data (a temporary embedded data folder, 10,000 models over 12
providers, free ones with per-minute and per-day quotas), live routing state with quota counted for
every free model and `--breakers` breakers with traffic, and gateway series for 200 models; then GET
/metrics through Django's test client (the view alone, no network), after one warm-up scrape that
builds the registry snapshot (done once per registry version, as the gateway does). Prints the
scrape's p50/p95, its size and its query count.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import time

import find  # noqa: E402 - sets Django up in a temporary data folder (bench/_embedded.py)
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from analytics.metrics import observe_usage  # noqa: E402
from analytics.recorder import Outcome  # noqa: E402
from registry.selectors import snapshot  # noqa: E402
from routing.gateway.runtime import runtime  # noqa: E402

TARGET_MS = 100.0


def traffic(n_models: int, breakers: int) -> None:
    snap = snapshot()
    now = time.time()
    free = [m for m in snap.models if m.is_free and m.routable]
    for m in free:
        runtime.live.count(m, tokens=100, now=now, requests=1)
    served = [m for m in snap.models if m.routable][:n_models]
    observe_usage([
        Outcome(ts=now, request_id=f"r{i}", endpoint="chat.completions", requested_model="auto", public_id=m.public_id,
                provider=m.provider, model_pk=m.pk, latency_ms=120.0 + i % 50, ttft_ms=40.0, overhead_ms=0.2,
                tokens_in=20, tokens_out=40)
        for i, m in enumerate(served * 3)
    ])
    for m in snap.models[:breakers]:
        runtime.live.breakers.record(f"model:{m.pk}", False, now)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--breakers", type=int, default=500)
    parser.add_argument("--seed", type=int, default=2)
    args = parser.parse_args()
    try:
        find.seed(args.models, len(find.PROVIDERS), random.Random(args.seed))
        traffic(200, args.breakers)
        client = Client()
        client.get("/metrics")
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            reply = client.get("/metrics")
            times.append((time.perf_counter() - started) * 1000)
        with CaptureQueriesContext(connection) as queries:
            client.get("/metrics")
        times.sort()
        p50, p95 = statistics.median(times), times[int(0.95 * (len(times) - 1))]
        lines = reply.content.count(b"\n")
        snap = snapshot()
        print(f"models {len(snap.models)}, free {sum(m.is_free for m in snap.models)}, breakers {args.breakers}")
        print("operation | n | p50 ms | p95 ms | target p95 | met? | size | queries")
        print("---|---:|---:|---:|---:|---|---:|---:")
        print(f"GET /metrics (Django view, in-process) | {args.runs} | {p50:.1f} | {p95:.1f} | < {TARGET_MS:.0f} ms | "
              f"{'yes' if p95 < TARGET_MS else 'no'} | {len(reply.content) / 1024:.0f} KiB, {lines} lines | {len(queries)}")
    except Exception as exc:  # noqa: BLE001 - a benchmark reports, it does not fail the caller
        print(f"benchmark failed: {type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(find.DATA_DIR, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
