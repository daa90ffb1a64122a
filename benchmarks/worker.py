"""A real Celery worker for benchmarks, on the benchmark's throwaway servers."""

from __future__ import annotations

import contextlib
import re
import tempfile
import time
from pathlib import Path


@contextlib.contextmanager
def running_worker():
    from tests.workers import Worker

    # As in production: no 3-second stuck-document sweep (the tests' setting) and no beat
    # scheduler inside the worker (`make run` runs beat as its own process); both would steal
    # the worker's time and be measured as pipeline overhead (ratio 0.67 with them, 0.8 without).
    log_dir = Path(tempfile.mkdtemp(prefix="tenantry-bench-worker-"))
    # Sized as production sizes it: a process per core, torch threads shared out among them.
    worker = Worker(log_dir, settings={}, beat=False, concurrency=None)
    worker.start()
    try:
        _wait_models_loaded(worker)
        yield worker
    finally:
        worker.stop()


def _wait_models_loaded(worker, timeout: float = 300) -> None:
    """Celery says "ready" before its pool processes have loaded the embedding backends; anything
    measured meanwhile would compete with them for the cores."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = worker.log()
        processes = re.search(r"concurrency: (\d+)", log)
        if processes and log.count("embedding backends loaded") >= int(processes.group(1)):
            return
        time.sleep(0.5)
    raise TimeoutError("the worker's processes did not load the embedding model:\n" + log)
