from django.conf import settings
from django.http import HttpRequest

from afmts.errors import error_response


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
