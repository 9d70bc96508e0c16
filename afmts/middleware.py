"""Django middleware: body size, per-IP abuse limits, security headers."""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from afmts.errors import error_response
from routing import limits


class BodySizeLimitMiddleware:
    """Answers 413 in the JSON envelope before a too-large body is read."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.AFMTS_MAX_BODY_BYTES
        if length > limit and not request.path.startswith("/admin/"):
            return error_response(
                413, f"Request body is {length} bytes; the limit is {limit}.", type="invalid_request_error",
                code="request_too_large",
            )
        return self.get_response(request)


# Anonymous endpoints limited per client IP (AFMTS_ANON_RATE_PER_MINUTE).
ANON_PATHS = ("/health", "/metrics", "/api/schema/", "/api/docs/", "/admin/login/", "/api/auth/token/",
              "/dashboard/login/")
# Where a password is tried: a blocked address is refused here too.
LOGIN_PATHS = ("/admin/login/", "/api/auth/token/", "/dashboard/login/")


def too_many(wait: float, message: str, code: str):
    return error_response(429, message, type="rate_limit_error", code=code,
                          headers={"Retry-After": limits.retry_after(wait)})


class ClientLimitsMiddleware:
    """Per-IP abuse limits on what Django serves (routing.limits, the gateway's counters): an address
    past AFMTS_AUTH_FAILURES_PER_MINUTE failed authentications gets 429 for the rest of the minute on
    every request that presents a key or token and every login; one past AFMTS_ANON_RATE_PER_MINUTE
    requests to an anonymous endpoint gets 429 there. A failure is a 401 to a request that presented a
    key or token, or a failed password (Django's user_login_failed: admin login, token endpoint)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        now = time.time()
        meta = request.META
        path = request.path
        presented = "HTTP_AUTHORIZATION" in meta or "HTTP_X_API_KEY" in meta
        if presented or (request.method == "POST" and path.startswith(LOGIN_PATHS)):
            ip = limits.request_ip(request)
            wait = limits.blocked_for(ip, now)
            if wait is not None:
                return too_many(wait, "Too many failed authentications from this address; try again later.",
                                "too_many_auth_failures")
        if path.startswith(ANON_PATHS):
            wait = limits.anonymous_sync(limits.live(), limits.request_ip(request), now)
            if wait is not None:
                return too_many(wait, "Too many requests from this address.", "rate_limit_exceeded")
        response = self.get_response(request)
        if response.status_code == 401 and presented:
            wait = limits.failed_sync(limits.live(), limits.request_ip(request), now)
            if wait is not None:
                return too_many(wait, "Too many failed authentications from this address; try again later.",
                                "too_many_auth_failures")
        return response


@receiver(user_login_failed, dispatch_uid="afmts-login-failed-per-ip")
def _count_login_failure(sender, credentials=None, request=None, **kwargs) -> None:
    if request is not None:
        limits.failed_sync(limits.live(), limits.request_ip(request), time.time())


class SecurityHeadersMiddleware:
    """What Django's SecurityMiddleware does not send: a Content-Security-Policy (AFMTS_CSP) on every
    response it serves, pages and API alike (the gateway sends its own, routing/gateway/asgi.py)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        response = self.get_response(request)
        policy = settings.AFMTS_CSP
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response
