"""A process running the embedding model keeps freed buffers for its next batch instead of
returning them to the kernel and faulting them in again (rag.memory_tuning says why)."""

import subprocess
import sys

from rag.memory_tuning import malloc_keep_freed_memory

# Allocates, touches and frees a 16 MiB buffer five times and prints the minor page faults of
# the last four rounds. glibc's untuned start (a 128 KiB mmap threshold, fixed here so its
# dynamic raising cannot hide it) maps and unmaps the buffer every round; tuned, the heap
# keeps it.
PROBE = """
import ctypes, resource, sys
sys.path.insert(0, {root!r})
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.mallopt(-3, 128 * 1024)
if {tuned}:
    from rag.memory_tuning import malloc_keep_freed_memory
    assert malloc_keep_freed_memory(512)
size = 16 * 1024 * 1024
faults = []
for _ in range(5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    buffer = libc.malloc(size)
    ctypes.memset(buffer, 1, size)
    libc.free(buffer)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sum(faults[1:]))
"""


def _faults(tuned: bool) -> int:
    from django.conf import settings

    code = PROBE.format(root=str(settings.BASE_DIR), tuned=tuned)
    return int(subprocess.check_output([sys.executable, "-c", code], text=True))


def test_tuned_malloc_reuses_freed_buffers_instead_of_faulting_them_in_again():
    pages = 4 * 16 * 1024 * 1024 // 4096
    assert _faults(tuned=False) > pages * 0.9  # every round faults the whole buffer again
    assert _faults(tuned=True) < pages * 0.1


def test_tuning_can_be_switched_off():
    assert malloc_keep_freed_memory(0) is False
