"""Model selection on validation and early stopping (deadlib.train.selection + loop.train): a run
ends on the weights of its best validation step, stops after `patience` evaluations without a
better score, resumes a killed run with its best-so-far, and a rerun returns at once."""

from __future__ import annotations

import math

import pytest
import test_train
import torch

import deadlib.train.loop as train_mod
from deadlib.train.loop import TrainConfig, train
from deadlib.train.selection import Selection

train_set, val_set = test_train.train_set, test_train.val_set        # its fixtures: 2 x 4 / 2 x 2 windows


def make_cfg(**kw) -> TrainConfig:
    """test_train's smoke-sized run, 8 steps, validated after every step."""
    return test_train.make_cfg(**{"steps": 8, "eval_every": 1, **kw})


# validation lower-face PSNR by step: peaks at step 2, then two worse evaluations (patience 2 → stop at 4)
CURVE = {1: 20.0, 2: 23.0, 3: 22.5, 4: 23.0, 5: 24.0, 6: 19.0, 7: 18.0, 8: 17.0}


@pytest.fixture
def scripted_validation(monkeypatch):
    """loop.evaluate replaced by CURVE (keyed by the state's step); returns the steps it scored."""
    seen: list[int] = []

    def scores(state, loader, max_batches=None):
        seen.append(state.step)
        v = CURVE[state.step]
        return {"psnr": v, "ssim": v / 100, "psnr_lower": v, "l1": 1 / v, "psnr_copy_ref": 0.0,
                "ssim_copy_ref": 0.0, "psnr_lower_copy_ref": 0.0}

    monkeypatch.setattr(train_mod, "evaluate", scores)
    return seen


def weights(state) -> dict[str, torch.Tensor]:
    return {**{f"g.{k}": v for k, v in state.renderer.state_dict().items()},
            **{f"t.{i}.{k}": v for i in state.bank.identities for k, v in state.bank[i].state_dict().items()}}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_selection_counts_only_strictly_better_finite_scores():
    up = Selection("psnr_lower", patience=2)
    assert up.update(1, {"psnr_lower": 20.0}) and up.best_step == 1
    assert not up.update(2, {"psnr_lower": 20.0})                # a tie is not better
    assert not up.update(3, {"psnr_lower": math.nan}) and up.out_of_patience
    assert up.update(4, {"psnr_lower": 21.0}) and not up.out_of_patience
    down = Selection("l1")
    assert down.update(1, {"l1": 0.5}) and not down.update(2, {"l1": 0.6}) and down.update(3, {"l1": 0.4})
    assert down.best_step == 3 and not down.out_of_patience      # patience 0: never stops
    assert Selection.from_dict(up.to_dict()) == up


@pytest.mark.parametrize("bad, match", [({"select_metric": "fid"}, "select_metric must be one of"),
                                        ({"patience": 2}, "needs a select_metric"),
                                        ({"select_metric": "psnr", "patience": -1}, "patience must be >= 0")])
def test_bad_selection_settings_are_rejected(bad, match):
    with pytest.raises(ValueError, match=match):
        make_cfg(**bad)


def test_a_selecting_run_needs_a_validation_set(train_set, tmp_path):
    with pytest.raises(ValueError, match="needs a validation set"):
        train(make_cfg(select_metric="psnr_lower"), train_set, None, tmp_path / "run", progress=False)


def test_early_stop_ends_on_the_best_step_as_if_trained_that_long(train_set, val_set, tmp_path, scripted_validation):
    run = tmp_path / "run"
    out = train(make_cfg(select_metric="psnr_lower", patience=2), train_set, val_set, run, progress=False)
    assert scripted_validation == [1, 2, 3, 4]                   # stopped after two evaluations below step 2
    assert (out["step"], out["last_step"], len(out["history"])) == (2, 4, 4)
    assert out["selection"]["stopped_early"] and out["selection"]["best_step"] == 2
    assert out["metrics"]["psnr_lower"] == CURVE[2]
    two = train(make_cfg(steps=2), train_set, val_set, tmp_path / "two", progress=False)
    assert same_weights(weights(out["state"]), weights(two["state"]))     # bit-identical to a 2-step run
    on_disk = torch.load(run / "checkpoint.pt", weights_only=True)
    assert on_disk["step"] == 2 and on_disk["selection"]["finished"] and not (run / "best.pt").exists()
    assert all(torch.equal(v, two["state"].renderer.state_dict()[k]) for k, v in on_disk["generator"].items())

    again = train(make_cfg(select_metric="psnr_lower", patience=2), train_set, val_set, run, progress=False)
    assert again["history"] == [] and again["step"] == 2 and again["last_step"] == 4   # a rerun returns at once
    assert same_weights(weights(again["state"]), weights(two["state"]))


def test_without_patience_the_run_trains_every_step_and_keeps_the_best(train_set, val_set, tmp_path,
                                                                       scripted_validation):
    out = train(make_cfg(select_metric="psnr_lower"), train_set, val_set, tmp_path / "run", progress=False)
    assert scripted_validation == list(range(1, 9))
    assert (out["step"], out["last_step"]) == (5, 8) and not out["selection"]["stopped_early"]
    plain = train(make_cfg(steps=8), train_set, val_set, tmp_path / "plain", progress=False)
    assert out["history"] == plain["history"]                    # selection never changes the trajectory


def test_a_killed_selecting_run_resumes_with_its_best_so_far(train_set, val_set, tmp_path, monkeypatch,
                                                             scripted_validation):
    cfg = make_cfg(select_metric="psnr_lower", patience=2)
    whole = train(cfg, train_set, val_set, tmp_path / "whole", progress=False)
    real_step = train_mod.train_step

    def dies_at_step_4(state, batch, loss_cfg):                   # best (2) and step 3 are on disk
        if state.step == 3:
            raise KeyboardInterrupt("simulated kill")
        return real_step(state, batch, loss_cfg)

    monkeypatch.setattr(train_mod, "train_step", dies_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, train_set, val_set, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "best.pt").exists()
    monkeypatch.setattr(train_mod, "train_step", real_step)
    resumed = train(cfg, train_set, val_set, tmp_path / "run", progress=False)
    assert (resumed["start_step"], resumed["step"], resumed["last_step"]) == (3, 2, 4)
    assert same_weights(weights(resumed["state"]), weights(whole["state"]))
