"""API-key authentication (`Authorization: Bearer <key>` or `X-API-Key: <key>`) and scopes.

Keys are checked on every API and gateway request, so a lookup is a SHA-256 and a dict hit: the
cache is dropped when the registry version changes (a revocation publishes an event), and
`last_used_at` is collected in memory and written in batches by a background thread.
"""

from __future__ import annotations

import hashlib
import logging
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
    AFMTS_KEY_USAGE_FLUSH_SECONDS in one query per key, never on a request."""

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
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - retried next round
                log.exception("could not write API key usage")
            finally:
                close_old_connections()

    def flush(self) -> int:
        with self._lock:
            pending, self._pending = self._pending, {}
        for key_id, ts in pending.items():
            when = datetime.fromtimestamp(ts, tz=UTC)
            ApiKey.objects.filter(pk=key_id).update(last_used_at=when)
        return len(pending)


usage = KeyUsage()


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
