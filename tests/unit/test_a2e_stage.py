"""deadlib.audio2expr.stage: settings, exact MEL/frame alignment of the clips, checkpoint round trips,
early stopping on the validation clips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deadlib.audio2expr.stage import (
    a2e_settings,
    basis_digest,
    build_model,
    clip_of,
    fine_tune_config,
    load_a2e,
    load_person_clips,
    load_style,
    pretrain,
    save_a2e,
    save_style,
    valid_runs,
)
from deadlib.audio2expr.style import PersonalisedAudio2Expression
from deadlib.core.config import ConfigError
from deadlib.data.audio import frame_mel_windows
from deadlib.data.face3d import ExpressionBasis


def test_settings_come_from_params_yaml_and_a_missing_section_is_named(repo_root):
    smoke = a2e_settings("smoke", params_path=repo_root / "params.yaml")
    assert smoke["model"]["d_model"] == 32 and smoke["train"]["steps"] == 150 and smoke["model"]["context"] == 8
    full = a2e_settings("full", params_path=repo_root / "params.yaml")
    assert full["model"]["d_model"] == 256 and full["style"]["frames"] == 250
    with pytest.raises(ConfigError, match="no section 'audio2expr'"):
        a2e_settings(params={"profile": "default"})


def test_valid_runs_start_on_multiples_of_five_inside_the_split():
    valid = np.ones(40, bool)
    valid[12:15] = False
    assert valid_runs(valid, 0, 40) == [(0, 12), (15, 40)]
    assert valid_runs(valid, 3, 30) == [(5, 12), (15, 30)]
    assert valid_runs(valid, 0, 40, min_len=20) == [(15, 40)]


def test_clip_windows_equal_the_full_videos_windows():
    """MEL rows of a clip starting at frame a (multiple of 5) give frame a+i exactly the window the
    whole video gives it (except where the left context would reach before the clip)."""
    rng = np.random.default_rng(0)
    n = 60
    mel = rng.standard_normal((n * 16 // 5 + 20, 80)).astype(np.float32)
    expr = rng.standard_normal((n, 4)).astype(np.float32)
    full = frame_mel_windows(mel, n)
    clip_mel, clip_expr = clip_of(mel, expr, 20, 50)
    part = frame_mel_windows(clip_mel, len(clip_expr))
    np.testing.assert_array_equal(clip_expr, expr[20:50])
    np.testing.assert_array_equal(part[3:], full[23:50])  # from frame 3 on the window lies inside the clip


def test_person_clips_read_one_split(tmp_path):
    folder = tmp_path / "actor"
    folder.mkdir()
    valid = np.ones(50, bool)
    valid[30:33] = False
    np.save(folder / "mel.npy", np.zeros((160, 80), np.float16))
    np.savez(folder / "track.npz", expr=np.arange(50 * 2, dtype=np.float32).reshape(50, 2), valid=valid)
    (folder / "report.json").write_text(json.dumps({"splits": {"train": [0, 40], "test": [40, 50]}}))
    train = load_person_clips(tmp_path, "actor", "train")
    assert [len(e) for _, e in train] == [30, 5] and train[1][1][0, 0] == 35 * 2
    assert [len(e) for _, e in load_person_clips(tmp_path, "actor", "train", n_frames=20)] == [20]
    assert [len(e) for _, e in load_person_clips(tmp_path, "actor", "test")] == [10]
    with pytest.raises(FileNotFoundError, match="run the prepare stage"):
        load_person_clips(tmp_path, "nobody")


def _basis(k: int = 5) -> ExpressionBasis:
    rng = np.random.default_rng(0)
    return ExpressionBasis(mean=np.zeros(1404, np.float32), components=rng.standard_normal((k, 1404)).astype(np.float32),
                           explained_variance=np.ones(k, np.float32), explained_variance_ratio=np.ones(k, np.float32) / k,
                           weights=np.ones(468, np.float32), jaw_index=2)


def test_pretraining_keeps_the_step_that_scores_best_on_validation(repo_root, monkeypatch):
    """Early stopping: the returned model is the state scored best on the validation clips (by
    val_select), not the last step's; the curve and the kept step are in the history."""
    import deadlib.audio2expr.stage as stage
    settings = a2e_settings("smoke", params_path=repo_root / "params.yaml")
    settings["train"] = {**settings["train"], "steps": 8, "window": 16, "warmup": 2}
    settings.update(val_every=2, val_select="jaw_corr")
    rng = np.random.default_rng(1)
    clips = [(rng.standard_normal((40 * 16 // 5 + 16, 80)).astype(np.float32),
              rng.standard_normal((40, 5)).astype(np.float32)) for _ in range(2)]
    scripted, seen = iter([0.1, 0.7, 0.3, 0.2]), []  # the 2nd validation (step 4) is the best

    def fake_scores(model, val_clips, basis, chunk=200):
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"jaw_corr": next(scripted), "lve_mean_mm": 1.0}

    monkeypatch.setattr(stage, "evaluate_clips", fake_scores)
    model, history = pretrain(settings, clips, _basis(), progress=False, val_clips=clips[:1])
    assert [v["step"] for v in history["val"]] == [2, 4, 6, 8] and history["best_step"] == 4
    kept = model.state_dict()
    assert all(torch.equal(kept[k], seen[1][k]) for k in kept)
    assert not all(torch.equal(kept[k], seen[3][k]) for k in kept)  # the last step differs: a real choice
    with pytest.raises(ValueError, match="val_select"):
        pretrain({**settings, "val_select": "psnr"}, clips, _basis(), progress=False, val_clips=clips[:1])


def test_checkpoints_round_trip(tmp_path, repo_root):
    basis = _basis()
    torch.manual_seed(0)
    model = build_model(a2e_settings("smoke", params_path=repo_root / "params.yaml"), basis.n_expr)
    model.set_neutral(np.arange(5))
    save_a2e(tmp_path / "a2e.pt", model, basis, {"steps": 3})
    loaded, info = load_a2e(tmp_path / "a2e.pt")
    assert info["basis_digest"] == basis_digest(basis) and info["meta"] == {"steps": 3}
    windows = torch.randn(1, 10, 16, 80)
    model.eval()
    torch.testing.assert_close(loaded(windows), model(windows))
    person = PersonalisedAudio2Expression(model)
    with torch.no_grad():
        person.style.scale.mul_(2.0)
    save_style(tmp_path / "style.pt", person, model, "actor")
    back, name = load_style(tmp_path / "style.pt", model)
    assert name == "actor" and torch.equal(back.style.scale, person.style.scale) and back.base is model
    with pytest.raises(ValueError, match="K=4"):
        load_style(tmp_path / "style.pt", build_model(a2e_settings("smoke", params_path=repo_root / "params.yaml"), 4))
    with pytest.raises(ValueError, match="not an audio2expr checkpoint"):
        load_a2e(tmp_path / "style.pt")


def test_a_fine_tuned_persons_model_round_trips_and_refuses_another_architecture(tmp_path, repo_root):
    """A style file of a fine-tuned person carries the copy's weights: loading it beside the generic
    model gives the person's predictions back exactly and leaves the generic model as it was."""
    settings = a2e_settings("smoke", params_path=repo_root / "params.yaml")
    torch.manual_seed(0)
    generic = build_model(settings, 5).eval()
    tuned = build_model(settings, 5).eval()      # other weights: stands in for the fine-tuned copy
    person = PersonalisedAudio2Expression(tuned).eval()
    save_style(tmp_path / "style.pt", person, generic, "actor", {"finetune_steps": 10})
    generic_state = {k: v.clone() for k, v in generic.state_dict().items()}
    back, _ = load_style(tmp_path / "style.pt", generic)
    windows = torch.randn(1, 10, 16, 80)
    assert back.base is not generic
    torch.testing.assert_close(back(windows), person(windows), rtol=0, atol=0)
    assert all(torch.equal(v, generic.state_dict()[k]) for k, v in generic_state.items())
    wider = build_model({**settings, "model": {**settings["model"], "d_model": 16, "n_heads": 2}}, 5)
    with pytest.raises(ValueError, match="another audio-to-expression architecture"):
        load_style(tmp_path / "style.pt", wider)


def test_fine_tune_settings_take_the_pretraining_ones_and_can_be_turned_off(repo_root):
    smoke = a2e_settings("smoke", params_path=repo_root / "params.yaml")
    cfg, min_frames = fine_tune_config(smoke)
    assert (cfg.steps, cfg.window, min_frames) == (10, 32, 25) and cfg.formant_warp == smoke["train"]["formant_warp"]
    assert fine_tune_config({**smoke, "style": {**smoke["style"], "finetune": {"steps": 0}}}) is None
    assert fine_tune_config({**smoke, "style": {**smoke["style"], "finetune": None}}) is None
