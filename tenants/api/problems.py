"""RFC 9457 problem details for every API error, with a stable `code`."""

from __future__ import annotations

from http import HTTPStatus

from django.http import JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from .unavailable import classify

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "https://tenantry.dev/problems/"
# Paths whose errors are problem+json for programs, not pages for people.
API_PATH_PREFIXES = ("/api/", "/v1/")


class Problem(exceptions.APIException):
    """An API error with an explicit status and code: `raise Problem(409, "conflict", "...")`.

    `headers` go on the response (e.g. `Retry-After` on a 429); other keywords become members
    of the problem body.
    """

    def __init__(
        self,
        status_code: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra,
    ):
        self.status_code = status_code
        self.headers = dict(headers or {})
        self.extra = extra
        super().__init__(detail=detail, code=code)


def problem_body(status_code: int, code: str, detail: str, **extra) -> dict:
    try:
        title = HTTPStatus(status_code).phrase
    except ValueError:
        title = "Error"
    return {
        "type": PROBLEM_BASE + code,
        "title": title,
        "status": status_code,
        "detail": detail,
        "code": code,
        **extra,
    }


def problem_exception_handler(exc, context):
    outage = classify(exc)
    if outage is not None:
        return Response(
            problem_body(503, outage.code, outage.detail),
            status=503,
            headers=outage.headers,
            content_type=PROBLEM_CONTENT_TYPE,
        )
    response = exception_handler(exc, context)
    if response is None:
        return None  # a real bug: let Django's 500 handler answer (also problem+json under /api)
    extra = dict(getattr(exc, "extra", {}))
    if isinstance(exc, exceptions.ValidationError):
        code, detail = "invalid_request", "The request is not valid; see `errors`."
        extra["errors"] = response.data
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "error"
        detail = str(exc.detail)
    headers = {k: v for k, v in response.items() if k.lower() != "content-type"}
    headers.update(getattr(exc, "headers", None) or {})
    problem = Response(
        problem_body(response.status_code, code, detail, **extra),
        status=response.status_code,
        headers=headers,
        content_type=PROBLEM_CONTENT_TYPE,
    )
    return problem


def problem_response(status_code: int, code: str, detail: str) -> JsonResponse:
    """For plain Django views (the 404/500 handlers answer API paths with this)."""
    return JsonResponse(
        problem_body(status_code, code, detail),
        status=status_code,
        content_type=PROBLEM_CONTENT_TYPE,
    )
