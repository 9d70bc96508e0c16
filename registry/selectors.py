"""Reads of the registry. Model reads are served from an immutable in-memory snapshot rebuilt when
the registry version changes (registry.version), so listing and ranking 10,000 models costs no query.
REST reads (`model_list`, `model_find`, `rank`) first re-read the version (one cheap query), so a
write committed by any process (the CLI, the worker) shows at once; the gateway's hot path reads the
snapshot its watcher keeps fresh and never queries.

Types: `llm` is the umbrella of `chat` and `completion` (the seeds register `type: "llm"`, discovery
types chat models `chat`): asking for `llm` finds all three.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from registry import version
from registry.models import AIModel, ModelStatus, QuotaScope
from registry.providers import adapter_class
from registry.quota import pool_limits
from registry.scoring import POLICIES, score_parts, static_parts

MODEL_COLUMNS = (
    "id", "model_id", "name", "type", "capabilities", "context_window", "max_output_tokens",
    "input_price", "output_price", "is_free", "free_reason", "quota_scope", "free_rpm", "free_rpd",
    "free_tpm", "free_tpd", "status", "tags", "metadata", "description", "first_seen", "last_seen",
    "updated_at", "latency_ms", "reliability", "source", "disabled", "pinned_fields", "priority",
    "provider_id", "provider__slug", "provider__kind", "provider__base_url", "provider__enabled",
    "provider__is_demo", "provider__status", "expires_at",
)
# A type asked for -> the types it covers.
UMBRELLA = {"llm": frozenset({"llm", "chat", "completion"})}


def type_matches(have: str, wanted: str) -> bool:
    return have == wanted or have in UMBRELLA.get(wanted, ())


def _num(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def model_representation(row: dict[str, Any]) -> dict[str, Any]:
    """The API's JSON for one model, from a row of MODEL_COLUMNS (camelCase, as in the seeds)."""
    slug = row["provider__slug"]
    return {
        "id": row["id"],
        "publicId": f"{slug}/{row['model_id']}",
        "modelId": row["model_id"],
        "name": row["name"],
        "provider": slug,
        "providerKind": row["provider__kind"],
        "endpoint": row["provider__base_url"],
        "type": row["type"],
        "capabilities": list(row["capabilities"] or []),
        "contextWindow": row["context_window"],
        "maxOutputTokens": row["max_output_tokens"],
        "inputPrice": _num(row["input_price"]),
        "outputPrice": _num(row["output_price"]),
        "isFree": row["is_free"],
        "freeReason": row["free_reason"],
        "freeQuota": {
            "requestsPerMinute": row["free_rpm"],
            "requestsPerDay": row["free_rpd"],
            "tokensPerMinute": row["free_tpm"],
            "tokensPerDay": row["free_tpd"],
        },
        "quotaScope": row["quota_scope"],
        "status": row["status"],
        "tags": list(row["tags"] or []),
        "metadata": row["metadata"] or {},
        "description": row["description"],
        "firstSeen": _iso(row["first_seen"]),
        "lastSeen": _iso(row["last_seen"]),
        "updatedAt": _iso(row["updated_at"]),
        "latencyMs": row["latency_ms"],
        "reliability": row["reliability"],
        "source": row["source"],
        "disabled": row["disabled"],
        "pinnedFields": list(row["pinned_fields"] or []),
        "priority": row["priority"],
        "expiresAt": _iso(row.get("expires_at")),
    }


def provider_columns(provider) -> dict[str, Any]:
    """The provider's part of a row of MODEL_COLUMNS."""
    return {
        "provider__slug": provider.slug, "provider__kind": provider.kind,
        "provider__base_url": provider.base_url, "provider__enabled": provider.enabled,
        "provider__is_demo": provider.is_demo, "provider__status": provider.status,
    }


def model_instance_representation(model: AIModel, provider=None) -> dict[str, Any]:
    """The API's JSON for a model instance; pass its provider when it is at hand (saves a query)."""
    row = {name: getattr(model, name) for name in MODEL_COLUMNS if "__" not in name}
    return model_representation(row | provider_columns(provider or model.provider))


