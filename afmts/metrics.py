"""Prometheus: the series every process writes, and GET /metrics, which serves all processes' sum.

Several processes (uvicorn web workers, Celery workers) count into prometheus_client's multiprocess
files under AFMTS_METRICS_DIR (settings set PROMETHEUS_MULTIPROC_DIR from it before any series
exists); a scrape, answered by whichever web process gets it, merges every file: counters and
histograms are summed over processes, a dead process's counts included (they happened). No series
here is a per-process gauge, so a process that exits leaves nothing stale; the gauges (models,
quota, breakers, the seed's averages) are computed at scrape time by analytics.metrics from
in-memory state. `serve` removes the files of processes no longer running before it starts
(`clean_dead`), so counts start at zero with the service.

Labels are bounded and secret-free: endpoint (a fixed set), provider slugs and model public ids of
registered models only (never the requested name, a user's input), outcome statuses from a fixed
set, token direction. Usage series are counted by the recorder's writer thread from each batch of
usage records (analytics.metrics.observe_usage), not on the request path.

This module imports nothing from the apps at import time: registry (discovery) counts here too.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import Counter, Histogram, values

if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and not getattr(values.ValueClass, "_multiprocess", False):
    # prometheus_client was imported before settings set the folder: series made from here on use it.
    values.ValueClass = values.get_value_class()

# Seconds. Upstream calls: 5 ms .. 5 min; the gateway's own time: 0.1 ms .. 250 ms.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
DISCOVERY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)

# ---- the seed's names (registry_response_time_avg and registry_error_rate are derived at scrape)
registry_requests = Counter("registry_requests", "Gateway requests served since the service started.")
registry_response_time = Histogram(
    "registry_response_time_seconds", "Gateway request latency (end to end, seconds).", buckets=LATENCY_BUCKETS)

# ---- gateway
gateway_requests = Counter(
    "afmts_gateway_requests", "Gateway requests by endpoint, serving provider and model, and outcome.",
    ["endpoint", "provider", "model", "status"])
gateway_latency = Histogram(
    "afmts_gateway_latency_seconds", "Gateway request latency, end to end (seconds).",
    ["endpoint", "provider", "model"], buckets=LATENCY_BUCKETS)
ttft = Histogram(
    "afmts_ttft_seconds", "Time to the first streamed chunk (seconds).", ["provider", "model"], buckets=LATENCY_BUCKETS)
overhead = Histogram(
    "afmts_gateway_overhead_seconds", "The gateway's own time per request, upstream excluded (seconds).",
    ["endpoint"], buckets=OVERHEAD_BUCKETS)
fallbacks = Counter("afmts_fallbacks", "Failovers: attempts beyond the first.", ["endpoint"])
tokens = Counter("afmts_tokens", "Tokens reported by the serving provider.", ["direction", "provider"])
cost = Counter("afmts_cost_usd", "Spend in USD at the served models' prices (free models cost 0).", ["provider"])
saved = Counter(
    "afmts_saved_usd", "Savings in USD: what the same tokens would have cost on the reference paid model, "
    "less what they cost (per request, never below 0).", ["provider"])
usage_dropped = Counter("afmts_usage_records_dropped", "Usage records lost (refused by the database, or unspillable).")

# ---- discovery (Celery workers)
discovery_duration = Histogram(
    "afmts_discovery_duration_seconds", "A provider's listing and its write, per discovery cycle (seconds).",
    ["provider"], buckets=DISCOVERY_BUCKETS)
discovery_errors = Counter("afmts_discovery_errors", "Failed provider listings.", ["provider"])


def observe_discovery(provider: str, seconds: float, failed: bool) -> None:
    """One provider's listing in a discovery cycle (`provider` is a registered provider's slug)."""
    discovery_duration.labels(provider).observe(seconds)
    if failed:
        discovery_errors.labels(provider).inc()


# ---- several processes


def multiprocess_dir() -> Path | None:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(path) if path else None


def alive(pid: int) -> bool:
    """Whether a process of this machine still runs (for files left by processes that ended)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_dead(path: Path | None = None) -> int:
    """Remove the series files of processes that are no longer running (a service starting: earlier
    runs' counts, one-off commands'); files of running processes (a worker started first) stay.
    Returns how many files were removed."""
    path = path or multiprocess_dir()
    if path is None or not path.is_dir():
        return 0
    removed = 0
    for f in path.glob("*.db"):
        pid = f.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not alive(int(pid)):
            f.unlink(missing_ok=True)
            removed += 1
    return removed


def _process_exit(**_: object) -> None:
    from prometheus_client import multiprocess

    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(os.getpid())


def serve_worker_metrics() -> None:
    """At a Celery worker's start (afmts.celery): a worker whose metrics folder no web process reads
    (its own container) serves it on AFMTS_WORKER_METRICS_PORT for Prometheus to scrape; 0 (the
    default) serves nothing: on one machine the web processes already read the worker's files."""
    from django.conf import settings

    port = getattr(settings, "AFMTS_WORKER_METRICS_PORT", 0)
    if not port:
        return
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry)
    start_http_server(port, addr=settings.AFMTS_WORKER_METRICS_ADDRESS, registry=registry)


try:  # a Celery pool process exiting: drop its live gauges, if any series ever has one
    from celery.signals import worker_process_shutdown

    worker_process_shutdown.connect(_process_exit, weak=False)
except ImportError:  # pragma: no cover
    pass


# ---- GET /metrics


def metrics(request):
    """Prometheus text of every process (open by default; AFMTS_METRICS_REQUIRE_KEY closes it to
    all but admin keys)."""
    from django.conf import settings
    from django.http import HttpResponse
    from prometheus_client import CONTENT_TYPE_LATEST

    from afmts.errors import error_response
    from analytics.metrics import render
    from registry.auth import principal_for_secret, secret_from_headers

    if settings.AFMTS_METRICS_REQUIRE_KEY:
        secret = secret_from_headers(request.headers)
        principal = principal_for_secret(secret) if secret else None
        if principal is None:
            return error_response(401, "A valid API key is needed for /metrics.", code="missing_api_key")
        if not principal.is_admin:
            return error_response(403, "/metrics needs an admin API key.", code="permission_denied")
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)
