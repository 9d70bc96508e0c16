"""Live routing state: circuit breakers, free-quota counters and in-flight load.

In one process it lives in memory; with REDIS_URL it is shared by every gateway process through
Redis (breakers: routing.breaker.RedisStore; quota: one hash per quota scope with atomic HINCRBY
counters). Time comes in as `now`, epoch seconds (one clock, DESIGN.md).

Quota per scope (a model, or a whole account when its free quota is account-wide) and window
("requests/minute", "requests/day", "tokens/minute", "tokens/day"):
- the limit is the provider's last report, else the configured free quota;
- what remains is the provider's last report less what was sent since, or, without a report, the
  limit less what was counted in the current window (UTC minute / UTC day);
- a 429's Retry-After blocks the scope until then; an exhausted window blocks it until its reset.
The router's `quota` part is the remaining fraction, paced over the window: a daily quota spent
faster than the day passes scores lower, so traffic spreads over accounts and over the day.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from typing import Any

from registry.selectors import ModelView
from routing.breaker import Breakers, MemoryStore, RedisStore
from routing.router import Live

WINDOWS = {"requests/minute": 60, "requests/day": 86400, "tokens/minute": 60, "tokens/day": 86400}
LIMIT_FIELDS = {"requests/minute": "free_rpm", "requests/day": "free_rpd", "tokens/minute": "free_tpm", "tokens/day": "free_tpd"}


def scope_of(m: ModelView) -> str:
    return f"a:{m.provider_id}" if m.quota_scope == "account" else f"m:{m.pk}"


class MemoryQuota:
    def __init__(self) -> None:
        self._data: dict[str, dict[str, Any]] = defaultdict(dict)
        self._lock = threading.Lock()

    def get(self, scope: str) -> dict[str, Any]:
        return self._data.get(scope, {})

    def incr(self, scope: str, fields: dict[str, int]) -> None:
        with self._lock:
            data = self._data[scope]
            for name, amount in fields.items():
                data[name] = data.get(name, 0) + amount

    def set(self, scope: str, fields: dict[str, Any]) -> None:
        with self._lock:
            self._data[scope].update(fields)


class RedisQuota:
    PREFIX = "afmts:quota:"

    def __init__(self, client) -> None:
        self.redis = client

    def get(self, scope: str) -> dict[str, Any]:
        raw = self.redis.hgetall(self.PREFIX + scope)
        out: dict[str, Any] = {}
        for key, value in raw.items():
            key = key.decode()
            out[key] = json.loads(value) if key.startswith("obs:") else float(value)
        return out

    def incr(self, scope: str, fields: dict[str, int]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for name, amount in fields.items():
            pipe.hincrby(self.PREFIX + scope, name, amount)
        pipe.expire(self.PREFIX + scope, 2 * 86400)
        pipe.execute()

    def set(self, scope: str, fields: dict[str, Any]) -> None:
        encoded = {k: json.dumps(v) if k.startswith("obs:") else v for k, v in fields.items()}
        self.redis.hset(self.PREFIX + scope, mapping=encoded)


def _bucket(window: str, now: float) -> int:
    return int(now // WINDOWS[window])


class LiveState(Live):
    def __init__(self, *, redis_client=None, capacity: int = 16, breakers: Breakers | None = None):
        self.redis = redis_client  # shared by every gateway process when REDIS_URL is set
        self.breakers = breakers or Breakers(RedisStore(redis_client) if redis_client else MemoryStore())
        self.quotas = RedisQuota(redis_client) if redis_client else MemoryQuota()
        self.capacity = capacity
        self.inflight: dict[int, int] = defaultdict(int)

    # ------------------------------------------------------------ router interface

    def blocked(self, m: ModelView, now: float) -> tuple[str, float] | None:
        for key, label in ((f"model:{m.pk}", "circuit open"), (f"provider:{m.provider}", "provider circuit open")):
            allowed, wait = self.breakers.allow(key, now)
            if not allowed:
                return label, now + wait
        if not m.is_free:
            return None
        state = self.quotas.get(scope_of(m))
        until = state.get("blocked_until")
        if until and until > now:
            return "rate-limited by the provider (429)", float(until)
        for window in WINDOWS:
            remaining, limit, reset_at = self._remaining(m, state, window, now)
            if limit and remaining is not None and remaining <= 0:
                return f"free quota used up ({window})", reset_at
        return None

    def load(self, m: ModelView) -> float:
        return 1.0 - min(1.0, self.inflight.get(m.pk, 0) / self.capacity)

    def quota(self, m: ModelView, now: float) -> float:
        if not m.is_free:
            return 1.0
        state = self.quotas.get(scope_of(m))
        paced = []
        for window, seconds in WINDOWS.items():
            remaining, limit, reset_at = self._remaining(m, state, window, now)
            if not limit or remaining is None:
                continue
            left_of_window = max(0.05, (reset_at - now) / seconds) if reset_at else 1.0
            paced.append(min(1.0, (remaining / limit) / left_of_window))
        return min(paced) if paced else 1.0

    # ------------------------------------------------------------ what happened

    def started(self, m: ModelView) -> None:
        self.inflight[m.pk] += 1

    def finished(self, m: ModelView) -> None:
        self.inflight[m.pk] = max(0, self.inflight[m.pk] - 1)

    def count(self, m: ModelView, *, requests: int = 1, tokens: int = 0, now: float) -> None:
        if not m.is_free:
            return
        fields = {}
        for window in WINDOWS:
            amount = requests if window.startswith("requests") else tokens
            if amount:
                fields[f"used:{window}:{_bucket(window, now)}"] = amount
                fields[f"since:{window}"] = amount
        if fields:
            self.quotas.incr(scope_of(m), fields)

    def observe(self, m: ModelView, info, now: float) -> None:
        """The provider's rate-limit report (RateLimitInfo) for this model's scope."""
        fields: dict[str, Any] = {}
        for window, seen in (getattr(info, "windows", None) or {}).items():
            if window not in WINDOWS or seen.remaining is None:
                continue
            reset = seen.reset if seen.reset is not None else WINDOWS[window]
            fields[f"obs:{window}"] = {"limit": seen.limit, "remaining": seen.remaining, "reset_at": now + reset}
            fields[f"since:{window}"] = 0
        if getattr(info, "retry_after", None):
            fields["blocked_until"] = now + float(info.retry_after)
        if fields:
            self.quotas.set(scope_of(m), fields)

    def block(self, m: ModelView, until: float) -> None:
        self.quotas.set(scope_of(m), {"blocked_until": until})

    def record(self, m: ModelView, ok: bool, now: float, retry_after: float | None = None) -> list[tuple[str, str]]:
        """Feed a result to the model's and provider's breakers; returns [(key, "opened"|"closed")]."""
        changes = []
        for key in (f"model:{m.pk}", f"provider:{m.provider}"):
            change = self.breakers.record(key, ok, now, retry_after=retry_after)
            if change:
                changes.append((key, change))
        return changes

    # ------------------------------------------------------------ views

    def _remaining(self, m: ModelView, state: dict[str, Any], window: str, now: float):
        configured = getattr(m, LIMIT_FIELDS[window])
        obs = state.get(f"obs:{window}")
        if obs and obs.get("reset_at", 0) > now:
            limit = obs.get("limit") or configured
            return obs["remaining"] - int(state.get(f"since:{window}", 0)), limit, obs["reset_at"]
        if configured is None:
            return None, None, None
        bucket = _bucket(window, now)
        used = int(state.get(f"used:{window}:{bucket}", 0))
        reset_at = (bucket + 1) * WINDOWS[window]
        return configured - used, configured, reset_at

    def quota_view(self, m: ModelView, now: float) -> dict[str, Any]:
        state = self.quotas.get(scope_of(m))
        windows = {}
        for window in WINDOWS:
            remaining, limit, reset_at = self._remaining(m, state, window, now)
            if limit is not None or remaining is not None:
                windows[window] = {"limit": limit, "remaining": remaining, "resetAt": reset_at}
        until = state.get("blocked_until")
        return {"scope": m.quota_scope, "windows": windows, "blockedUntil": until if until and until > now else None,
                "score": round(self.quota(m, now), 4)}


_live: LiveState | None = None
_lock = threading.Lock()


def live_state() -> LiveState:
    """The process's live state (Redis-backed when REDIS_URL is set)."""
    global _live
    if _live is None:
        with _lock:
            if _live is None:
                from django.conf import settings

                client = None
                if settings.REDIS_URL:
                    import redis

                    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)
                _live = LiveState(redis_client=client, capacity=settings.AFMTS_MODEL_CONCURRENCY)
    return _live


def wall() -> float:
    return time.time()

