"""deadlib.core.memory: freed, fragmented heap memory leaves the resident set (glibc only)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deadlib.core.memory import return_freed_memory

# 100k blocks of 2 kB (malloc, not Python's small-object arena), every 16th kept so the heap cannot
# shrink from its top; prints the anonymous resident set (kB) after freeing and after the trim.
FRAGMENTED = """
from deadlib.core.memory import return_freed_memory

def anon_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssAnon"))

blocks = [bytearray(2048) for _ in range(100_000)]
kept = blocks[::16]
del blocks
freed = anon_kib()
assert return_freed_memory()
print(freed, anon_kib())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or not return_freed_memory(),
                    reason="malloc_trim is glibc's (Linux); elsewhere return_freed_memory does nothing")
def test_fragmented_free_memory_is_returned_to_the_kernel():
    run = subprocess.run([sys.executable, "-c", FRAGMENTED], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    freed, trimmed = map(int, run.stdout.split())
    assert freed - trimmed > 100_000, f"RssAnon {freed} kB after freeing 190 MB, {trimmed} kB after the trim"
