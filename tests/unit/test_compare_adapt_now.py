"""benchmarks/compare_adapt_now.py: each schedule is paired with the baseline by person and seed, at its last step."""

import argparse
import sys

import pytest
from support import load_benchmark


@pytest.fixture(scope="module")
def compare():
    before = list(sys.path)
    yield load_benchmark("compare_adapt_now")
    sys.path[:] = before                     # the script puts benchmarks/ first to import its sibling


def _cell(person: str, seed: int, variant: str, psnr_lower: float) -> dict:
    return {"identity": person, "seed": seed, "variant": variant, "val_final": {"psnr_lower": psnr_lower}}


def test_last_step_reads_the_highest_step_whatever_the_key_type(compare):
    assert compare.last_step({"25": 1.0, "100": 3.0, "75": 2.0}) == 3.0      # JSON keys are strings
    assert compare.last_step({25: 1.0, 50: 2.0}) == 2.0
    assert compare.last_step({}) is None


def test_pairs_by_person_and_seed_and_counts_the_higher(compare):
    cells = [_cell("a", 0, "base", 28.0), _cell("a", 0, "new", 28.5),
             _cell("a", 1, "base", 27.0), _cell("a", 1, "new", 26.0),
             _cell("b", 0, "base", 30.0), _cell("b", 0, "new", 30.3),
             _cell("b", 1, "new", 99.0)]                       # no baseline for (b, 1): not paired
    d = compare.paired(cells, "base", "new", "psnr_lower")
    assert d["n"] == 3 and d["higher"] == 2
    assert d["mean"] == pytest.approx((0.5 - 1.0 + 0.3) / 3)
    assert d["ci95"] > 0


def test_variant_syntax(compare):
    assert compare.parse_variant("mean:75") == ("mean", 75, 1.0, "float32")
    assert compare.parse_variant("random:100:0.5") == ("random", 100, 0.5, "float32")
    assert compare.parse_variant("random:100:1:bfloat16") == ("random", 100, 1.0, "bfloat16")
    assert compare.variant_name("random", 100, 0.5) == "random100_lr0.5" and compare.variant_name("mean", 75, 1.0) == "mean75"
    assert compare.variant_name("random", 100, 1.0, "bfloat16") == "random100_bf16"
    for bad in ("mean", "zero:50", "mean:0", "random:x", "random:100:0", "random:100:-1", "random:100:x", "random:100:1:2",
                "random:100:1:float16", "random:100:1:bfloat16:x"):
        with pytest.raises(argparse.ArgumentTypeError):
            compare.parse_variant(bad)
