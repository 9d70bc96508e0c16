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
("requests/minute", "requests/day", "requests/month", "tokens/minute", "tokens/day", "neurons/day"):
- the limit is the provider's last report, else the configured free quota (the account pool's
  extra windows, registry.quota.pool_limits: Cohere's 1,000 calls a month, Cloudflare's 10,000
  neurons a day);
- what remains is the provider's last report less what was sent since, or, without a report, the
  limit less what was counted in the current window (UTC minute / UTC day / calendar month, UTC);
- requests are reserved one by one; a cost-weighted pool (neurons) is reserved with the call's
  estimated cost (prompt estimate and max_tokens at the model's neuron prices) and settled with the
  reply's real usage (`settle`);
- a 429's Retry-After blocks the scope until then (any model, free or paid: a cool-down, not a
  breaker failure); an exhausted window blocks it until its reset.
The router's `quota` part is the remaining fraction, paced over the window: a daily quota spent
faster than the day passes scores lower, so traffic spreads over accounts and over the day.
Time comes in as `now`, epoch seconds (one clock, DESIGN.md).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from typing import Any

from registry.quota import window_bounds, window_bucket
from registry.selectors import ModelView
from routing.breaker import OPEN, BreakerConfig, Breakers
from routing.router import Live
from routing.shared import Shared, Unavailable, count_key, key_counter, sync_client

log = logging.getLogger(__name__)

WINDOWS = ("requests/minute", "requests/day", "requests/month", "tokens/minute", "tokens/day", "neurons/day")
LIMIT_FIELDS = {"requests/minute": "free_rpm", "requests/day": "free_rpd", "requests/month": "free_rpmonth",
                "tokens/minute": "free_tpm", "tokens/day": "free_tpd", "neurons/day": "free_neurons_per_day"}
# Reserved before a call, atomically across processes: one request, or the call's estimated cost.
RESERVED_WINDOWS = ("requests/minute", "requests/day", "requests/month", "neurons/day")
COST_WINDOWS = frozenset({"neurons/day"})
PREFIX = "afmts:"
MAX_PENDING = 10_000  # pushes waiting for Redis; past this the oldest are dropped (and counted)
ACTIVE_SECONDS = 120.0  # a scope is pulled from Redis while this process used it this recently

