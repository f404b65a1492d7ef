"""Prepare stage on a tiny synthetic corpus mixed with bad inputs: caches, reports, acceptance checks."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from support import prepare_config

from deadlib.core.config import ConfigError
from deadlib.data import face3d
from deadlib.data.crop import crop_frame, invert_transform, map_points
from deadlib.data.dataset import load_cache
from deadlib.data.facemesh import load_topology
from deadlib.data.prepare import (
    PrepareError,
    analyse_video,
    prepare_corpus,
    prepare_video,
    settings,
    split_ranges,
)
from deadlib.data.video import read_audio, read_video, write_video
from deadlib.synth.generate import SynthSettings, generate_corpus

CFG = prepare_config({"resolution": 64, "test_seconds": 0.8, "window": 3, "workers": 1, "face3d": {"n_expr": 8}})
SYNTH = ("synth_p00", "synth_p01", "synth_h00")
JITTER_BOUND_PX = 0.25  # crop centre |2nd difference|, crop px (smoothed crops; raw boxes ≈ 0.2-0.5)
SR = 16000


def write_vfr(path, frames: np.ndarray, times: np.ndarray, audio: np.ndarray) -> None:
    """H.264 frames at explicit (irregular) times + mono AAC audio."""
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=1000)
        video.height, video.width = frames.shape[1:3]
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = Fraction(1, 1000)
        sound = container.add_stream("aac", rate=SR, layout="mono")
        for frame, t in zip(frames, times):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts, picture.time_base = int(t * 1000), Fraction(1, 1000)
            container.mux(video.encode(picture))
        container.mux(video.encode(None))
        chunk = av.AudioFrame.from_ndarray(audio[None].astype(np.float32), format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts, chunk.time_base = SR, 0, Fraction(1, SR)
        container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))


def two_faces(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 160, 352, 3): person A enlarged on the left, B smaller centre-right."""
    canvas = np.full((len(a), 160, 352, 3), 90, np.uint8)
    canvas[:, :, :160] = np.stack([cv2.resize(f, (160, 160)) for f in a])
    canvas[:, 16:144, 160:288] = b[: len(a)]
    return canvas


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """3 synthetic speakers (2.4 s, 128 px) + one file for every kind of bad input."""
    root = tmp_path_factory.mktemp("raw")
    generate_corpus(root, SynthSettings(n_prior=2, n_heldout=1, duration_s=2.4, size=128, workers=2))
    frames, _ = read_video(root / "synth_p00.mp4")
    other, _ = read_video(root / "synth_p01.mp4")
    audio = read_audio(root / "synth_p00.mp4")
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (40, 128, 128, 3), dtype=np.uint8)
    write_video(root / "zz_noise.mp4", noise, audio=audio[: 40 * 640])
    write_video(root / "zz_silent.mp4", frames)
    (root / "zz_corrupt.mp4").write_bytes(rng.bytes(20000))
    data = (root / "synth_p01.mp4").read_bytes()
    (root / "zz_truncated.mp4").write_bytes(data[: len(data) * 6 // 10])
    write_video(root / "zz_short.mp4", frames[:4], audio=audio[: 4 * 640])
    write_video(root / "zz_partial.mp4", np.concatenate([frames[:30], noise[:20]]), audio=audio[: 50 * 640])
    times = np.cumsum(np.r_[0, np.tile([0.03, 0.05], 24)])[:48]  # 30 and 20 fps alternating (VFR)
    write_vfr(root / "zz_vfr.mp4", frames[:48], times, audio[: int(1.92 * SR)])
    write_video(root / "zz_twofaces.mp4", two_faces(frames[:40], other), audio=audio[: 40 * 640])
    (root / "notes.txt").write_text("not a video")
    return root


@pytest.fixture(scope="module")
def prepared(raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    metrics = out / "metrics" / "prepare.json"
    summary = prepare_corpus(CFG, raw, out, metrics_path=metrics)
    return out, summary, json.loads(metrics.read_text())


def test_bad_files_are_skipped_with_reasons(prepared):
    out, summary, _ = prepared
    skipped = summary["skipped"]
    assert set(skipped) == {"zz_noise.mp4", "zz_silent.mp4", "zz_corrupt.mp4", "zz_short.mp4"}
    assert skipped["zz_noise.mp4"].startswith("NoFaceError") and "no face" in skipped["zz_noise.mp4"]
    assert skipped["zz_silent.mp4"].startswith("NoAudioError")
    assert skipped["zz_corrupt.mp4"].startswith("CorruptMediaError")
    assert skipped["zz_short.mp4"].startswith("TooShortError")
    assert {"notes.txt", "corpus.json", "synth_p00.truth.npz"} <= set(summary["ignored"])
    assert set(summary["ok"]) == {*SYNTH, "zz_truncated", "zz_partial", "zz_vfr", "zz_twofaces"}
    assert not (out / "zz_noise").exists() and not list(out.glob(".*partial"))


def test_cache_layout_and_formats(prepared):
    out, summary, metrics = prepared
    cache = load_cache(out / "synth_p00")
    n = cache["report"]["frames"]
    assert n == 60 and cache["frames"].shape == (n, 64, 64, 3) and cache["frames"].dtype == np.uint8
    assert cache["uv"].shape == (n, 64, 64, 2) and cache["uv"].dtype == np.float16
    assert cache["masks"].shape == (n, 64, 64) and cache["masks"].dtype == np.uint8
    assert isinstance(cache["uv"], np.memmap) and isinstance(cache["frames"], np.memmap)
    assert cache["mel"].dtype == np.float16 and cache["mel"].shape[1] == 80 and abs(len(cache["mel"]) - 3.2 * n) < 3
    track = cache["track"]
    assert track["pose"].shape == (n, 7) and track["expr"].shape == (n, 8) and track["crop"].shape == (n, 2, 3)
    assert track["mesh_crop"].shape == (n, 468, 3) and track["identity"].shape == (468, 3)
    basis = face3d.ExpressionBasis.load(out / "expr_basis.npz")
    assert basis.n_expr == 8 and metrics["n_expr"] == 8
    assert all(isinstance(v, (int, float)) for v in metrics.values()) and metrics["videos"] == 7
    assert metrics["videos_skipped"] == 4 and metrics["no_face_frames"] >= 20


def test_caches_are_byte_identical_across_runs_and_worker_counts(prepared, raw, tmp_path):
    """Issue 13: the same videos and settings give the same bytes in every cached file (tracking,
    fits, crops, rasters, reports) whatever the worker count, so DVC sees the same output hash."""
    out, _, _ = prepared
    again = tmp_path / "again"
    prepare_corpus({**CFG, "workers": 2}, raw, again)
    files = lambda root: {p.relative_to(root): p for p in root.rglob("*") if p.is_file() and "metrics" not in p.parts}
    first, second = files(out), files(again)
    assert set(first) == set(second) and len(first) > 20
    differ = [str(rel) for rel, path in first.items() if path.read_bytes() != second[rel].read_bytes()]
    assert not differ, f"prepare is not deterministic: {differ}"


def test_splits_follow_corpus_json_and_test_seconds(prepared, raw):
    out, summary, _ = prepared
    splits = json.loads((out / "splits.json").read_text())
    assert splits["heldout"] == ["synth_h00"] and "synth_p00" in splits["prior"]
    # a prior video has no test part (nothing is reported on it): 60 frames, the validation span
    # capped at a quarter of them, the rest trains the prior
    prior = splits["videos"]["synth_p00"]
    assert (prior["group"], prior["train"], prior["val"], prior["test"]) == ("prior", [0, 45], [45, 60], [60, 60])
    # the held-out video of the same length keeps a 20-frame test part (half the clip at most)
    held = splits["videos"]["synth_h00"]
    assert held["group"] == "heldout" and held["test"][1] - held["test"][0] == min(20, held["n_frames"] // 2)
    ranges, note = split_ranges(30, settings(prepare_config({"test_seconds": 10, "val_seconds": 4})))
    assert ranges == {"train": [0, 12], "val": [12, 15], "test": [15, 30]}
    assert "short" in note and "validation span shortened" in note
    ranges, note = split_ranges(1500, settings(prepare_config({"test_seconds": 10, "val_seconds": 4})))
    assert ranges == {"train": [0, 1150], "val": [1150, 1250], "test": [1250, 1500]} and note is None
    ranges, note = split_ranges(1500, settings(prepare_config({"test_seconds": 10, "val_seconds": 4})), "prior")
    assert ranges == {"train": [0, 1400], "val": [1400, 1500], "test": [1500, 1500]} and note is None
    with pytest.raises(ValueError, match="unknown split group"):
        split_ranges(1500, settings(prepare_config({})), "test")


def test_partial_face_truncated_vfr_and_two_faces(prepared):
    out, _, _ = prepared
    partial = load_cache(out / "zz_partial")
    valid = partial["track"]["valid"]
    assert partial["report"]["no_face_frames"] == 20 and valid[:30].all() and not valid[30:].any()
    assert (partial["masks"][30:] == 0).all() and (partial["uv"][30:] == 0).all()
    truncated = load_cache(out / "zz_truncated")["report"]
    assert 0 < truncated["frames"] < 60 and any("truncated" in w for w in truncated["warnings"])
    vfr = load_cache(out / "zz_vfr")["report"]
    assert vfr["variable_frame_rate"] and vfr["fps_out"] == 25 and abs(vfr["frames"] - 48) <= 1
    two = load_cache(out / "zz_twofaces")
    assert two["report"]["tracked_faces"] == 2 and two["report"]["multi_face_frames"] > 20
    assert (np.nanmax(two["track"]["landmarks_raw"][..., 0], axis=1)[two["track"]["valid"]] < 175).all()  # A


def test_crop_transform_reproduces_the_cached_crops(prepared, raw):
    out, _, _ = prepared
    cache = load_cache(out / "synth_h00")
    frames, _ = read_video(raw / "synth_h00.mp4")
    t = cache["track"]["crop"]
    for k in (0, 31, 59):
        assert np.array_equal(crop_frame(frames[k], t[k], 64), cache["frames"][k])
    pts = cache["track"]["landmarks"][:5]
    assert np.allclose(map_points(map_points(pts, t[:5]), invert_transform(t[:5]))[..., :2], pts[..., :2], atol=1e-3)


@pytest.mark.parametrize("name", SYNTH)
def test_acceptance_masks_crop_roundtrip(prepared, name):
    """Mouth landmarks inside the mouth mask (≥ 95 % of frames), lower face covered, steady crop,
    model rasters ≈ tracked rasters (IoU ≥ 0.9)."""
    out, _, _ = prepared
    cache = load_cache(out / name)
    track, masks, checks = cache["track"], np.asarray(cache["masks"]), cache["report"]["checks"]
    topo = load_topology()
    pts = map_points(track["landmarks_raw"], track["crop"])
    lips = np.floor(pts[:, np.r_[topo.lips_outer, topo.lips_inner], :2]).astype(int).clip(0, 63)
    inside = masks[np.arange(len(pts))[:, None], lips[..., 1], lips[..., 0]] & face3d.MASK_MOUTH
    assert (inside > 0).all(1).mean() >= 0.95
    assert checks["mouth_in_mask_rate"] >= 0.95
    chin_mouth = np.floor(pts[:, [face3d.LOWER_LIP_INNER, 61, 291, 17, 18, 200], :2]).astype(int).clip(0, 63)
    lower = masks[np.arange(len(pts))[:, None], chin_mouth[..., 1], chin_mouth[..., 0]] & face3d.MASK_LOWER
    assert (lower > 0).mean() >= 0.95
    assert checks["crop_jitter_px"] < JITTER_BOUND_PX and checks["crop_jitter_px"] < checks["crop_jitter_raw_px"]
    assert checks["roundtrip_iou_face"] >= 0.9 and checks["roundtrip_iou_mouth"] >= 0.8


@pytest.mark.parametrize("name", SYNTH)
def test_jaw_coefficient_follows_true_jaw_and_edits_open_the_mouth(prepared, raw, name):
    out, _, _ = prepared
    track = load_cache(out / name)["track"]
    basis = face3d.ExpressionBasis.load(out / "expr_basis.npz")
    truth = np.load(raw / f"{name}.truth.npz")["articulation"][:, 0]
    r = np.corrcoef(track["expr"][:, basis.jaw_index], truth[: len(track["expr"])])[0, 1]
    assert abs(r) >= 0.7
    expr = track["expr"].copy()
    base = face3d.decode(track["pose"], track["identity"], expr, basis)
    expr[:, basis.jaw_index] += 2 * np.sqrt(basis.explained_variance[basis.jaw_index])
    opened = face3d.decode(track["pose"], track["identity"], expr, basis)
    assert (face3d.mouth_gap(opened) > face3d.mouth_gap(base)).all()


def test_single_video_with_existing_basis_and_low_ram_budget(prepared, raw, tmp_path):
    """prepare_video (e.g. a clip to dub) reuses the corpus basis; a zero RAM budget decodes twice."""
    out, _, _ = prepared
    report = prepare_video(raw / "synth_h00.mp4", tmp_path, {**CFG, "ram_budget_mb": 0}, out / "expr_basis.npz")
    assert report["group"] == "heldout" and report["n_expr"] == 8
    again, before = load_cache(tmp_path / "synth_h00"), load_cache(out / "synth_h00")
    assert np.array_equal(again["frames"], before["frames"]) and np.array_equal(again["masks"], before["masks"])
    assert np.allclose(again["track"]["expr"], before["track"]["expr"], atol=1e-5)


def test_strict_mode_aborts_on_a_bad_file(raw, tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "bad.mp4").write_bytes(b"\x00" * 1000)
    with pytest.raises(PrepareError, match="strict"):
        prepare_corpus({**CFG, "strict": True}, folder, tmp_path / "out")
    with pytest.raises(PrepareError, match="no usable prior video"):  # nothing left to fit the basis on
        prepare_corpus(CFG, folder, tmp_path / "out")


def test_4k_input_is_tracked_downscaled_with_source_coordinates(raw, tmp_path):
    frames, _ = read_video(raw / "synth_p00.mp4", max_frames=8)
    big = np.stack([cv2.resize(f, (2160, 2160), interpolation=cv2.INTER_LINEAR) for f in frames])
    canvas = np.zeros((8, 2160, 3840, 3), np.uint8)
    canvas[:, :, 840:3000] = big
    write_video(tmp_path / "uhd.mp4", canvas, audio=read_audio(raw / "synth_p00.mp4")[: 8 * 640],
                preset="ultrafast")
    report = analyse_video(tmp_path / "uhd.mp4", tmp_path / "out", {**CFG, "track": {"max_side": 640}})
    assert report["source_size"] == [3840, 2160] and report["tracking_size"] == [640, 360]
    track = dict(np.load(tmp_path / "out" / "uhd" / "track.npz"))
    small, _ = read_video(raw / "synth_p00.mp4", max_frames=8)
    assert track["valid"].all()
    centre = np.nanmean(track["landmarks"][..., :2], axis=1)  # (8, 2) 4K px
    expected_x = 840 + 2160 / 128 * 64  # face roughly centred in the enlarged frame
    assert np.abs(centre[:, 0] - expected_x).max() < 150 and np.abs(centre[:, 1] - 1080).max() < 250


def test_settings_reject_unknown_and_missing_keys():
    with pytest.raises(ConfigError, match=r"unknown prepare settings \['resolutoin'\]"):
        settings({**prepare_config(), "resolutoin": 64})
    with pytest.raises(ConfigError, match="unknown setting prepare.crop.scael"):
        prepare_config({"crop": {"scael": 2}})
    with pytest.raises(ConfigError, match="prepare settings lack .*'sample_rate'"):
        settings({"resolution": 256})
    assert settings(prepare_config({"resolution": 256}))["resolution"] == 256
