"""Errors in OpenAI's shape, so OpenAI clients raise their usual exception classes."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "server_error",
}


class OpenAIError(exceptions.APIException):
    def __init__(self, status_code: int, code: str, message: str, *, param: str | None = None):
        self.status_code = status_code
        self.param = param
        super().__init__(detail=message, code=code)


def error_body(status_code: int, code: str, message: str, param: str | None = None) -> dict:
    return {
        "error": {
            "message": message,
            "type": ERROR_TYPES.get(status_code, "server_error"),
            "param": param,
            "code": code,
        }
    }


def openai_exception_handler(exc, context):
    response = exception_handler(exc, context)
    if response is None:
        return None
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
            param, message = _first_error(value, f"{prefix}.{name}" if prefix and name else name)
            return param or None, message
    if isinstance(data, list) and data:
        if all(isinstance(item, str) for item in data):
            return prefix or None, " ".join(str(item) for item in data)
        for index, item in enumerate(data):
            if item:
                return _first_error(item, f"{prefix}[{index}]")
    return prefix or None, str(data)
