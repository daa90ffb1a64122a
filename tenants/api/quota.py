"""Quota enforcement for API views: refusals become problem+json with their headers."""

from __future__ import annotations

from ..services.quotas import QuotaExceeded, quota_admit
from .problems import Problem


def quota_problem(exc: QuotaExceeded) -> Problem:
    """The API error for a quota refusal: its status, code, detail, headers and any members of
    its own (a token budget's `retry_after`, `retryable` and `budget`)."""
    return Problem(exc.status, exc.code, exc.detail, headers=exc.headers, **exc.extra)


def admit(request, kind: str) -> dict[str, str]:
    """Take one `kind` request from the caller's tenant's hourly quota, or raise the 429.

    Returns the RateLimit headers for the view to put on its successful response.
    """
    try:
        return quota_admit(tenant=request.user.tenant, kind=kind)
    except QuotaExceeded as exc:
        raise quota_problem(exc) from exc


def with_headers(response, headers: dict[str, str]):
    """`response` with `headers` set on it (the RateLimit headers of an admitted request)."""
    for name, value in headers.items():
        response[name] = value
    return response
