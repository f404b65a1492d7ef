"""deadlib.audio2expr.stage: settings, exact MEL/frame alignment of the clips, checkpoint round trips,
early stopping on the validation clips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deadlib.audio2expr.model import Audio2ExpressionEnsemble
from deadlib.audio2expr.stage import (
    a2e_settings,
    basis_digest,
    build_model,
    clip_of,
    ensemble_size,
    fine_tune_config,
    load_a2e,
    load_person_clips,
    load_style,
    pretrain,
    pretrain_ensemble,
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


def _clips(seed=1, n=2, frames=40, k=5):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((frames * 16 // 5 + 16, 80)).astype(np.float32),
             rng.standard_normal((frames, k)).astype(np.float32)) for _ in range(n)]


def _tiny(repo_root, **extra):
    settings = a2e_settings("smoke", params_path=repo_root / "params.yaml")
    settings["train"] = {**settings["train"], "steps": 4, "window": 16, "warmup": 2}
    return {**settings, "val_every": 2, **extra}


def test_an_ensemble_predicts_the_mean_of_its_models_and_refuses_mismatched_ones(repo_root):
    settings = a2e_settings("smoke", params_path=repo_root / "params.yaml")
    torch.manual_seed(0)
    members = [build_model(settings, 5).eval() for _ in range(3)]
    for m in members:
        m.set_neutral(np.arange(5))
        with torch.no_grad():
            m.head.weight.normal_(std=0.1)      # the default init is near zero: make the members differ
    ensemble = Audio2ExpressionEnsemble(members).eval()
    windows = torch.randn(2, 10, 16, 80) * 10
    each = [m(windows) for m in members]
    assert not torch.allclose(each[0], each[1])
    torch.testing.assert_close(ensemble(windows), torch.stack(each).mean(0), rtol=0, atol=0)
    assert ensemble.config == members[0].config and torch.equal(ensemble.neutral, members[0].neutral)
    with pytest.raises(ValueError, match="at least 2"):
        Audio2ExpressionEnsemble(members[:1])
    other = build_model(settings, 5)
    with pytest.raises(ValueError, match="neutral"):
        Audio2ExpressionEnsemble([members[0], other])
    with pytest.raises(ValueError, match="architecture"):
        Audio2ExpressionEnsemble([members[0], build_model(settings, 4)])


@pytest.mark.parametrize("size", [0, -1, 2.0, True, "4"])
def test_a_bad_ensemble_size_is_refused(size):
    with pytest.raises(ValueError, match="audio2expr.ensemble"):
        ensemble_size({"ensemble": size})


def test_an_ensemble_of_one_is_plain_pretraining_and_more_train_at_the_next_seeds(repo_root):
    """``ensemble: 1`` trains exactly the model ``pretrain`` trains (weights equal); ``ensemble: 2``
    keeps that model as its first member and adds one trained at seed + 1."""
    clips = _clips()
    one, _ = pretrain(_tiny(repo_root, seed=3), clips, _basis(), progress=False, val_clips=clips[:1])
    same, histories = pretrain_ensemble(_tiny(repo_root, seed=3, ensemble=1), clips, _basis(), progress=False,
                                        val_clips=clips[:1])
    assert len(histories) == 1 and not isinstance(same, Audio2ExpressionEnsemble)
    assert all(torch.equal(v, same.state_dict()[k]) for k, v in one.state_dict().items())
    pair, histories = pretrain_ensemble(_tiny(repo_root, seed=3, ensemble=2), clips, _basis(), progress=False,
                                        val_clips=clips[:1])
    assert isinstance(pair, Audio2ExpressionEnsemble) and len(histories) == 2
    assert all(torch.equal(v, pair.members[0].state_dict()[k]) for k, v in one.state_dict().items())
    nxt, _ = pretrain(_tiny(repo_root, seed=4), clips, _basis(), progress=False, val_clips=clips[:1])
    assert all(torch.equal(v, pair.members[1].state_dict()[k]) for k, v in nxt.state_dict().items())
    assert not torch.equal(pair.members[0].head.weight, pair.members[1].head.weight)


def test_an_ensemble_round_trips_and_a_person_fine_tunes_every_member(tmp_path, repo_root):
    """The checkpoint of an ensemble loads as one with the same predictions; ``fit_person`` tunes a copy
    of each member (the generic ensemble is untouched) and its style file gives the person back exactly."""
    from deadlib.audio2expr.stage import fit_person
    from tests.support import fake_a2e_corpus
    fake_a2e_corpus(tmp_path / "cache", ["a", "b"])
    basis = ExpressionBasis.load(tmp_path / "cache" / "expr_basis.npz")
    settings = _tiny(repo_root, ensemble=2)
    clips = load_person_clips(tmp_path / "cache", "a", "train", min_len=16)
    generic, _ = pretrain_ensemble(settings, clips, basis, progress=False, val_clips=clips[:1])
    save_a2e(tmp_path / "a2e.pt", generic, basis, {"steps": 4})
    loaded, info = load_a2e(tmp_path / "a2e.pt")
    assert isinstance(loaded, Audio2ExpressionEnsemble) and info["members"] == 2
    windows = torch.randn(1, 10, 16, 80) * 10
    torch.testing.assert_close(loaded(windows), generic(windows), rtol=0, atol=0)
    before = {k: v.clone() for k, v in generic.state_dict().items()}
    person, history = fit_person(generic, tmp_path / "cache", "b", basis,
                                 {**settings, "style": {**settings["style"], "frames": 60, "steps": 3,
                                                        "finetune": {**settings["style"]["finetune"], "window": 16,
                                                                     "min_frames": 16}}})
    assert history["finetune_steps"] == settings["style"]["finetune"]["steps"]
    assert isinstance(person.base, Audio2ExpressionEnsemble) and person.base is not generic
    assert all(torch.equal(v, generic.state_dict()[k]) for k, v in before.items())
    assert all(not torch.equal(t.head.weight, g.head.weight) for t, g in zip(person.base.members, generic.members))
    save_style(tmp_path / "style.pt", person, generic, "b")
    back, _ = load_style(tmp_path / "style.pt", loaded)
    with torch.no_grad():  # as predict() runs them (the transformer's inference path for both)
        torch.testing.assert_close(back.eval()(windows), person.eval()(windows), rtol=0, atol=0)
    with pytest.raises(ValueError, match="fine-tune of an ensemble, the model given is one model"):
        load_style(tmp_path / "style.pt", generic.members[0])
