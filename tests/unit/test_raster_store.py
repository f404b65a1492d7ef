"""raster.npz written chunk by chunk (deadlib.data.raster_store) is byte-identical to np.savez of the
whole arrays, and never appears half-written."""

from __future__ import annotations

import numpy as np
import pytest

from deadlib.data import raster_store
from deadlib.data.raster_store import RasterWriter

LEVELS = np.array([1.0, 2.0, 4.0], np.float32)


def _arrays(n: int, size: int, valid: np.ndarray, seed: int = 0):
    rng = np.random.default_rng(seed)
    uv = np.zeros((n, size, size, 2), np.float16)
    masks = np.zeros((n, size, size), np.uint8)
    uv[valid] = rng.random((valid.sum(), size, size, 2)).astype(np.float16)
    masks[valid] = rng.integers(1, 8, (valid.sum(), size, size), dtype=np.uint8)
    return uv, masks


@pytest.mark.parametrize("batch", [1, 4, 64])
def test_same_bytes_as_np_savez_with_frames_without_a_face(tmp_path, batch, monkeypatch):
    monkeypatch.setattr(raster_store, "COPY_BYTES", 1000)  # padding and copying in several pieces
    n, size = 37, 16
    valid = np.ones(n, bool)
    valid[[0, 5, 6, 7, 20, 35, 36]] = False  # gaps at the start, inside chunks and at the end
    uv, masks = _arrays(n, size, valid)
    np.savez(tmp_path / "reference.npz", uv=uv, masks=masks, weight_levels=LEVELS)
    ids = np.flatnonzero(valid)
    with RasterWriter(tmp_path / "raster.npz", n, size, LEVELS) as out:
        for k in range(0, len(ids), batch):
            out.write(ids[k:k + batch], uv[ids[k:k + batch]], masks[ids[k:k + batch]])
    assert (tmp_path / "raster.npz").read_bytes() == (tmp_path / "reference.npz").read_bytes()
    with np.load(tmp_path / "raster.npz") as d:
        assert np.array_equal(d["uv"], uv) and np.array_equal(d["masks"], masks)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raster.npz", "reference.npz"]  # no temp file left


def test_a_video_without_any_face_is_all_zeros(tmp_path):
    np.savez(tmp_path / "reference.npz", uv=np.zeros((3, 8, 8, 2), np.float16), masks=np.zeros((3, 8, 8), np.uint8),
             weight_levels=LEVELS)
    with RasterWriter(tmp_path / "raster.npz", 3, 8, LEVELS):
        pass
    assert (tmp_path / "raster.npz").read_bytes() == (tmp_path / "reference.npz").read_bytes()


def test_an_error_leaves_no_file_and_out_of_order_rows_are_refused(tmp_path):
    uv, masks = _arrays(10, 8, np.ones(10, bool))
    with pytest.raises(ValueError, match="ascend"):
        with RasterWriter(tmp_path / "raster.npz", 10, 8, LEVELS) as out:
            out.write(np.array([0, 1]), uv[:2], masks[:2])
            out.write(np.array([1, 2]), uv[1:3], masks[1:3])
    with pytest.raises(ValueError, match="rows for"):
        with RasterWriter(tmp_path / "raster.npz", 10, 8, LEVELS) as out:
            out.write(np.array([0, 1]), uv[:1], masks[:2])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("given", [9, 6, 0])
def test_npy_rows_same_bytes_as_the_memory_map_prepare_wrote(tmp_path, given, monkeypatch):
    """frames.npy streamed row by row equals what np.lib.format.open_memmap + row assignment wrote
    (prepare before) and what np.save writes, rows not given (a short decode) zero in both."""
    monkeypatch.setattr(raster_store, "COPY_BYTES", 100)  # the zero tail in several pieces
    shape = (9, 5, 4, 3)
    rows = np.random.default_rng(1).integers(0, 256, shape).astype(np.uint8)
    mapped = np.lib.format.open_memmap(tmp_path / "mapped.npy", mode="w+", dtype=np.uint8, shape=shape)
    for k in range(given):
        mapped[k] = rows[k]
    mapped.flush()
    del mapped
    expected = rows.copy()
    expected[given:] = 0
    np.save(tmp_path / "saved.npy", expected)
    assert raster_store.write_npy_rows(tmp_path / "rows.npy", iter(rows[:given]), shape, np.uint8) == given
    written = (tmp_path / "rows.npy").read_bytes()
    assert written == (tmp_path / "mapped.npy").read_bytes() == (tmp_path / "saved.npy").read_bytes()


def test_npy_rows_refuse_rows_that_do_not_fit(tmp_path):
    with pytest.raises(ValueError, match="does not fit"):
        raster_store.write_npy_rows(tmp_path / "a.npy", [np.zeros((2, 2), np.uint8)] * 3, (2, 2, 2), np.uint8)
    with pytest.raises(ValueError, match="does not fit"):
        raster_store.write_npy_rows(tmp_path / "b.npy", [np.zeros((2, 3), np.uint8)], (2, 2, 2), np.uint8)
