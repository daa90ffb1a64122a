"""Celery signal handlers: a duration histogram per task, and a span per task with tracing on.

Connected by config/celery_app.py. Like everything in this package they never raise: a
metrics failure must not fail a task.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

from . import tracing

logger = logging.getLogger(__name__)

_running: dict[str, tuple[float, object, object]] = {}
_lock = threading.Lock()


def process_started() -> None:
    """A worker process is ready: configure tracing now rather than in its first task."""
    try:
        if tracing.enabled():
            tracing.configure()
    except Exception:
        logger.debug("could not configure tracing", exc_info=True)


def task_started(task_id: str, task) -> None:
    try:
        span = token = None
        if tracing.tracer() is not None:
            from opentelemetry import context, trace

            span = tracing.tracer().start_span(
                f"celery {task.name}", attributes={"celery.task_name": task.name}
            )
            token = context.attach(trace.set_span_in_context(span))
        with _lock:
            _running[task_id] = (time.perf_counter(), span, token)
    except Exception:
        logger.debug("could not observe the start of %s", task_id, exc_info=True)


def task_finished(task_id: str, task, state: str | None) -> None:
    try:
        with _lock:
            started, span, token = _running.pop(task_id, (None, None, None))
        if span is not None:
            from opentelemetry import context
            from opentelemetry.trace import Status, StatusCode

            span.set_attribute("celery.state", state or "")
            if state not in (None, "SUCCESS"):
                span.set_status(Status(StatusCode.ERROR))
            span.end()
            if token is not None:
                context.detach(token)
        if started is not None and settings.METRICS_ENABLED:
            from . import metrics

            metrics.celery_task_duration.labels(task=task.name, state=state or "UNKNOWN").observe(
                time.perf_counter() - started
            )
    except Exception:
        logger.debug("could not observe the end of %s", task_id, exc_info=True)
