"""Live routing state: circuit breakers, free-quota counters, 429 cool-downs, in-flight load and
per-key request limits.

The router reads it synchronously and without I/O: everything it asks lives in this process.
With REDIS_URL, every gateway process shares it through Redis (`redis.asyncio`, short timeouts):
- free requests are *reserved* atomically in Redis before an upstream call (`reserve`), so two
  processes on a 10-a-minute quota make at most 10 calls in that minute;
- key limits are counted in Redis (`admit_key`: small limits request by request, larger ones in
  this process and reconciled by `sync`);
- breaker openings and closings, provider rate-limit reports and 429 cool-downs are pushed, and
  what other processes decided is pulled, every AFMTS_LIVE_SYNC_SECONDS by `sync`, a background
  task of the gateway process.
When Redis cannot be reached, all of it goes on in this process alone (Redis is then skipped for a
second at a time, so no request waits on it), and what was counted meanwhile is pushed when it
returns. Every structure is bounded: quota counters keep only the current window, idle breakers are
forgotten, and what waits to be pushed is capped.

Quota per scope (a model, or a whole account when its free quota is account-wide) and window
("requests/minute", "requests/day", "tokens/minute", "tokens/day"):
- the limit is the provider's last report, else the configured free quota;
- what remains is the provider's last report less what was sent since, or, without a report, the
  limit less what was counted in the current window (UTC minute / UTC day);
- a 429's Retry-After blocks the scope until then (any model, free or paid: a cool-down, not a
  breaker failure); an exhausted window blocks it until its reset.
The router's `quota` part is the remaining fraction, paced over the window: a daily quota spent
faster than the day passes scores lower, so traffic spreads over accounts and over the day.
Time comes in as `now`, epoch seconds (one clock, DESIGN.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import defaultdict
from typing import Any

from registry.selectors import ModelView
from routing.breaker import OPEN, BreakerConfig, Breakers
from routing.router import Live

log = logging.getLogger(__name__)

WINDOWS = {"requests/minute": 60, "requests/day": 86400, "tokens/minute": 60, "tokens/day": 86400}
LIMIT_FIELDS = {"requests/minute": "free_rpm", "requests/day": "free_rpd", "tokens/minute": "free_tpm", "tokens/day": "free_tpd"}
REQUEST_WINDOWS = ("requests/minute", "requests/day")
PREFIX = "afmts:"
MAX_PENDING = 10_000  # pushes waiting for Redis; past this the oldest are dropped (and counted)
ACTIVE_SECONDS = 120.0  # a scope is pulled from Redis while this process used it this recently

# Reserve one request in every limited window of a scope, or none: KEYS are the windows' counters,
# ARGV their limits then their TTLs. Returns {1, counts...} or {0, index of the full window, count}.
RESERVE = """
local n = #KEYS
for i = 1, n do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used >= tonumber(ARGV[i]) then return {0, i, used} end
end
local out = {1}
for i = 1, n do
  out[i + 1] = redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[n + i])
