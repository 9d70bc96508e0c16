"""API-key authentication (`Authorization: Bearer <key>` or `X-API-Key: <key>`) and scopes.

Keys are checked on every API and gateway request, so a lookup is a SHA-256 and a dict hit: the
cache is dropped when the registry version changes (a revocation publishes an event), and
`last_used_at` is collected in memory and written in batches by a background thread.

The gateway looks keys up in worker threads (`principal_from_store`) on a health-checked connection.
While the database cannot be read it serves the last answer this process had for a key, so clients
already using the gateway keep working through an outage; a key never seen before gets
`KeyStoreUnavailable` (a 503). The price: a key revoked by another process just before an outage
works here until the database is back.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import close_old_connections
from rest_framework import authentication, exceptions, permissions

from registry import version
from registry.models import ApiKey, KeyScope

log = logging.getLogger(__name__)

CACHE_MAX = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an API key (or a staff user of the admin site, with admin scope)."""

    key_id: int | None
    name: str
    scope: str
    rate_limit_per_minute: int | None = None
    prefix: str = ""
    is_authenticated: bool = True

    @property
    def is_admin(self) -> bool:
        return self.scope == KeyScope.ADMIN

    @property
    def pk(self) -> str:  # DRF throttles identify callers by it
        return f"key:{self.prefix}" if self.key_id else f"user:{self.name}"


_cache = version.Versioned(dict)
# The last answer read from the database per key digest, kept across registry versions: what the
# gateway serves while the database is down.
_known: dict[str, Principal | None] = {}


class KeyStoreUnavailable(Exception):
    """The key store (the database) cannot be read and this key was never seen by this process."""


def principal_for_secret(secret: str) -> Principal | None:
    """The principal of a presented key, or None if unknown or revoked."""
    digest = hashlib.sha256(secret.encode()).hexdigest()
    cache: dict = _cache.get()
    if digest in cache:
        principal = cache[digest]
    else:
        row = ApiKey.objects.filter(hashed=digest).values(
            "id", "name", "scope", "rate_limit_per_minute", "prefix", "revoked_at"
        ).first()
        principal = None
        if row and row["revoked_at"] is None:
            principal = Principal(row["id"], row["name"], row["scope"], row["rate_limit_per_minute"], row["prefix"])
        if len(cache) >= CACHE_MAX:
            cache.clear()
        cache[digest] = principal
        if len(_known) >= CACHE_MAX:
            _known.clear()
        _known[digest] = principal
    if principal is not None:
        usage.touch(principal.key_id)
    return principal


def principal_from_store(secret: str) -> Principal | None:
    """`principal_for_secret` for a worker thread of the gateway: on a connection checked first (one
    broken by a database restart is replaced), and during a database outage the last known answer.
    Raises KeyStoreUnavailable when the database cannot be read and the key was never seen."""
    from django.db import DatabaseError, connection

    if not connection.in_atomic_block:
        try:
            connection.close_if_unusable_or_obsolete()
        except DatabaseError:
            connection.connection = None
    try:
        return principal_for_secret(secret)
    except DatabaseError as exc:
        if not connection.in_atomic_block:
            try:
                connection.close()
            except DatabaseError:
                connection.connection = None
        digest = hashlib.sha256(secret.encode()).hexdigest()
        if digest not in _known:
            raise KeyStoreUnavailable(type(exc).__name__) from None
        log.warning("key store unavailable (%s): serving a known key from memory", type(exc).__name__)
        principal = _known[digest]
        if principal is not None:
            usage.touch(principal.key_id)
        return principal


def secret_from_headers(headers) -> str | None:
    """The key presented in `Authorization: Bearer` or `X-API-Key`; `headers` maps lower-case names."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return (headers.get("x-api-key") or "").strip() or None


class KeyUsage:
    """Collects last-used times per key; a daemon thread writes them every
    AFMTS_KEY_USAGE_FLUSH_SECONDS in one statement, never on a request. A failed write keeps its
    times for the next round; `close()` writes what is left (at shutdown)."""

    def __init__(self) -> None:
        self._pending: dict[int, float] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def touch(self, key_id: int | None) -> None:
        if key_id is None:
            return
        self._pending[key_id] = time.time()
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="afmts-key-usage", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(settings.AFMTS_KEY_USAGE_FLUSH_SECONDS)
            if not self._pending:
                continue
            close_old_connections()
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - kept and retried next round
                log.warning("could not write API key usage (%s); retried next round", type(exc).__name__)
                close_old_connections()

    def flush(self) -> int:
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        try:
            ApiKey.objects.bulk_update(
                [ApiKey(pk=key_id, last_used_at=datetime.fromtimestamp(ts, tz=UTC)) for key_id, ts in pending.items()],
                ["last_used_at"],
            )
        except Exception:
            with self._lock:
                for key_id, ts in pending.items():  # a newer touch wins over the kept time
                    self._pending[key_id] = max(ts, self._pending.get(key_id, 0.0))
            raise
        return len(pending)

    def close(self) -> None:
        """Write what is pending now (shutdown); a failure is logged, not raised."""
        try:
            self.flush()
        except Exception as exc:  # noqa: BLE001
            log.warning("could not write API key usage at shutdown (%s)", type(exc).__name__)

    def _after_fork(self) -> None:
        self.__init__()


usage = KeyUsage()
os.register_at_fork(after_in_child=usage._after_fork)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        secret = secret_from_headers(request.headers)
        if secret is None:
            return None
        principal = principal_for_secret(secret)
        if principal is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.", code="invalid_api_key")
        return principal, secret

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="afmts"'


class StaffSessionAuthentication(authentication.SessionAuthentication):
    """A staff user logged into the admin site acts with admin scope (the browsable docs, dashboard)."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None or not result[0].is_staff:
            return None
        return Principal(None, result[0].get_username(), KeyScope.ADMIN), None


class AdminWritesKeyReads(permissions.BasePermission):
    """Reads need any valid key; writes need an admin key (DESIGN.md). A view sets `admin_only`
    when even its reads are for operators, and `any_key_may_post` when its POST only queries."""

    message = "This needs an admin API key."

    def has_permission(self, request, view) -> bool:
        principal = request.user
        if not isinstance(principal, Principal):
            raise exceptions.NotAuthenticated(
                "No API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.", code="missing_api_key"
            )
        if getattr(view, "admin_only", False):
            return principal.is_admin
        # A POST that only asks (find, explain) is a read: any valid key may make it.
        if request.method in permissions.SAFE_METHODS or getattr(view, "any_key_may_post", False):
            return True
        return principal.is_admin
