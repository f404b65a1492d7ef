"""WindowDataset over real prepare caches: shapes, valid-only windows, splits, references, determinism."""

from __future__ import annotations

import pickle
import zipfile

import numpy as np
import pytest
import torch
from support import prepare_config
from torch.utils.data import DataLoader

from deadlib.data.audio import frame_mel_windows
from deadlib.data.dataset import CacheError, WindowDataset, load_cache, load_npz_mmap
from deadlib.data.prepare import prepare_corpus
from deadlib.data.video import read_audio, read_video, write_video
from deadlib.synth.generate import SynthSettings, generate_corpus

T, R = 3, 2


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Prepared caches of two synthetic speakers (60 frames) and one clip whose face leaves (30 of 50)."""
    raw = tmp_path_factory.mktemp("raw")
    generate_corpus(raw, SynthSettings(n_prior=1, n_heldout=1, duration_s=2.4, size=128, workers=2))
    frames, _ = read_video(raw / "synth_p00.mp4")
    noise = np.random.default_rng(0).integers(0, 256, (20, 128, 128, 3), dtype=np.uint8)
    write_video(raw / "gap.mp4", np.concatenate([frames[:15], noise, frames[15:30]]),
                audio=read_audio(raw / "synth_p00.mp4")[: 50 * 640])
    out = tmp_path_factory.mktemp("prepared")
    prepare_corpus(prepare_config({"resolution": 64, "test_seconds": 0.8, "window": T, "workers": 1, "face3d": {"n_expr": 4}}), raw, out)
    return out


def test_items_have_the_contract_shapes_and_ranges(cache):
    ds = WindowDataset(cache, ["synth_p00", "synth_h00"], "train", window=T, n_refs=R, seed=0)
    item = ds[5]
    shapes = {"frames": (T, 3, 64, 64), "uv": (T, 64, 64, 2), "face_mask": (T, 1, 64, 64), "lower_mask": (T, 1, 64, 64),
              "mouth_mask": (T, 1, 64, 64), "weight": (T, 1, 64, 64), "mel": (T, 16, 80), "refs": (R, 3, 64, 64)}
    for key, shape in shapes.items():
        assert item[key].shape == shape and item[key].dtype == torch.float32, key
    assert item["identity"] == "synth_p00" and item["index"] == 5
    assert -1 <= item["frames"].min() < item["frames"].max() <= 1
    for key in ("face_mask", "lower_mask", "mouth_mask"):
        assert set(item[key].unique().tolist()) <= {0.0, 1.0} and item[key].sum() > 0
    assert (item["lower_mask"] <= item["face_mask"]).all()
    assert set(item["weight"].unique().tolist()) <= {1.0, 2.0, 4.0} and item["weight"].max() == 4.0
    v, start = ds.index[5]
    c = load_cache(cache / "synth_p00")
    ref_mel = frame_mel_windows(np.asarray(c["mel"], np.float32), len(c["frames"]))[start:start + T]
    assert np.allclose(item["mel"].numpy(), ref_mel)
    expected = torch.from_numpy(np.asarray(c["frames"][start:start + T], np.float32)).permute(0, 3, 1, 2) / 127.5 - 1
    assert torch.allclose(item["frames"], expected)


def test_windows_hold_only_valid_frames_and_respect_splits(cache):
    gap = WindowDataset(cache, ["gap"], "train", window=T, n_refs=R)
    valid = load_cache(cache / "gap")["track"]["valid"]
    train_end = load_cache(cache / "gap")["report"]["splits"]["train"][1]
    assert not valid[15:35].all() and len(gap) > 0
    for v, start in gap.index:
        assert valid[start:start + T].all() and start + T <= train_end
    # the held-out speaker: a prior video (synth_p00, gap) has no test part
    with pytest.raises(CacheError, match="no test window"):
        WindowDataset(cache, ["synth_p00"], "test", window=T, n_refs=R)
    test = WindowDataset(cache, ["synth_h00"], "test", window=T, n_refs=R)
    assert (test.index[:, 1] >= 40).all() and len(test) == 20 - T + 1  # last 0.8 s = 20 frames
    small = WindowDataset(cache, ["synth_h00"], "train", n_train_frames=10, window=T, n_refs=R)
    assert len(small) == 10 - T + 1 and (small.index[:, 1] + T <= 10).all()
    with pytest.warns(UserWarning, match="only 30 in the train part"):
        WindowDataset(cache, ["synth_h00"], "train", n_train_frames=500, window=T)


def test_validation_and_test_windows_draw_references_from_the_train_frames_only(cache):
    """Leakage (issue 15): val windows lie in the validation span, test windows in the test part,
    and both take their references from the first N train frames; no train/val item reads a
    test frame."""
    splits = load_cache(cache / "synth_h00")["report"]["splits"]
    (_, train_hi), (val_lo, val_hi), (test_lo, _) = splits["train"], splits["val"], splits["test"]
    val = WindowDataset(cache, ["synth_h00"], "val", n_train_frames=12, window=T, n_refs=R, ref_split="train")
    test = WindowDataset(cache, ["synth_h00"], "test", n_train_frames=12, window=T, n_refs=R, ref_split="train")
    train = WindowDataset(cache, ["synth_h00"], "train", window=T, n_refs=R)
    for i in range(len(val)):
        ids = val.frame_ids(i)
        assert (val_lo <= ids[:T]).all() and (ids[:T] < val_hi).all() and (ids[T:] < 12).all()
    for i in range(len(test)):
        ids = test.frame_ids(i)
        assert (ids[:T] >= test_lo).all() and (ids[T:] < 12).all()
    assert max(int(train.frame_ids(i).max()) for i in range(len(train))) < train_hi <= val_lo < test_lo
    with pytest.raises(ValueError, match="split must be one of"):
        WindowDataset(cache, ["synth_h00"], "test", window=T, ref_split="everything")


def test_references_are_outside_the_window_same_person_and_split(cache):
    ds = WindowDataset(cache, ["synth_p00", "gap"], "train", n_train_frames=12, window=T, n_refs=R, seed=3)
    for i in range(len(ds)):
        v, start = ds.index[i]
        refs = ds.references(i)
        assert len(refs) == R and all(r < start or r >= start + T for r in refs)
        assert set(refs) <= set(ds.pools[v].tolist()) and (refs < 12).all()
    item = ds[0]
    frames = load_cache(cache / ds.names[ds.index[0][0]])["frames"]
    assert torch.allclose(item["refs"][0], torch.from_numpy(np.asarray(frames[ds.references(0)[0]], np.float32))
                          .permute(2, 0, 1) / 127.5 - 1)


def test_deterministic_for_a_seed_and_epoch(cache):
    a = WindowDataset(cache, ["synth_p00"], "train", window=T, n_refs=R, seed=7)
    b = WindowDataset(cache, ["synth_p00"], "train", window=T, n_refs=R, seed=7)
    c = WindowDataset(cache, ["synth_p00"], "train", window=T, n_refs=R, seed=8)
    refs = [a.references(i).tolist() for i in range(len(a))]
    assert refs == [b.references(i).tolist() for i in range(len(b))]
    assert refs != [c.references(i).tolist() for i in range(len(c))]
    a.set_epoch(1)
    assert refs != [a.references(i).tolist() for i in range(len(a))]


def test_memory_mapped_lru_and_picklable_for_workers(cache):
    ds = WindowDataset(cache, ["synth_p00", "synth_h00", "gap"], "train", window=T, n_refs=1, cache_size=1)
    ds[0], ds[len(ds) - 1]
    assert len(ds._open) == 1  # LRU keeps at most cache_size videos open
    clone = pickle.loads(pickle.dumps(ds))
    assert len(clone._open) == 0 and torch.equal(clone[3]["frames"], ds[3]["frames"])
    batch = next(iter(DataLoader(ds, batch_size=4, shuffle=False)))
    assert batch["frames"].shape == (4, T, 3, 64, 64) and len(batch["identity"]) == 4
    maps = load_npz_mmap(cache / "synth_p00" / "raster.npz")
    assert isinstance(maps["uv"], np.memmap) and maps["masks"].dtype == np.uint8


def test_bad_caches_raise_clear_errors(cache, tmp_path):
    with pytest.raises(CacheError, match="no prepared cache"):
        WindowDataset(cache, ["nobody"], "train")
    with pytest.raises(ValueError, match="split"):
        WindowDataset(cache, ["synth_p00"], "validation")
    with pytest.raises(CacheError, match="no train window"):
        WindowDataset(cache, ["synth_p00"], "train", window=100)
    with zipfile.ZipFile(tmp_path / "c.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", b"whatever")
    with pytest.raises(CacheError, match="compressed"):
        load_npz_mmap(tmp_path / "c.npz")


def test_adaptation_never_reads_a_test_frame_of_the_actor(cache, tmp_path, monkeypatch):
    """Leakage (issue 15), through the real code path: a short adaptation (training steps and
    in-training validation) records every frame id any WindowDataset item reads. The actor's
    training windows stay in its first N frames, its validation windows in the validation span,
    every reference in the first N frames; nothing of its test part is read."""
    from support import SMOKE_RENDERER

    from deadlib.train.adapt import adapt
    from deadlib.train.loop import TrainConfig

    reads: list[tuple[str, str, np.ndarray]] = []
    original = WindowDataset.__getitem__

    def recording(self, index):
        reads.append((self.names[int(self.index[index][0])], self.split, self.frame_ids(index)))
        return original(self, index)

    monkeypatch.setattr(WindowDataset, "__getitem__", recording)
    cfg = TrainConfig.from_dict(dict(steps=4, batch_size=2, device="cpu", seed=0, lambda_vgg=0.0, adv_start_step=2,
                                     log_every=1, eval_every=2, ckpt_every=1000, n_samples=2, n_val_windows=3,
                                     renderer={**SMOKE_RENDERER, "window": T, "n_refs": R, "resolution": 64}))
    n = 12
    adapt(None, "synth_h00", n, cfg, cache, {"prior": ["synth_p00"], "heldout": ["synth_h00"]}, tmp_path / "cell",
          mixed_ratio=1.0, progress=False)
    splits = load_cache(cache / "synth_h00")["report"]["splits"]
    actor = [(split, ids) for name, split, ids in reads if name == "synth_h00"]
    assert {split for split, _ in actor} == {"train", "val"}
    for split, ids in actor:
        window, refs = ids[:T], ids[T:]
        assert (refs < n).all()
        if split == "train":
            assert (window < n).all()
        else:
            assert (splits["val"][0] <= window).all() and (window < splits["val"][1]).all()
    assert max(int(ids.max()) for _, ids in actor) < splits["test"][0]
