"""Large buffers freed by one request are reused by the next, not handed back to the kernel.

A body of a few hundred KB is copied on its way to the model (uvicorn gathers it, Starlette
joins it, a worker receives it from ZeroMQ, a handler decodes and batches it), and glibc's
malloc serves each of those copies with fresh pages: from ``mmap`` above its threshold, or
from a heap top it trimmed back to the kernel once the previous batch's buffers were freed.
Every fresh 4 KiB page costs a page fault and the kernel's zeroing, so a copy into fresh
memory costs many times a copy into reused memory (a 600 KB tensor: about 150 faults per
copy; ``benchmarks/run_payloads.py`` measures it, docs/performance.md "Large payloads").

Pinning glibc's two thresholds at the ceiling of its own dynamic policy (buffers up to 32 MiB
from the heap, the heap trimmed only past 64 MiB free) keeps those buffers for reuse; at most
the trim threshold of freed memory stays with a process. Both the frontend and every worker
call :func:`reuse_freed_buffers` as they start (the setting ``reuse_large_buffers``).
"""

from __future__ import annotations

import ctypes

# mallopt's parameter numbers (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# glibc's own ceiling for its dynamic mmap threshold on 64-bit, and twice it for trimming (the
# ratio its dynamic policy keeps).
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 2 * MMAP_THRESHOLD_BYTES


def reuse_freed_buffers() -> bool:
    """Tune this process's C allocator to keep freed large buffers; False where the C library
    has no ``mallopt`` (not glibc, e.g. macOS) or refuses the values."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library already loaded in this process
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success and 0 on error.
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
