"""Training windows over the prepare stage's caches: T consecutive valid frames + MEL + references.

A window is T consecutive frames that all show the tracked face, inside one split of one video:
``train`` = the first ``n_train_frames`` frames of the train part (the data-size study of §4.4;
None = all of it), ``val`` = the validation span before the test part, ``test`` = the last
``test_seconds`` (ranges come from each video's report.json, see ``prepare.split_ranges``).
References are R other valid frames of the same video drawn from ``ref_split`` (default: the
window's own split, outside the window; from the whole pool only when nothing else is left).
Validation and test windows take their references from the (first ``n_train_frames`` of the)
train part — the frames a method has seen — so no test frame is ever an input besides its own
masked frame.

Memory: frames.npy and the raster arrays are memory-mapped (raster.npz is written uncompressed,
so each member is mapped at its offset inside the zip); at most ``cache_size`` videos are
open at a time (LRU) and nothing is copied to RAM beyond the items being built. The open maps
are dropped when the dataset is pickled, so DataLoader workers reopen them lazily.
Determinism: item ``i`` depends only on (seed, epoch, i); ``set_epoch`` redraws references.
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch.utils.data import Dataset

from deadlib.data.audio import MEL_SILENCE, mel_window_starts
from deadlib.data.face3d import MASK_FACE, MASK_LOWER, MASK_MOUTH, weight_map

SPLITS = ("train", "val", "test")


class CacheError(ValueError):
    """A prepared cache is missing or incomplete; re-run the prepare stage."""


def load_npz_mmap(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Memory-map every member of an *uncompressed* .npz (as written by ``np.savez``)."""
    path = Path(path)
    out = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                raise CacheError(f"{path}:{info.filename} is compressed and cannot be memory-mapped; "
                                 "re-run the prepare stage (it writes raster.npz uncompressed)")
            raw.seek(info.header_offset)
            local = raw.read(30)  # local file header: name/extra lengths at bytes 26..30
            name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
            raw.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(raw)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(raw)
            out[info.filename.removesuffix(".npy")] = np.memmap(
                path, dtype=dtype, mode="r", offset=raw.tell(), shape=shape, order="F" if fortran else "C")
    return out


class _Video:
    """Open memory maps of one prepared video."""

    def __init__(self, folder: Path):
        missing = [f for f in ("frames.npy", "raster.npz", "mel.npy", "track.npz", "report.json")
                   if not (folder / f).is_file()]
        if missing:
            raise CacheError(f"{folder} lacks {missing}; re-run the prepare stage")
        self.frames = np.load(folder / "frames.npy", mmap_mode="r")  # (N, H, W, 3) uint8
        raster = load_npz_mmap(folder / "raster.npz")
        self.uv, self.masks = raster["uv"], raster["masks"]  # (N, H, W, 2) f16, (N, H, W) u8
        self.levels = np.asarray(raster["weight_levels"], np.float32)  # (3,) base, lower, mouth
        self.mel = np.load(folder / "mel.npy", mmap_mode="r")  # (M, 80) f16


def load_cache(folder: str | os.PathLike) -> dict:
    """Everything one prepared video holds (frames/rasters/MEL memory-mapped) for notebooks and checks."""
    folder = Path(folder)
    video = _Video(folder)
    with np.load(folder / "track.npz") as track:
        arrays = {k: track[k] for k in track.files}
    return {"frames": video.frames, "uv": video.uv, "masks": video.masks, "weight_levels": video.levels,
            "mel": video.mel, "track": arrays, "report": json.loads((folder / "report.json").read_text())}


