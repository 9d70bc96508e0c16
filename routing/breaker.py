"""Circuit breakers, one per model and one per provider.

closed ──(more than `failures` failures within `window` s, or ≥ `ratio` failing over at least
          `min_requests`)──▶ open ──(cool-down passed)──▶ half-open: one trial request
half-open ──success──▶ closed;  half-open ──failure──▶ open again, cool-down doubled (capped)

Defaults follow LiteLLM's cooldowns (FIELD.md): more than 3 failures a minute or ≥ 50 % failing,
5 s or the upstream's Retry-After, whichever is longer. A later opening never shortens an earlier
deadline (a LiteLLM bug worth not repeating).

State lives in a store: `MemoryStore` in one process, `RedisStore` (atomic Lua) shared by every
process when REDIS_URL is set. Every method takes `now` (one clock, DESIGN.md).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Protocol

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True)
class BreakerConfig:
    failures: int = 3  # open on the (failures + 1)th failure within the window
    window: float = 60.0
    ratio: float = 0.5
    min_requests: int = 5
    cooldown: float = 5.0
    max_cooldown: float = 300.0


@dataclass
class BreakerState:
    state: str = CLOSED
    open_until: float = 0.0
    cooldown: float = 0.0
    # (time, ok) of recent outcomes within the window
    outcomes: list[tuple[float, bool]] = field(default_factory=list)
    trial_at: float = 0.0  # when a half-open trial was let through

    def as_dict(self, now: float) -> dict:
        failures = sum(1 for _, ok in self.outcomes if not ok)
        return {
            "state": HALF_OPEN if self.state == OPEN and now >= self.open_until else self.state,
            "openForSeconds": round(max(0.0, self.open_until - now), 3) if self.state == OPEN else 0.0,
            "recentFailures": failures,
            "recentRequests": len(self.outcomes),
        }


class Store(Protocol):
    def get(self, key: str) -> BreakerState | None: ...
    def update(self, key: str, fn) -> tuple[BreakerState, object]: ...
    def items(self) -> list[tuple[str, BreakerState]]: ...


class MemoryStore:
    def __init__(self) -> None:
        self._states: dict[str, BreakerState] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> BreakerState | None:
        return self._states.get(key)

    def update(self, key: str, fn):
        with self._lock:
            state = self._states.setdefault(key, BreakerState())
            result = fn(state)
            return state, result

    def items(self) -> list[tuple[str, BreakerState]]:
        return list(self._states.items())


class RedisStore:
    """Breaker state as JSON under `afmts:brk:<key>`, updated under a short per-key lock
    (SET NX PX) so concurrent processes apply transitions one at a time."""

    def __init__(self, client, prefix: str = "afmts:brk:"):
        self.redis = client
        self.prefix = prefix

    def _load(self, raw) -> BreakerState | None:
        if not raw:
            return None
        data = json.loads(raw)
        data["outcomes"] = [tuple(o) for o in data.get("outcomes", [])]
        return BreakerState(**data)

    def get(self, key: str) -> BreakerState | None:
        return self._load(self.redis.get(self.prefix + key))

    def update(self, key: str, fn):
        name = self.prefix + key
        with self.redis.lock(name + ":lock", timeout=2, blocking_timeout=2):
            state = self._load(self.redis.get(name)) or BreakerState()
            result = fn(state)
            self.redis.set(name, json.dumps(state.__dict__), ex=3600)
            return state, result

    def items(self) -> list[tuple[str, BreakerState]]:
        keys = [k for k in self.redis.scan_iter(self.prefix + "*") if not k.endswith(b":lock")]
        values = self.redis.mget(keys) if keys else []
        return [(k.decode()[len(self.prefix):], self._load(v)) for k, v in zip(keys, values, strict=True) if v]


class Breakers:
    def __init__(self, store: Store | None = None, config: BreakerConfig | None = None):
        self.store = store or MemoryStore()
        self.config = config or BreakerConfig()

    def allow(self, key: str, now: float) -> tuple[bool, float]:
        """May a request go to `key` now? Returns (allowed, seconds until it may)."""
        state = self.store.get(key)
        if state is None or state.state == CLOSED:
            return True, 0.0
        if now < state.open_until:
            return False, state.open_until - now
        # Half-open: let one trial through; others wait until it reports (or 10 s pass).
        def claim(s: BreakerState) -> bool:
            no_trial_yet = s.trial_at < s.open_until or now - s.trial_at >= 10.0
            if s.state == OPEN and now >= s.open_until and no_trial_yet:
                s.trial_at = now
                return True
            return s.state == CLOSED

        _, allowed = self.store.update(key, claim)
        return bool(allowed), 0.0 if allowed else 1.0

    def record(self, key: str, ok: bool, now: float, retry_after: float | None = None) -> str | None:
        """Record an outcome; returns "opened" or "closed" when the breaker changed state."""
        cfg = self.config

        def apply(s: BreakerState) -> str | None:
            s.outcomes = [(t, o) for t, o in s.outcomes if now - t < cfg.window]
            s.outcomes.append((now, ok))
            if ok:
                if s.state == OPEN and now >= s.open_until:  # the half-open trial succeeded
                    s.state, s.cooldown, s.outcomes, s.trial_at = CLOSED, 0.0, [], 0.0
                    return "closed"
                return None
            failures = sum(1 for _, o in s.outcomes if not o)
            trial_failed = s.state == OPEN and now >= s.open_until
            tripped = failures > cfg.failures or (
                len(s.outcomes) >= cfg.min_requests and failures / len(s.outcomes) >= cfg.ratio
            )
            if not (trial_failed or tripped or retry_after):
                return None
            cooldown = min(cfg.max_cooldown, s.cooldown * 2) if trial_failed and s.cooldown else cfg.cooldown
            cooldown = max(cooldown, retry_after or 0.0)
            was_open = s.state == OPEN
            s.state, s.cooldown = OPEN, cooldown
            s.open_until = max(s.open_until, now + cooldown)  # never shorten a deadline
            return None if was_open and not trial_failed else "opened"

        _, change = self.store.update(key, apply)
        return change

    def snapshot(self, now: float) -> dict[str, dict]:
        return {key: state.as_dict(now) for key, state in self.store.items() if state.state != CLOSED or state.outcomes}
