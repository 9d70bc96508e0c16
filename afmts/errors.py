"""One error envelope for REST and gateway (DESIGN.md), OpenAI's shape:

    {"error": {"message": str, "type": str, "param": str | None, "code": str | None,
               "fields": {name: [messages]}}}     # "fields" only for validation errors
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

log = logging.getLogger(__name__)

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "service_unavailable",
}


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Already exists."
    default_code = "conflict"


def envelope(
    message: str, *, type: str, param: str | None = None, code: str | None = None,
    fields: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message, "type": type, "param": param, "code": code}
    if fields:
        body["fields"] = fields
    return {"error": body}


def error_response(
    status_code: int, message: str, *, type: str | None = None, param: str | None = None,
    code: str | None = None, headers: dict[str, str] | None = None,
) -> JsonResponse:
    body = envelope(message, type=type or TYPES.get(status_code, "api_error"), param=param, code=code)
    response = JsonResponse(body, status=status_code)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[exceptions.ErrorDetail]]:
    """DRF's nested error detail as {"field.sub.0": [errors]}."""
    out: dict[str, list] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors" and not prefix:
                name = "__all__"
            out.update(flatten_errors(value, name))
    elif isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            out[prefix or "__all__"] = list(detail)
        else:
            for index, item in enumerate(detail):
                if item:
                    out.update(flatten_errors(item, f"{prefix}.{index}" if prefix else str(index)))
    else:
        out[prefix or "__all__"] = [detail]
    return out


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's exception handler, answering in the envelope."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, RequestDataTooBig):
        return Response(
            envelope("Request body too large.", type=TYPES[413], code="request_too_large"), status=413
        )
    if not isinstance(exc, exceptions.APIException):
        return None  # let Django's 500 handler answer (also JSON, see handler500)

    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait) + 1)

    status_code = exc.status_code
    if isinstance(exc, exceptions.ValidationError):
        fields = flatten_errors(exc.detail)
        name, errors = next(iter(fields.items())) if fields else ("__all__", ["Invalid input."])
        first = errors[0]
        message = str(first) if name == "__all__" else f"{name}: {first}"
        body = envelope(
            message, type=TYPES[400], param=None if name == "__all__" else name,
            code=getattr(first, "code", "invalid"),
            fields={k: [str(e) for e in v] for k, v in fields.items()},
        )
    else:
        detail = exc.detail
        if isinstance(detail, (list, dict)):
            flat = flatten_errors(detail)
            detail = next(iter(flat.values()))[0] if flat else exc.default_detail
        code = getattr(detail, "code", None) or exc.default_code
        if isinstance(exc, exceptions.ParseError) and code == exc.default_code:
            code = "invalid_json"
        body = envelope(str(detail), type=TYPES.get(status_code, "api_error"), code=code)
    return Response(body, status=status_code, headers=headers)


def _page_handler(status_code: int, message: str, code: str):
    def handler(request, exception=None, *args, **kwargs):
        return error_response(status_code, message, code=code)

    return handler


handler400 = _page_handler(400, "Bad request.", "bad_request")
handler403 = _page_handler(403, "Forbidden.", "forbidden")
handler404 = _page_handler(404, "Not found.", "not_found")
handler500 = _page_handler(500, "Internal server error.", "server_error")
