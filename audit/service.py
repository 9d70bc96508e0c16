"""Writing the audit log. `record` writes one entry now (REST writes, admin actions and logins are
rare and already in a request that writes); `key_uses` collects the first use of each API key per
day, client address and way in in memory and writes them in batches from a thread, so the gateway's
request path costs a set lookup and never a query.

Client addresses come from `routing.limits` (AFMTS_TRUSTED_PROXIES: X-Forwarded-For only from a
trusted proxy), the one place that reads them for rate limits too."""

from __future__ import annotations

import functools
import ipaddress
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from audit.models import Action, Entry
from registry.batching import BatchWriter

MAX_PENDING = 10_000
MAX_SEEN = 100_000


def request_meta(request) -> tuple[str | None, str]:
    """(client address, user agent) of a Django request."""
    from routing.limits import request_ip

    return _ip(request_ip(request)), request.META.get("HTTP_USER_AGENT", "")[:255]


def scope_meta(scope: dict, headers: dict[str, str]) -> tuple[str | None, str]:
    """(client address, user agent) of an ASGI request; `headers` maps lower-case names."""
    from routing.limits import scope_ip

    return _ip(scope_ip(scope, headers)), headers.get("user-agent", "")[:255]


@functools.lru_cache(maxsize=4096)
def _ip(value: str | None) -> str | None:
    # Cached: the gateway asks on every request, and parsing an address costs more than the rest
    # of noting the key's use; a client's address repeats.
    try:
        return str(ipaddress.ip_address(value or ""))
    except ValueError:
        return None  # "unknown", a unix socket


def actor_of(principal: Any) -> str:
    """How an entry names a caller: a key's name and visible prefix (never the key), or a user."""
    prefix = getattr(principal, "prefix", "")
    name = getattr(principal, "name", "") or str(principal)
    return f"{name} ({prefix}…)"[:160] if getattr(principal, "key_id", None) and prefix else name[:160]


def record(*, action: str, source: str, actor: str = "", key_id: int | None = None, target_type: str = "",
           target_id: object = "", target: object = "", detail: dict | None = None, ip: str | None = None,
           user_agent: str = "") -> Entry:
    """Write one audit entry now."""
    return Entry.objects.create(
        action=action, source=source, actor=actor[:160], key_id=key_id, target_type=target_type[:64],
        target_id=str(target_id or "")[:64], target=str(target or "")[:255], detail=detail or {}, ip=ip,
        user_agent=(user_agent or "")[:255],
    )


@dataclass(frozen=True, slots=True)
class _Use:
    at: float
    key_id: int
    actor: str
    source: str
    ip: str | None
    user_agent: str


class KeyUses(BatchWriter[list]):
    """The first use of each key per UTC day, client address and way in (API, gateway, WebSocket),
    per process (several processes may each write one). Noted in memory, written in one insert per
    round off the request path (`registry.batching`)."""

    thread_name = "afmts-audit-key-use"
    what = "key uses to the audit log"

    def __init__(self) -> None:
        self._seen: set[tuple[int, str | None, str]] = set()
        self._day = -1
        super().__init__()

    def _empty(self) -> list[_Use]:
        return []

    def note(self, principal: Any, *, source: str, ip: str | None, user_agent: str = "",
             now: float | None = None) -> bool:
        """True if this is the key's first use today from this address this way (it will be written)."""
        key_id = getattr(principal, "key_id", None)
        if key_id is None:
            return False
        now = time.time() if now is None else now
        day = int(now // 86400)
        mark = (key_id, ip, source)
        if day == self._day and mark in self._seen:
            return False
        with self._lock:
            if day != self._day or len(self._seen) >= MAX_SEEN:
                self._seen, self._day = set(), day
            if mark in self._seen:
                return False
            self._seen.add(mark)
            if len(self._pending) < MAX_PENDING:
                self._pending.append(_Use(now, key_id, actor_of(principal), source, ip, user_agent[:255]))
        self._started()
        return True

    def _write(self, batch: list[_Use]) -> None:
        Entry.objects.bulk_create([
            Entry(at=datetime.fromtimestamp(u.at, tz=UTC), action=Action.KEY_USED, source=u.source, actor=u.actor,
                  key_id=u.key_id, target_type="key", target_id=str(u.key_id), ip=u.ip, user_agent=u.user_agent)
            for u in batch
        ])

    def _keep(self, batch: list[_Use]) -> None:
        self._pending = (batch + self._pending)[:MAX_PENDING]


key_uses = KeyUses()
os.register_at_fork(after_in_child=key_uses._after_fork)


def note_scope(principal: Any, scope: dict, headers: dict[str, str], source: str = "gateway") -> None:
    """`key_uses.note` for an ASGI request (the gateway, the WebSocket): memory only, no query."""
    if getattr(principal, "key_id", None) is None:
        return
    ip, agent = scope_meta(scope, headers)
    key_uses.note(principal, source=source, ip=ip, user_agent=agent)
