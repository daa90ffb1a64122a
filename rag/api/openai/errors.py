"""Errors in OpenAI's shape, so OpenAI clients raise their usual exception classes.

Every error under /v1/ takes this shape: those raised in the views (validation, auth, quotas,
the strict JSON parser's refusals), an outage of a backing server (503), and, through Django's
handlers in config/urls.py, requests refused before any view (a bad Host header, too many
fields), unknown paths and the last resort, an unexpected exception (500 `server_error`).
"""

from __future__ import annotations

from django.http import JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from tenants.api.unavailable import classify

# Every path under it answers errors in this shape (config/urls.py, config/openapi.py).
OPENAI_PREFIX = "/v1/"
ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


class OpenAIError(exceptions.APIException):
    def __init__(self, status_code: int, code: str, message: str, *, param: str | None = None):
        self.status_code = status_code
        self.param = param
        super().__init__(detail=message, code=code)


def error_type(status_code: int) -> str:
    """OpenAI's `type` for a status: the few it names, else by class (4xx or 5xx)."""
    if status_code in ERROR_TYPES:
        return ERROR_TYPES[status_code]
    return "server_error" if status_code >= 500 else "invalid_request_error"


def error_body(status_code: int, code: str, message: str, param: str | None = None) -> dict:
    return {
        "error": {
            "message": message,
            "type": error_type(status_code),
            "param": param,
            "code": code,
        }
    }


def error_response(status_code: int, code: str, message: str) -> JsonResponse:
    """For plain Django views (the 400/404/500 handlers answer /v1/ paths with this)."""
    return JsonResponse(error_body(status_code, code, message), status=status_code)


def openai_exception_handler(exc, context):
    outage = classify(exc)
    if outage is not None:
        return Response(
            error_body(503, outage.code, outage.detail), status=503, headers=outage.headers
        )
    response = exception_handler(exc, context)
    if response is None:
        return None  # a real bug: Django's 500 handler answers, in this shape under /v1/
    if isinstance(exc, exceptions.ValidationError):
        param, message = _first_error(response.data)
        code = "invalid_request"
        status_code = 400  # what OpenAI answers for a malformed body
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "error"
        message, param, status_code = str(exc.detail), getattr(exc, "param", None), exc.status_code
    headers = {k: v for k, v in response.items() if k.lower() != "content-type"}
    headers.update(getattr(exc, "headers", None) or {})
    return Response(
        error_body(status_code, code, message, param), status=status_code, headers=headers
    )


def _first_error(data, prefix: str = "") -> tuple[str | None, str]:
    """The first field error of a DRF validation error, as (param, message)."""
    if isinstance(data, dict):
        for key, value in data.items():
            name = key if key != "non_field_errors" else ""
            path = f"{prefix}.{name}" if prefix and name else name or prefix
            param, message = _first_error(value, path)
            return param or None, message
    if isinstance(data, list) and data:
        if all(isinstance(item, str) for item in data):
            return prefix or None, " ".join(str(item) for item in data)
        for index, item in enumerate(data):
            if item:
                return _first_error(item, f"{prefix}[{index}]")
    return prefix or None, str(data)
