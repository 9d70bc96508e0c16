"""Circuit breakers, one per model and one per provider.

closed ──(more than `failures` failures within `window` s, or ≥ `ratio` failing over at least
          `min_requests` requests since the first recent failure)──▶ open ──(cool-down passed)──▶ half-open: one trial request
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
import time
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
    # [second, requests, failures] per second of the window, kept only while failures are recent:
    # a healthy key records nothing, so the happy path costs one read.
    buckets: list[list[int]] = field(default_factory=list)
    trial_at: float = 0.0  # when a half-open trial was let through

    def prune(self, now: float, window: float) -> None:
        oldest = int(now - window)
        if self.buckets and self.buckets[0][0] <= oldest:
            self.buckets = [b for b in self.buckets if b[0] > oldest]

    def counts(self) -> tuple[int, int]:
        return sum(b[1] for b in self.buckets), sum(b[2] for b in self.buckets)

    def add(self, now: float, ok: bool) -> None:
        second = int(now)
        if self.buckets and self.buckets[-1][0] == second:
            self.buckets[-1][1] += 1
            self.buckets[-1][2] += not ok
        else:
            self.buckets.append([second, 1, int(not ok)])

    def healthy(self, now: float, window: float) -> bool:
        """Closed, with no failure in the window: a success changes nothing."""
        return self.state == CLOSED and not any(b[2] for b in self.buckets if b[0] > now - window)

    def as_dict(self, now: float) -> dict:
        requests, failures = self.counts()
        return {
            "state": HALF_OPEN if self.state == OPEN and now >= self.open_until else self.state,
            "openForSeconds": round(max(0.0, self.open_until - now), 3) if self.state == OPEN else 0.0,
            "recentFailures": failures,
            "recentRequests": requests,
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

    # Reads are cached this long in the process: the hot path asks for two keys per request.
    READ_CACHE_SECONDS = 0.25

    def __init__(self, client, prefix: str = "afmts:brk:"):
        self.redis = client
        self.prefix = prefix
        self._cache: dict[str, tuple[float, BreakerState | None]] = {}

    def _load(self, raw) -> BreakerState | None:
        if not raw:
            return None
        data = json.loads(raw)
        data.pop("outcomes", None)
        return BreakerState(**data)

    def get(self, key: str) -> BreakerState | None:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.READ_CACHE_SECONDS:
            return hit[1]
        state = self._load(self.redis.get(self.prefix + key))
        self._cache[key] = (now, state)
        return state

    def update(self, key: str, fn):
        name = self.prefix + key
        with self.redis.lock(name + ":lock", timeout=2, blocking_timeout=2):
            state = self._load(self.redis.get(name)) or BreakerState()
            result = fn(state)
            self.redis.set(name, json.dumps(state.__dict__), ex=3600)
        self._cache[key] = (time.monotonic(), state)
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
        if ok:
            current = self.store.get(key)
            if current is None or current.healthy(now, cfg.window):
                return None  # the happy path: nothing to record

        def apply(s: BreakerState) -> str | None:
            s.prune(now, cfg.window)
            if ok:
                if s.state == OPEN and now >= s.open_until:  # the half-open trial succeeded
                    s.state, s.cooldown, s.buckets, s.trial_at = CLOSED, 0.0, [], 0.0
                    return "closed"
                if s.healthy(now, cfg.window):
                    return None
                s.add(now, ok)  # successes count only while failures are recent (the ratio rule)
                return None
            s.add(now, ok)
            requests, failures = s.counts()
            trial_failed = s.state == OPEN and now >= s.open_until
            tripped = failures > cfg.failures or (requests >= cfg.min_requests and failures / requests >= cfg.ratio)
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
        return {key: state.as_dict(now) for key, state in self.store.items() if state.state != CLOSED or state.buckets}
