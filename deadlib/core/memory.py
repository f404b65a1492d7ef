"""Giving freed memory back to the operating system between the long phases of one process.

A dub prepares its video (hundreds of thousands of small per-frame allocations: tracked meshes,
detections, smoothing temporaries), then renders. glibc's allocator keeps most of what the
preparation freed in its heap — fragmented, so it cannot shrink the heap's top — and the process's
resident set carries it into rendering, where the encoder and the renderer add their own peak
(issue 18, goal 5: ≈ 100 MiB on a 20 s 1080p clip, measured by benchmarks/bench_dub.py).
``malloc_trim(0)`` returns every whole free page of the heap to the kernel.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.lru_cache(maxsize=1)
def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def return_freed_memory() -> bool:
    """Hand the allocator's free heap pages back to the kernel (glibc ``malloc_trim``); False where
    the C library has no such call (musl, macOS): nothing is done there and nothing breaks."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
