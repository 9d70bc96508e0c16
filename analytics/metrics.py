"""What /metrics shows beyond the counters: usage counted from the recorder's batches, and the
gauges computed at scrape time.

- `observe_usage(batch)` runs in the recorder's writer thread on every batch it takes (each usage
  record passes there exactly once per process), so the request path pays nothing; series lag a
  request by at most AFMTS_USAGE_FLUSH_SECONDS. Histograms are filled a batch at a time.
- `count_money(...)` runs where the writer prices the rows that were new (Decimal), so a record
  written twice is priced once.
- `scrape_registry()` is what GET /metrics serves: every process's files merged (afmts.metrics),
  the seed's derived figures, and gauges read from memory at scrape time — the registry snapshot
  (computed once per snapshot), this process's live routing state (breakers, free quota; shared
  through Redis when REDIS_URL is set) and one count of agents. Nothing is queried per model.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from afmts import metrics as series

log = logging.getLogger(__name__)

ENDPOINTS = frozenset({"chat.completions", "completions", "embeddings", "messages"})
PATHS = {"/v1/chat/completions": "chat.completions", "/v1/completions": "completions",
         "/v1/embeddings": "embeddings", "/v1/messages": "messages"}
# Outcome statuses the gateway itself names; anything else (a provider's own error code) is folded
# into its HTTP class so a label never carries upstream text.
STATUSES = frozenset({
    "ok", "client_disconnected", "cancelled", "internal_error", "stream_capped", "stream_interrupted",
    "context_length_exceeded", "invalid_api_key", "invalid_json", "invalid_type", "key_store_unavailable",
    "missing_api_key", "missing_required_parameter", "model_not_found", "no_model_available",
    "rate_limit_exceeded", "rate_limited", "request_too_large", "stream_cap_reached", "upstream_error",
    "upstream_timeout", "unknown_url", "bad_request", "budget_exhausted", "budget_exceeded",
    "invalid_request_error", "api_error", "rate_limit_error", "authentication_error", "permission_denied",
})
NONE = "none"  # no model served the request
CIRCUIT = {"closed": 0, "half_open": 1, "open": 2}
# Series made here at scrape time: a file left by a process that set one (the monitor CLI's
# private registry) must not duplicate them.
SCRAPED = frozenset({
    "registry_models_active", "registry_agents_total", "registry_response_time_avg", "registry_error_rate",
    "afmts_free_models", "afmts_free_quota_remaining", "afmts_circuit_state",
})


def status_label(status: str, http_status: int) -> str:
    if status in STATUSES:
        return status
    return "client_error" if 400 <= http_status < 500 else "error"


# ---------------------------------------------------------------- usage (writer thread)


def _observe_many(child: Any, amounts: list[float]) -> None:
    """Histogram.observe for many values: one write per touched bucket instead of two per value
    (each is a locked write to a shared file in multiprocess mode). Uses prometheus_client's
    Histogram internals (pinned version); falls back to observe() if they change."""
    bounds = getattr(child, "_upper_bounds", None)
    buckets = getattr(child, "_buckets", None)
    if bounds is None or buckets is None or len(bounds) != len(buckets):
        for amount in amounts:
            child.observe(amount)
        return
    counts = [0] * len(bounds)
    for amount in amounts:
        counts[bisect_left(bounds, amount)] += 1
    child._sum.inc(sum(amounts))
    for i, n in enumerate(counts):
        if n:
            buckets[i].inc(n)


def observe_usage(batch: Iterable[Any]) -> None:
    """Count a batch of usage records (analytics.recorder.Outcome) into the gateway series. Never raises."""
    try:
        _observe(batch)
    except Exception:  # noqa: BLE001 - metrics never cost a usage record
        log.exception("could not count a usage batch into the metrics")


def _observe(batch: Iterable[Any]) -> None:
    requests: dict[tuple[str, str, str, str], int] = defaultdict(int)
    latency: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    first: dict[tuple[str, str], list[float]] = defaultdict(list)
    own: dict[str, list[float]] = defaultdict(list)
    failovers: dict[str, int] = defaultdict(int)
    tokens: dict[tuple[str, str], int] = defaultdict(int)
    overall: list[float] = []
    n = 0
    for o in batch:
        n += 1
        endpoint = o.endpoint if o.endpoint in ENDPOINTS else "other"
        # The served model is a registered one (the router only picks from the registry).
        provider, model = (o.provider, o.public_id) if o.public_id else (NONE, NONE)
        requests[(endpoint, provider, model, status_label(o.status, o.http_status))] += 1
        if o.latency_ms is not None:
            seconds = o.latency_ms / 1000
            latency[(endpoint, provider, model)].append(seconds)
            overall.append(seconds)
        if o.ttft_ms is not None:
            first[(provider, model)].append(o.ttft_ms / 1000)
        if o.overhead_ms is not None:
            own[endpoint].append(o.overhead_ms / 1000)
        if o.attempts > 1:
            failovers[endpoint] += o.attempts - 1
        if o.tokens_in:
            tokens[("in", provider)] += o.tokens_in
        if o.tokens_out:
            tokens[("out", provider)] += o.tokens_out
    if not n:
        return
    series.registry_requests.inc(n)
    if overall:
        _observe_many(series.registry_response_time, overall)
    for labels, count in requests.items():
        series.gateway_requests.labels(*labels).inc(count)
    for labels, amounts in latency.items():
        _observe_many(series.gateway_latency.labels(*labels), amounts)
    for labels, amounts in first.items():
        _observe_many(series.ttft.labels(*labels), amounts)
    for endpoint, amounts in own.items():
        _observe_many(series.overhead.labels(endpoint), amounts)
    for endpoint, count in failovers.items():
        series.fallbacks.labels(endpoint).inc(count)
    for labels, count in tokens.items():
        series.tokens.labels(*labels).inc(count)


def count_refused(path: str, http_status: int, code: str | None) -> None:
    """A gateway request refused before it became a call (no key, a bad body, an unknown model):
    it has no usage record, but it is a request. Error path only."""
    try:
        endpoint = PATHS.get(path, "other")
        series.gateway_requests.labels(endpoint, NONE, NONE, status_label(code or "", http_status)).inc()
        series.registry_requests.inc()
    except Exception:  # noqa: BLE001
        log.exception("could not count a refused request")


def count_money(fresh: Iterable[Any], priced: dict[str, tuple[Decimal | None, Decimal | None]]) -> None:
    """Spend and savings of the usage rows that were new. `priced[uid]` is (cost, reference cost);
    a request's saving is reference less cost, never below 0, and only where both are known."""
    try:
        spent: dict[str, Decimal] = defaultdict(Decimal)
        kept: dict[str, Decimal] = defaultdict(Decimal)
        for o in fresh:
            cost, reference = priced.get(o.uid, (None, None))
            if not o.public_id:
                continue
            if cost is not None:
                spent[o.provider] += cost
            if cost is not None and reference is not None and reference > cost:
                kept[o.provider] += reference - cost
        for provider, amount in spent.items():
            if amount:
                series.cost.labels(provider).inc(float(amount))
        for provider, amount in kept.items():
            series.saved.labels(provider).inc(float(amount))
    except Exception:  # noqa: BLE001
        log.exception("could not count spend and savings into the metrics")


