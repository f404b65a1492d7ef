"""The inference renderer computes what the training renderer computes (deadlib.model.inference)."""

from __future__ import annotations

import copy

import pytest
import torch

from deadlib.core.config import stage_config
from deadlib.model.audio_encoder import AudioResBlock
from deadlib.model.generator import (
    EqualConv2d,
    EqualLinear,
    ModulatedConv2d,
    StyledConv,
    ToRGB,
)
from deadlib.model.inference import (
    FROZEN_FORMS,
    FrozenModulatedConv2d,
    freeze_for_inference,
    freeze_module,
    masked_texels,
    render_precision,
)
from deadlib.model.renderer import Renderer, RendererConfig, dummy_inputs
from deadlib.model.texture import NeuralTexture


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


def _perturbed(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with every parameter moved off its initial value (zero biases hide folding errors)."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return module.eval()


LAYERS = {  # name → (training-form layer, its inputs)
    "equal_conv_act": (lambda: EqualConv2d(4, 6, 3), lambda: (torch.randn(2, 4, 8, 8),)),
    "equal_conv_plain": (lambda: EqualConv2d(4, 6, 1, bias=False, activate=False), lambda: (torch.randn(2, 4, 8, 8),)),
    "equal_conv_strided": (lambda: EqualConv2d(4, 6, 3, stride=(2, 1)), lambda: (torch.randn(2, 4, 8, 8),)),
    "equal_linear_act": (lambda: EqualLinear(5, 7, activate=True), lambda: (torch.randn(3, 5),)),
    "equal_linear": (lambda: EqualLinear(5, 7, bias_init=1.0), lambda: (torch.randn(3, 5),)),
    "styled_conv": (lambda: StyledConv(4, 6, 8), lambda: (torch.randn(2, 4, 8, 8), torch.randn(2, 8))),
    "styled_conv_up": (lambda: StyledConv(4, 6, 8, upsample=True), lambda: (torch.randn(2, 4, 8, 8), torch.randn(2, 8))),
    "to_rgb_skip": (lambda: ToRGB(4, 8), lambda: (torch.randn(2, 4, 8, 8), torch.randn(2, 8), torch.randn(2, 3, 4, 4))),
    "audio_res_block": (lambda: AudioResBlock(4, 6, (2, 1)), lambda: (torch.randn(2, 4, 8, 8),)),
    "audio_res_block_identity": (lambda: AudioResBlock(4, 4), lambda: (torch.randn(2, 4, 8, 8),)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_each_frozen_form_computes_the_training_form(name):
    torch.manual_seed(2)
    make, inputs = LAYERS[name]
    layer = _perturbed(make())
    frozen = freeze_module(copy.deepcopy(layer))                     # freeze_module converts in place
    args = inputs()
    originals = [a.clone() for a in args]
    with torch.no_grad():
        reference, out = layer(*args), frozen(*args)
    assert type(frozen) is FROZEN_FORMS[type(layer)]
    assert out.shape == reference.shape
    assert torch.allclose(out, reference, atol=1e-5, rtol=1e-4), (out - reference).abs().max()
    assert all(torch.equal(a, b) for a, b in zip(args, originals))    # in-place steps never touch the inputs


def test_frozen_renderer_matches_and_leaves_the_model_alone():
    renderer = _trained_like_renderer()
    frozen = freeze_for_inference(renderer)
    inputs = dummy_inputs(renderer.cfg, batch=3)
    with torch.no_grad():
        reference, out = renderer(*inputs), frozen(*inputs)
    assert (out - reference).abs().max() < 1e-4
    assert not any(type(m) in FROZEN_FORMS for m in frozen.modules())      # every layer in its frozen form
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


def test_masked_texels_are_the_texture_lookup_at_the_mask():
    torch.manual_seed(3)
    texture = _perturbed(NeuralTexture(channels=5, size=32, levels=3))
    uv = torch.rand(2, 3, 16, 16, 2) * 1.2 - 0.1                       # (B, T, H, W, 2), some outside [0, 1]
    mask = (torch.rand(2, 3, 16, 16) > 0.6).float()
    with torch.no_grad():
        reference, out = texture(uv, mask), masked_texels(texture, uv, mask)
    assert out.shape == reference.shape == (2, 3, 5, 16, 16)
    assert torch.allclose(out, reference, atol=1e-6) and reference.abs().sum() > 0
    assert torch.equal(out * (1 - mask[:, :, None]), torch.zeros_like(out))          # nothing off the mask
    assert torch.equal(masked_texels(texture, uv, torch.zeros_like(mask)), torch.zeros_like(reference))
