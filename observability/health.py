"""Readiness: can this process serve? The database (computing a vector distance), Redis, and
what the apps register (the data plane adds its two models, see rag/health.py).

The database and Redis are asked every time, with short timeouts; a registered check may be
cached for READINESS_CACHE_SECONDS (the model checks look at files, and probes come every few
seconds).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import connections

from config import vector_check

from .broker import redis_ping

logger = logging.getLogger(__name__)


class NotReady(Exception):
    """A check failed; the message says why (it is shown to whoever probes)."""


def check_database() -> str:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def check_vectors() -> str:
    """One distance computed by pgvector: a server whose pgvector cannot (built for another
    CPU, or missing) answers `SELECT 1` and crashes on the first search."""
    with connections["default"].cursor() as cursor:
        return vector_check.check_cursor(cursor)


def check_redis() -> str:
    redis_ping(settings.REDIS_URL)
    return "ok"


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "vectors": check_vectors,
    "redis": check_redis,
}
# Checks whose answer may be reused for READINESS_CACHE_SECONDS (file checks, not connections).
CACHED: set[str] = set()

_cache: dict[str, tuple[float, bool, str]] = {}
_cache_lock = threading.Lock()


def register_check(name: str, check: Callable[[], str], *, cached: bool = False) -> None:
    """Add a check to /readyz (apps register theirs in `AppConfig.ready`, so this module needs
    to know none of them). `check` returns a short detail or raises NotReady."""
    CHECKS[name] = check
    if cached:
        CACHED.add(name)


def readiness() -> tuple[bool, dict[str, dict]]:
    """(ready, {check: {"ok": bool, "detail": str}})."""
    results: dict[str, dict] = {}
    for name, check in CHECKS.items():
        ok, detail = _run(name, check)
        results[name] = {"ok": ok, "detail": detail}
    return all(r["ok"] for r in results.values()), results


def _run(name: str, check: Callable[[], str]) -> tuple[bool, str]:
    now = time.monotonic()
    if name in CACHED:
        with _cache_lock:
            hit = _cache.get(name)
        if hit is not None and now - hit[0] < settings.READINESS_CACHE_SECONDS:
            return hit[1], hit[2]
    try:
        ok, detail = True, check()
    except Exception as exc:
        logger.warning("readiness check %s failed: %s", name, exc)
        ok, detail = False, f"{type(exc).__name__}: {exc}"[:300]
    if name in CACHED:
        with _cache_lock:
            _cache[name] = (now, ok, detail)
    return ok, detail


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
