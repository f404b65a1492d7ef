"""benchmarks/compare_style_loss.py: the offline stand-ins for the VGG term and the sharpness score."""

import sys

import cv2
import numpy as np
import pytest
import torch
from support import load_benchmark


@pytest.fixture(scope="module")
def compare():
    import deadlib.train.loop as loop

    before, saved = list(sys.path), (loop.load_vgg19_features, loop.vgg_style_loss)
    yield load_benchmark("compare_style_loss")
    sys.path[:] = before                     # the script puts benchmarks/ first to import its sibling
    loop.load_vgg19_features, loop.vgg_style_loss = saved   # install() swaps these in the process


def _face(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((32, 32, 3)) * 255).astype(np.uint8)


def test_a_blurred_mouth_scores_below_one_and_the_truth_scores_one(compare):
    real = np.stack([_face(k) for k in range(3)])
    blurred = np.stack([cv2.GaussianBlur(f, (5, 5), 1.5) for f in real])
    mouth = np.zeros((3, 32, 32), np.float32)
    mouth[:, 10:22, 8:24] = 1
    assert compare.sharpness_ratio(real, real, mouth) == pytest.approx(1.0)
    assert compare.sharpness_ratio(blurred, real, mouth) < 0.5
    assert compare.sharpness_ratio(real, real, np.zeros_like(mouth)) is None     # no mouth: no score


def test_the_stand_in_terms_vanish_on_the_target_and_not_on_a_blurred_output(compare):
    target = torch.rand(2, 3, 3, 32, 32) * 2 - 1                                  # (B, T, 3, H, W)
    blurred = torch.nn.functional.avg_pool2d(target.flatten(0, 1), 3, 1, 1).view_as(target)
    assert compare.gradient_l1(target, target) == 0
    assert compare.gradient_l1(blurred, target) > 0.05
    net = compare.RandomShallowVGG()
    assert compare.relative_gram_loss(net, target, target) == 0
    assert compare.relative_gram_loss(net, blurred, target) > 0.01


def test_random_features_do_not_move_the_callers_random_stream(compare):
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    compare.RandomShallowVGG(seed=7)
    assert torch.equal(torch.rand(4), expected)


def test_variants_are_paired_by_person_and_seed_against_the_first(compare):
    cells = [{"identity": p, "seed": 0, "variant": v, "psnr_lower": x, "mouth_sharpness_ratio": 0.3}
             for p, v, x in (("a", "none", 24.0), ("a", "grad_l1", 24.5), ("b", "none", 25.0), ("b", "grad_l1", 24.8))]
    summary = compare.summarise(cells, ["none", "grad_l1"])
    d = summary["grad_l1"]["vs_none"]["psnr_lower"]
    assert d["n"] == 2 and d["higher"] == 1 and d["mean"] == pytest.approx(0.15)
    assert "vs_none" not in summary["none"]
