"""GET /metrics: django-prometheus's registry (open by default; AFMTS_METRICS_REQUIRE_KEY closes it)."""

from django.conf import settings
from django_prometheus.exports import ExportToDjangoView

from afmts.errors import error_response
from registry.auth import principal_for_secret, secret_from_headers


def metrics(request):
    if settings.AFMTS_METRICS_REQUIRE_KEY:
        secret = secret_from_headers(request.headers)
        principal = principal_for_secret(secret) if secret else None
        if principal is None:
            return error_response(401, "A valid API key is needed for /metrics.", code="missing_api_key")
        if not principal.is_admin:
            return error_response(403, "/metrics needs an admin API key.", code="permission_denied")
    return ExportToDjangoView(request)