@dataclass(slots=True)
class ModelView:
    """What ranking needs of one model, precomputed; `api` is its full API representation, built
    on first use (most models of a snapshot are never shown)."""

    pk: int
    public_id: str
    provider: str
    provider_id: int
    provider_kind: str
    type: str
    capabilities: frozenset[str]
    tags: frozenset[str]
    status: str
    is_free: bool
    input_price: float | None
    output_price: float | None
    context_window: int | None
    max_output_tokens: int | None
    latency_ms: float | None
    reliability: float | None
    priority: int
    free_rpm: int | None
    free_rpd: int | None
    free_tpm: int | None
    free_tpd: int | None
    quota_scope: str
    # Enabled provider, model not disabled, not retired. A provider whose listing fails (status
    # "down") stays routable: its models' breakers and passive health judge them by their traffic.
    routable: bool
    is_demo: bool
    search_text: str
    parts: dict[str, float]
    base: dict[str, float]  # static total per policy (load = quota = 1)
    row: dict[str, Any] = field(repr=False)
    _api: dict[str, Any] | None = field(default=None, repr=False)
    provider_status: str = "unknown"  # the provider's listing health: unknown, up, down
    expires_at: float | None = None  # epoch seconds when the free offer ends (not routed from then on)
    # The account pool's extra windows (registry.quota.pool_limits), for free account-wide models.
    free_rpmonth: int | None = None  # requests a calendar month (Cohere's trial)
    free_neurons_per_day: int | None = None  # Cloudflare's neurons a day
    # Neurons one input and one output token cost, and the output a request without max_tokens may
    # produce: what the gateway reserves before a call to a cost-weighted pool and settles after.
    pool_cost: tuple[float, float] | None = None
    default_max_tokens: int | None = None

    @property
    def api(self) -> dict[str, Any]:
        if self._api is None:
            self._api = model_representation(self.row)
        return self._api


def _view(row: dict[str, Any], now: float | None = None) -> ModelView:
    now = time.time() if now is None else now
    expires = row.get("expires_at")
    expires_at = expires.timestamp() if expires is not None else None
    input_price, output_price = _num(row["input_price"]), _num(row["output_price"])
    public_id = f"{row['provider__slug']}/{row['model_id']}"
    parts = static_parts(
        is_free=row["is_free"], input_price=input_price, output_price=output_price,
        latency_ms=row["latency_ms"], reliability=row["reliability"],
    )
    degraded = row["status"] == ModelStatus.DEGRADED
    pool = pool_limits(row["provider__kind"]) if row["is_free"] and row["quota_scope"] == QuotaScope.ACCOUNT else {}
    adapter = adapter_class(row["provider__kind"]) if pool.get("neurons/day") else None
    base = {
        policy: score_parts(parts, weights, priority=row["priority"], degraded=degraded)[0]
        for policy, weights in POLICIES.items()
    }
    return ModelView(
        pk=row["id"], public_id=public_id, provider=row["provider__slug"], provider_id=row["provider_id"],
        provider_kind=row["provider__kind"], type=row["type"],
        capabilities=frozenset(row["capabilities"] or ()), tags=frozenset(row["tags"] or ()), status=row["status"],
        is_free=row["is_free"], input_price=input_price, output_price=output_price,
        context_window=row["context_window"], max_output_tokens=row["max_output_tokens"],
        latency_ms=row["latency_ms"], reliability=row["reliability"], priority=row["priority"],
        free_rpm=row["free_rpm"], free_rpd=row["free_rpd"], free_tpm=row["free_tpm"], free_tpd=row["free_tpd"],
        quota_scope=row["quota_scope"],
        routable=(row["provider__enabled"] and not row["disabled"] and row["status"] != ModelStatus.RETIRED
                  and (expires_at is None or expires_at > now)),
        provider_status=row["provider__status"], expires_at=expires_at,
        is_demo=row["provider__is_demo"],
        free_rpmonth=pool.get("requests/month"), free_neurons_per_day=pool.get("neurons/day"),
        pool_cost=adapter.pool_cost(row["metadata"]) if adapter else None,
        default_max_tokens=adapter.default_max_tokens if adapter else None,
        search_text=" ".join((public_id, row["name"], row["description"])).lower(),
        parts=parts, base=base, row=row,
    )


