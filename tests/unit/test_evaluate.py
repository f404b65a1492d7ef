"""Evaluation harness pieces with fakes: window cover, clips, crop metrics, rendering, FID/FVD
availability, paste-back wiring, lip metrics and the metrics file format."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from support import SMOKE_RENDERER

import deadlib.eval.evaluate as ev
from deadlib.core.config import ConfigError
from deadlib.data import face3d
from deadlib.data.audio import log_mel
from deadlib.data.lipsync_probe import mel_features, ridge_fit
from deadlib.data.synthetic_windows import SyntheticWindows
from deadlib.data.video import write_video
from deadlib.eval import lip_metrics
from deadlib.eval.feature_nets import random_i3d, random_inception
from deadlib.train.loop import TrainConfig, TrainState


def test_cover_indices_picks_non_overlapping_windows():
    assert ev.cover_indices(np.arange(10), 3).tolist() == [0, 3, 6, 9]
    starts = np.array([0, 1, 2, 5, 6, 7, 8, 20])                            # a gap after 2, another before 20
    picked = starts[ev.cover_indices(starts, 3)]
    assert picked.tolist() == [0, 5, 8, 20]
    assert np.all(np.diff(picked) >= 3)


def test_clip_slices_and_longest_run():
    ids = np.array([0, 1, 2, 3, 4, 5, 9, 10, 11, 12, 13, 14, 15])
    assert [(s.start, s.stop) for s in ev.clip_slices(ids, 3)] == [(0, 3), (3, 6), (6, 9), (9, 12)]
    assert ev.clip_slices(ids, 8) == []
    assert ev.longest_run(ids, 100) == slice(6, 13)
    assert ev.longest_run(ids, 4) == slice(6, 10)


def test_crop_metrics_identical_noisy_and_empty_regions():
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    lower, mouth = np.zeros((3, 32, 32), np.float32), np.zeros((3, 32, 32), np.float32)
    lower[:, 14:32, 4:28] = 1
    mouth[:, 18:28, 8:24] = 1
    same, why = ev.crop_metrics(real, real, lower, mouth)
    assert same["psnr"] == 100.0 and same["ssim"] == pytest.approx(1.0) and same["psnr_mouth"] == 100.0
    assert same["psnr_lower"] == 100.0 and why == {}
    bad = real.copy()
    bad[:, 18:28, 8:24] = 255 - bad[:, 18:28, 8:24]                          # damage the mouth only
    worse, _ = ev.crop_metrics(bad, real, lower, mouth, suffix="_x")
    assert worse["psnr_mouth_x"] < worse["psnr_lower_x"] < worse["psnr_x"] < 100
    assert worse["ssim_mouth_x"] < worse["ssim_lower_x"] < worse["ssim_x"]
    empty, why = ev.crop_metrics(bad, real, lower, np.zeros_like(mouth))
    assert empty["psnr_mouth"] is None and empty["ssim_mouth"] is None and "mouth" in why["psnr_mouth"]


def test_floors_copy_the_reference_and_pass_the_unmasked_input_through():
    """copy_input keeps every pixel outside the lower face: its whole-crop PSNR is high although it
    generates nothing, which is why the tables lead with the lower-face and mouth scores."""
    rng = np.random.default_rng(1)
    real, ref = (rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8) for _ in range(2))
    lower = np.zeros((2, 32, 32), np.float32)
    lower[:, 20:, :] = 1
    floors = ev.baseline_outputs({"real": real, "ref": ref, "lower": lower})
    assert (floors["copy_ref"] == ref).all()
    assert (floors["copy_input"][:, :20] == real[:, :20]).all() and (floors["copy_input"][:, 20:] == ref[:, 20:]).all()
    ref_scores, _ = ev.crop_metrics(floors["copy_ref"], real, lower, lower)
    input_scores, _ = ev.crop_metrics(floors["copy_input"], real, lower, lower)
    assert input_scores["psnr"] > ref_scores["psnr"] + 3                    # pass-through inflates the crop score
    assert input_scores["psnr_lower"] == pytest.approx(ref_scores["psnr_lower"])   # but not the generated region


def test_expert_scores_read_frames_by_video_frame_id():
    from deadlib.sync import expert as sx

    torch.manual_seed(0)
    model = sx.SyncExpert(sx.SyncExpertConfig(window=5, crop=16, channels=4, embed_dim=8)).eval()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    mel = rng.normal(size=(200, 80)).astype(np.float32)                   # 62.5 frames of MEL rows
    ids = np.arange(10, 40)
    got = ev.expert_scores(model, frames[10:40], ids, mel, max_offset=3)
    clip = sx.SyncClip.from_range("x", frames, mel, np.ones(40, bool), 10, 40)
    assert got == sx.sync_scores(model, clip.frames, clip.mel, 3)
    gappy = np.concatenate([np.arange(10, 20), np.arange(25, 40)])          # frames 20..24 not rendered
    assert set(ev.expert_scores(model, frames[gappy], gappy, mel, 3)) == set(got)
    metrics, reasons = ev.expert_metrics({}, {}, ".", "x", None, 3)
    assert all(v is None for v in metrics.values()) and len(metrics) == 9 and "no sync expert" in reasons["sync_expert_lse_c"]


class OneClip(SyntheticWindows):
    """SyntheticWindows with the WindowDataset ``index`` (video, start) of a single identity."""

    @property
    def index(self) -> np.ndarray:
        return np.stack([np.zeros(len(self), int), np.arange(len(self))], 1)


def smoke_state() -> TrainState:
    cfg = TrainConfig.from_dict(dict(device="cpu", seed=0, batch_size=2, lambda_vgg=0.0, renderer=SMOKE_RENDERER))
    return TrainState(cfg, ["synth_a"], torch.device("cpu"))


def test_render_test_renders_every_covered_frame_once():
    data = OneClip(("synth_a",), n_frames=11, size=64)                      # 9 windows of T=3
    out = ev.render_test(smoke_state(), data, batch_size=2)
    assert out["frame_ids"].tolist() == list(range(9))                     # windows 0, 3, 6
    assert out["pred"].shape == out["real"].shape == (9, 64, 64, 3) and out["pred"].dtype == np.uint8
    assert out["mouth"].shape == out["face"].shape == (9, 64, 64)
    truth = data[3]["frames"][1]                                            # frame 4 = window 3, t=1
    assert np.abs(out["real"][4].astype(int) - ((truth.permute(1, 2, 0) + 1) * 127.5).round().int().numpy()).max() <= 1


def test_feature_metrics_are_null_with_reasons_without_weights(tmp_path):
    rendered = {k: np.zeros((20, 32, 32, 3), np.uint8) for k in ("pred", "real")}
    rendered["frame_ids"] = np.arange(20)
    settings = ev.EvalSettings(inception_weights=str(tmp_path / "missing.pth"), i3d_weights=str(tmp_path / "x.pt"))
    metrics, reasons, net = ev.feature_metrics(rendered, settings, "cpu")
    assert metrics == {"fid": None, "fvd": None} and net is None
    assert reasons["fid"].startswith("WeightsUnavailable") and "FVD needs >= 2" in reasons["fvd"]


def test_feature_metrics_with_networks(monkeypatch):
    rng = np.random.default_rng(1)
    rendered = {"pred": rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8), "frame_ids": np.arange(32)}
    rendered["real"] = rendered["pred"].copy()
    monkeypatch.setattr(ev, "load_inception", lambda *a, **k: random_inception(0, resize_to=75))
    monkeypatch.setattr(ev, "load_i3d", lambda *a, **k: random_i3d(0, resize_to=64))
    metrics, reasons, _ = ev.feature_metrics(rendered, ev.EvalSettings(), "cpu")
    assert reasons == {} and abs(metrics["fid"]) < 1e-3 and abs(metrics["fvd"]) < 1e-3   # identical sets
    rendered["pred"] = 255 - rendered["pred"]
    worse, _, _ = ev.feature_metrics(rendered, ev.EvalSettings(), "cpu")
    assert worse["fid"] > 1e-3 and worse["fvd"] > 1e-3


def test_paste_metrics_maps_rendered_frames_to_their_source_frames(tmp_path):
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (6, 48, 48, 3), dtype=np.uint8)
    frames = np.repeat(np.repeat(frames[:, ::4, ::4], 4, 1), 4, 2)          # blocky: survives H.264
    video = tmp_path / "clip.mp4"
    write_video(video, frames, fps=25, crf=0)
    decoded = np.stack(list(ev.iter_frames(video)))
    (tmp_path / "cache" / "actor").mkdir(parents=True)
    affines = np.tile(np.array([[1.0, 0, 0], [0, 1.0, 0]], np.float32), (6, 1, 1))   # crop = frame
    np.savez(tmp_path / "cache" / "actor" / "track.npz", crop=affines)
    ids = np.array([2, 3, 4])
    ones = np.ones((3, 48, 48), np.float32)
    rendered = {"pred": decoded[ids], "frame_ids": ids, "face": ones, "lower": ones}
    settings = ev.EvalSettings(blend="none", frame_max_side=48)
    good, kept = ev.paste_metrics(video, tmp_path / "cache", "actor", rendered, settings, {3})
    assert good["frame_psnr"] == 100.0 and good["frames_pasted"] == 3 and list(kept) == [3]
    rendered["pred"] = decoded[[0, 1, 5]]                                   # wrong frames pasted
    bad, _ = ev.paste_metrics(video, tmp_path / "cache", "actor", rendered, settings, set())
    assert bad["frame_psnr"] < 30 and bad["frame_ssim"] < good["frame_ssim"]


def test_crop_square_and_the_hard_paste_score_only_the_pasted_box(tmp_path):
    """frame_*_box score the pixels under the crop square; blend "hard" pastes the same mask as the
    blended paste with a hard edge: outside the mask the frame is untouched."""
    # crop = frame pixels [8, 40) x [8, 40) at scale 1: crop_xy = frame_xy - 8
    square = ev.crop_square((48, 64), np.array([[1.0, 0, -8], [0, 1.0, -8]]), 32)
    assert square.sum() == 32 * 32 and square[8:40, 8:40].all() and square[:, 40:].sum() == 0
    rng = np.random.default_rng(3)
    frames = np.repeat(np.repeat(rng.integers(0, 256, (3, 12, 16, 3), dtype=np.uint8), 4, 1), 4, 2)
    video = tmp_path / "clip.mp4"
    write_video(video, frames, fps=25, crf=0)
    decoded = np.stack(list(ev.iter_frames(video)))
    (tmp_path / "cache" / "actor").mkdir(parents=True)
    np.savez(tmp_path / "cache" / "actor" / "track.npz", crop=np.tile(np.array([[1.0, 0, -8], [0, 1.0, -8]]), (3, 1, 1)))
    face = np.zeros((3, 32, 32), np.float32)
    face[:, 8:24, 8:24] = 1
    wrong = 255 - decoded[:, 8:40, 8:40]                                    # a bad crop
    rendered = {"pred": wrong, "frame_ids": np.arange(3), "face": face, "lower": face}
    scores = {}
    for blend in ("none", "hard"):
        scores[blend], kept = ev.paste_metrics(video, tmp_path / "cache", "actor", rendered,
                                               ev.EvalSettings(blend=blend, frame_max_side=64), {1})
        original, pasted = kept[1]
        outside = np.ones((48, 64), bool)
        outside[16:32, 16:32] = False                                       # the mask in frame px
        if blend == "hard":
            assert (pasted[outside] == original[outside]).all()
    assert scores["none"]["frame_psnr_box"] < scores["hard"]["frame_psnr_box"]   # the whole square vs the mask
    assert scores["hard"]["frame_psnr_box"] < scores["hard"]["frame_psnr"]    # the box leaves out free pixels


def test_shrink_gives_even_sides_within_the_limit():
    out = ev.shrink(np.zeros((301, 533, 3), np.uint8), 256)
    assert max(out.shape[:2]) <= 256 and out.shape[0] % 2 == 0 and out.shape[1] % 2 == 0


def test_write_metrics_is_flat_numbers_or_null_with_reasons(tmp_path):
    path = ev.write_metrics(tmp_path / "m" / "cell.json",
                            {"psnr": np.float32(20.5), "n": np.int64(3), "flag": True, "fid": None,
                             "lmd": float("nan")}, {"fid": "no weights", "psnr": "ignored: not null"},
                            {"method": "prior", "identity": "x"})
    flat = json.loads(path.read_text())
    assert flat == {"psnr": 20.5, "n": 3, "flag": 1, "fid": None, "lmd": None}
    side = json.loads((tmp_path / "m" / "cell.reasons.json").read_text())
    assert side["reasons"] == {"fid": "no weights", "lmd": "not finite (nan)"}
    assert side["cell"] == {"method": "prior", "identity": "x"}


def test_eval_settings_reject_unknown_keys_and_methods():
    assert ev.EvalSettings.from_dict({"blend": "none", "profile": "smoke", "seed": 0}).blend == "none"
    with pytest.raises(ConfigError, match="unknown evaluate settings"):
        ev.EvalSettings.from_dict({"blnd": "none"})
    with pytest.raises(ConfigError, match="blend"):
        ev.EvalSettings.from_dict({"blend": "poisson"})


# ----------------------------------------------------------------------------- lip metrics

def meshes_with_opening(opening: np.ndarray) -> np.ndarray:
    """(N, 468, 3) meshes whose face3d.mouth_gap equals ``opening`` (eye corners 1 apart)."""
    m = np.zeros((len(opening), face3d.N_LANDMARKS, 3), np.float32)
    m[:, 263, 0] = 1.0
    m[:, face3d.LOWER_LIP_INNER, 1] = opening
    return m


def test_landmark_distance_uses_frames_detected_in_both():
    real = meshes_with_opening(np.zeros(4)) + 5
    pred = real.copy()
    pred[:, lip_metrics.lip_ids(), 0] += 2.0                                # lips shifted 2 px
    pred[0] = np.nan                                                        # missed detection
    value, rate, why = lip_metrics.landmark_distance(pred, real)
    assert value == pytest.approx(2.0) and rate == 0.75 and why is None
    value, rate, why = lip_metrics.landmark_distance(pred * np.nan, real)
    assert value is None and rate == 0.0 and "none of 4" in why


def test_mel_frame_features_match_the_corpus_probe_features():
    audio = np.random.default_rng(3).normal(0, 0.1, 16000).astype(np.float32)
    ours = lip_metrics.mel_frame_features(log_mel(audio, 16000), 25)
    assert np.allclose(ours, mel_features(audio, 25), atol=1e-5)


def test_sync_confidence_rewards_aligned_mouths():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 6))
    y = x @ rng.normal(size=6)
    y = y - y.min() + 0.1                                                   # an opening is >= 0
    probe = ridge_fit(x, y, alpha=1e-3)
    ids = np.arange(100, 200)
    feats = x[:100]                                                         # audio of frames 100..199
    synced, why = lip_metrics.sync_confidence(meshes_with_opening(y[:100]), ids, feats, 100, probe)
    shifted, _ = lip_metrics.sync_confidence(meshes_with_opening(np.roll(y[:100], 8)), ids, feats, 100, probe)
    assert why is None and synced > 0.9 and shifted < 0.3
    sparse = meshes_with_opening(y[:100])
    sparse[::3] = np.nan                                                    # one frame in three missed
    filled, _ = lip_metrics.sync_confidence(sparse, ids, feats, 100, probe)
    assert filled > 0.5
    none, why = lip_metrics.sync_confidence(meshes_with_opening(y[:10]), ids[:10], feats, 100, probe)
    assert none is None and "10%" in why