# Reserve an amount (one request, or a call's estimated neurons) in every limited window of a scope,
# or nothing: KEYS are the windows' counters, ARGV their limits, TTLs, amounts, then what this process
# counted but has not pushed yet (a settlement, counts made while Redis was away), added first.
# Returns {1, counts...} or {0, index of the window it does not fit, count}; counts are strings
# (neurons are fractional, and a Lua number returned to Redis loses its fraction).
RESERVE = """
local n = #KEYS
for i = 1, n do
  if tonumber(ARGV[3 * n + i]) ~= 0 then
    redis.call('INCRBYFLOAT', KEYS[i], ARGV[3 * n + i])
    redis.call('EXPIRE', KEYS[i], ARGV[n + i])
  end
end
for i = 1, n do
  local used = redis.call('GET', KEYS[i]) or '0'
  if tonumber(used) + tonumber(ARGV[2 * n + i]) > tonumber(ARGV[i]) then return {0, i, used} end
end
local out = {1}
for i = 1, n do
  out[i + 1] = redis.call('INCRBYFLOAT', KEYS[i], ARGV[2 * n + i])
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


def scope_of(m: ModelView) -> str:
    return f"a:{m.provider_id}" if m.quota_scope == "account" else f"m:{m.pk}"


_bucket = window_bucket


def _reset_at(window: str, bucket: int) -> float:
    return window_bounds(window, bucket)[1]


def _span(window: str, now: float) -> float:
    start, end = window_bounds(window, window_bucket(window, now))
    return end - start


def _ttl(window: str, bucket: int) -> int:
    start, end = window_bounds(window, bucket)
    return int(end - start) + 60


def _counter_key(prefix: str, scope: str, window: str, bucket: int) -> str:
    return f"{prefix}q:{scope}:{window}:{bucket}"


def _number(value: Any) -> int | float:
    """A counter read from Redis: requests are whole, neurons fractional."""
    number = float(value)
    return int(number) if number.is_integer() else number


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
                return _used_up(window, reset_at, now), reset_at
        return None

    def admit(self, m: ModelView, now: float) -> tuple[str, float] | None:
        """Just before an attempt: the breakers' say, claiming a trial slot when one is half-open
        (`unadmit` frees them when the attempt is not sent after all)."""
        for key, label in ((f"provider:{m.provider}", "provider circuit"), (f"model:{m.pk}", "circuit")):
            allowed, wait = self.breakers.allow(key, now)
            if not allowed:
                self.unadmit(m, now)  # the provider's slot, when the model's breaker refuses
                if wait:
                    return f"{label} open until {_hms(now + wait)}", now + wait
                return f"{label} half-open, its trial calls are in flight", now + 1.0
        return None

    def unadmit(self, m: ModelView, now: float) -> None:
        """The trial slots `admit(m, now)` claimed, freed: the attempt is not sent (its quota refused it)."""
        self.breakers.release(f"provider:{m.provider}", now)
        self.breakers.release(f"model:{m.pk}", now)

    def load(self, m: ModelView) -> float:
        return 1.0 - min(1.0, self.inflight.get(m.pk, 0) / self.capacity)

    def quota(self, m: ModelView, now: float) -> float:
        if not m.is_free:
            return 1.0
        state = self.quotas.get(scope_of(m))
        if not state and all(getattr(m, name) is None for name in LIMIT_FIELDS.values()):
            return 1.0
        state = state or {}
        paced = []
        for window in WINDOWS:
            remaining, limit, reset_at = self._remaining(m, state, window, now)
            if not limit or remaining is None:
                continue
            left_of_window = max(0.05, (reset_at - now) / _span(window, now)) if reset_at else 1.0
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

    def _limits(self, m: ModelView, body: dict[str, Any] | None, now: float) -> list[tuple[str, int, int, float]]:
        """[(window, limit, bucket, amount)] of the reserved windows with a configured limit: one
        request, or the call's estimated cost."""
        out = []
        for window in RESERVED_WINDOWS:
            limit = getattr(m, LIMIT_FIELDS[window])
            if not limit:
                continue
            amount = self.estimate(m, body) if window in COST_WINDOWS else 1
            if amount:
                out.append((window, int(limit), _bucket(window, now), amount))
        return out

    @staticmethod
    def cost(m: ModelView, tokens_in: int, tokens_out: int) -> float:
        """What a call costs in its account's cost-weighted pool (neurons)."""
        if m.pool_cost is None:
            return 0.0
        per_in, per_out = m.pool_cost
        return round(tokens_in * per_in + tokens_out * per_out, 4)

    @classmethod
    def estimate(cls, m: ModelView, body: dict[str, Any] | None) -> float:
        """A call's cost before it is made: the prompt's estimated tokens and all the output it may
        write (max_tokens, else the provider's documented default, else the model's maximum)."""
        if m.pool_cost is None:
            return 0.0
        from routing.gateway.requests import estimate_tokens  # the router's estimate (no import cycle)

        body = body or {}
        messages = body.get("messages")
        if isinstance(messages, list):
            prompt = estimate_tokens(messages)
        else:  # embeddings: `input` is a string or a list of them
            text = body.get("input")
            prompt = sum(len(t) for t in text if isinstance(t, str)) // 4 if isinstance(text, list) else len(str(text or "")) // 4
        asked = body.get("max_completion_tokens") or body.get("max_tokens")
        if messages is None:
            output = 0
        elif isinstance(asked, int) and asked > 0:
            output = asked
        else:
            output = m.default_max_tokens or m.max_output_tokens or 0
        return cls.cost(m, prompt, output)

    def _count_locally(self, scope: str, state: dict[str, Any], window: str, bucket: int, amount: float) -> float:
        used = state.get(f"used:{window}")
        if used is None or used[0] != bucket:
            used = state[f"used:{window}"] = [bucket, 0]  # a new window replaces the old one
        used[1] += amount
        return used[1]

    async def reserve(self, m: ModelView, now: float, body: dict[str, Any] | None = None) -> tuple[str, float] | None:
        """Count a request against the model's free quota before it is sent, atomically across
        processes (in a cost-weighted pool, its estimated cost from `body`: `settle` corrects it
        after the reply); returns (reason, until) instead when a window has no room for it."""
        if not m.is_free:
            return None
        scope = scope_of(m)
        limits = self._limits(m, body, now)
        state = self.quotas.get(scope)
        if not limits and not (state and any(key.startswith("obs:") for key in state)):
            # Nothing to enforce and no provider report to keep current: no counting, only follow
            # the scope, so `sync` brings other processes' 429 cool-downs of it here.
            self._scope_seen[scope] = now
            return None
        state = self._scope(scope, now)
        for window in WINDOWS:
            if window.startswith("requests"):
                state[f"since:{window}"] = state.get(f"since:{window}", 0) + 1
                if self.shared is not None:
                    self._push_since(scope, window, 1)
        if not limits:
            return None
        if self.shared is not None:
            keys = [_counter_key(self.prefix, scope, w, b) for w, _, b, _ in limits]
            # Taken now, so `sync` does not push it too (if it already is, its remainder goes negative
            # and the next exchange takes it back).
            pending = [self._pending_counts.pop((scope, w, b), 0) for w, _, b, _ in limits]
            args = ([limit for _, limit, _, _ in limits] + [_ttl(w, b) for w, _, b, _ in limits]
                    + [amount for _, _, _, amount in limits] + pending)
            try:
                result = await self.shared.call(lambda c: self.shared.script(RESERVE)(keys=keys, args=args))
            except Unavailable:
                for (w, _, b, _), amount in zip(limits, pending, strict=True):
                    if amount:
                        self._pending_counts[(scope, w, b)] += amount
            else:
                if int(result[0]) == 0:
                    window, _, bucket, _ = limits[int(result[1]) - 1]
                    self._set_used(state, window, bucket, _number(result[2]))
                    reset_at = _reset_at(window, bucket)
                    return _used_up(window, reset_at, now), reset_at
                for (window, _, bucket, _), count in zip(limits, result[1:], strict=True):
                    self._set_used(state, window, bucket, _number(count))
                return None
        for window, limit, bucket, amount in limits:
            used = state.get(f"used:{window}")
            if used is not None and used[0] == bucket and used[1] + amount > limit:
                reset_at = _reset_at(window, bucket)
                return _used_up(window, reset_at, now), reset_at
        for window, _, bucket, amount in limits:
            self._count_locally(scope, state, window, bucket, amount)
            if self.shared is not None:
                self._push_count(scope, window, bucket, amount)
        return None

    def settle(self, m: ModelView, body: dict[str, Any] | None, now: float, *,
               tokens: tuple[int, int] | None) -> None:
        """Replace a reserved call's estimated cost by its real one: `tokens` is the reply's usage
        (input, output); None for a call that got no reply (it cost nothing). A reply without usage
        keeps the estimate."""
        if not m.is_free or not m.free_neurons_per_day or m.pool_cost is None or tokens == (0, 0):
            return
        real = self.cost(m, *tokens) if tokens is not None else 0.0
        delta = real - self.estimate(m, body)
        if not delta:
            return
        scope, window = scope_of(m), "neurons/day"
        bucket = _bucket(window, now)
        state = self._scope(scope, now)
        if self._count_locally(scope, state, window, bucket, delta) < 0:
            state[f"used:{window}"][1] = 0
        if self.shared is not None:
            self._push_count(scope, window, bucket, delta)

    @staticmethod
    def _set_used(state: dict[str, Any], window: str, bucket: int, count: float) -> None:
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
            amount = requests if window.startswith("requests") else tokens if window.startswith("tokens") else 0
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
            reset = seen.reset if seen.reset is not None else _span(window, now)
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
        if self.shared is not None and limit < self.exact_key_limit:
            name = key_counter(self.prefix, key, minute)

            async def incr(client):
                pipe = client.pipeline(transaction=False)
                count_key(pipe, name)
                return (await pipe.execute())[0]

            try:
                count = int(await self.shared.call(incr))
            except Unavailable:
                count = None
            if count is not None:
                return self.key_counted(key, limit, count, now)
        return self.key_counted(key, limit, None, now)

    def key_counted(self, key: str, limit: int, shared_count: int | None, now: float, *,
                    from_thread: bool = False) -> float | None:
        """The verdict on a key's request, for the async and the sync side alike: `shared_count` is
        the key's shared counter after this request was added to it (Redis); None counts it in this
        process instead, from where the shared count last stood, and queues it for Redis — except
        from a REST thread (`from_thread`): the queue is the event loop's, which `sync` iterates."""
        minute = int(now // 60)
        if shared_count is not None:
            count = shared_count
        else:
            window, seen = self._key_windows.get(key, (minute, 0))
            count = (seen if window == minute else 0) + 1
            if self.shared is not None and not from_thread:
                pending = (key, minute)
                if len(self._pending_keys) < MAX_PENDING or pending in self._pending_keys:
                    self._pending_keys[pending] += 1
                else:
                    self.dropped += 1
        self._key_windows[key] = (minute, count)
        if len(self._key_windows) > MAX_PENDING:
            self._key_windows = {k: v for k, v in self._key_windows.items() if v[0] == minute}
        return 60 - now % 60 if count > limit else None

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
                count_key(pipe, key_counter(self.prefix, key, minute), amount)
            for (scope, window, bucket), amount in counts.items():
                if bucket == _bucket(window, now):  # a past window's count no longer matters
                    name = _counter_key(self.prefix, scope, window, bucket)
                    pipe.incrbyfloat(name, amount)  # as RESERVE adds: requests whole, neurons fractional
                    pipe.expire(name, _ttl(window, bucket))
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
                for window in RESERVED_WINDOWS:
                    pipe.get(_counter_key(self.prefix, scope, window, _bucket(window, now)))
            return await pipe.execute()

        try:
            results = await self.shared.call(exchange)
        except Unavailable:
            return False
        for key, amount in counts.items():
            left = self._pending_counts.get(key, 0) - amount
            if abs(left) > 1e-9:  # a cost pool's settlement may be negative
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
        per_scope = 1 + len(RESERVED_WINDOWS)
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
        for window, value in zip(RESERVED_WINDOWS, counters, strict=True):
            if value is None:
                continue
            bucket = _bucket(window, now)
            self._set_used(state, window, bucket, _number(value) + self._pending_counts.get((scope, window, bucket), 0))

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
        return configured - count, configured, _reset_at(window, bucket)

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


def pool_usage(scope: str, limits: dict[str, int], now: float) -> dict[str, dict[str, Any]]:
    """What the gateway counted in an account pool's windows (registry.quota.quota_pools reads it for
    /api/free-models): the shared counters when Redis answers, plus what this process has not pushed
    yet; else this process's own count. Sync: a REST view's call, never the event loop's."""
    from routing.gateway.runtime import runtime

    live = runtime.live
    windows = list(limits)
    buckets = [_bucket(window, now) for window in windows]
    shared = None
    if live.shared is not None:
        names = [_counter_key(live.prefix, scope, w, b) for w, b in zip(windows, buckets, strict=True)]
        shared = sync_client(live.shared.url, live.shared.timeout).get(names)
    state = live.quotas.get(scope) or {}
    out = {}
    for i, (window, bucket) in enumerate(zip(windows, buckets, strict=True)):
        if shared is not None:
            count = _number(shared[i] or 0) + live._pending_counts.get((scope, window, bucket), 0)
        else:
            used = state.get(f"used:{window}")
            count = used[1] if used is not None and used[0] == bucket else 0
        count = max(0, round(count, 2))
        out[window] = {"used": count, "remaining": max(0, round(limits[window] - count, 2)),
                       "resetAt": _reset_at(window, bucket)}
    return out


def _hms(t: float) -> str:
    return time.strftime("%H:%M:%SZ", time.gmtime(t))


def _used_up(window: str, reset_at: float, now: float) -> str:
    # A month's reset is days away: its date says more than its time of day.
    when = _hms(reset_at) if reset_at - now <= 86400 else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(reset_at))
    return f"free quota used up ({window}) until {when}"


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
