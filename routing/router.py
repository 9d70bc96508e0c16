"""The router: which models, in which order, may serve a request.

`plan` reads only in-memory state — the registry snapshot (registry.selectors) and the live state
(breakers, free quota, load; routing.live) — so a decision costs microseconds and no query.

`model` in a request may be
- a routing policy: `auto` (best available), `free` (free models only), `cheap`, `fast`;
- an operator alias (registry Alias): a fixed list of models, or a policy with requirements;
- a registry model `provider-slug/model-id`, or a bare model id served by one or more providers.
Requirements come from the request itself (tools → function-calling, image parts → vision, the
prompt's estimated tokens + max_tokens → context) and from `extra_body`/headers (capabilities,
min context, max price, preferred and excluded providers, fallbacks).

Ranking uses the one scoring function (registry.scoring): the snapshot holds the usable models sorted
by their static score per policy; the router walks that list, keeps the models that fit and whose
breaker and quota allow them, then re-sorts the leaders with the live parts (load, remaining quota).
Live parts only lower a score, so the walk stops at the first model whose static score is below the
live score of the weakest leader kept; requirements on capabilities or free walk the snapshot's
shorter per-capability lists. Every model passed over gets a reason, so "nothing can serve" says why
for each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from registry.models import ModelStatus
from registry.scoring import POLICIES, live_adjustment
from registry.selectors import ModelView, Snapshot

POLICY_NAMES = frozenset(POLICIES)
MAX_REJECTIONS_LISTED = 25
CHAT_TYPES = frozenset({"llm", "chat", "vision"})


@dataclass(frozen=True)
class Requirements:
    kind: str = "chat"  # chat | embedding
    capabilities: frozenset[str] = frozenset()
    min_context: int | None = None
    max_output: int | None = None
    max_price: float | None = None  # USD per million tokens, for input and for output
    prefer_providers: tuple[str, ...] = ()
    exclude_providers: frozenset[str] = frozenset()
    fallbacks: tuple[str, ...] = ()
    free_only: bool = False


@dataclass
class Candidate:
    model: ModelView
    score: float
    parts: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.public_id, "provider": self.model.provider, "isFree": self.model.is_free,
            "score": round(self.score, 6), "scoreParts": {k: round(v, 6) for k, v in self.parts.items()},
        }


@dataclass
class Rejection:
    model: str
    reason: str
    until: float | None = None  # epoch seconds when it may serve again

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "reason": self.reason}
        if self.until is not None:
            out["retryAt"] = round(self.until, 3)
        return out


@dataclass
class Plan:
    policy: str
    candidates: list[Candidate] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    rejected_count: int = 0
    resolved: str = ""

    def reject(self, model: ModelView | str, reason: str, until: float | None = None) -> None:
        self.rejected_count += 1
        if len(self.rejections) < MAX_REJECTIONS_LISTED:
            name = model if isinstance(model, str) else model.public_id
            self.rejections.append(Rejection(name, reason, until))

    def retry_at(self) -> float | None:
        times = [r.until for r in self.rejections if r.until is not None]
        return min(times) if times else None

    def explain(self) -> str:
        if not self.rejections:
            return "no model in the registry matches"
        listed = "; ".join(f"{r.model}: {r.reason}" for r in self.rejections[:8])
        more = self.rejected_count - min(8, len(self.rejections))
        return listed + (f"; and {more} more" if more > 0 else "")


class UnknownModel(LookupError):
    pass


class Live:
    """What the router asks of live state; routing.live implements it. The default allows all."""

    def blocked(self, m: ModelView, now: float) -> tuple[str, float] | None:
        """(reason, until) when breaker or quota keeps the model out right now."""
        return None

    def load(self, m: ModelView) -> float:
        return 1.0

    def quota(self, m: ModelView, now: float) -> float:
        return 1.0


def _fit(m: ModelView, req: Requirements) -> str | None:
    """Why `m` cannot serve `req`, or None if it can."""
    if req.kind == "embedding":
        if m.type != "embedding" and "embeddings" not in m.capabilities:
            return "not an embedding model"
    elif m.type not in CHAT_TYPES:
        return f"a {m.type} model, not a chat model"
    missing = req.capabilities - m.capabilities
    if missing:
        return f"lacks {', '.join(sorted(missing))}"
    if req.min_context is not None and m.context_window is not None and m.context_window < req.min_context:
        return f"context window {m.context_window} < {req.min_context} tokens needed"
    if req.max_output is not None and m.max_output_tokens is not None and m.max_output_tokens < req.max_output:
        return f"max output {m.max_output_tokens} < max_tokens {req.max_output}"
    if m.provider in req.exclude_providers:
        return "provider excluded by the request"
    if req.free_only and not m.is_free:
        return "not free"
    if req.max_price is not None and not m.is_free:
        if m.input_price is None or m.output_price is None:
            return "price unknown (max price set)"
        if m.input_price > req.max_price or m.output_price > req.max_price:
            return f"price {m.input_price}/{m.output_price} $/M over {req.max_price}"
    return None


def _usable(m: ModelView) -> str | None:
    if not m.routable:
        if m.status == ModelStatus.RETIRED:
            return "retired"
        if not m.row.get("provider__enabled", True):
            return "its provider is disabled"
        if m.expires_at is not None and not m.row.get("disabled"):
            return "its free offer expired"
        return "disabled by an operator"
    if m.status == ModelStatus.DOWN:
        return "down (health checks)" + ("; its provider is down" if m.provider_status == "down" else "")
    return None


def _walk(snap: Snapshot, policy: str, req: Requirements):
    """The shortest pre-sorted list every fitting model is on (a required capability, free)."""
    keys = [f"cap:{c}" for c in req.capabilities]
    if req.free_only:
        keys.append("free")
    lists = [snap.index.get((policy, key), []) for key in keys]
    return min(lists, key=len) if lists else snap.ranked[policy]


def _consider(out: Plan, m: ModelView, req: Requirements, live: Live, now: float, policy: str, *,
              check_usable: bool = False) -> Candidate | None:
    """`m` as a candidate scored with its live parts, or None with the reason recorded in `out`."""
    reason = (_usable(m) if check_usable else None) or _fit(m, req)
    if reason is None and m.expires_at is not None and m.expires_at <= now:
        reason = "its free offer expired"  # between the expiry and the next snapshot
    if reason:
        out.reject(m, reason)
        return None
    blocked = live.blocked(m, now)
    if blocked:
        out.reject(m, blocked[0], blocked[1])
        return None
    load, quota = live.load(m), live.quota(m, now)
    total = m.base[policy] + live_adjustment(POLICIES[policy], load=load, quota=quota)
    return Candidate(m, total, {**m.parts, "load": load, "quota": quota})


def plan(
    model: str, req: Requirements, snap: Snapshot, *, live: Live | None = None, now: float = 0.0,
    aliases: dict[str, dict] | None = None, max_candidates: int = 5, explain: bool = False,
) -> Plan:
    """Candidates for a request, best first. With `explain` (and whenever nothing can serve), every
    model passed over is walked and gets its reason; otherwise the walk takes the fast way."""
    if not explain:
        fast = _plan(model, req, snap, live, now, aliases, max_candidates, explain=False)
        if fast.candidates:
            return fast
    return _plan(model, req, snap, live, now, aliases, max_candidates, explain=True)


def _plan(model: str, req: Requirements, snap: Snapshot, live: Live | None, now: float,
          aliases: dict[str, dict] | None, max_candidates: int, explain: bool) -> Plan:
    live = live or Live()
    alias = (aliases or {}).get(model)
    if alias is not None:
        if alias.get("models"):
            explicit = tuple(alias["models"])
            return _explicit(model, explicit + tuple(req.fallbacks), req, snap, live, now, max_candidates)
        model = alias.get("policy", "auto")
        req = _merge(req, alias)
    if model in POLICY_NAMES:
        return _ranked(model, req, snap, live, now, max_candidates, explain)
    return _explicit(model, (model, *req.fallbacks), req, snap, live, now, max_candidates)


def _merge(req: Requirements, alias: dict) -> Requirements:
    contexts = [c for c in (req.min_context, alias.get("min_context")) if c]
    return Requirements(
        kind=req.kind, capabilities=req.capabilities | frozenset(alias.get("capabilities", ())),
        min_context=max(contexts) if contexts else None, max_output=req.max_output, max_price=alias.get("max_price", req.max_price),
        prefer_providers=tuple(alias.get("prefer_providers", ())) or req.prefer_providers,
        exclude_providers=req.exclude_providers | frozenset(alias.get("exclude_providers", ())),
        fallbacks=req.fallbacks, free_only=req.free_only or alias.get("policy") == "free",
    )


def _resolve(name: str, snap: Snapshot) -> list[ModelView]:
    exact = snap.by_public_id.get(name)
    if exact is not None:
        return [exact]
    return [m for m in snap.ranked["auto"] if m.public_id.split("/", 1)[1] == name] or [
        m for m in snap.models if m.public_id.split("/", 1)[1] == name
    ]


def _explicit(label: str, names: tuple[str, ...], req: Requirements, snap: Snapshot, live: Live, now: float,
              max_candidates: int) -> Plan:
    out = Plan(policy="explicit", resolved=label)
    seen: set[int] = set()
    found_any = False
    for name in names:
        views = _resolve(name, snap)
        if not views:
            out.reject(name, "not in the registry")
            continue
        found_any = True
        for m in views:
            if m.pk in seen:
                continue
            seen.add(m.pk)
            candidate = _consider(out, m, req, live, now, "auto", check_usable=True)
            if candidate is None:
                continue
            out.candidates.append(candidate)
            if len(out.candidates) >= max_candidates:
                return out
    if not found_any:
        raise UnknownModel(label)
    return out


def _ranked(policy: str, req: Requirements, snap: Snapshot, live: Live, now: float, max_candidates: int,
            explain: bool) -> Plan:
    if policy == "free" and not req.free_only:
        req = Requirements(**{**req.__dict__, "free_only": True})
    out = Plan(policy=policy, resolved=policy)
    ranked = snap.ranked[policy]
    # Demo providers: behind every real model until a real one has answered, then never
    # (registry.selectors.demo_rule; README, "Quick start").
    demo = snap.demo
    deferred: list[ModelView] = []
    leaders: list[Candidate] = []
    cutoff = None
    for m in ranked if explain else _walk(snap, policy, req):
        if cutoff is not None and m.base[policy] < cutoff:
            break
        if m.is_demo and demo in ("skip", "last"):
            if demo == "last":
                deferred.append(m)
            continue
        candidate = _consider(out, m, req, live, now, policy)
        if candidate is None:
            continue
        if req.prefer_providers and m.provider in req.prefer_providers:
            candidate.score += 1.0  # preferred providers first, in score order among them
        leaders.append(candidate)
        if len(leaders) >= max_candidates and not req.prefer_providers:
            # Live parts only lower a score, so a model whose static score is below the weakest
            # leader's live score cannot overtake it: the walk can stop there.
            cutoff = sorted(c.score for c in leaders)[-max_candidates]
    leaders.sort(key=lambda c: c.score, reverse=True)
    out.candidates = leaders[:max_candidates]
    if deferred and len(out.candidates) < max_candidates:
        last = [c for c in (_consider(out, m, req, live, now, policy) for m in deferred) if c is not None]
        last.sort(key=lambda c: c.score, reverse=True)
        out.candidates += last[:max_candidates - len(out.candidates)]
    return out
