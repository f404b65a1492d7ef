"""deadlib.audio2expr.crossval: speaker folds that cover the prior people once each and never the
held-out ones, settings overrides that refuse keys the section does not have; deadlib.audio2expr.mixing:
another corpus's speech mixed into the folds' training (re-encoded in this basis, weighed by
repetition), scored as crossval scores."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import fake_a2e_corpus

from deadlib.audio2expr.crossval import cross_validate, override, speaker_folds
from deadlib.audio2expr.mixing import clips_in_basis, mix_clips
from deadlib.data.face3d import ExpressionBasis


def test_speaker_folds_partition_the_names():
    names = [f"p{i:02d}" for i in range(17)]
    folds = speaker_folds(list(reversed(names)), 3)
    assert [len(f) for f in folds] == [6, 6, 5]
    assert sorted(n for f in folds for n in f) == names
    assert folds[0][:2] == ["p00", "p03"]  # every third of the sorted names: no dependence on input order
    with pytest.raises(ValueError):
        speaker_folds(names[:2], 3)


def test_override_sets_nested_values_and_refuses_unknown_keys():
    settings = {"seed": 0, "train": {"formant_warp": 0.1, "steps": 2000}, "model": {"dropout": 0.1}}
    out = override(settings, ["train.formant_warp=0.0", "seed=1", "model.dropout=0.3"])
    assert out == {"seed": 1, "train": {"formant_warp": 0.0, "steps": 2000}, "model": {"dropout": 0.3}}
    assert settings["train"]["formant_warp"] == 0.1  # the input is not modified
    for bad in ("train.formant_wrap=0", "optim.lr=1", "train.steps"):
        with pytest.raises((KeyError, ValueError)):
            override(settings, [bad])


def _clips(lengths: list[int], k: int = 3, fill: float = 0.0) -> list:
    return [(np.zeros((n * 16 // 5 + 16, 80), np.float32), np.full((n, k), fill, np.float32)) for n in lengths]


def _positions(clips: list, window: int) -> int:
    return sum(len(e) - window + 1 for _, e in clips)


def test_mix_clips_weighs_the_other_corpus_by_repetition():
    own, extra = _clips([40, 40]), _clips([100, 100, 100, 100, 100, 100], fill=1.0)
    window = 10
    assert mix_clips(own, extra, None, window) == own + extra  # both as they are
    assert mix_clips(own, [], 0.5, window) == own  # nothing to mix: the folds train as before
    assert mix_clips(own, extra, 1.0, window) == extra  # the other corpus only
    half = mix_clips(own, extra, 0.5, window)
    assert sum(c[1][0, 0] == 0.0 for c in half) == 2 * 9  # 62 own windows x 9 ~ 546 of the other corpus
    extra_part = [c for c in half if c[1][0, 0] == 1.0]
    assert len(extra_part) == len(extra)  # the bigger side is kept once, the smaller one repeated
    share = _positions(extra_part, window) / _positions(half, window)
    assert share == pytest.approx(0.5, abs=0.05)
    small = mix_clips(own, _clips([20], fill=1.0), 0.5, window)  # the other corpus is the smaller side
    assert sum(c[1][0, 0] == 1.0 for c in small) == 6 and sum(c[1][0, 0] == 0.0 for c in small) == 2
    for bad in (0.0, 1.5, -0.2):
        with pytest.raises(ValueError, match="extra_share"):
            mix_clips(own, extra, bad, window)


def _write_corpus(root, basis: ExpressionBasis, names: list[str], expr: np.ndarray) -> None:
    root.mkdir()
    basis.save(root / "expr_basis.npz")
    (root / "splits.json").write_text(json.dumps({"prior": names, "heldout": []}))
    for name in names:
        folder = root / name
        folder.mkdir()
        np.save(folder / "mel.npy", np.zeros((len(expr) * 16 // 5 + 16, 80), np.float16))
        np.savez(folder / "track.npz", expr=expr, valid=np.ones(len(expr), bool))
        (folder / "report.json").write_text(json.dumps({"splits": {"train": [0, len(expr)]}}))


def test_clips_in_basis_re_encodes_the_other_corpus_expressions(tmp_path):
    """The same residual meshes in another basis: coefficients of the target basis that rebuild
    the source's meshes (both bases span the same subspace here, so nothing is lost)."""
    rng = np.random.default_rng(0)
    source = _basis(rng.standard_normal((4, 1404)), rng.standard_normal(1404))
    mixing = rng.standard_normal((4, 4)) + 3 * np.eye(4)  # the target spans the same 4 directions
    target = _basis(mixing @ source.components, source.mean)
    expr = rng.standard_normal((30, 4)).astype(np.float32)
    _write_corpus(tmp_path / "other", source, ["a", "b"], expr)
    clips = clips_in_basis(tmp_path / "other", ["a", "b"], target, min_len=10)
    assert len(clips) == 2 and clips[0][1].shape == (30, 4)
    np.testing.assert_allclose(target.offsets(clips[0][1]), source.offsets(expr), atol=1e-3)
    same = clips_in_basis(tmp_path / "other", ["a"], source)
    np.testing.assert_allclose(same[0][1], expr, atol=1e-4)  # own basis: unchanged


def _basis(components: np.ndarray, mean: np.ndarray) -> ExpressionBasis:
    k = len(components)
    return ExpressionBasis(mean=mean.astype(np.float32), components=components.astype(np.float32),
                           explained_variance=np.ones(k, np.float32), explained_variance_ratio=np.ones(k, np.float32) / k,
                           weights=np.ones(468, np.float32), jaw_index=0)


def test_mixed_in_speech_changes_the_models_but_not_who_is_scored(tmp_path, repo_root):
    """Another corpus mixed into every fold's pre-training (``training``) changes the models; the
    folds, the validation and the scored speakers stay this corpus's, so a mixed variant differs
    from the baseline by its data alone."""
    from deadlib.audio2expr.stage import a2e_settings
    settings = a2e_settings("smoke", params_path=repo_root / "params.yaml")
    settings["train"] = {**settings["train"], "steps": 6, "window": 16, "batch": 4, "warmup": 2}
    settings.update(val_every=3, ensemble=1)
    fake_a2e_corpus(tmp_path / "own", ["a", "b", "c"])
    fake_a2e_corpus(tmp_path / "other", ["x", "y"], seed=1)
    plain = cross_validate(settings, tmp_path / "own", folds=3)
    assert cross_validate(settings, tmp_path / "own", folds=3, training=lambda own: own) == plain
    basis = ExpressionBasis.load(tmp_path / "own" / "expr_basis.npz")
    extra = clips_in_basis(tmp_path / "other", ["x", "y"], basis, min_len=16)
    mixed = cross_validate(settings, tmp_path / "own", folds=3, training=lambda own: mix_clips(own, extra, 0.5, 16))
    assert [p["name"] for p in mixed["people"]] == [p["name"] for p in plain["people"]]  # scored on own speakers
    assert mixed["mean_lve_mm"] != plain["mean_lve_mm"]