# ---------------------------------------------------------------- scrape


class _Figures:
    """What the registry snapshot says, computed once per snapshot (it is immutable)."""

    def __init__(self, snap: Any) -> None:
        self.snap = snap
        self.active = 0
        self.free: dict[str, int] = defaultdict(int)
        self.providers: dict[int, str] = {}
        # quota scope -> the model whose limits stand for it (any model of an account-wide scope)
        self.scopes: dict[str, Any] = {}
        for m in snap.models:
            self.providers[m.provider_id] = m.provider
            self.free.setdefault(m.provider, 0)
            if not m.routable or m.status not in ("available", "degraded"):
                continue
            self.active += 1
            if m.is_free:
                if m.status == "available":
                    self.free[m.provider] += 1
                if m.free_rpm or m.free_rpd or m.free_tpm or m.free_tpd:
                    self.scopes.setdefault(_scope(m), m)
        self.free_by_scope = {_scope(m): m for m in snap.models if m.is_free and m.routable}


def _scope(m: Any) -> str:
    return f"a:{m.provider_id}" if m.quota_scope == "account" else f"m:{m.pk}"


_figures: _Figures | None = None


def _figures_for(snap: Any) -> _Figures:
    global _figures
    current = _figures
    if current is None or current.snap is not snap:
        current = _figures = _Figures(snap)
    return current


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def _state(families: dict[str, Metric]) -> Iterator[Metric]:
    from registry.selectors import snapshot

    figures = _figures_for(snapshot())
    snap = figures.snap
    g = _gauge("registry_models_active", "Models that can serve: available or degraded, not disabled, provider enabled.")
    g.add_metric([], figures.active)
    yield g

    try:
        from registry.models import Agent

        agents = Agent.objects.count()
    except Exception as exc:  # noqa: BLE001 - the rest of the scrape still answers
        log.warning("registry_agents_total left out: %s", type(exc).__name__)
    else:
        g = _gauge("registry_agents_total", "Registered agents.")
        g.add_metric([], agents)
        yield g

    yield from _derived(families)

    g = _gauge("afmts_free_models", "Free models available now, per provider.", ["provider"])
    for provider, count in sorted(figures.free.items()):
        g.add_metric([provider], count)
    yield g

    from routing.gateway.runtime import runtime

    live = runtime.live
    now = time.time()
    g = _gauge("afmts_free_quota_remaining",
               "Free quota left in the current window (requests or tokens), per quota scope: an account-wide "
               "quota has an empty model label.", ["provider", "model", "window"])
    scopes = dict(figures.scopes)
    for scope in list(live.quotas):
        if scope not in scopes and scope in figures.free_by_scope:
            scopes[scope] = figures.free_by_scope[scope]
    for scope, m in scopes.items():
        state = live.quotas.get(scope) or {}
        model = "" if scope.startswith("a:") else m.public_id
        for window in ("requests/minute", "requests/day", "tokens/minute", "tokens/day"):
            remaining, limit, _ = live._remaining(m, state, window, now)
            if limit is not None and remaining is not None:
                g.add_metric([m.provider, model, window], max(0, remaining))
    yield g

    g = _gauge("afmts_circuit_state",
               "Circuit breakers with recent traffic: 0 closed, 1 half-open, 2 open (an absent breaker is closed); "
               "a provider's own breaker has an empty model label.", ["provider", "model"])
    for key, s in list(live.breakers.states.items()):
        kind, _, ident = key.partition(":")
        if kind == "provider":
            labels = [ident, ""]
        elif kind == "model" and ident.isdigit() and int(ident) in snap.by_pk:
            m = snap.by_pk[int(ident)]
            labels = [m.provider, m.public_id]
        else:
            continue
        g.add_metric(labels, CIRCUIT.get(s.effective(now), 0))
    yield g


