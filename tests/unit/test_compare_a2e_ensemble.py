"""benchmarks/compare_a2e_ensemble.py: per-speaker scores of single seeds and of their averaged
predictions, and the paired comparisons of the full ensemble."""

import numpy as np
import pytest
from support import fake_a2e_corpus, load_benchmark

from deadlib.data.face3d import ExpressionBasis


@pytest.fixture(scope="module")
def ensemble():
    return load_benchmark("compare_a2e_ensemble")


def _basis(k: int = 3) -> ExpressionBasis:
    rng = np.random.default_rng(0)
    return ExpressionBasis(mean=np.zeros(1404, np.float32), components=rng.standard_normal((k, 1404)).astype(np.float32),
                           explained_variance=np.ones(k, np.float32), explained_variance_ratio=np.ones(k, np.float32) / k,
                           weights=np.ones(468, np.float32), jaw_index=1)


def _runs(noises: list[float], speakers: int = 4, n: int = 200, seed: int = 0) -> list[dict]:
    """One run per noise level: prediction = target + that run's own independent noise."""
    rng = np.random.default_rng(seed)
    targets = {f"p{i}": rng.standard_normal((n, 3)).astype(np.float32) for i in range(speakers)}
    return [{name: {"pred": t + scale * rng.standard_normal(t.shape).astype(np.float32), "target": t, "best_step": 100}
             for name, t in targets.items()} for scale in noises]


def test_identical_members_make_an_ensemble_equal_to_one_seed(ensemble):
    run = _runs([0.5])[0]
    out = ensemble.summarise([run, run, run], _basis())
    assert out["ensemble_jaw_corr"] == pytest.approx([out["single_jaw_corr"][0]] * 3)
    assert out["jaw_corr_vs_first_seed"]["mean"] == pytest.approx(0.0, abs=1e-9)


def test_averaging_independent_errors_follows_the_target_better(ensemble):
    out = ensemble.summarise(_runs([1.0, 1.0, 1.0, 1.0]), _basis())
    assert out["ensemble_jaw_corr"][-1] > out["ensemble_jaw_corr"][0] + 0.1  # noise variance / 4
    assert out["ensemble_jaw_corr"][0] == pytest.approx(out["single_jaw_corr"][0])
    assert out["jaw_corr_vs_single_mean"]["higher"] == 4 and out["lve_mean_mm_vs_single_mean"]["mean"] < 0
    assert len(out["people"]) == 4 and len(out["people"][0]["ensemble"]) == 4


def test_runs_that_scored_other_speakers_are_refused(ensemble):
    a, b = _runs([0.5]), _runs([0.5], seed=1)
    with pytest.raises(ValueError, match="disagree"):
        ensemble.summarise([a[0], b[0]], _basis())


def test_seed_runs_are_written_once_and_read_back(ensemble, tmp_path, repo_root, monkeypatch):
    """A (seed) run's predictions go to the work folder; a second call with the same settings reads
    them instead of training, another seed trains its own models."""
    from deadlib.audio2expr.stage import a2e_settings
    settings = a2e_settings("smoke", params_path=repo_root / "params.yaml")
    settings["train"] = {**settings["train"], "steps": 4, "window": 16, "batch": 4, "warmup": 2}
    settings.update(val_every=2)
    fake_a2e_corpus(tmp_path / "corpus", ["a", "b", "c"])
    first = ensemble.seed_predictions(tmp_path / "corpus", settings, 0, 3, tmp_path / "work")
    assert sorted(first) == ["a", "b", "c"] and first["a"]["pred"].shape == (60, 4)
    monkeypatch.setattr(ensemble, "fold_models", lambda *a, **k: pytest.fail("trained again"))
    again = ensemble.seed_predictions(tmp_path / "corpus", settings, 0, 3, tmp_path / "work")
    assert all(np.array_equal(again[n]["pred"], first[n]["pred"]) for n in first)
    with pytest.raises(pytest.fail.Exception, match="trained again"):
        ensemble.seed_predictions(tmp_path / "corpus", settings, 1, 3, tmp_path / "work")