@dataclass(frozen=True)
class Snapshot:
    """The registry as ranking sees it. `ranked[policy]` holds the usable models (routable, not
    down) sorted by their static score, so a ranking walks the head of a list instead of scoring
    every model."""

    models: tuple[ModelView, ...]
    by_pk: dict[int, ModelView]
    by_public_id: dict[str, ModelView]
    ranked: dict[str, tuple[ModelView, ...]]
    # (policy, "cap:<c>" | "type:<t>" | "provider:<slug>" | "free") -> that slice of ranked[policy],
    # so a selective query walks a short list (a rare capability, one provider).
    index: dict[tuple[str, str], list[ModelView]]
    # What `auto` and `free` do with demo providers (see `demo_rule`): "none" (there are none),
    # "mix" (no real model: rank them as any), "last" (after every real model), "skip" (never).
    demo: str = "none"


def demo_rule(usable: list[ModelView], *, keep: bool) -> str:
    """Demo providers serve until a real provider's model has answered a call (traffic or a probe:
    its observed reliability is above zero); until then they are the last fallbacks behind the real
    models, so a newcomer's first real model that cannot answer (a placeholder key, a local server
    not running) costs a fast failover, not a failed request. AFMTS_DEMO_KEEP keeps them as last
    fallbacks for good."""
    if not any(m.is_demo for m in usable):
        return "none"
    real = [m for m in usable if not m.is_demo]
    if not real:
        return "mix"
    if not keep and any(m.reliability for m in real):
        return "skip"
    return "last"


def _keys(m: ModelView) -> list[str]:
    keys = [f"cap:{c}" for c in m.capabilities] + [f"type:{m.type}", f"provider:{m.provider}"]
    keys += [f"type:{umbrella}" for umbrella, types in UMBRELLA.items() if m.type in types and m.type != umbrella]
    if m.is_free:
        keys.append("free")
    return keys


def build_snapshot(models: tuple[ModelView, ...]) -> Snapshot:
    usable = [m for m in models if m.routable and m.status != ModelStatus.DOWN]
    ranked = {
        # Stable sort: ties keep public-id order.
        policy: tuple(sorted(usable, key=lambda m, p=policy: -m.base[p]))
        for policy in POLICIES
    }
    keys = {m.pk: _keys(m) for m in usable}
    index: dict[tuple[str, str], list[ModelView]] = {}
    for policy, ordered in ranked.items():
        for m in ordered:
            for key in keys[m.pk]:
                index.setdefault((policy, key), []).append(m)
    from django.conf import settings

    return Snapshot(
        models=models, by_pk={m.pk: m for m in models}, by_public_id={m.public_id: m for m in models},
        ranked=ranked, index=index, demo=demo_rule(usable, keep=settings.AFMTS_DEMO_KEEP),
    )


def _build_snapshot() -> Snapshot:
    rows = AIModel.objects.order_by("provider__slug", "model_id").values(*MODEL_COLUMNS)
    return build_snapshot(tuple(_view(row) for row in rows))


_snapshot = version.Versioned(_build_snapshot)


def snapshot(*, fresh: bool = False) -> Snapshot:
    """The current snapshot. `fresh` (REST reads) re-reads the registry version first, so every
    committed write, whichever process made it, is in it; never from an event loop's thread."""
    if fresh and not _in_loop():
        version.refresh()
    return _snapshot.get()


def _in_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


# ------------------------------------------------------------------ listing


def model_list(
    *, type: str | None = None, provider: str | None = None, capability: str | None = None,
    free: bool | None = None, status: str | None = None, search: str | None = None,
) -> list[ModelView]:
    out = []
    needle = search.lower() if search else None
    for m in snapshot(fresh=True).models:
        if type and not type_matches(m.type, type):
            continue
        if provider and m.provider != provider:
            continue
        if capability and capability not in m.capabilities:
            continue
        if free is not None and m.is_free != free:
            continue
        if status and m.status != status:
            continue
        if needle and needle not in m.search_text:
            continue
        out.append(m)
    return out