def _derived(families: dict[str, Metric]) -> Iterator[Metric]:
    """The seed's averages, from the summed series (since the service started)."""
    total = count = 0.0
    hist = families.get("registry_response_time_seconds")
    if hist is not None:
        for s in hist.samples:
            if s.name.endswith("_sum"):
                total += s.value
            elif s.name.endswith("_count"):
                count += s.value
    g = _gauge("registry_response_time_avg",
               "Mean gateway request latency since the service started, milliseconds (0 without requests).")
    g.add_metric([], round(total / count * 1000, 3) if count else 0.0)
    yield g
    requests = errors = 0.0
    fam = families.get("afmts_gateway_requests")
    if fam is not None:
        for s in fam.samples:
            if s.name.endswith("_total"):
                requests += s.value
                if s.labels.get("status") != "ok":
                    errors += s.value
    g = _gauge("registry_error_rate",
               "Share of gateway requests that did not succeed since the service started (0 without requests).")
    g.add_metric([], round(errors / requests, 6) if requests else 0.0)
    yield g


class _Scrape:
    """Every process's series, then the scrape-time ones."""

    def collect(self) -> Iterator[Metric]:
        path = series.multiprocess_dir()
        if path is not None and path.is_dir():
            merged = list(MultiProcessCollector(None, path=str(path)).collect())
        else:
            merged = [f for f in REGISTRY.collect()]
        families = {}
        for family in merged:
            if family.name in SCRAPED:
                continue
            families[family.name] = family
            yield family
        yield from _state(families)


def scrape_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape())
    return registry
