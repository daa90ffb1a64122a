"""glibc malloc settings for a process that runs the embedding model.

Why: in a Celery prefork child, glibc handed the freed activation buffers of each encode back
to the kernel and the next encode faulted them in again: 30,000-55,000 minor page faults and
40-100 ms of kernel time per 20-chunk batch (about 15% of the batch), measured with getrusage
around `model.encode` in the worker. The same code in a plain process happened to keep its
freed memory and faulted nothing, so the loss only showed in the worker; it was most of the gap
between end-to-end ingestion and `model.encode` alone in `make bench`.

A fixed mmap threshold (glibc's largest, 32 MiB) serves those buffers from the heap instead of
fresh mappings, and a trim threshold keeps up to EMBEDDING_MALLOC_KEEP_MB of freed memory for
the next batch rather than returning it. The cost is memory: the process keeps its peak heap
(a few hundred MB for the embedding model) instead of shrinking between batches. Setting
EMBEDDING_MALLOC_KEEP_MB=0 leaves glibc's defaults alone. Not glibc (musl, macOS): nothing to do.
"""

from __future__ import annotations

import ctypes
import logging

logger = logging.getLogger(__name__)

# From glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc refuses more on 64-bit (HEAP_MAX_SIZE / 2)


def malloc_keep_freed_memory(keep_mb: int) -> bool:
    """Apply the settings above; True if glibc took them. Never raises: tuning is optional."""
    if keep_mb <= 0:
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it; musl's mallopt is a no-op
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    keep = min(keep_mb * 1024 * 1024, 2**31 - 1)
    applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(
        mallopt(M_TRIM_THRESHOLD, keep)
    )
    if not applied:
        logger.warning("glibc refused the malloc settings; embedding batches may page-fault")
    return applied
