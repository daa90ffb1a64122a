"""Warm before ready: a serving process loads the models its requests need before it says it
can serve.

Why: a web process used to start answering at once and load the embedding model in a thread
beside it, so the first search after `make run` said it was running waited 11 s for that load.
Now the load still runs beside the server (so /livez and /readyz answer meanwhile), but
/readyz answers 503 `models loading` until it is over (rag/health.py), and each process that
warmed leaves a marker file in WARM_DIR saying so. `make run` prints that the platform is
running only once every web and worker process has left one (`all_warm`), and a Kubernetes
readiness probe routes no request to a pod before its process is warm.

A process that never warms (runserver, commands, tests' in-process client) is "cold": it
loads on first use, as before, and is not held back from being ready.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)

COLD, WARMING, WARM, FAILED = "cold", "warming", "warm", "failed"

_state = COLD
_detail = ""
_lock = threading.Lock()


def state() -> tuple[str, str]:
    """(cold | warming | warm | failed, what is loading or what failed)."""
    with _lock:
        return _state, _detail


def _set(new_state: str, detail: str = "") -> None:
    global _state, _detail
    with _lock:
        _state, _detail = new_state, detail


def warm(role: str, *, expected: int, generator: bool) -> None:
    """Load this process's models, then leave its marker. `role` is "web" or "worker";
    `expected` is how many processes of that role the server runs (the marker carries it, so
    whoever waits needs no configuration of its own); `generator`: whether requests here
    answer questions (the web), not only embed (the worker)."""
    _set(WARMING, "embedding model")
    started = time.monotonic()
    try:
        if settings.EMBEDDING_PRELOAD:
            from .embedding import embed_texts

            for backend in _backends_in_use():
                _set(WARMING, f"embedding model ({backend})")
                # Real encodes, not only a load: a backend's first run at each input length
                # sizes its buffers (torch: a first question in 38 ms, the next ones in 16).
                for words in (1, 4, 8, 16, 32):
                    embed_texts([" ".join(["warm"] * words)], backend=backend)
        if role == "web":
            _set(WARMING, "request path")
            _import_views()
            _set(WARMING, "database connections")
            from tenants.pools import pools_fill

            pools_fill()
        if generator and settings.LLM_PRELOAD:
            _set(WARMING, "generation model")
            from .generation.gate import get_gate
            from .generation.model import get_model

            # A first turn evaluates the shared prompt prefix, so no request pays for it.
            with get_gate().turn(get_model()):
                pass
    except Exception as exc:
        logger.exception("warming the models failed")
        _set(FAILED, f"{type(exc).__name__}: {exc}"[:300])
    else:
        _set(WARM, f"{time.monotonic() - started:.1f} s")
    # Probes while loading cached "loadable"; the next one should say what is true now.
    from observability.health import clear_cache

    clear_cache()
    _write_marker(role, expected)


def _backends_in_use() -> list[str]:
    """The default embedding backend and every one a tenant is still on (a tenant's queries
    use its own, rag/embedders): a process loads only these, so with every tenant on an ONNX
    backend torch is never imported."""
    from .embedding import default_backend

    backends = {default_backend()}
    from django.db import connections

    try:
        from tenants.models import Tenant

        backends.update(Tenant.objects.values_list("embedding_backend", flat=True).distinct())
    except Exception:  # no database yet: the default alone; the others load on first use
        logger.warning("cannot read the tenants' embedding backends", exc_info=True)
    finally:
        # This thread's connections: a pooled one held here would keep pools_fill, below,
        # from ever taking all of its pool's connections.
        connections.close_all()
    return sorted(backends)


def _import_views() -> None:
    """Django imports the URLconf, and with it every view, serializer and DRF module, on the
    first request: 40 ms of the first search's time (`make bench`, warm_start) paid here."""
    from django.urls import get_resolver

    resolver = get_resolver()
    for path in ("/api/v1/search", "/api/v1/answer", "/console/"):
        resolver.resolve(path)


def warm_in_background(role: str, *, expected: int, generator: bool) -> None:
    """`warm` beside the server, which answers probes meanwhile (with 503 until warm)."""
    _set(WARMING, "starting")
    threading.Thread(
        target=warm,
        args=(role,),
        kwargs={
            "expected": expected,
            "generator": generator,
        },
        name="warm-models",
        daemon=True,
    ).start()


def _write_marker(role: str, expected: int) -> None:
    directory = settings.WARM_DIR
    current, detail = state()
    marker = {"role": role, "pid": os.getpid(), "expected": expected, "state": current}
    marker["detail"] = detail
    try:
        directory.mkdir(parents=True, exist_ok=True)
        temporary = directory / f".{role}-{os.getpid()}.tmp"
        temporary.write_text(json.dumps(marker))
        temporary.replace(directory / f"{role}-{os.getpid()}.json")
    except OSError as exc:
        logger.warning("cannot leave the warm marker in %s: %s", directory, exc)


def all_warm(directory: Path, roles: tuple[str, ...] = ("web", "worker")) -> tuple[str, str]:
    """Whether every process of each role has warmed: (WARM | WARMING | FAILED, what is still
    awaited or what failed).

    Reads only files (platform/run.py calls it without Django). A marker of a process that has
    exited does not count: a restarted worker warms again.
    """
    live: dict[str, list[dict]] = {role: [] for role in roles}
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            marker = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if marker.get("role") in live and _alive(int(marker.get("pid", 0))):
            live[marker["role"]].append(marker)
    for role, markers in live.items():
        failed = [m for m in markers if m.get("state") == FAILED]
        if failed:
            return FAILED, f"{role} process {failed[0]['pid']}: {failed[0]['detail']}"
        expected = max((int(m.get("expected", 1)) for m in markers), default=1)
        if len(markers) < expected:
            return WARMING, f"{role}: {len(markers)} of {expected} processes warm"
    return WARM, "all warm"


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
