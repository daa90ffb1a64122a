"""A real Celery worker for benchmarks, on the benchmark's throwaway servers."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path


@contextlib.contextmanager
def running_worker():
    from tests.workers import Worker

    # Production timings: the tests' 3-second stuck-document sweep would steal the worker's
    # time between documents and be measured as pipeline overhead.
    worker = Worker(Path(tempfile.mkdtemp(prefix="tenantry-bench-worker-")), settings={})
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