class WindowDataset(Dataset):
    """Dict items of T consecutive valid frames (see module docstring); shapes in ``__getitem__``."""

    def __init__(self, cache_root: str | os.PathLike, names: list[str], split: str = "train",
                 n_train_frames: int | None = None, window: int = 5, n_refs: int = 1, seed: int = 0,
                 fps: float = 25.0, mel_window: int = 16, cache_size: int = 4, ref_split: str | None = None):
        for part in (split, ref_split or split):
            if part not in SPLITS:
                raise ValueError(f"split must be one of {SPLITS}, got {part!r}")
        if window < 1 or n_refs < 0:
            raise ValueError(f"need window >= 1 and n_refs >= 0, got {window}, {n_refs}")
        self.root, self.names, self.split = Path(cache_root), list(names), split
        self.window, self.n_refs, self.seed, self.epoch = window, n_refs, seed, 0
        self.fps, self.mel_window, self.cache_size = fps, mel_window, cache_size
        self.ref_split = ref_split or split
        self.pools: list[np.ndarray] = []  # per video: allowed (valid, in-split) frame ids
        self.ref_pools: list[np.ndarray] = []  # per video: frame ids references are drawn from
        starts = []
        for v, name in enumerate(self.names):
            pool = self._allowed(name, split, n_train_frames)
            self.ref_pools.append(pool if self.ref_split == split else self._allowed(name, self.ref_split, n_train_frames))
            ok = np.zeros(pool.max() + 2 if len(pool) else 1, bool)
            ok[pool] = True
            run = np.convolve(ok.astype(int), np.ones(window, int), "valid")  # valid frames per window
            starts.append(np.stack(np.broadcast_arrays(v, np.flatnonzero(run == window)), 1))
            self.pools.append(pool)
        self.index = np.concatenate(starts) if starts else np.zeros((0, 2), int)  # (W, 2) video, start
        if len(self.index) == 0:
            raise CacheError(f"no {split} window of {window} consecutive face frames in {self.names} "
                             f"under {self.root}; use longer clips or a smaller window")
        self._open: OrderedDict[int, _Video] = OrderedDict()

    def _allowed(self, name: str, split: str, n_train_frames: int | None) -> np.ndarray:
        """Frame ids of ``name`` usable in ``split``: valid and inside the split's range."""
        folder = self.root / name
        if not (folder / "report.json").is_file():
            raise CacheError(f"no prepared cache for {name!r} in {self.root}; run the prepare stage "
                             f"(or check summary.json: the video may have been skipped)")
        ranges = json.loads((folder / "report.json").read_text())["splits"]
        if split not in ranges:
            raise CacheError(f"the prepared cache of {name!r} has no {split!r} part (made before the "
                             "validation span existed); re-run the prepare stage (dvc repro prepare)")
        lo, hi = ranges[split]
        if split == "train" and n_train_frames is not None:
            if n_train_frames > hi - lo:
                warnings.warn(f"{name}: {n_train_frames} training frames requested, only {hi - lo} "
                              "in the train part; using all of them", stacklevel=3)
            hi = min(hi, lo + n_train_frames)
        with np.load(folder / "track.npz") as track:
            valid = track["valid"]
        return lo + np.flatnonzero(valid[lo:hi])

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int) -> None:
        """Redraw the reference frames (windows stay the same)."""
        self.epoch = epoch

    def _video(self, v: int) -> _Video:
        """Open (or reuse) the maps of video ``v``, evicting the least recently used."""
        if v in self._open:
            self._open.move_to_end(v)
        else:
            self._open[v] = _Video(self.root / self.names[v])
            if len(self._open) > self.cache_size:
                self._open.popitem(last=False)
        return self._open[v]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_open"] = OrderedDict()  # memory maps are reopened in each worker
        return state

    def references(self, index: int) -> np.ndarray:
        """(R,) frame ids of the references of item ``index`` (deterministic in seed, epoch, index)."""
        v, start = self.index[index]
        pool = self.ref_pools[v]
        outside = pool[(pool < start) | (pool >= start + self.window)]
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        choice = outside if len(outside) else pool
        return np.sort(rng.choice(choice, self.n_refs, replace=len(choice) < self.n_refs))

    def frame_ids(self, index: int) -> np.ndarray:
        """Every frame id item ``index`` reads: its T window frames, then its R references."""
        start = int(self.index[index][1])
        return np.concatenate([np.arange(start, start + self.window), self.references(index)])

    def _mel(self, mel: np.ndarray, start: int) -> torch.Tensor:
        """MEL windows (T, mel_window, 80) of frames start..start+T-1, reading only the rows they span."""
        rows = mel_window_starts(start + self.window, self.fps, self.mel_window)[start:, None] + np.arange(self.mel_window)
        lo, hi = max(int(rows.min()), 0), min(int(rows.max()) + 1, len(mel))
        part = np.asarray(mel[lo:hi], np.float32) if hi > lo else np.zeros((0, mel.shape[1]), np.float32)
        part = np.concatenate([part, np.full((1, mel.shape[1]), MEL_SILENCE, np.float32)])  # last row: padding
        inside = (rows >= lo) & (rows < hi)
        return torch.from_numpy(part[np.where(inside, rows - lo, len(part) - 1)])

    def __getitem__(self, index: int) -> dict:
        v, start = (int(x) for x in self.index[index])
        video = self._video(v)
        span = slice(start, start + self.window)
        bits = np.array(video.masks[span])[:, None]  # (T, 1, H, W) uint8
        refs = self.references(index)
        # numpy for the conversions: tiny tensors + torch's thread pool stall under CPU contention
        return {
            "frames": _to_image(video.frames[span]),  # (T, 3, H, W) in [-1, 1]
            "uv": torch.from_numpy(np.array(video.uv[span], np.float32)),  # (T, H, W, 2)
            "face_mask": _bit(bits, MASK_FACE),  # (T, 1, H, W)
            "lower_mask": _bit(bits, MASK_LOWER),
            "mouth_mask": _bit(bits, MASK_MOUTH),
            "weight": torch.from_numpy(weight_map(bits, *video.levels)),  # (T, 1, H, W)
            "mel": self._mel(video.mel, start),  # (T, 16, 80)
            "refs": _to_image(video.frames[refs]),  # (R, 3, H, W)
            "identity": self.names[v],
            "index": int(index),
        }


def _bit(bits: np.ndarray, flag: int) -> torch.Tensor:
    """One mask of the packed bits as float32 {0, 1}."""
    return torch.from_numpy(((bits & flag) > 0).astype(np.float32))


def _to_image(frames: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) → float (N, 3, H, W) in [-1, 1]."""
    image = np.asarray(frames, np.float32).transpose(0, 3, 1, 2) / np.float32(127.5) - np.float32(1.0)
    return torch.from_numpy(np.ascontiguousarray(image))


def load_splits(source: Mapping | str | os.PathLike) -> dict[str, list[str]]:
    """{"prior": [...], "heldout": [...]} from a mapping, a splits JSON file, or a prepared cache
    folder (its ``splits.json``, written by the prepare stage)."""
    if not isinstance(source, Mapping):
        path = Path(source)
        path = path / "splits.json" if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"splits file {path} not found (expected JSON with 'prior' / 'heldout'; "
                                    "the prepare stage writes data/prepared/splits.json)")
        source = json.loads(path.read_text())
    splits = source.get("splits", source)
    if not splits.get("prior"):
        raise ValueError(f"splits have no 'prior' identities: {dict(splits)}")
    return {k: list(splits.get(k) or []) for k in ("prior", "heldout")}
