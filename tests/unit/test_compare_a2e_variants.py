"""benchmarks/compare_a2e_variants.py: seeds averaged per speaker, then paired with the baseline."""

import pytest
from support import load_benchmark


@pytest.fixture(scope="module")
def compare():
    return load_benchmark("compare_a2e_variants")


def _result(jaw: list[float], steps: int = 300) -> dict:
    return {"people": [{"name": f"p{i}", "jaw_corr": j, "lve_mean_mm": 3.0 - j, "best_step": steps}
                       for i, j in enumerate(jaw)]}


def test_seed_mean_averages_each_speaker_over_the_seeds(compare):
    people = compare.seed_mean([_result([0.1, 0.3, 0.5], 200), _result([0.3, 0.1, 0.5], 400)])
    assert [p["jaw_corr"] for p in people] == pytest.approx([0.2, 0.2, 0.5])
    assert people[0]["best_steps"] == [200, 400]


def test_seed_mean_refuses_seeds_that_disagree_on_the_speakers(compare):
    other = _result([0.1, 0.2, 0.3])
    other["people"][0]["name"] = "someone else"
    with pytest.raises(ValueError, match="speaker order"):
        compare.seed_mean([_result([0.1, 0.2, 0.3]), other])


def test_paired_difference_counts_the_speakers_that_improve(compare):
    base = _result([0.1, 0.2, 0.3, 0.4])["people"]
    better = _result([0.2, 0.3, 0.25, 0.5])["people"]
    d = compare.paired(base, better, "jaw_corr")
    assert d["mean"] == pytest.approx(0.0625) and d["higher"] == 3 and d["n"] == 4 and d["ci95"] > 0


def test_mix_share_is_split_off_the_audio2expr_settings(compare):
    assert compare.split_mix(["train.speed=0.1", "mix.share=0.5"]) == (["train.speed=0.1"], 0.5)
    assert compare.split_mix(["mix.share=all"]) == ([], "all")
    assert compare.split_mix(["train.speed=0.1"]) == (["train.speed=0.1"], None)
    for bad in ("mix.share=0", "mix.share=2"):
        with pytest.raises(ValueError, match="share"):
            compare.split_mix([bad])
    with pytest.raises(ValueError, match="--extra-cache"):
        compare.extra_clips(None, compare.REPO, 32)
