"""benchmarks/compare_study_records.py and its README block: a method's cells now vs an earlier
commit, paired cell by cell; other methods, ablation variants and sidecars are not read."""

import json

import pytest
from support import git, load_benchmark

from deadlib.tools.readme_tables import study_records_block


@pytest.fixture(scope="module")
def compare():
    return load_benchmark("compare_study_records")


def _write(root, name, **metrics):
    path = root / "metrics" / "adapt" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics))


def test_cells_are_paired_by_name_and_summarised_per_n(compare, tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    git("init", "-q", cwd=root)
    git("config", "user.email", "t@example.invalid", cwd=root)
    git("config", "user.name", "t", cwd=root)
    for seed, value in enumerate((20.0, 21.0, 22.0)):
        _write(root, f"scratch_a_n25_s{seed}", psnr_lower=value, val_psnr_lower=value)
    _write(root, "scratch_a_n100_s0", psnr_lower=25.0, val_psnr_lower=25.0)
    _write(root, "prior_a_n25_s0", psnr_lower=30.0, val_psnr_lower=30.0)
    git("add", "-A", cwd=root)
    git("commit", "-qm", "before", cwd=root)
    for seed, value in enumerate((21.0, 22.5, 22.0)):           # +1.0, +1.5, 0.0
        _write(root, f"scratch_a_n25_s{seed}", psnr_lower=value, val_psnr_lower=value - 1)
    _write(root, "scratch_a_n25_s0_nomix", psnr_lower=99.0, val_psnr_lower=99.0)   # a variant: not read
    _write(root, "scratch_a_n1000_s0", psnr_lower=26.0, val_psnr_lower=26.0)       # no record before: not read
    _write(root, "prior_a_n25_s0", psnr_lower=0.0, val_psnr_lower=0.0)             # another method: not read
    r = compare.compare(root, "HEAD", "scratch", keys=("val_psnr_lower", "psnr_lower"))
    assert sorted(r["sizes"]) == ["100", "25"] and len(r["cells"]) == 4
    diff = r["sizes"]["25"]["psnr_lower"]["difference"]
    assert diff["mean"] == pytest.approx(2.5 / 3) and diff["higher"] == 2 and diff["n"] == 3
    assert r["sizes"]["25"]["psnr_lower"]["before"] == pytest.approx(21.0)
    assert r["sizes"]["25"]["val_psnr_lower"]["difference"]["mean"] == pytest.approx(2.5 / 3 - 1)
    assert r["sizes"]["100"]["psnr_lower"]["difference"]["mean"] == 0.0
    out = tmp_path / "benchmarks" / "results" / "rerun.json"
    out.parent.mkdir(parents=True)
    out.write_text(json.dumps(r))
    text = study_records_block(tmp_path, "benchmarks/results/rerun.json")
    assert "| psnr_lower | 21 → 21.83, +0.833 ± " in text and "(2/3)" in text
    assert "does not exist yet" in study_records_block(tmp_path, "benchmarks/results/missing.json")
    with pytest.raises(SystemExit, match="no prior cell"):
        compare.compare(root, "HEAD", "prior", folder="metrics/none")


@pytest.mark.parametrize("name", ["/tmp/x", "sub/x", "x.json", ""])
def test_the_results_name_is_a_plain_file_name(compare, name, capsys):
    """``--name`` names benchmarks/results/<name>.json; a path or an extension is refused before
    anything is compared or written (it used to write outside the repo and then crash)."""
    with pytest.raises(SystemExit):
        compare.main(["--before", "HEAD", "--name", name])
    assert "--name" in capsys.readouterr().err
