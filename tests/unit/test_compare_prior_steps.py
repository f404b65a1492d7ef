"""benchmarks/compare_prior_steps.py: each longer prior continues the longest shorter one, and every
score is paired with the recorded prior's by person and seed."""

import json
import sys

import pytest
from support import load_benchmark


@pytest.fixture(scope="module")
def compare():
    before = list(sys.path)
    yield load_benchmark("compare_prior_steps")
    sys.path[:] = before                     # the script puts benchmarks/ first to import its siblings


def _prior(folder, steps):
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_text(f"weights at {steps}")
    (folder / "metrics.json").write_text(json.dumps({"steps": steps}))
    return folder


def test_a_longer_prior_continues_the_longest_shorter_one(compare, tmp_path, monkeypatch):
    import deadlib.train.prior as prior

    recorded = _prior(tmp_path / "recorded", 1200)
    monkeypatch.setattr(compare, "pipeline", lambda corpus: (tmp_path / "cache", recorded, 1200))
    calls = []

    def fake_train(argv):                    # what `python -m deadlib.train.prior` would do: continue, record
        out = argv[argv.index("--out") + 1]
        calls.append((int((tmp_path / out / "checkpoint.pt").read_text().split()[-1]), argv))
        steps = int(argv[argv.index("--set") + 1].split("=")[1])
        (tmp_path / out / "checkpoint.pt").write_text(f"weights at {steps}")
        (tmp_path / out / "metrics.json").write_text(json.dumps({"steps": steps}))

    monkeypatch.setattr(prior, "main", fake_train)
    work = tmp_path / "work"
    work.mkdir()
    assert compare.ensure_prior(1200, work, "default", "real") == recorded and calls == []
    p2400 = compare.ensure_prior(2400, work, "default", "real")
    p3600 = compare.ensure_prior(3600, work, "default", "real")
    assert [start for start, _ in calls] == [1200, 2400]          # each from the longest shorter prior
    assert all("--resume" in argv and argv[argv.index("--resume") + 1] == "always" for _, argv in calls)
    assert compare.prior_steps(p2400) == 2400 and compare.prior_steps(p3600) == 3600
    assert compare.ensure_prior(3600, work, "default", "real") == p3600 and len(calls) == 2   # reused, not retrained
    assert (recorded / "checkpoint.pt").read_text() == "weights at 1200"           # the record untouched


def _scores(psnr_lower, lmd, r):
    return {"val_psnr_lower": psnr_lower, "val_psnr": 30.0, "val_ssim": 0.9, "lmd_mouth_px": lmd,
            "mouth_open_r": r, "selected_step": 100, "train_seconds": 60.0}


def test_scores_are_paired_with_the_first_prior_by_person_and_seed(compare):
    people = {"a": {"1200": {"0": _scores(27.0, 1.2, 0.7), "1": _scores(27.5, 1.1, 0.6)},
                    "2400": {"0": _scores(27.4, 1.0, 0.8), "1": _scores(27.3, 1.0, None)}},
              "b": {"1200": {"0": _scores(28.0, 1.3, 0.5), "1": _scores(28.0, 1.3, 0.5)},
                    "2400": {"0": _scores(28.6, 1.1, 0.7), "1": _scores(28.2, 1.2, 0.6)}}}
    summary = compare.summarise(people, [1200, 2400], [0, 1])
    assert "vs_first" not in summary["1200"]
    d = summary["2400"]["vs_first"]
    assert d["val_psnr_lower"]["n"] == 4 and d["val_psnr_lower"]["higher"] == 3
    assert d["val_psnr_lower"]["mean"] == pytest.approx((0.4 - 0.2 + 0.6 + 0.2) / 4)
    assert d["lmd_mouth_px"]["mean"] == pytest.approx((-0.2 - 0.1 - 0.2 - 0.1) / 4)
    assert d["mouth_open_r"]["n"] == 3                             # a missing r is left out, not zero
    assert summary["2400"]["val_psnr_lower"] == pytest.approx((27.4 + 27.3 + 28.6 + 28.2) / 4)


def test_corpus_points_at_its_own_pipeline(compare):
    cache, recorded, steps = compare.pipeline("synthetic")
    assert cache == compare.REPO / "data/prepared" and recorded == compare.REPO / "models/prior"
    assert compare.METRICS["synthetic"] == "metrics/train_prior.json"
    assert steps == json.loads((compare.REPO / "metrics/train_prior.json").read_text())["steps"]
    cache, recorded, _ = compare.pipeline("real")
    assert cache == compare.REPO / "real/data/prepared" and recorded == compare.REPO / "real/models/prior"
