"""The one scoring function (DESIGN.md): /api/models/find, the router and the explain endpoint all
rank with `score_parts`.

Each part is in [0, 1]; the total is their weighted sum, plus operator priority, minus a penalty for a
degraded model:

    free         1 if the model is free (zero marginal cost), else 0
    price        1 for free; 1 / (1 + blended / 1 USD) with blended = mean of input and output USD per
                 million tokens; 0 when the price is unknown (unknown ranks after known prices)
    latency      1 / (1 + latency EWMA / 1000 ms); 0.5 when not yet observed
    reliability  observed success ratio; 0.8 when not yet observed
    load         1 - in-flight / capacity (router only; 1 when idle or unknown)
    quota        remaining fraction of the free quota (1 when unlimited or unknown)

    total = Σ weight[part] · part + 0.05 · priority − (0.15 if degraded)

The weights depend on the policy (`auto`, `free`, `cheap`, `fast`). Because the total is linear,
the static part (everything but load and quota) is computed once per model when the in-memory
snapshot is built, and a ranking only adds the live parts.
"""

from __future__ import annotations

from dataclasses import dataclass

PRICE_REF = 1.0  # USD per million tokens at which the price part is 0.5
LATENCY_REF = 1000.0  # ms at which the latency part is 0.5
UNKNOWN_LATENCY = 0.5
UNKNOWN_RELIABILITY = 0.8
PRIORITY_STEP = 0.05
DEGRADED_PENALTY = 0.15


@dataclass(frozen=True, slots=True)
class Weights:
    free: float
    price: float
    latency: float
    reliability: float
    load: float
    quota: float


POLICIES: dict[str, Weights] = {
    "auto": Weights(free=0.30, price=0.15, latency=0.15, reliability=0.25, load=0.05, quota=0.10),
    "free": Weights(free=0.30, price=0.15, latency=0.15, reliability=0.25, load=0.05, quota=0.10),
    "cheap": Weights(free=0.30, price=0.40, latency=0.05, reliability=0.15, load=0.05, quota=0.05),
    "fast": Weights(free=0.10, price=0.05, latency=0.50, reliability=0.25, load=0.05, quota=0.05),
}


def static_parts(
    *, is_free: bool, input_price: float | None, output_price: float | None,
    latency_ms: float | None, reliability: float | None,
) -> dict[str, float]:
    if is_free:
        price = 1.0
    elif input_price is None or output_price is None:
        price = 0.0
    else:
        price = 1.0 / (1.0 + (input_price + output_price) / 2.0 / PRICE_REF)
    return {
        "free": 1.0 if is_free else 0.0,
        "price": price,
        "latency": UNKNOWN_LATENCY if latency_ms is None else 1.0 / (1.0 + max(latency_ms, 0.0) / LATENCY_REF),
        "reliability": UNKNOWN_RELIABILITY if reliability is None else min(max(reliability, 0.0), 1.0),
    }


def score_parts(
    parts: dict[str, float], weights: Weights, *, priority: int = 0, degraded: bool = False,
    load: float = 1.0, quota: float = 1.0,
) -> tuple[float, dict[str, float]]:
    """The total and every part that went into it, so a user sees why a model ranks where it does."""
    all_parts = {**parts, "load": load, "quota": quota}
    total = (
        weights.free * all_parts["free"]
        + weights.price * all_parts["price"]
        + weights.latency * all_parts["latency"]
        + weights.reliability * all_parts["reliability"]
        + weights.load * load
        + weights.quota * quota
        + PRIORITY_STEP * priority
        - (DEGRADED_PENALTY if degraded else 0.0)
    )
    return total, all_parts


def live_adjustment(weights: Weights, *, load: float = 1.0, quota: float = 1.0) -> float:
    """What live load and quota change in a total computed with load = quota = 1."""
    return weights.load * (load - 1.0) + weights.quota * (quota - 1.0)
