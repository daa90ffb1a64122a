"""A real Celery worker for benchmarks, on the benchmark's throwaway servers."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path


@contextlib.contextmanager
def running_worker():
    from tests.workers import Worker

    # As in production: no 3-second stuck-document sweep (the tests' setting) and no beat
    # scheduler inside the worker (`make run` runs beat as its own process); both would steal
    # the worker's time and be measured as pipeline overhead (ratio 0.67 with them, 0.8 without).
    log_dir = Path(tempfile.mkdtemp(prefix="tenantry-bench-worker-"))
    worker = Worker(log_dir, settings={}, beat=False)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
