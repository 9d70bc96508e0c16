"""Random fault mixes for the fake providers: each call of a provider independently fails with the
configured rates, the way free tiers fail now and then on their own (bench/faults.py, tests).

`POST /_control/faults {"provider": "groq" | "*", "error_rate": 0.03, "rate_limit_rate": 0.02,
"retry_after": 2, "rate_limit_remaining": "zero" | "keep", "hang_rate": 0.01, "hang_seconds": 30, "cut_rate": 0.02, "down": false, "seed": 7}`
sets a provider's mix (replacing its previous one; "*" applies to providers without their own);
`{"provider": "groq", "clear": true}` removes it. `down: true` answers every call (listings included)
with 503; `down: "close"` closes the connection without a reply. `GET /_control/faults` shows the
mixes and how many faults of each kind were injected per provider.

The mix is drawn only when no explicit scenario (header, `@scenario` model, queue) applies, and only
for calls (chat, embeddings); listings see `down` alone. A seed gives each provider its own random
stream (seeded from the seed and the provider's name), so a provider's n-th call fails the same way
in every run.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

FIELDS = ("error_rate", "rate_limit_rate", "retry_after", "rate_limit_remaining", "hang_rate", "hang_seconds", "cut_rate",
          "down", "seed")


@dataclass
class FaultMix:
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after: float = 2.0
    # "zero": a 429's quota headers say nothing is left (a used-up quota, as the rate_limit scenario);
    # "keep": they say what they would have (a short burst limit that only Retry-After describes).
    rate_limit_remaining: str = "zero"
    hang_rate: float = 0.0
    hang_seconds: float = 30.0
    cut_rate: float = 0.0
    down: bool | str = False
    seed: int | None = None
    _rngs: dict[str, random.Random] = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, body: dict[str, Any]) -> FaultMix:
        """A mix from a control request's fields; rates are clamped to [0, 1] and must sum to at most 1."""
        mix = cls()
        for name in ("error_rate", "rate_limit_rate", "hang_rate", "cut_rate"):
            setattr(mix, name, min(1.0, max(0.0, float(body.get(name) or 0))))
        mix.retry_after = max(0.0, float(body.get("retry_after", mix.retry_after)))
        mix.hang_seconds = max(0.0, float(body.get("hang_seconds", mix.hang_seconds)))
        mix.rate_limit_remaining = "keep" if body.get("rate_limit_remaining") == "keep" else "zero"
        down = body.get("down", False)
        mix.down = "close" if down == "close" else bool(down)
        mix.seed = None if body.get("seed") is None else int(body["seed"])
        if mix.error_rate + mix.rate_limit_rate + mix.hang_rate + mix.cut_rate > 1.0 + 1e-9:
            raise ValueError("the fault rates add up to more than 1")
        return mix

    def describe(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELDS}

    def _rng(self, provider: str) -> random.Random:
        rng = self._rngs.get(provider)
        if rng is None:
            rng = self._rngs[provider] = random.Random(None if self.seed is None else f"{self.seed}:{provider}")
        return rng

    def draw(self, provider: str, *, listing: bool = False) -> tuple[str, dict[str, Any]] | None:
        """The scenario (name, params) this call gets, or None for a normal reply."""
        if self.down:
            return ("refused", {}) if self.down == "close" else ("unavailable", {})
        if listing:
            return None
        roll = self._rng(provider).random()
        for name, rate, params in (
            ("server_error", self.error_rate, {}),
            ("rate_limit", self.rate_limit_rate, {"retry_after": self.retry_after,
                                                  "remaining": self.rate_limit_remaining}),
            ("hang", self.hang_rate, {"seconds": self.hang_seconds}),
            ("cut", self.cut_rate, {}),
        ):
            if roll < rate:
                return name, params
            roll -= rate
        return None


class Faults:
    """The mixes per provider and the count of what was injected (not thread-safe: callers lock)."""

    def __init__(self) -> None:
        self.mixes: dict[str, FaultMix] = {}
        self.injected: dict[str, Counter[str]] = {}

    def set(self, provider: str, mix: FaultMix | None) -> None:
        if mix is None:
            self.mixes.pop(provider, None)
        else:
            self.mixes[provider] = mix

    def draw(self, provider: str, *, listing: bool = False) -> tuple[str, dict[str, Any]] | None:
        mix = self.mixes.get(provider) or self.mixes.get("*")
        if mix is None:
            return None
        drawn = mix.draw(provider, listing=listing)
        if drawn is not None:
            self.injected.setdefault(provider, Counter())[drawn[0]] += 1
        return drawn

    def describe(self) -> dict[str, Any]:
        return {"faults": {p: m.describe() for p, m in self.mixes.items()},
                "injected": {p: dict(c) for p, c in self.injected.items()}}
