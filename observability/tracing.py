"""OpenTelemetry traces, exported over OTLP/HTTP only when OTEL_EXPORTER_OTLP_ENDPOINT is set.

Why so guarded: most installations export nothing, and then tracing must cost nothing. With the
variable unset this module never imports opentelemetry; `tracer()` answers None after one
environment lookup per process, and the callers skip every span.

With it set, each process configures one TracerProvider with a BatchSpanProcessor and an
OTLPSpanExporter (which reads the standard OTEL_EXPORTER_OTLP_* variables: endpoint, headers,
timeout). Web workers configure it in gunicorn's post_worker_init, Celery worker processes in
worker_process_init, and anything else (runserver, commands) on its first span. The batch
processor exports from a thread of its own, so a request never waits for the collector.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

logger = logging.getLogger(__name__)

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
SERVICE_NAME = "tenantry"

_lock = threading.Lock()
_enabled: bool | None = None
_tracer: Any = None
_provider: Any = None


def enabled() -> bool:
    """True if this process exports traces (decided once, from the environment)."""
    global _enabled
    if _enabled is None:
        disabled = os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
        _enabled = not disabled and any(os.environ.get(name) for name in ENDPOINT_VARIABLES)
    return _enabled


def tracer():
    """The process's tracer, configured on first use; None when tracing is off."""
    if _tracer is not None or not enabled():
        return _tracer
    return configure()


def configure():
    """Set up the provider and exporter for this process (idempotent); None if tracing is off
    or the SDK cannot be set up (a bad endpoint must not stop the platform)."""
    global _tracer, _provider, _enabled
    if not enabled():
        return None
    with _lock:
        if _tracer is not None:
            return _tracer
        try:
            from opentelemetry import trace
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            resource = Resource.create(
                {"service.name": os.environ.get("OTEL_SERVICE_NAME", SERVICE_NAME)}
            )
            provider = TracerProvider(resource=resource)
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            # The global provider too, so libraries instrumented with OpenTelemetry join the
            # same traces. It can be set once per process; ours is the first.
            trace.set_tracer_provider(provider)
            _provider = provider
            _tracer = provider.get_tracer("tenantry")
        except Exception:
            logger.exception("OpenTelemetry tracing could not be configured; exporting nothing")
            _enabled = False
            return None
    logger.info("exporting OpenTelemetry traces to %s", _endpoint())
    return _tracer


def force_flush(timeout_millis: int = 5000) -> None:
    """Export the spans still buffered (tests, and a process about to exit)."""
    if _provider is not None:
        _provider.force_flush(timeout_millis)


def _endpoint() -> str:
    return next((os.environ[n] for n in reversed(ENDPOINT_VARIABLES) if os.environ.get(n)), "")


def span(name: str, attributes: dict | None = None, *, server: bool = False):
    """A context manager opening a current span (tracing must be on: check `tracer()`)."""
    from opentelemetry.trace import SpanKind

    kind = SpanKind.SERVER if server else SpanKind.INTERNAL
    return tracer().start_as_current_span(name, kind=kind, attributes=attributes or {})


def record_span(name: str, *, start_ns: int, end_ns: int, attributes: dict, error: bool) -> None:
    """A finished span whose times are already known (an answer reported when it ended)."""
    from opentelemetry.trace import SpanKind, Status, StatusCode

    current = tracer().start_span(
        name, kind=SpanKind.CLIENT, attributes=attributes, start_time=start_ns
    )
    if error:
        current.set_status(Status(StatusCode.ERROR))
    current.end(end_time=end_ns)


def current_span_set(attributes: dict) -> None:
    """Add attributes to the span in progress, if any."""
    from opentelemetry import trace

    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes(attributes)
