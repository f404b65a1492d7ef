"""benchmarks/compare_baseline_lr.py and its README block: every rate scales together, each scale is paired
with the first by person on the best validation score, and the test columns are only reported."""

import json
import sys

import pytest
from support import load_benchmark

from deadlib.tools.readme_tables import baseline_lr_block


@pytest.fixture(scope="module")
def compare():
    before = list(sys.path)
    yield load_benchmark("compare_baseline_lr")
    sys.path[:] = before                     # the script puts benchmarks/ first to import its sibling


def test_variant_names_spell_the_scale(compare):
    assert compare.variant_name(2.0) == "lr_x2" and compare.variant_name(0.5) == "lr_x0.5"


def _cell(person, variant, curve, test_psnr):
    return {"identity": person, "variant": variant, "scale": float(variant[4:]), "selected_step": max(curve, key=curve.get),
            "val_psnr_lower": {str(s): v for s, v in curve.items()}, "test": {"psnr_lower": test_psnr}, "train_seconds": 1.0}


def _block(root, cells, method, study_scale, **extra):
    """The README block of a sweep of ``method`` made of ``cells`` (N = 100, 50 steps), in ``root``."""
    result = {"corpus": "synthetic", "method": method, "n_frames": 100, "steps": 50, "seed": 0,
              "rates": {"lr_g": 0.001, "lr_d": 0.002, "lr_texture": 0.01}, "scales": [1.0, 2.0],
              "adv_start_fraction": 0.5, "machine": "test machine", "cells": cells, **extra}
    path = f"benchmarks/results/{method}_lr_synthetic_n100.json"
    (root / path).parent.mkdir(parents=True)
    (root / path).write_text(json.dumps(result))
    (root / "params.yaml").write_text(f"baseline: {{lr_scale: {study_scale}}}\n")
    return baseline_lr_block(root, path)


def test_the_block_pairs_each_scale_with_the_first_on_validation_only(tmp_path):
    cells = [_cell("a", "lr_x1", {25: 19.0, 50: 21.0}, 30.0), _cell("a", "lr_x2", {25: 20.0, 50: 21.5}, 10.0),
             _cell("b", "lr_x1", {25: 19.0, 50: 22.0}, 10.0), _cell("b", "lr_x2", {25: 18.0, 50: 21.0}, 30.0)]
    text = _block(tmp_path, cells, "scratch", study_scale=2.0)
    # a: +0.50 (21.5 vs 21.0), b: −1.00 (21.0 vs 22.0) — the test column (which points the other way) is not read
    assert "lr_x2 − lr_x1: a +0.50 dB (steps 50 → 50), b -1.00 dB (steps 50 → 50); lr_x2 is ahead on 1 of 2 people" in text
    assert "At step 25: a +1.00 dB, b -1.00 dB." in text
    assert "lr_g 0.001, lr_d 0.002, lr_texture 0.01" in text
    assert "the Baseline's, which the study runs at × 2 (params.yaml `baseline.lr_scale`)" in text
    assert "does not exist yet" in baseline_lr_block(tmp_path, "benchmarks/results/missing.json")


def test_a_diverged_cell_is_reported_and_not_paired(tmp_path):
    cells = [_cell("a", "lr_x1", {25: 19.0, 50: 21.0}, 30.0), _cell("b", "lr_x1", {25: 19.0, 50: 22.0}, 10.0),
             _cell("b", "lr_x2", {25: 20.0, 50: 23.0}, 12.0),
             {"identity": "a", "variant": "lr_x2", "scale": 2.0, "selected_step": None, "val_psnr_lower": {},
              "test": {}, "train_seconds": None, "diverged": "L1 jumped at step 60"}]
    text = _block(tmp_path, cells, "prior", study_scale=4.0, prior_steps=3600)
    assert "lr_x2 − lr_x1: b +1.00 dB (steps 50 → 50); lr_x2 is ahead on 1 of 1 people" in text
    assert "Training diverged (the divergence guard stopped it): lr_x2 for a." in text
    assert "| a | lr_x2 | — | — | diverged | — |" in text
    assert "the cell swept is Ours'" in text and "the prior fine-tuned was trained 3600 steps" in text


def test_a_diverging_cell_is_recorded_not_raised(compare, monkeypatch, tmp_path):
    def fake_cell(corpus, identity, variant, params_path, n_frames, seed, work, method):
        assert method == "prior" and work.name == "prior"           # one folder per method: no reuse across them
        if variant == "lr_x2":
            raise compare.TrainingDiverged("L1 jumped at step 60")
        return {"selected_step": 50, "val": {"psnr_lower": {25: 20.0, 50: 21.0}}, "test": {"psnr_lower": 22.0},
                "train_seconds": 1.0}
    monkeypatch.setattr(compare.cells, "run_variant_cell", fake_cell)
    monkeypatch.setattr(compare.cells, "variant_params", lambda work, name, overrides: work / f"{name}.yaml")
    r = compare.run("synthetic", 100, 50, [1.0, 2.0], tmp_path, method="prior")
    assert r["method"] == "prior"
    # which prior Ours was fine-tuned from is part of the result: the recorded one's steps
    assert r["prior_steps"] == json.loads((compare.REPO / "metrics" / "train_prior.json").read_text())["steps"]
    assert [c.get("diverged") for c in r["cells"]][:2] == [None, "L1 jumped at step 60"]
