"""HTTP metrics (and, with tracing on, one server span) for every request.

The route label is the Django URL pattern (`/api/v1/documents/<uuid:document_id>`), never the
raw path, so ids in URLs cannot multiply the series. Streamed responses are measured until the
last byte is sent: the observation is made when the response is closed.
"""

from __future__ import annotations

import contextlib
import logging
import time

from django.conf import settings
from django.utils.functional import SimpleLazyObject, empty

from . import tracing

logger = logging.getLogger(__name__)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})


class MetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not settings.METRICS_ENABLED and not tracing.enabled():
            return self.get_response(request)
        started = time.perf_counter()
        method = request.method if request.method in METHODS else "_OTHER"
        span = None
        if tracing.enabled():
            span = _server_span(method)
        if span is None:
            response = self.get_response(request)
        else:
            with span as current:
                response = self.get_response(request)
                _finish_span(current, request, response)
        try:
            if response.streaming:
                response._resource_closers.append(
                    lambda: _observe(request, response, method, started)
                )
            else:
                _observe(request, response, method, started)
        except Exception:
            logger.debug("could not observe the request", exc_info=True)
        return response


def route_of(request) -> str:
    """The URL pattern that served the request, bounded: never the raw path."""
    match = getattr(request, "resolver_match", None)
    if match is not None and match.route is not None:
        return "/" + str(match.route)
    static = "/" + settings.STATIC_URL.lstrip("/")
    if request.path.startswith(static):
        return static + "*"
    return "unmatched"


def tenant_of(request):
    """The API caller's tenant, without evaluating a lazy session user (a database query)."""
    user = request.__dict__.get("user")
    if user is None:
        return None
    if type(user) is SimpleLazyObject:
        user = user._wrapped
        if user is empty:
            return None
    return getattr(user, "tenant", None)


def _kind(request) -> str:
    match = getattr(request, "resolver_match", None)
    name = (match.url_name if match is not None else None) or "other"
    return name.removeprefix("api-").removeprefix("openai-")


def _observe(request, response, method: str, started: float) -> None:
    if not settings.METRICS_ENABLED:
        return
    from . import metrics

    metrics.http_server_request_duration.labels(
        http_route=route_of(request),
        http_request_method=method,
        http_response_status_code=str(response.status_code),
    ).observe(time.perf_counter() - started)
    tenant = tenant_of(request)
    if tenant is not None:
        metrics.tenant_requests.labels(
            tenant=metrics.tenant_label(tenant), kind=_kind(request)
        ).inc()


def _server_span(method: str):
    try:
        if tracing.tracer() is None:
            return None
        return tracing.span(method, {"http.request.method": method}, server=True)
    except Exception:
        logger.debug("could not open the request span", exc_info=True)
        return None


def _finish_span(current, request, response) -> None:
    with contextlib.suppress(Exception):
        route = route_of(request)
        current.update_name(f"{request.method} {route}")
        current.set_attribute("http.route", route)
        current.set_attribute("url.path", request.path)
        current.set_attribute("http.response.status_code", response.status_code)
        tenant = tenant_of(request)
        if tenant is not None:
            current.set_attribute("tenantry.tenant", tenant.slug)
        if response.status_code >= 500:
            from opentelemetry.trace import Status, StatusCode

            current.set_status(Status(StatusCode.ERROR))
