"""Abuse limits shared by the REST API (sync, Django) and the gateway (async): one counter per key.

- Per key (or per user of a JWT or a staff session): requests a minute, the key's own
  `rate_limit_per_minute` or else AFMTS_DEFAULT_KEY_RATE_PER_MINUTE (0 = unlimited). The counter is
  the gateway's (`LiveState.admit_key`, Redis key `afmts:ratelimit:{prefix}:{minute}`), so a key
  limited to N a minute gets N in all, however its calls are split between REST and gateway.
- Per client IP: failed authentications a minute (AFMTS_AUTH_FAILURES_PER_MINUTE). Past the limit the
  IP gets 429 on every authenticated request until the minute ends: this process notes it in memory
  (so a blocked IP costs the hot path a dict lookup, an unblocked one nothing); other processes see
  the shared count at the IP's next failure there.
- Per client IP on anonymous endpoints (/health, /metrics, the schema and docs, the admin login
  page): AFMTS_ANON_RATE_PER_MINUTE.

The sync side talks to the same Redis with its own client (short timeouts, skipped for a second
after a failure) and falls back to the same process-local counter as the async side, so in embedded
mode, where REST and gateway share one process and one `LiveState`, they share the count too.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from typing import TYPE_CHECKING

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from routing.shared import key_counter, sync_client

if TYPE_CHECKING:
    from registry.auth import Principal
    from routing.live import LiveState

log = logging.getLogger(__name__)

MAX_BLOCKED = 10_000
# ip -> epoch second its failed-authentication block ends (this process's view).
blocked_ips: dict[str, float] = {}


def ident(principal: Principal) -> str:
    """The counter name of a caller: its key prefix, or `user:<name>` for a JWT or a staff session."""
    return principal.prefix if principal.key_id is not None and principal.prefix else f"user:{principal.name}"


def key_limit(principal: Principal) -> int:
    """Requests a minute allowed to this caller; 0 = unlimited."""
    own = principal.rate_limit_per_minute
    return own if own is not None else settings.AFMTS_DEFAULT_KEY_RATE_PER_MINUTE


def retry_after(wait: float) -> str:
    return str(max(1, int(wait + 0.999)))


# ---------------------------------------------------------------- client IP

def _networks(specs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(s.strip(), strict=False) for s in specs if s.strip())


_trusted_cache: tuple[tuple[str, ...], tuple] = ((), ())


def _trusted() -> tuple:
    global _trusted_cache
    specs = tuple(settings.AFMTS_TRUSTED_PROXIES)
    if _trusted_cache[0] != specs:
        _trusted_cache = (specs, _networks(specs))
    return _trusted_cache[1]


def _is_trusted(addr: str, nets: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in net for net in nets)


def client_ip(peer: str | None, forwarded_for: str | None = None) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy (AFMTS_TRUSTED_PROXIES),
    then the right-most X-Forwarded-For entry that is not one (entries further left are whatever
    the client chose to send)."""
    peer = peer or "unknown"
    if not forwarded_for:
        return peer
    nets = _trusted()
    if not nets or not _is_trusted(peer, nets):
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if not _is_trusted(hop, nets):
            return hop
    return peer


def request_ip(request) -> str:
    """client_ip of a Django request."""
    return client_ip(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR"))


def axes_ip(request) -> str | None:
    """AXES_CLIENT_IP_CALLABLE: request_ip, or None when it is not an address (axes stores it in an
    address column; a request made in code, such as a test's force_login, has none)."""
    ip = request_ip(request)
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return None
    return ip


def scope_ip(scope: dict, headers: dict[str, str]) -> str:
    """client_ip of an ASGI request; `headers` maps lower-case names."""
    client = scope.get("client")
    return client_ip(client[0] if client else None, headers.get("x-forwarded-for"))


# ---------------------------------------------------------------- sync counting (REST side)

def admit_sync(live: LiveState, key: str, limit: int, now: float) -> float | None:
    """`LiveState.admit_key` for sync code: the same Redis counter, else the same local one, and the
    same verdict (`LiveState.key_counted`). A lost increment between a REST thread and the event
    loop is the price of taking no lock the gateway would have to wait on."""
    count = None
    if live.shared is not None:
        name = key_counter(live.prefix, key, int(now // 60))
        count = sync_client(live.shared.url, live.shared.timeout).count_key(name)
    return live.key_counted(key, limit, count, now, from_thread=True)


# ---------------------------------------------------------------- failed authentication per IP

def blocked_for(ip: str, now: float) -> float | None:
    """Seconds until `ip` may authenticate again, or None. A dict lookup: no I/O."""
    until = blocked_ips.get(ip)
    if until is None:
        return None
    if until <= now:
        blocked_ips.pop(ip, None)
        return None
    return until - now


def _block(ip: str, wait: float, now: float) -> None:
    if len(blocked_ips) >= MAX_BLOCKED:
        for stale in [k for k, v in blocked_ips.items() if v <= now]:
            blocked_ips.pop(stale, None)
        if len(blocked_ips) >= MAX_BLOCKED:
            blocked_ips.clear()
    blocked_ips[ip] = now + wait
    log.warning("too many failed authentications from %s: refused for %.0f s", ip, wait)


def failed_sync(live: LiveState, ip: str, now: float) -> float | None:
    """Count a failed authentication from `ip`; the seconds it is now blocked for, or None."""
    limit = settings.AFMTS_AUTH_FAILURES_PER_MINUTE
    if not limit:
        return None
    wait = admit_sync(live, f"authfail:{ip}", limit, now)
    if wait is not None:
        _block(ip, wait, now)
    return wait


async def failed(live: LiveState, ip: str, now: float) -> float | None:
    """failed_sync for the gateway's event loop."""
    limit = settings.AFMTS_AUTH_FAILURES_PER_MINUTE
    if not limit:
        return None
    wait = await live.admit_key(f"authfail:{ip}", limit, now)
    if wait is not None:
        _block(ip, wait, now)
    return wait


def anonymous_sync(live: LiveState, ip: str, now: float) -> float | None:
    """Count a request to an anonymous endpoint from `ip`; seconds to wait when over, else None."""
    limit = settings.AFMTS_ANON_RATE_PER_MINUTE
    if not limit:
        return None
    return admit_sync(live, f"anon:{ip}", limit, now)


def live() -> LiveState:
    from routing.gateway.runtime import runtime

    return runtime.live


# ---------------------------------------------------------------- DRF

class KeyRateThrottle(BaseThrottle):
    """DRF's side of the per-key limit (REST_FRAMEWORK DEFAULT_THROTTLE_CLASSES): counts on the
    gateway's counter, so REST and gateway calls of a key add up."""

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request, view) -> bool:
        from registry.auth import Principal

        principal = request.user
        if not isinstance(principal, Principal):
            return True
        limit = key_limit(principal)
        if not limit:
            return True
        self._wait = admit_sync(live(), ident(principal), limit, time.time())
        return self._wait is None

    def wait(self) -> float | None:
        return max(1.0, self._wait) if self._wait is not None else None
