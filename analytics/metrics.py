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

import json
import logging
import math
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from afmts import metrics as series
from routing.live import LIMIT_FIELDS, WINDOWS

log = logging.getLogger(__name__)

ENDPOINTS = frozenset({"chat.completions", "completions", "embeddings", "messages"})
PATHS = {"/v1/chat/completions": "chat.completions", "/v1/completions": "completions",
         "/v1/embeddings": "embeddings", "/v1/messages": "messages"}
# Outcome statuses the gateway itself names; anything else (a provider's own error code) is folded
# into its HTTP class so a label never carries upstream text.
STATUSES = frozenset({
    "ok", "client_disconnected", "cancelled", "internal_error", "stream_capped", "stream_interrupted",
    "context_length_exceeded", "invalid_api_key", "invalid_json", "invalid_type", "key_store_unavailable",
    "missing_api_key", "missing_required_parameter", "model_not_found", "no_model_available", "registry_unavailable",
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
                if any(getattr(m, field) for field in LIMIT_FIELDS.values()):
                    self.scopes.setdefault(_scope(m), m)
        self.free_by_scope = {_scope(m): m for m in snap.models if m.is_free and m.routable}
        self.prefixes: dict[Any, str] = {}  # label text of quota and breaker lines
        self._windows: dict[int, list[str]] = {}

    def windows(self, m: Any) -> list[str]:
        """The quota windows the registry gives `m` a limit for."""
        found = self._windows.get(m.pk)
        if found is None:
            found = self._windows[m.pk] = [w for w in WINDOWS if getattr(m, LIMIT_FIELDS[w]) is not None]
        return found


def _scope(m: Any) -> str:
    return f"a:{m.provider_id}" if m.quota_scope == "account" else f"m:{m.pk}"


_figures: _Figures | None = None


def _current() -> _Figures:
    """The figures of the current registry snapshot (in memory; rebuilt once per registry version)."""
    global _figures
    from registry.selectors import snapshot

    snap = snapshot()
    current = _figures
    if current is None or current.snap is not snap:
        current = _figures = _Figures(snap)
    return current


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def _state(derived: Figures, figures: _Figures) -> Iterator[Metric]:
    """The gauges read from the registry snapshot, with the seed's derived ones."""
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

    yield from _derived(derived)

    g = _gauge("afmts_free_models", "Free models available now, per provider.", ["provider"])
    for provider, count in sorted(figures.free.items()):
        g.add_metric([provider], count)
    yield g


QUOTA_HELP = ("Free quota left in the current window (requests or tokens), per quota scope: an account-wide quota "
              "has an empty model label.")
CIRCUIT_HELP = ("Circuit breakers with recent traffic: 0 closed, 1 half-open, 2 open (an absent breaker is closed); "
                "a provider's own breaker has an empty model label.")


def _live_text(figures: _Figures) -> list[str]:
    """Free quota left and breakers, from this process's live routing state: one line per quota
    scope and window (thousands with 10,000 models), so written from prefixes cached per snapshot."""
    from routing.gateway.runtime import runtime

    live = runtime.live
    now = time.time()
    out = [_help("afmts_free_quota_remaining", QUOTA_HELP, "gauge")]
    scopes = dict(figures.scopes)
    for scope in list(live.quotas):
        if scope not in scopes and scope in figures.free_by_scope:
            scopes[scope] = figures.free_by_scope[scope]
    prefixes = figures.prefixes
    for scope, m in scopes.items():
        state = live.quotas.get(scope) or {}
        windows = figures.windows(m)
        if state:  # a provider's report may name a window the registry has no limit for
            windows = [w for w in WINDOWS if w in windows or OBSERVED[w] in state]
        for window in windows:
            remaining, limit, _ = live._remaining(m, state, window, now)
            if limit is None or remaining is None:
                continue
            prefix = prefixes.get((scope, window))
            if prefix is None:
                model = "" if scope.startswith("a:") else m.public_id
                prefix = prefixes[(scope, window)] = (
                    f"afmts_free_quota_remaining{{{_labels([('provider', m.provider), ('model', model), ('window', window)])}}} ")
            out.append(f"{prefix}{_number(max(0, remaining))}\n")
    out.append(_help("afmts_circuit_state", CIRCUIT_HELP, "gauge"))
    snap = figures.snap
    for key, s in list(live.breakers.states.items()):
        prefix = prefixes.get(key)
        if prefix is None:
            kind, _, ident = key.partition(":")
            if kind == "provider":
                labels = [("provider", ident), ("model", "")]
            elif kind == "model" and ident.isdigit() and int(ident) in snap.by_pk:
                m = snap.by_pk[int(ident)]
                labels = [("provider", m.provider), ("model", m.public_id)]
            else:
                continue
            prefix = prefixes[key] = f"afmts_circuit_state{{{_labels(labels)}}} "
        out.append(f"{prefix}{CIRCUIT.get(s.effective(now), 0)}\n")
    return out


OBSERVED = {w: f"obs:{w}" for w in WINDOWS}  # routing.live's key of a provider-reported window


class Figures:
    """What the seed's derived gauges need from the summed series."""

    def __init__(self) -> None:
        self.latency_sum = self.latency_count = self.requests = self.errors = 0.0

    def add_request(self, labels: dict[str, str], value: float) -> None:
        self.requests += value
        if labels.get("status") != "ok":
            self.errors += value

    @classmethod
    def of(cls, families: Iterable[Metric]) -> Figures:
        made = cls()
        for family in families:
            if family.name == "registry_response_time_seconds":
                for s in family.samples:
                    if s.name.endswith("_sum"):
                        made.latency_sum += s.value
                    elif s.name.endswith("_count"):
                        made.latency_count += s.value
            elif family.name == "afmts_gateway_requests":
                for s in family.samples:
                    if s.name.endswith("_total"):
                        made.add_request(s.labels, s.value)
        return made


def _derived(figures: Figures) -> Iterator[Metric]:
    """The seed's averages, from the summed series (since the service started)."""
    g = _gauge("registry_response_time_avg",
               "Mean gateway request latency since the service started, milliseconds (0 without requests).")
    count = figures.latency_count
    g.add_metric([], round(figures.latency_sum / count * 1000, 3) if count else 0.0)
    yield g
    g = _gauge("registry_error_rate",
               "Share of gateway requests that did not succeed since the service started (0 without requests).")
    g.add_metric([], round(figures.errors / figures.requests, 6) if figures.requests else 0.0)
    yield g


def _file_families(path: str) -> list[Metric]:
    """Counters and histograms of every process's files, summed (prometheus_client's own merge).
    Gauges in files are left out: every gauge here is computed at scrape time, and a file gauge can
    only come from another registry (the monitor CLI's), per process and stale."""
    return [f for f in MultiProcessCollector(None, path=path).collect() if f.type != "gauge" and f.name not in SCRAPED]


def scrape_registry() -> CollectorRegistry:
    """The scrape as prometheus_client would write it (the reference `render` is checked against)."""

    class Scrape:
        def collect(self) -> Iterator[Metric]:
            path = series.multiprocess_dir()
            families = _file_families(str(path)) if path is not None else list(REGISTRY.collect())
            yield from families
            yield from _state(Figures.of(families), figures := _current())
            yield from text_string_to_metric_families("".join(_live_text(figures)))

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Scrape())
    return registry


# ---------------------------------------------------------------- the text, fast


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if value != value:
        return "NaN"
    return repr(float(value))


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def _labels(items: Iterable[tuple[str, str]]) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(items))


