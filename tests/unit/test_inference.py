"""The inference renderer computes what the training renderer computes (deadlib.model.inference)."""

from __future__ import annotations

import pytest
import torch

from deadlib.core.config import stage_config
from deadlib.model.generator import ModulatedConv2d
from deadlib.model.inference import (
    FrozenModulatedConv2d,
    freeze_for_inference,
    render_precision,
)
from deadlib.model.renderer import Renderer, RendererConfig, dummy_inputs


def _trained_like_renderer() -> Renderer:
    """A smoke-profile renderer whose styles are not all 1 (a fresh one's modulation bias is 1,
    which would hide a wrong demodulation) and whose biases are not 0."""
    torch.manual_seed(0)
    renderer = Renderer(RendererConfig.from_dict(stage_config("renderer", "smoke"))).eval()
    with torch.no_grad():
        for p in renderer.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return renderer


@pytest.mark.parametrize("demodulate,upsample,kernel", [(True, False, 3), (True, True, 3), (False, False, 1)])
def test_frozen_modulated_conv_equals_the_fused_one(demodulate, upsample, kernel):
    torch.manual_seed(1)
    conv = ModulatedConv2d(6, 5, kernel, 8, demodulate=demodulate, upsample=upsample)
    with torch.no_grad():
        conv.modulation.bias.add_(torch.randn(6))
        x, style = torch.randn(3, 6, 8, 8), torch.randn(3, 8)
        fused, frozen = conv(x, style), FrozenModulatedConv2d(conv)(x, style)
    assert frozen.shape == fused.shape
    assert torch.allclose(frozen, fused, atol=1e-5, rtol=1e-4)


def test_frozen_renderer_matches_and_leaves_the_model_alone():
    renderer = _trained_like_renderer()
    frozen = freeze_for_inference(renderer)
    inputs = dummy_inputs(renderer.cfg, batch=3)
    with torch.no_grad():
        reference, out = renderer(*inputs), frozen(*inputs)
    assert (out - reference).abs().max() < 1e-4
    assert not any(isinstance(m, ModulatedConv2d) for m in frozen.modules())
    assert any(isinstance(m, ModulatedConv2d) for m in renderer.modules())      # the original is untouched
    assert not any(p.requires_grad for p in frozen.parameters()) and not frozen.training


def test_bfloat16_rounds_but_does_not_change_the_picture():
    renderer = freeze_for_inference(_trained_like_renderer())
    inputs = dummy_inputs(renderer.cfg, batch=2)
    with torch.no_grad():
        full = renderer(*inputs)
        with render_precision("bfloat16", "cpu"):
            half = renderer(*inputs).float()
    mse = (half - full).pow(2).mean()
    assert 0 < mse and 10 * torch.log10(4 / mse) > 35          # PSNR on [-1, 1]: rounding, not a different image
    with pytest.raises(ValueError, match="render dtype"):
        render_precision("float16", "cpu")
