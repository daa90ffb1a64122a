"""Writes a request need not wait for, done after its response has been sent.

A search's usage-ledger row, its query-log entry and a new query embedding's cache row change
nothing the caller receives; making the caller wait for their round trips (five, on three
connections) is latency for nothing. Inside a request, `after_response(fn, ...)` keeps the call
until Django's `request_finished`, which the server sends when it closes the response, after
the last byte is written. Outside a request (a Celery task, a management command, a service
called from a test) the call runs at once, so nothing is lost for want of a request.

Same thread, same process, no queue: a deferred write is done before its thread takes the next
request, a process killed between the response and the write loses that write (as it would
have lost the request's work a moment earlier), and nothing is batched across requests. A
failure is logged, never raised: the response has gone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import connections

logger = logging.getLogger(__name__)
_local = threading.local()


def after_response(fn: Callable, /, *args, **kwargs) -> None:
    """Call `fn(*args, **kwargs)` once the current request's response is sent (now, outside a
    request)."""
    pending = getattr(_local, "pending", None)
    if pending is None:
        fn(*args, **kwargs)
    else:
        pending.append((fn, args, kwargs))


def deferred_running() -> bool:
    """Whether this thread is running the calls deferred by its last request (for tests that
    tell the response path from what follows it)."""
    return getattr(_local, "running", False)


def _request_started(**_) -> None:
    _local.pending = []


def _request_finished(**_) -> None:
    pending, _local.pending = getattr(_local, "pending", None), None
    if not pending:
        return
    _local.running = True
    try:
        for fn, args, kwargs in pending:
            try:
                fn(*args, **kwargs)
            except Exception:
                logger.exception("a write deferred after the response failed: %r", fn)
    finally:
        _local.running = False
        # Django's own end-of-request receiver ran before these writes: a pooled connection
        # they took goes back to its pool now, not when this thread's next request starts.
        for alias in settings.POOLED_ALIASES:
            connections[alias].close_if_unusable_or_obsolete()


def connect() -> None:
    """Hook the request signals (TenantsConfig.ready)."""
    request_started.connect(_request_started, dispatch_uid="tenants.after_response.started")
    request_finished.connect(_request_finished, dispatch_uid="tenants.after_response.finished")
