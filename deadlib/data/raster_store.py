"""``raster.npz`` written while it is rasterised, one chunk of frames in memory instead of the video.

A prepared video's rasters are ``uv`` (N, S, S, 2) float16 and packed ``masks`` (N, S, S) uint8 —
80 kB a frame at 128 px, ≈ 117 MiB a minute of 25 fps video. Building both arrays before
``np.savez`` made a 10-minute video to dub hold 1.2 GiB for them alone (issue 18, goal 5).
``RasterWriter`` produces the same file byte for byte (tested against ``np.savez``): an uncompressed
zip of ``uv.npy``, ``masks.npy``, ``weight_levels.npy`` with zip64 entries, as numpy writes it. uv
rows stream straight into their zip entry; mask rows wait in an unnamed temp file beside the output
(the zip's entries are written one after the other) and are copied in after uv. Frames without a face
are zero rows, as in the arrays they replace. The writer writes the path it is given and deletes it
on an error; give it ``deadlib.core.files.atomic_output``'s temporary path so the file appears under
its name only when complete (``prepare.finish_video`` does).

``write_npy_rows`` does the same for a plain ``.npy`` of rows (prepare's ``frames.npy``): rows go
through a file handle, never a writable memory map, whose touched pages would stay in the process's
resident set — the whole cropped video, ≈ 74 MiB a minute at 128 px.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import BinaryIO, Iterable

import numpy as np
from numpy.lib import format as npy_format

COPY_BYTES = 1 << 20  # pieces in which zero padding and the mask rows are copied


def _npy_header(stream: BinaryIO, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """The .npy header ``np.save`` writes for a C-ordered array of ``shape`` and ``dtype``."""
    header = {"descr": npy_format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)}
    npy_format.write_array_header_1_0(stream, header)


def _zeros(stream: BinaryIO, n_bytes: int) -> None:
    while n_bytes > 0:
        piece = min(n_bytes, COPY_BYTES)
        stream.write(bytes(piece))
        n_bytes -= piece


def write_npy_rows(path: str | os.PathLike, rows: Iterable[np.ndarray], shape: tuple[int, ...], dtype) -> int:
    """Write the .npy of an array of ``shape`` (N, ...) and ``dtype`` from ``rows`` (each ``shape[1:]``, cast
    as an assignment into the array would cast), one row at a time; rows after the last one given are zero
    (as in a file ``np.lib.format.open_memmap`` made). Byte for byte what ``np.save`` writes for the whole
    array. Returns the number of rows given; more than N rows, or a row of another shape, raise ValueError."""
    dtype, n = np.dtype(dtype), int(shape[0])
    row_bytes = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
    given = 0
    with open(path, "wb") as stream:
        _npy_header(stream, shape, dtype)
        for row in rows:
            row = np.asarray(row)
            if given >= n or row.shape != tuple(shape[1:]):
                raise ValueError(f"row {given} of shape {row.shape} does not fit an array of shape {tuple(shape)}")
            stream.write(row.astype(dtype, copy=False).tobytes())
            given += 1
        _zeros(stream, (n - given) * row_bytes)
    return given


class RasterWriter:
    """Write ``raster.npz`` for ``n_frames`` frames of ``size`` px rows in ascending frame order.

    with RasterWriter(path, n_frames, size, weight_levels) as out:
        out.write(rows, uv, masks)   # rows (k,) ascending frame indices, uv (k, S, S, 2), masks (k, S, S)
    """

    def __init__(self, path: str | os.PathLike, n_frames: int, size: int, weight_levels: np.ndarray):
        self.path, self.n_frames = Path(path), int(n_frames)
        self.uv_shape, self.mask_shape = (self.n_frames, size, size, 2), (self.n_frames, size, size)
        self.uv_row, self.mask_row = size * size * 2 * 2, size * size  # bytes per frame (float16 × 2, uint8)
        self.weight_levels = np.asarray(weight_levels)
        self.next_row = 0
        self._zip = zipfile.ZipFile(self.path, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True)
        self._uv = self._zip.open("uv.npy", "w", force_zip64=True)  # as np.savez: always zip64
        _npy_header(self._uv, self.uv_shape, np.float16)
        self._masks = tempfile.TemporaryFile(dir=self.path.parent, prefix=".masks_")

    def write(self, rows: np.ndarray, uv: np.ndarray, masks: np.ndarray) -> None:
        """Rows ``rows`` (ascending, after every row written so far) get ``uv`` and ``masks``; the frames
        skipped in between stay zero."""
        rows = np.asarray(rows)
        if len(rows) != len(uv) or len(rows) != len(masks):
            raise ValueError(f"{len(rows)} rows for {len(uv)} uv maps and {len(masks)} masks")
        if len(rows) and (rows[0] < self.next_row or np.any(np.diff(rows) <= 0) or rows[-1] >= self.n_frames):
            raise ValueError(f"rows must ascend from frame {self.next_row} and stay below {self.n_frames}")
        uv = np.ascontiguousarray(uv, np.float16)
        masks = np.ascontiguousarray(masks, np.uint8)
        for k, row in enumerate(rows.tolist()):
            self._pad_to(row)
            self._uv.write(uv[k].tobytes())
            self._masks.write(masks[k].tobytes())
            self.next_row = row + 1

    def _pad_to(self, row: int) -> None:
        gap = row - self.next_row
        _zeros(self._uv, gap * self.uv_row)
        _zeros(self._masks, gap * self.mask_row)
        self.next_row = row

    def close(self) -> Path:
        """Pad to ``n_frames``, add the masks and the weight levels."""
        self._pad_to(self.n_frames)
        self._uv.close()
        self._masks.seek(0)
        with self._zip.open("masks.npy", "w", force_zip64=True) as entry:
            _npy_header(entry, self.mask_shape, np.uint8)
            while piece := self._masks.read(COPY_BYTES):
                entry.write(piece)
        self._masks.close()
        with self._zip.open("weight_levels.npy", "w", force_zip64=True) as entry:
            npy_format.write_array(entry, self.weight_levels)
        self._zip.close()
        return self.path

    def abort(self) -> None:
        """Drop everything written: the file at ``path`` is deleted."""
        for handle in (self._uv, self._masks, self._zip):
            try:
                handle.close()
            except Exception:  # noqa: BLE001 — closing a half-written zip may fail; it is deleted next
                pass
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> "RasterWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
