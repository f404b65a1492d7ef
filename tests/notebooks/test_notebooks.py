"""Notebook hygiene (committed without outputs, papermill-ready) and smoke-profile execution."""

import json
from pathlib import Path

import papermill as pm
import pytest

from deadlib.synth.generate import SynthSettings, generate_corpus

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean_and_parameterised(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "strip outputs"
    assert "parameters" in code[0].get("metadata", {}).get("tags", []), "first code cell must be tagged parameters"
    assert nb["metadata"]["kernelspec"]["name"] == "python3" and nb["metadata"]["language_info"]["name"] == "python"
    assert "profile" in "".join(code[0]["source"])


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("raw") / "synthetic"
    generate_corpus(out, SynthSettings(n_prior=2, n_heldout=1, duration_s=6.0, size=128, workers=2))
    return out


def run_notebook(repo_root: Path, name: str, executed_dir: Path, **parameters) -> None:
    """Execute notebooks/<name> with papermill on the smoke profile, as the DVC stage would."""
    pm.execute_notebook(str(repo_root / "notebooks" / name), str(executed_dir / name),
                        parameters=dict(profile="smoke", params_path=str(repo_root / "params.yaml"), **parameters),
                        cwd=str(repo_root), progress_bar=False)


def test_corpus_report_notebook_runs(tiny_corpus, tmp_path, repo_root):
    metrics = tmp_path / "corpus_report.json"
    run_notebook(repo_root, "00_corpus.ipynb", tmp_path, raw_dir=str(tiny_corpus), metrics_path=str(metrics))
    result = json.loads(metrics.read_text())
    assert result["videos"] == 3 and result["unusable_videos"] == 0
    assert result["audio_to_jaw_r2"] > 0.5 > result["audio_to_jaw_r2_misaligned"]


def test_prepare_then_train_prior_notebooks_chain(tiny_corpus, tmp_path, repo_root):
    """The smoke pipeline: 01_prepare writes the cache that 02_train_prior trains on."""
    cache, prior = tmp_path / "prepared", tmp_path / "prior"
    run_notebook(repo_root, "01_prepare.ipynb", tmp_path, raw_dir=str(tiny_corpus), out_dir=str(cache),
                 metrics_path=str(tmp_path / "prepare.json"))
    prepared = json.loads((tmp_path / "prepare.json").read_text())
    assert prepared["videos"] == 3 and prepared["videos_skipped"] == 0 and prepared["no_face_frames"] == 0
    assert json.loads((cache / "splits.json").read_text())["heldout"] == ["synth_h00"]
    run_notebook(repo_root, "02_train_prior.ipynb", tmp_path, cache_root=str(cache), out_dir=str(prior),
                 metrics_path=str(tmp_path / "train_prior.json"))
    trained = json.loads((tmp_path / "train_prior.json").read_text())
    assert trained["steps"] > 0 and trained["psnr"] > 10
    assert (prior / "checkpoint.pt").exists()
