"""benchmarks/bench_cold_read.py: the eviction really drops a file from the page cache, and the read covers every byte."""

import os
import shutil

import pytest
from support import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_cold_read")


@pytest.mark.skipif(shutil.which("fincore") is None, reason="util-linux fincore is not installed")
def test_evict_drops_the_pages_a_read_brought_in(bench, tmp_path):
    f = tmp_path / "blob.bin"
    with open(f, "wb") as out:
        out.write(os.urandom(8 << 20))
        out.flush()
        os.fsync(out.fileno())                   # dirty pages cannot be dropped
    bench.read_all([f])
    assert bench.resident_bytes([f]) > 0
    bench.evict([f])
    assert bench.resident_bytes([f]) == 0


def test_read_all_reads_every_file_to_its_end(bench, tmp_path, monkeypatch):
    files = []
    for k, size in enumerate((0, 5, 3 * bench.BLOCK + 7)):
        files.append(tmp_path / f"f{k}")
        files[-1].write_bytes(b"x" * size)
    seen = []
    real_open = open

    def counting_open(path, *args, **kwargs):
        handle = real_open(path, *args, **kwargs)
        read = handle.read

        class Counted:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                handle.close()

            def read(self, n):
                data = read(n)
                seen.append(len(data))
                return data
        return Counted()

    monkeypatch.setattr("builtins.open", counting_open)
    bench.read_all(files)
    assert sum(seen) == sum(f.stat().st_size for f in files)
