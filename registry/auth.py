"""API-key authentication (`Authorization: Bearer <key>` or `X-API-Key: <key>`) and scopes.

Keys are checked on every API and gateway request, so a lookup is a SHA-256 and a dict hit: the
cache is dropped when the registry version changes (a revocation publishes an event), and
`last_used_at` is collected in memory and written in batches by a background thread.

The gateway looks keys up in worker threads (`principal_from_store`) on a health-checked connection.
While the database cannot be read it serves the last answer this process had for a key, so clients
already using the gateway keep working through an outage; a key never seen before gets
`KeyStoreUnavailable` (a 503). The price: a key revoked by another process just before an outage
works here until the database is back.

Django users may instead send a JWT from /api/auth/token/ (djangorestframework-simplejwt): the REST
API reads the user on each request, the gateway only checks the token (`principal_for_jwt`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.contrib.auth import get_user_model
from rest_framework import authentication, exceptions, permissions
from rest_framework_simplejwt import serializers as jwt_serializers
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import AccessToken

from registry import version
from registry.batching import BatchWriter
from registry.budget import is_exhausted
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
    # Past its monthly budget (analytics.budgets): the gateway serves it from free models only.
    budget_exhausted: bool = False

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
            "id", "name", "scope", "rate_limit_per_minute", "prefix", "revoked_at",
            "monthly_budget_usd", "budget_spent_usd", "budget_month",
        ).first()
        principal = None
        if row and row["revoked_at"] is None:
            principal = Principal(
                row["id"], row["name"], row["scope"], row["rate_limit_per_minute"], row["prefix"],
                budget_exhausted=is_exhausted(row["monthly_budget_usd"], row["budget_spent_usd"], row["budget_month"]),
            )
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


class KeyUsage(BatchWriter[dict]):
    """Collects last-used times per key; written in one statement per round off the request path
    (`registry.batching`)."""

    thread_name = "afmts-key-usage"
    what = "API key usage"

    def _empty(self) -> dict[int, float]:
        return {}

    def touch(self, key_id: int | None) -> None:
        if key_id is None:
            return
        self._pending[key_id] = time.time()
        self._started()

    def _write(self, batch: dict[int, float]) -> None:
        ApiKey.objects.bulk_update(
            [ApiKey(pk=key_id, last_used_at=datetime.fromtimestamp(ts, tz=UTC)) for key_id, ts in batch.items()],
            ["last_used_at"],
        )

    def _keep(self, batch: dict[int, float]) -> None:
        for key_id, ts in batch.items():  # a newer touch wins over the kept time
            self._pending[key_id] = max(ts, self._pending.get(key_id, 0.0))


usage = KeyUsage()
os.register_at_fork(after_in_child=usage._after_fork)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        secret = secret_from_headers(request.headers)
        if secret is None or looks_like_jwt(secret):
            return None
        principal = principal_for_secret(secret)
        if principal is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.", code="invalid_api_key")
        return principal, secret

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="afmts"'


# ---------------------------------------------------------------- JWT for Django users (optional)
# POST /api/auth/token/ {"username", "password"} -> {"access", "refresh"}; the access token is sent as
# `Authorization: Bearer <access>` like a key. Staff users act with admin scope, others with user scope.


def looks_like_jwt(secret: str) -> bool:
    """API keys start with `afmts_`; a JWT is three base64url parts, the first a JSON object."""
    return secret.startswith("eyJ") and secret.count(".") == 2


def _scope_of(user) -> str:
    return KeyScope.ADMIN if user.is_staff else KeyScope.USER


def principal_for_jwt(token: str) -> Principal | None:
    """The principal of a valid access token (signature, expiry and type checked; no query): what
    the gateway accepts. A user disabled or demoted keeps the token's scope until it expires
    (SIMPLE_JWT ACCESS_TOKEN_LIFETIME); the REST API reads the user on every request instead."""
    try:
        access = AccessToken(token)
    except TokenError:
        return None
    scope, name = access.get("scope"), access.get("name")
    if scope not in (KeyScope.ADMIN, KeyScope.USER) or not isinstance(name, str) or not name:
        return None
    return Principal(None, name, scope)


class TokenObtainSerializer(jwt_serializers.TokenObtainPairSerializer):
    """simplejwt's pair, with the caller's name and scope as claims (read by the gateway)."""

    @classmethod
    def get_token(cls, user):
        token = super().get_token(user)
        token["name"] = user.get_username()
        token["scope"] = _scope_of(user)
        return token


class TokenRefreshSerializer(jwt_serializers.TokenRefreshSerializer):
    """A new access token with the user's current name and scope; a deleted or inactive user gets
    401 (simplejwt's own refresh raises a 500 for a deleted one)."""

    def validate(self, attrs):
        refresh = self.token_class(attrs["refresh"])
        user_id = refresh.payload.get(jwt_settings.USER_ID_CLAIM)
        user = get_user_model().objects.filter(**{jwt_settings.USER_ID_FIELD: user_id}).first() if user_id else None
        if user is None or not jwt_settings.USER_AUTHENTICATION_RULE(user):
            raise exceptions.AuthenticationFailed(self.error_messages["no_active_account"], "no_active_account")
        access = refresh.access_token
        access["name"] = user.get_username()
        access["scope"] = _scope_of(user)
        return {"access": str(access)}


class JwtAuthentication(JWTAuthentication):
    """A Bearer JWT of an active Django user, as a Principal (admin scope for staff). Anything that
    does not look like a JWT is left to ApiKeyAuthentication."""

    def authenticate(self, request):
        secret = secret_from_headers(request.headers)
        if secret is None or not looks_like_jwt(secret):
            return None
        token = self.get_validated_token(secret.encode())
        user = self.get_user(token)
        return Principal(None, user.get_username(), _scope_of(user)), token


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