end
return out
"""
# Open a breaker in the shared index unless it is already open for longer.
OPEN_SHARED = """
local cur = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not cur) or tonumber(cur) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
end
return 1
"""


class Unavailable(Exception):
    """Redis could not be reached (or answered too slowly); the caller falls back to this process."""


def scope_of(m: ModelView) -> str:
    return f"a:{m.provider_id}" if m.quota_scope == "account" else f"m:{m.pk}"


def _bucket(window: str, now: float) -> int:
    return int(now // WINDOWS[window])


def _counter_key(prefix: str, scope: str, window: str, bucket: int) -> str:
    return f"{prefix}q:{scope}:{window}:{bucket}"


class Shared:
    """Redis through `redis.asyncio`, one client per event loop, every call bounded by `timeout`.
    After a failure Redis is skipped for `retry_seconds`, so a dead Redis costs requests nothing."""

    def __init__(self, url: str, *, timeout: float = 0.25, retry_seconds: float = 1.0):
        self.url, self.timeout, self.retry_seconds = url, timeout, retry_seconds
        self._client = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.down_until = 0.0
        self.error = ""
        self._scripts: dict[str, Any] = {}

    @property
    def available(self) -> bool:
        return time.monotonic() >= self.down_until

    def _get_client(self):
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            import redis.asyncio

            self._client = redis.asyncio.Redis.from_url(
                self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout, retry=None,
            )
            self._loop = loop
            self._scripts = {}
        return self._client

    def script(self, source: str):
        client = self._get_client()
        if source not in self._scripts:
            self._scripts[source] = client.register_script(source)
        return self._scripts[source]

    async def call(self, fn):
        """`await fn(client)` within the timeout, or raise Unavailable."""
        if not self.available:
            raise Unavailable(self.error)
        from redis.exceptions import RedisError

        try:
            async with asyncio.timeout(self.timeout * 2):
                result = await fn(self._get_client())
        except (RedisError, OSError, TimeoutError) as exc:
            if not self.error:
                log.warning("Redis unreachable (%s); live state continues in this process", type(exc).__name__)
            self.error = type(exc).__name__
            self.down_until = time.monotonic() + self.retry_seconds
            raise Unavailable(self.error) from None
        if self.error:
            log.warning("Redis is back; live state is shared again")
            self.error = ""
        return result


class LiveState(Live):
    def __init__(self, *, redis_url: str = "", capacity: int = 16, breaker_config: BreakerConfig | None = None,
                 redis_timeout: float = 0.25, rate_limit_cooldown: float = 10.0, prefix: str = PREFIX,
                 exact_key_limit: int = 120):
        self.prefix = prefix
        self.shared = Shared(redis_url, timeout=redis_timeout) if redis_url else None
        self.breakers = Breakers(breaker_config)
        self.capacity = capacity
        self.rate_limit_cooldown = rate_limit_cooldown
        self.inflight: dict[int, int] = defaultdict(int)
        # scope -> {"used:<window>": [bucket, count], "obs:<window>": {...}, "since:<window>": n,
        #           "blocked_until": t}
        self.quotas: dict[str, dict[str, Any]] = {}
        self._scope_seen: dict[str, float] = {}
        self._models_seen: dict[str, dict[int, float]] = defaultdict(dict)  # provider -> model pk -> last seen
        # Waiting for Redis: counter increments, report fields, `since` increments.
        self._pending_counts: dict[tuple[str, str, int], int] = defaultdict(int)
        self._pending_fields: dict[str, dict[str, Any]] = defaultdict(dict)
        self._pending_since: dict[tuple[str, str], int] = defaultdict(int)
        self._key_windows: dict[str, tuple[int, int]] = {}  # key -> (minute, requests counted)
        self._pending_keys: dict[tuple[str, int], int] = defaultdict(int)  # (key, minute) -> not yet pushed
        self.exact_key_limit = exact_key_limit
        self.dropped = 0
        self._lock = threading.Lock()

    @property
    def redis_ok(self) -> bool | None:
        """None without Redis; else whether the last call to it worked."""
        return None if self.shared is None else not self.shared.error

    # ------------------------------------------------------------ router interface

    def blocked(self, m: ModelView, now: float) -> tuple[str, float] | None:
        for key, label in ((f"provider:{m.provider}", "provider circuit open"), (f"model:{m.pk}", "circuit open")):
            s = self.breakers.states.get(key)
            if s is not None and s.state == OPEN and now < s.open_until:
                return f"{label} until {_hms(s.open_until)}", s.open_until
        state = self.quotas.get(scope_of(m))
        if not state:
            return None
        until = state.get("blocked_until")
        if until and until > now:
            return f"rate-limited by the provider (429) until {_hms(until)}", float(until)
        if not m.is_free:
            return None
        for window in WINDOWS:
            remaining, limit, reset_at = self._remaining(m, state, window, now)
            if limit and remaining is not None and remaining <= 0:
                return f"free quota used up ({window}) until {_hms(reset_at)}", reset_at
        return None

    def admit(self, m: ModelView, now: float) -> tuple[str, float] | None:
        """Just before an attempt: the breakers' say, claiming a trial slot when one is half-open."""
        for key, label in ((f"provider:{m.provider}", "provider circuit"), (f"model:{m.pk}", "circuit")):
            allowed, wait = self.breakers.allow(key, now)
            if not allowed:
                if wait:
                    return f"{label} open until {_hms(now + wait)}", now + wait
                return f"{label} half-open, its trial calls are in flight", now + 1.0
        return None

    def load(self, m: ModelView) -> float:
        return 1.0 - min(1.0, self.inflight.get(m.pk, 0) / self.capacity)

    def quota(self, m: ModelView, now: float) -> float:
        if not m.is_free:
            return 1.0
        state = self.quotas.get(scope_of(m))
        if not state and m.free_rpm is None and m.free_rpd is None and m.free_tpm is None and m.free_tpd is None:
            return 1.0
        state = state or {}
        paced = []
        for window, seconds in WINDOWS.items():
            remaining, limit, reset_at = self._remaining(m, state, window, now)
            if not limit or remaining is None:
                continue
            left_of_window = max(0.05, (reset_at - now) / seconds) if reset_at else 1.0
            paced.append(min(1.0, (max(0, remaining) / limit) / left_of_window))
        return min(paced) if paced else 1.0

    # ------------------------------------------------------------ what happened

    def started(self, m: ModelView) -> None:
        self.inflight[m.pk] += 1

    def finished(self, m: ModelView) -> None:
        left = self.inflight.get(m.pk, 0) - 1
        if left > 0:
            self.inflight[m.pk] = left
        else:
            self.inflight.pop(m.pk, None)

    def _scope(self, scope: str, now: float) -> dict[str, Any]:
        self._scope_seen[scope] = now
        state = self.quotas.get(scope)
        if state is None:
            state = self.quotas[scope] = {}
        return state

    def _limits(self, m: ModelView, state: dict[str, Any], now: float) -> list[tuple[str, int, int]]:
        """[(window, limit, bucket)] of the request windows with a configured limit."""
        out = []
        for window in REQUEST_WINDOWS:
            limit = getattr(m, LIMIT_FIELDS[window])
            if limit:
                out.append((window, int(limit), _bucket(window, now)))
        return out

    def _count_locally(self, scope: str, state: dict[str, Any], window: str, bucket: int, amount: int) -> int:
        used = state.get(f"used:{window}")
        if used is None or used[0] != bucket:
            used = state[f"used:{window}"] = [bucket, 0]  # a new window replaces the old one
        used[1] += amount
        return used[1]

    async def reserve(self, m: ModelView, now: float) -> tuple[str, float] | None:
        """Count one request against the model's free quota before it is sent, atomically across
        processes; returns (reason, until) instead when a window is full."""
        if not m.is_free:
            return None
        scope = scope_of(m)
        state = self._scope(scope, now)
        limits = self._limits(m, state, now)
        for window in WINDOWS:
            if window.startswith("requests"):
                state[f"since:{window}"] = state.get(f"since:{window}", 0) + 1
                if self.shared is not None:
                    self._push_since(scope, window, 1)
        if not limits:
            return None
        if self.shared is not None:
            keys = [_counter_key(self.prefix, scope, w, b) for w, _, b in limits]
            args = [limit for _, limit, _ in limits] + [WINDOWS[w] + 60 for w, _, _ in limits]
            try:
                result = await self.shared.call(lambda c: self.shared.script(RESERVE)(keys=keys, args=args))
            except Unavailable:
                pass
            else:
                if result[0] == 0:
                    window, _, bucket = limits[int(result[1]) - 1]
                    self._set_used(state, window, bucket, int(result[2]))
                    reset_at = (bucket + 1) * WINDOWS[window]
                    return f"free quota used up ({window}) until {_hms(reset_at)}", reset_at
                for (window, _, bucket), count in zip(limits, result[1:], strict=True):
                    self._set_used(state, window, bucket, int(count))
                return None
        for window, limit, bucket in limits:
            used = state.get(f"used:{window}")
            if used is not None and used[0] == bucket and used[1] >= limit:
                reset_at = (bucket + 1) * WINDOWS[window]
                return f"free quota used up ({window}) until {_hms(reset_at)}", reset_at
        for window, _, bucket in limits:
            self._count_locally(scope, state, window, bucket, 1)
            if self.shared is not None:
                self._push_count(scope, window, bucket, 1)
        return None

    @staticmethod
    def _set_used(state: dict[str, Any], window: str, bucket: int, count: int) -> None:
        used = state.get(f"used:{window}")
        if used is None or used[0] < bucket or (used[0] == bucket and used[1] < count):
            state[f"used:{window}"] = [bucket, count]

    def count(self, m: ModelView, *, tokens: int = 0, now: float, requests: int = 0) -> None:
        """Tokens a free model spent (requests are counted by `reserve`, before the call; `requests`
        counts extra ones, for callers that did not reserve)."""
        if not m.is_free or not (tokens or requests):
            return
        scope = scope_of(m)
        state = self._scope(scope, now)
        for window in WINDOWS:
            amount = requests if window.startswith("requests") else tokens
            if not amount:
                continue
            bucket = _bucket(window, now)
            self._count_locally(scope, state, window, bucket, amount)
            state[f"since:{window}"] = state.get(f"since:{window}", 0) + amount
            if self.shared is not None:
                self._push_count(scope, window, bucket, amount)
                self._push_since(scope, window, amount)

    def observe(self, m: ModelView, info, now: float) -> None:
        """The provider's rate-limit report (RateLimitInfo) for this model's scope."""
        fields: dict[str, Any] = {}
        retry_after = getattr(info, "retry_after", None)
        for window, seen in (getattr(info, "windows", None) or {}).items():
            if window not in WINDOWS or seen.remaining is None:
                continue
            reset = seen.reset if seen.reset is not None else WINDOWS[window]
            if retry_after and seen.remaining <= 0:
                # A 429's Retry-After says when a request will pass again; an emptied window's reset
                # is when it is full again (providers refill continuously): the first one decides.
                reset = min(reset, float(retry_after))
            fields[f"obs:{window}"] = {"limit": seen.limit, "remaining": seen.remaining, "reset_at": now + reset, "at": now}
            fields[f"since:{window}"] = 0
        if retry_after:
            fields["blocked_until"] = now + float(retry_after)
        if fields:
            self._apply(scope_of(m), fields, now)

    def block(self, m: ModelView, until: float, now: float | None = None) -> None:
        self._apply(scope_of(m), {"blocked_until": until}, now or time.time())

    def _apply(self, scope: str, fields: dict[str, Any], now: float) -> None:
        state = self._scope(scope, now)
        if "blocked_until" in fields:
            fields["blocked_until"] = max(fields["blocked_until"], state.get("blocked_until") or 0)
        state.update(fields)
        if self.shared is not None:
            if len(self._pending_fields) >= MAX_PENDING and scope not in self._pending_fields:
                self.dropped += 1
                return
            self._pending_fields[scope].update(fields)

    def record(self, m: ModelView, ok: bool, now: float, retry_after: float | None = None) -> list[tuple[str, str]]:
        """Feed an upstream outcome to the model's breaker, and to its provider's when most of the
        provider's recently used models fail at once. Returns [(key, "opened"|"closed")]."""
        changes = []
        model_key, provider_key = f"model:{m.pk}", f"provider:{m.provider}"
        change = self.breakers.record(model_key, ok, now, retry_after=retry_after)
        if change:
            changes.append((model_key, change))
        seen = self._models_seen[m.provider]
        seen[m.pk] = now
        provider_state = self.breakers.states.get(provider_key)
        if ok:
            if provider_state is not None and provider_state.state == OPEN:
                change = self.breakers.record(provider_key, True, now)
                if change:
                    changes.append((provider_key, change))
            return changes
        window = self.breakers.config.window
        active = [pk for pk, t in seen.items() if now - t < window]
        if len(seen) > 256:  # bounded: forget models not used within the window
            for pk in [pk for pk, t in seen.items() if now - t >= window]:
                del seen[pk]
        failing = [pk for pk in active if self._failing(f"model:{pk}", now)]
        if provider_state is not None and provider_state.state == OPEN and now >= provider_state.open_until:
            change = self.breakers.record(provider_key, False, now, retry_after=retry_after)  # its trial failed
        elif len(active) >= 2 and len(failing) * 2 > len(active):
            change = self.breakers.trip(provider_key, now, retry_after)
        else:
            change = None
        if change:
            changes.append((provider_key, change))
        return changes

    def _failing(self, key: str, now: float) -> bool:
        s = self.breakers.states.get(key)
        if s is None:
            return False
        cfg = self.breakers.config
        return s.state == OPEN or (s.requests >= 3 and s.failures >= cfg.ratio * s.requests) or s.consecutive >= 3

    # ------------------------------------------------------------ key limits

    async def admit_key(self, key: str, limit: int, now: float) -> float | None:
        """Count a request of an API key against its per-minute limit; returns the seconds to wait
        when it is over, else None. Shared by every process through Redis when it answers: a limit
        under `exact_key_limit` is counted there request by request (exact); a larger one in this
        process, its increments pushed and the shared total pulled by `sync` — no Redis call on the
        request path, at the price of overshooting by what other processes sent within one sync
        interval (under 1 % of a 600-a-minute limit)."""
        minute = int(now // 60)
        window, seen = self._key_windows.get(key, (minute, 0))
        seen = seen if window == minute else 0
        if self.shared is not None and limit < self.exact_key_limit:
            name = f"{self.prefix}ratelimit:{key}:{minute}"

            async def incr(client):
                pipe = client.pipeline(transaction=False)
                pipe.incr(name)
                pipe.expire(name, 61)
                return (await pipe.execute())[0]

            try:
                count = int(await self.shared.call(incr))
            except Unavailable:
                count = None
            if count is not None:
                self._key_windows[key] = (minute, count)
                return 60 - now % 60 if count > limit else None
        count = seen + 1
        self._key_windows[key] = (minute, count)
        if self.shared is not None:
            pending = (key, minute)
            if len(self._pending_keys) < MAX_PENDING or pending in self._pending_keys:
                self._pending_keys[pending] += 1
            else:
                self.dropped += 1
        if len(self._key_windows) > MAX_PENDING:
            self._key_windows = {k: v for k, v in self._key_windows.items() if v[0] == minute}
        if count > limit:
            return 60 - now % 60
        return None

    # ------------------------------------------------------------ sharing through Redis

    def _push_count(self, scope: str, window: str, bucket: int, amount: int) -> None:
        key = (scope, window, bucket)
        if len(self._pending_counts) >= MAX_PENDING and key not in self._pending_counts:
            self.dropped += 1
            return
        self._pending_counts[key] += amount

    def _push_since(self, scope: str, window: str, amount: int) -> None:
        key = (scope, window)
        if len(self._pending_since) >= MAX_PENDING and key not in self._pending_since:
            self.dropped += 1
            return
        self._pending_since[key] += amount

    async def sync(self, now: float | None = None) -> bool:
        """Push what this process learned and pull what the others did; False if Redis is away
        (nothing is lost: it is pushed on a later call)."""
        now = now if now is not None else time.time()
        self.prune(now)
        if self.shared is None:
            return True
        counts, fields, since = dict(self._pending_counts), dict(self._pending_fields), dict(self._pending_since)
        transitions = list(self.breakers.transitions)
        active = [s for s, t in self._scope_seen.items() if now - t < ACTIVE_SECONDS]
        index, cooldowns = f"{self.prefix}brk:open", f"{self.prefix}brk:cooldown"

        minute = int(now // 60)
        keys = {k: n for k, n in self._pending_keys.items() if k[1] == minute}
        self._pending_keys = defaultdict(int, keys)  # a past minute's count no longer matters
        keys = dict(keys)

        async def exchange(client):
            pipe = client.pipeline(transaction=False)
            for (key, _), amount in keys.items():
                pipe.incrby(f"{self.prefix}ratelimit:{key}:{minute}", amount)
                pipe.expire(f"{self.prefix}ratelimit:{key}:{minute}", 61)
            for (scope, window, bucket), amount in counts.items():
                if bucket == _bucket(window, now):  # a past window's count no longer matters
                    name = _counter_key(self.prefix, scope, window, bucket)
                    pipe.incrby(name, amount)
                    pipe.expire(name, WINDOWS[window] + 60)
            for scope, values in fields.items():
                encoded = {k: json.dumps(v) if k.startswith("obs:") else v for k, v in values.items()}
                pipe.hset(f"{self.prefix}q:{scope}", mapping=encoded)
                pipe.expire(f"{self.prefix}q:{scope}", 2 * 86400)
            for (scope, window), amount in since.items():
                pipe.hincrby(f"{self.prefix}q:{scope}", f"since:{window}", amount)
            opener = self.shared.script(OPEN_SHARED)
            for key, change, until, cooldown in transitions:
                if change == "opened":
                    await opener(keys=[index, cooldowns], args=[key, until, cooldown], client=pipe)
                else:
                    pipe.zrem(index, key)
            pipe.zremrangebyscore(index, "-inf", now - 3600)
            pipe.zrangebyscore(index, now - 3600, "+inf", withscores=True)
            for scope in active:
                pipe.hgetall(f"{self.prefix}q:{scope}")
                for window in REQUEST_WINDOWS:
                    pipe.get(_counter_key(self.prefix, scope, window, _bucket(window, now)))
            return await pipe.execute()

        try:
            results = await self.shared.call(exchange)
        except Unavailable:
            return False
        for key, amount in counts.items():
            left = self._pending_counts.get(key, 0) - amount
            if left > 0:
                self._pending_counts[key] = left
            else:
                self._pending_counts.pop(key, None)
        for key, amount in since.items():
            left = self._pending_since.get(key, 0) - amount
            if left > 0:
                self._pending_since[key] = left
            else:
                self._pending_since.pop(key, None)
        for scope, values in fields.items():
            pending = self._pending_fields.get(scope)
            if pending is not None and all(pending.get(k) == v for k, v in values.items()):
                self._pending_fields.pop(scope, None)
        del self.breakers.transitions[:len(transitions)]
        for i, ((key, _), amount) in enumerate(keys.items()):
            left = self._pending_keys.get((key, minute), 0) - amount
            if left > 0:
                self._pending_keys[(key, minute)] = left
            else:
                self._pending_keys.pop((key, minute), None)
                left = 0
            self._key_windows[key] = (minute, int(results[2 * i]) + left)  # every process's count
        per_scope = 1 + len(REQUEST_WINDOWS)
        tail = results[len(results) - per_scope * len(active):] if active else []
        shared_open = results[len(results) - per_scope * len(active) - 1]
        self._adopt_breakers(shared_open, now)
        for i, scope in enumerate(active):
            raw, *counters = tail[i * per_scope:(i + 1) * per_scope]
            self._adopt_scope(scope, raw, counters, now)
        return True

    def _adopt_breakers(self, shared_open: list, now: float) -> None:
        opened = {(k.decode() if isinstance(k, bytes) else k): float(until) for k, until in shared_open}
        pending = {key for key, *_ in self.breakers.transitions}
        for key, until in opened.items():
            if key not in pending:
                self.breakers.adopt(key, until)
        for key, s in list(self.breakers.states.items()):
            if s.state == OPEN and key not in opened and key not in pending:
                self.breakers.adopt(key, None)

    def _adopt_scope(self, scope: str, raw: dict, counters: list, now: float) -> None:
        state = self.quotas.setdefault(scope, {})
        pending_fields = self._pending_fields.get(scope, {})
        for key, value in (raw or {}).items():
            key = key.decode() if isinstance(key, bytes) else key
            if key in pending_fields:
                continue
            if key.startswith("obs:"):
                obs = json.loads(value)
                mine = state.get(key)
                if mine is None or (mine.get("at") or 0) <= (obs.get("at") or 0):
                    state[key] = obs
            elif key == "blocked_until":
                state[key] = max(float(value), state.get(key) or 0)
            elif key.startswith("since:"):
                state[key] = int(value) + self._pending_since.get((scope, key[len("since:"):]), 0)
        for window, value in zip(REQUEST_WINDOWS, counters, strict=True):
            if value is None:
                continue
            bucket = _bucket(window, now)
            self._set_used(state, window, bucket, int(value) + self._pending_counts.get((scope, window, bucket), 0))

    def prune(self, now: float) -> None:
        """Drop what no longer matters: idle breakers, past windows, long-unused scopes."""
        self.breakers.prune(now)
        for scope in [s for s, t in self._scope_seen.items() if now - t > 2 * 86400]:
            self._scope_seen.pop(scope, None)
            self.quotas.pop(scope, None)
        for key in [k for k in self._pending_counts if k[2] != _bucket(k[1], now)]:
            del self._pending_counts[key]
        for state in self.quotas.values():
            for window in WINDOWS:
                used = state.get(f"used:{window}")
                if used is not None and used[0] != _bucket(window, now):
                    del state[f"used:{window}"]
            until = state.get("blocked_until")
            if until and until < now - 60:
                del state["blocked_until"]

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
        used = state.get(f"used:{window}")
        count = used[1] if used is not None and used[0] == bucket else 0
        reset_at = (bucket + 1) * WINDOWS[window]
        return configured - count, configured, reset_at

    def quota_view(self, m: ModelView, now: float) -> dict[str, Any]:
        state = self.quotas.get(scope_of(m)) or {}
        windows = {}
        for window in WINDOWS:
            remaining, limit, reset_at = self._remaining(m, state, window, now)
            if limit is not None or remaining is not None:
                windows[window] = {"limit": limit, "remaining": remaining, "resetAt": reset_at}
        until = state.get("blocked_until")
        return {"scope": m.quota_scope, "windows": windows, "blockedUntil": until if until and until > now else None,
                "score": round(self.quota(m, now), 4)}


def _hms(t: float) -> str:
    return time.strftime("%H:%M:%SZ", time.gmtime(t))


_live: LiveState | None = None
_lock = threading.Lock()


def live_state() -> LiveState:
    """The process's live state (shared through Redis when REDIS_URL is set)."""
    global _live
    if _live is None:
        with _lock:
            if _live is None:
                _live = new_live_state()
    return _live


def new_live_state() -> LiveState:
    from django.conf import settings

    return LiveState(
        redis_url=settings.REDIS_URL, capacity=settings.AFMTS_MODEL_CONCURRENCY,
        redis_timeout=settings.AFMTS_LIVE_REDIS_TIMEOUT_SECONDS,
        rate_limit_cooldown=settings.AFMTS_RATE_LIMIT_COOLDOWN_SECONDS,
        exact_key_limit=settings.AFMTS_EXACT_KEY_LIMIT_BELOW,
        breaker_config=BreakerConfig(
            window=settings.AFMTS_BREAKER_WINDOW_SECONDS, min_requests=settings.AFMTS_BREAKER_MIN_REQUESTS,
            ratio=settings.AFMTS_BREAKER_FAILURE_RATIO, consecutive=settings.AFMTS_BREAKER_CONSECUTIVE_FAILURES,
            cooldown=settings.AFMTS_BREAKER_COOLDOWN_SECONDS, max_cooldown=settings.AFMTS_BREAKER_MAX_COOLDOWN_SECONDS,
        ),
    )


def wall() -> float:
    return time.time()
