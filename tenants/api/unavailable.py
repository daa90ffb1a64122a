"""A backing server that is down or too slow is the service being unavailable, not a bug.

PostgreSQL restarting, a statement past DB_STATEMENT_TIMEOUT_SECONDS, Redis or the broker
gone: the client gets `503` problem+json with `Retry-After` and a code saying which, at once
(connect and statement timeouts bound the wait), instead of a `500`. Nothing is half-written:
every write runs in a transaction that the lost connection rolls back. Used by the API's
exception handler and by `UnavailableMiddleware` for the views DRF does not handle.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

RETRY_AFTER_SECONDS = 5
# The SQLSTATEs a moving tenant's write fails with (tenants/services/moves/capture.py), and how
# soon to retry: held past the fence's wait (it lasts a second or two), or sent to the source
# after the switch (the new placement takes it now).
TENANT_MOVING_RETRY = {"55T01": 1, "55T02": 0}


@dataclass(frozen=True)
class Unavailable:
    code: str
    detail: str
    retry_after: int = RETRY_AFTER_SECONDS

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


def classify(exc: BaseException) -> Unavailable | None:
    """The outage `exc` stands for, or None when it is something else (a real bug)."""
    if isinstance(exc, OperationalError | psycopg.OperationalError):
        cause = exc.__cause__ if isinstance(exc, OperationalError) else exc
        retry = TENANT_MOVING_RETRY.get(getattr(cause, "sqlstate", None))
        if retry is not None:
            return Unavailable(
                "tenant_moving", "The tenant is moving to a new placement; retry.", retry
            )
        if isinstance(cause, psycopg.errors.QueryCanceled):
            return Unavailable(
                "database_timeout", "The database took too long to answer; try again shortly."
            )
        return Unavailable("database_unavailable", "The database is unavailable; try again.")
    if isinstance(exc, InterfaceError | psycopg.InterfaceError):
        return Unavailable("database_unavailable", "The database is unavailable; try again.")
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return Unavailable("redis_unavailable", "Redis is unavailable; try again shortly.")
    if isinstance(exc, BrokerError):
        return Unavailable("queue_unavailable", "The task queue is unavailable; try again.")
    return None


class UnavailableMiddleware:
    """The same 503 for plain Django views (the console, the OpenAPI pages): problem+json for
    API paths, a short text page for people."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exc):
        outage = classify(exc)
        if outage is None:
            return None
        from .problems import API_PATH_PREFIXES, problem_response

        if request.path.startswith(API_PATH_PREFIXES):
            response = problem_response(503, outage.code, outage.detail)
        else:
            response = HttpResponse(
                f"Service unavailable: {outage.detail}\n",
                status=503,
                content_type="text/plain; charset=utf-8",
            )
        for name, value in outage.headers.items():
            response[name] = value
        return response