# ------------------------------------------------------------------ ranking


@dataclass(frozen=True)
class Criteria:
    """What /api/models/find (and the router) asks of a model. See README, "Finding models"."""

    capabilities: tuple[str, ...] = ()
    type: str | None = None
    provider: str | None = None
    max_latency: float | None = None
    min_reliability: float | None = None
    max_cost_per_token: float | None = None
    free_only: bool = False
    min_context: int | None = None
    tags: tuple[str, ...] = ()
    policy: str = "auto"
    include_unavailable: bool = False


def matches(m: ModelView, c: Criteria) -> bool:
    """Hard constraints. Declared facts (price, context) must be known to pass; observations not
    yet made (latency, reliability) do not exclude a model."""
    if not c.include_unavailable and (
        not m.routable or m.status == ModelStatus.DOWN or (m.expires_at is not None and m.expires_at <= time.time())
    ):
        return False
    if c.type and not type_matches(m.type, c.type):
        return False
    if c.provider and m.provider != c.provider:
        return False
    if c.capabilities and not m.capabilities.issuperset(c.capabilities):
        return False
    if c.tags and not m.tags.issuperset(c.tags):
        return False
    if c.free_only and not m.is_free:
        return False
    if c.max_latency is not None and m.latency_ms is not None and m.latency_ms > c.max_latency:
        return False
    if c.min_reliability is not None and m.reliability is not None and m.reliability < c.min_reliability:
        return False
    if c.min_context is not None and (m.context_window is None or m.context_window < c.min_context):
        return False
    if c.max_cost_per_token is not None and not m.is_free:
        if m.input_price is None or m.output_price is None:
            return False
        per_million = c.max_cost_per_token * 1_000_000
        if m.input_price > per_million or m.output_price > per_million:
            return False
    return True


def rank(criteria: Criteria, *, limit: int | None = None, snap: Snapshot | None = None) -> list[ModelView]:
    """Models meeting the criteria, best first (ties keep public-id order)."""
    snap = snap or snapshot(fresh=True)
    if not criteria.include_unavailable:
        # The usable models are already in score order: take the first that match, walking the
        # shortest list that every match must be on.
        out = []
        for m in _shortest(snap, criteria):
            if matches(m, criteria):
                out.append(m)
                if limit is not None and len(out) >= limit:
                    break
        return out
    policy = criteria.policy
    candidates = [m for m in snap.models if matches(m, criteria)]
    candidates.sort(key=lambda m: m.base[policy], reverse=True)
    return candidates[:limit] if limit is not None else candidates


def _shortest(snap: Snapshot, c: Criteria):
    keys = [f"cap:{cap}" for cap in c.capabilities]
    if c.type:
        keys.append(f"type:{c.type}")
    if c.provider:
        keys.append(f"provider:{c.provider}")
    if c.free_only:
        keys.append("free")
    lists = [snap.index.get((c.policy, key), []) for key in keys]
    return min(lists, key=len) if lists else snap.ranked[c.policy]


def explain(m: ModelView, policy: str) -> dict[str, Any]:
    total, parts = score_parts(
        m.parts, POLICIES[policy], priority=m.priority, degraded=m.status == ModelStatus.DEGRADED
    )
    return {"score": round(total, 6), "scoreParts": {k: round(v, 6) for k, v in parts.items()}}


def model_find(criteria: Criteria, *, limit: int = 20) -> list[dict[str, Any]]:
    return [{**m.api, **explain(m, criteria.policy)} for m in rank(criteria, limit=limit)]


def communication(model: AIModel) -> dict[str, Any]:
    adapter = adapter_class(model.provider.kind)
    return {
        "id": model.id,
        "publicId": model.public_id,
        "provider": model.provider.slug,
        "providerKind": model.provider.kind,
        **adapter.communication(model.provider.base_url, model.model_id),
        # How to call it through AFMTS: our gateway keeps the provider's secret server-side.
        "gateway": {"endpoint": "/v1/chat/completions", "model": model.public_id, "authMethod": "bearer"},
    }
