"""deadlib.dub.render.CacheRows: the dubber reads a prepared cache's per-frame rows with pread, so
the pages it reads do not stay in the process's resident set as a memory map's would."""

from __future__ import annotations

import numpy as np
import pytest

from deadlib.data.dataset import load_npz_mmap
from deadlib.dub.render import CacheRows


def rss_file_kib() -> int:
    """File-backed resident memory of this process (kB), from /proc/self/status."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssFile:"):
                return int(line.split()[1])
    pytest.skip("no RssFile in /proc/self/status (not Linux)")


@pytest.fixture()
def cache(tmp_path):
    """A frames.npy and a raster.npz (uv float16, masks uint8) like prepare writes, memory-mapped."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (40, 16, 16, 3), dtype=np.uint8)
    uv = rng.standard_normal((40, 16, 16, 2)).astype(np.float16)
    masks = rng.integers(0, 8, (40, 16, 16), dtype=np.uint8)
    np.save(tmp_path / "frames.npy", frames)
    np.savez(tmp_path / "raster.npz", uv=uv, masks=masks, weight_levels=np.ones(3, np.float32))
    raster = load_npz_mmap(tmp_path / "raster.npz")
    return {"frames": (frames, np.load(tmp_path / "frames.npy", mmap_mode="r")),
            "uv": (uv, raster["uv"]), "masks": (masks, raster["masks"])}


@pytest.mark.parametrize("key", ["frames", "uv", "masks"])
@pytest.mark.parametrize("ids", [[0, 1, 2, 3], [39], [5, 7, 6, 6, 20, 21, 22, 0], list(range(39, -1, -1)), []])
def test_rows_equal_the_arrays_rows(cache, key, ids):
    expected, mapped = cache[key]
    rows = CacheRows(mapped)
    assert rows._fd is not None  # really read through the file, not the memory map
    got = rows[np.array(ids, int)]
    assert got.dtype == expected.dtype and got.shape == (len(ids), *expected.shape[1:])
    np.testing.assert_array_equal(got, expected[np.array(ids, int)])
    rows.close()


def test_rows_outside_the_array_raise(cache):
    rows = CacheRows(cache["frames"][1])
    with pytest.raises(IndexError):
        rows[np.array([38, 40])]
    with pytest.raises(IndexError):
        rows[np.array([-1])]


def test_arrays_in_memory_are_indexed(cache):
    frames = cache["frames"][0]
    rows = CacheRows(frames)
    assert rows._fd is None
    np.testing.assert_array_equal(rows[np.array([3, 1])], frames[[3, 1]])


def test_reading_every_row_leaves_no_pages_resident(tmp_path):
    """Memory-map indexing keeps the pages it touched in RSS; pread keeps them in the page cache."""
    frames = np.zeros((512, 128, 128, 3), np.uint8)  # 24 MiB, like 512 crops of the default profile
    frames[:, 0, 0, 0] = np.arange(512) % 251
    np.save(tmp_path / "frames.npy", frames)
    del frames

    def growth_kib(reader) -> int:
        before, total = rss_file_kib(), 0
        for k in range(0, 512, 16):
            total += int(reader[np.arange(k, k + 16)][:, 0, 0, 0].astype(int).sum())  # use the rows, drop them
        assert total == int((np.arange(512) % 251).sum())
        return rss_file_kib() - before

    assert growth_kib(CacheRows(np.load(tmp_path / "frames.npy", mmap_mode="r"))) < 4 << 10
    # the check can fail: the same loop over the memory map leaves the 24 MiB resident
    assert growth_kib(np.load(tmp_path / "frames.npy", mmap_mode="r")) > 16 << 10
