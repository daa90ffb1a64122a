"""A real Celery worker for benchmarks, on the benchmark's throwaway servers."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path


@contextlib.contextmanager
def running_worker():
    from tests.workers import Worker

    worker = Worker(Path(tempfile.mkdtemp(prefix="tenantry-bench-worker-")))
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