def _help(name: str, doc: str, kind: str) -> str:
    doc = doc.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"


# A file entry's key (JSON: metric, sample name, labels, help) -> what rendering needs; bounded by
# the number of series, which labels keep bounded.
_parsed: dict[str, tuple] = {}


def _parse(key: str, kind: str) -> tuple:
    metric, name, labels, doc = json.loads(key)
    if kind == "histogram":
        le = labels.pop("le", None)
        entry = (metric, doc, _labels(labels.items()), None if le is None else (float(le), le))
    else:
        text = _labels(labels.items())
        entry = (metric, doc, f"{name}{{{text}}} " if text else f"{name} ", labels)
    _parsed[key] = entry
    return entry


def _merge(path: Path, figures: Figures) -> list[str]:
    """The summed counters and histograms of every process's files, as text. What
    MultiProcessCollector + generate_latest do (a test checks they agree), at a fraction of the
    cost: keys parsed once per process, not once per scrape, and lines written from cached parts —
    they spent ~15 µs a sample, most of a scrape with 10,000 models (bench/metrics.py)."""
    counters: dict[str, tuple[str, dict[str, float]]] = {}
    histograms: dict[str, tuple[str, dict[str, list]]] = {}
    for f in path.glob("*.db"):
        kind = f.name.split("_", 1)[0]
        if kind not in ("counter", "histogram"):
            continue
        try:
            entries = MmapedDict.read_all_values_from_file(str(f))
        except FileNotFoundError:  # removed since the glob
            continue
        for key, value, _, _ in entries:
            parsed = _parsed.get(key) or _parse(key, kind)
            if kind == "counter":
                metric, doc, prefix, labels = parsed
                values = counters.setdefault(metric, (doc, {}))[1]
                values[prefix] = values.get(prefix, 0.0) + value
                if metric == "afmts_gateway_requests":
                    figures.add_request(labels, value)
            else:
                metric, doc, base, le = parsed
                child = histograms.setdefault(metric, (doc, {}))[1].setdefault(base, [0.0, {}])
                if le is None:
                    child[0] += value
                else:
                    child[1][le] = child[1].get(le, 0.0) + value
    out: list[str] = []
    for metric, (doc, values) in counters.items():
        if metric in SCRAPED:
            continue
        out.append(_help(f"{metric}_total", doc, "counter"))
        out.extend(f"{prefix}{_number(v)}\n" for prefix, v in values.items())
    for metric, (doc, children) in histograms.items():
        out.append(_help(metric, doc, "histogram"))
        for base, (total, buckets) in children.items():
            sep = f"{{{base}," if base else "{"
            labelled = f"{{{base}}}" if base else ""
            acc = 0.0
            for (_, le), value in sorted(buckets.items()):
                acc += value
                out.append(f'{metric}_bucket{sep}le="{le}"}} {_number(acc)}\n')
            out.append(f"{metric}_count{labelled} {_number(acc)}\n")
            out.append(f"{metric}_sum{labelled} {_number(total)}\n")
            if metric == "registry_response_time_seconds":
                figures.latency_sum += total
                figures.latency_count += acc
    return out


def _families_text(families: Iterable[Metric]) -> list[str]:
    out: list[str] = []
    for family in families:
        name, kind = family.name, TYPES.get(family.type, "untyped")
        if family.type == "counter":
            name += "_total"
        elif family.type == "info":
            name += "_info"
        out.append(_help(name, family.documentation, kind))
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            text = _labels(s.labels.items())
            out.append(f"{s.name}{{{text}}} {_number(s.value)}\n" if text else f"{s.name} {_number(s.value)}\n")
    return out


TYPES = {"counter": "counter", "gauge": "gauge", "histogram": "histogram", "summary": "summary",
         "info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram", "unknown": "untyped"}


def render() -> bytes:
    """What GET /metrics serves: every process's series summed, then the scrape-time gauges."""
    path = series.multiprocess_dir()
    if path is not None and path.is_dir():
        figures = Figures()
        out = _merge(path, figures)
    else:
        families = list(REGISTRY.collect())
        figures = Figures.of(families)
        out = _families_text(families)
    registry = _current()
    out += _families_text(_state(figures, registry))
    out += _live_text(registry)
    return "".join(out).encode()
