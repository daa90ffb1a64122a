"""Readiness: can this process serve? The database (computing a vector distance), Redis, and
both models.

"Loadable" for a model means: already loaded in this process, or its files are where the
settings say. Probes come every few seconds, so no probe ever loads a model (hundreds of MB,
seconds of CPU); the file checks are cached for READINESS_CACHE_SECONDS. The database and Redis
are asked every time, with short timeouts.
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

EMBEDDING_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


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


def check_embedding_model() -> str:
    from rag import embedding
    from rag.tokenizer import EmbeddingModelMissing, embedding_model_path

    if embedding._model is not None:
        return "loaded"
    try:
        path = embedding_model_path()
    except EmbeddingModelMissing as exc:
        raise NotReady(str(exc)) from exc
    if not any((path / name).is_file() for name in EMBEDDING_WEIGHTS):
        raise NotReady(f"{path} has no model weights")
    return "loadable"


def check_generator() -> str:
    from rag.generation import model as generation

    if generation._model is not None:
        return "loaded"
    try:
        path = generation.gguf_path()
    except generation.GenerationModelMissing as exc:
        raise NotReady(str(exc)) from exc
    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise NotReady(f"{path} is not a GGUF file")
    return "loadable"


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "vectors": check_vectors,
    "redis": check_redis,
    "embedding_model": check_embedding_model,
    "generator": check_generator,
}
CACHED = frozenset({"embedding_model", "generator"})

_cache: dict[str, tuple[float, bool, str]] = {}
_cache_lock = threading.Lock()


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
