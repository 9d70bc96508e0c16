"""Circuit breakers that judge failure *rates*, one per model and one per provider.

closed ──(≥ `ratio` of ≥ `min_requests` calls failed within `window` s, or `consecutive` failures
          in a row at low traffic)──▶ open ──(cool-down passed)──▶ half-open
half-open: up to `trials` trial calls at a time; `trials` successes close it, one failure opens it
           again with the cool-down doubled (capped at `max_cooldown`).

Only upstream faults are fed in as failures (timeouts, 5xx, connection errors, malformed replies);
a 429 is a quota cool-down (routing.live), and a client's bad request is nobody's failure
(routing.gateway.engine decides). The failure count of a one-second-per-bucket window is kept for
every key that has traffic, so a rate has a volume to be judged against; a success costs one
bucket increment. A later opening never shortens an earlier deadline.

State is process-local and read without I/O on the request path. `Breakers.transitions` collects
openings and closings for routing.live to share through Redis: each process judges its own traffic
and every process adopts what another opened or closed (`adopt`). Every method takes `now` (one
clock, DESIGN.md).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True)
class BreakerConfig:
    window: float = 60.0
    min_requests: int = 10
    ratio: float = 0.5
    consecutive: int = 5
    cooldown: float = 10.0
    max_cooldown: float = 120.0
    trials: int = 2
    trial_timeout: float = 30.0  # a trial that never reports frees its slot after this long
    idle: float = 600.0  # a closed key without traffic this long is forgotten (bounded memory)


@dataclass
class BreakerState:
    state: str = CLOSED
    open_until: float = 0.0
    cooldown: float = 0.0
    # [second, requests, failures] for each second of the window that saw traffic.
    buckets: deque = field(default_factory=deque)
    requests: int = 0  # totals over `buckets`
    failures: int = 0
    consecutive: int = 0
    trials: list[float] = field(default_factory=list)  # start times of half-open trials in flight
    trial_successes: int = 0
    last_seen: float = 0.0

    def add(self, now: float, ok: bool, window: float) -> None:
        second = int(now)
        buckets = self.buckets
        oldest = second - int(window)
        while buckets and buckets[0][0] <= oldest:
            _, r, f = buckets.popleft()
            self.requests -= r
            self.failures -= f
        if buckets and buckets[-1][0] == second:
            bucket = buckets[-1]
            bucket[1] += 1
            bucket[2] += not ok
        else:
            buckets.append([second, 1, int(not ok)])
        self.requests += 1
        self.failures += not ok
        self.last_seen = now

    def effective(self, now: float) -> str:
        return HALF_OPEN if self.state == OPEN and now >= self.open_until else self.state

    def as_dict(self, now: float) -> dict:
        return {
            "state": self.effective(now),
            "openForSeconds": round(max(0.0, self.open_until - now), 3) if self.state == OPEN else 0.0,
            "recentFailures": self.failures,
            "recentRequests": self.requests,
            "failureRate": round(self.failures / self.requests, 4) if self.requests else 0.0,
        }


class Breakers:
    def __init__(self, config: BreakerConfig | None = None):
        self.config = config or BreakerConfig()
        self.states: dict[str, BreakerState] = {}
        # (key, "opened" | "closed", open_until, cooldown) not yet shared with other processes
        self.transitions: list[tuple[str, str, float, float]] = []

    def allow(self, key: str, now: float) -> tuple[bool, float]:
        """May a request go to `key` now? Returns (allowed, seconds until it may). A half-open key
        admits up to `trials` trial calls at a time; the caller reports each with `record`."""
        s = self.states.get(key)
        if s is None or s.state == CLOSED:
            return True, 0.0
        if now < s.open_until:
            return False, s.open_until - now
        cfg = self.config
        s.trials = [t for t in s.trials if now - t < cfg.trial_timeout]
        if len(s.trials) >= cfg.trials:
            return False, 0.0
        s.trials.append(now)
        return True, 0.0

    def release(self, key: str, claimed_at: float) -> None:
        """Free a trial slot `allow` claimed at `claimed_at` for a call that was not sent after all."""
        s = self.states.get(key)
        if s is not None and claimed_at in s.trials:
            s.trials.remove(claimed_at)

    def would_allow(self, key: str, now: float) -> bool:
        """`allow` without claiming a trial slot (for explanations and quota views)."""
        s = self.states.get(key)
        return s is None or s.state == CLOSED or now >= s.open_until

    def record(self, key: str, ok: bool, now: float, retry_after: float | None = None) -> str | None:
        """Record an upstream outcome; returns "opened" or "closed" when the breaker changed state.
        `retry_after` (an upstream 503's own wait) is the least cool-down if this opens it."""
        cfg = self.config
        s = self.states.get(key)
        if s is None:
            if ok:
                s = self.states[key] = BreakerState()
                s.add(now, ok, cfg.window)
                return None
            s = self.states[key] = BreakerState()
        s.add(now, ok, cfg.window)
        if ok:
            s.consecutive = 0
            if s.state == OPEN and now >= s.open_until:
                if s.trials:
                    s.trials.pop(0)
                s.trial_successes += 1
                if s.trial_successes >= cfg.trials:
                    return self._close(key, s)
            return None
        s.consecutive += 1
        if s.state == OPEN:
            if now >= s.open_until:  # a half-open trial failed: open again for longer
                return self._open(key, s, now, min(cfg.max_cooldown, max(s.cooldown * 2, cfg.cooldown)), retry_after)
            return None  # a call that was already in flight when it opened
        by_rate = s.requests >= cfg.min_requests and s.failures >= cfg.ratio * s.requests
        if by_rate or s.consecutive >= cfg.consecutive:
            return self._open(key, s, now, cfg.cooldown, retry_after)
        return None

    def trip(self, key: str, now: float, retry_after: float | None = None) -> str | None:
        """Open a closed key on evidence gathered elsewhere (a provider whose models fail at once)."""
        s = self.states.setdefault(key, BreakerState(last_seen=now))
        if s.state == OPEN:
            return None
        return self._open(key, s, now, self.config.cooldown, retry_after)

    def _open(self, key: str, s: BreakerState, now: float, cooldown: float, retry_after: float | None) -> str:
        cooldown = max(cooldown, min(retry_after or 0.0, self.config.max_cooldown))
        s.state, s.cooldown = OPEN, cooldown
        s.open_until = max(s.open_until, now + cooldown)  # never shorten a deadline
        s.trials, s.trial_successes = [], 0
        self.transitions.append((key, "opened", s.open_until, cooldown))
        return "opened"

    def _close(self, key: str, s: BreakerState) -> str:
        s.state, s.cooldown, s.open_until = CLOSED, 0.0, 0.0
        s.trials, s.trial_successes, s.consecutive = [], 0, 0
        s.buckets.clear()
        s.requests = s.failures = 0
        self.transitions.append((key, "closed", 0.0, 0.0))
        return "closed"

    def adopt(self, key: str, open_until: float | None, cooldown: float = 0.0) -> str | None:
        """Take on what another process decided: open until `open_until`, or closed (None)."""
        s = self.states.get(key)
        if open_until is None:
            if s is not None and s.state == OPEN:
                s.state, s.cooldown, s.open_until, s.trials, s.trial_successes = CLOSED, 0.0, 0.0, [], 0
                s.consecutive = 0
                return "closed"
            return None
        if s is None:
            s = self.states[key] = BreakerState()
        if s.state == OPEN and s.open_until >= open_until:
            return None
        changed = s.state != OPEN
        s.state, s.open_until, s.cooldown = OPEN, max(s.open_until, open_until), max(s.cooldown, cooldown)
        s.trials, s.trial_successes = [], 0
        return "opened" if changed else None

    def prune(self, now: float) -> None:
        """Forget closed keys without recent traffic (bounded memory)."""
        idle = self.config.idle
        for key in [k for k, s in self.states.items() if s.state == CLOSED and now - s.last_seen > idle]:
            del self.states[key]

    def snapshot(self, now: float) -> dict[str, dict]:
        return {key: s.as_dict(now) for key, s in list(self.states.items()) if s.state != CLOSED or s.failures}
