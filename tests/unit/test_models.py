"""Renderer models and losses at smoke sizes: shapes, gradient flow, known inputs, determinism."""

from __future__ import annotations

import pytest
import torch
from support import SMOKE_RENDERER as SMOKE

from deadlib.model.audio_encoder import AudioEncoder
from deadlib.model.discriminator import minibatch_stddev
from deadlib.model.generator import Generator
from deadlib.model.renderer import (
    Renderer,
    RendererConfig,
    count_parameters,
    dummy_inputs,
    flops_per_frame,
    make_discriminator,
    make_texture_bank,
)
from deadlib.model.texture import NeuralTexture, TextureBank
from deadlib.model.vgg import (
    VGG19_FILENAME,
    WeightsUnavailable,
    load_vgg19_features,
    random_vgg19_features,
)
from deadlib.train.losses import (
    gram_matrix,
    lsgan_d_loss,
    lsgan_g_loss,
    r1_penalty,
    texture_regulariser,
    vgg_style_loss,
    weighted_l1,
)

B = 2


@pytest.fixture
def cfg() -> RendererConfig:
    return RendererConfig.from_dict(SMOKE)


def identity_uv(b: int, t: int, h: int) -> torch.Tensor:
    """UV map whose pixel (i, j) looks up u=(j+.5)/h, v=(i+.5)/h: (b, t, h, h, 2)."""
    centres = (torch.arange(h) + 0.5) / h
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack([u, v], -1).expand(b, t, h, h, 2).clone()


def window_inputs(cfg: RendererConfig, bank: TextureBank, identities: list[str]):
    """Renderer inputs for a batch whose texels are sampled from ``bank``."""
    torch.manual_seed(1)
    masked, _, mask, refs, mel = dummy_inputs(cfg, B)
    uv = torch.rand(B, cfg.window, cfg.resolution, cfg.resolution, 2)
    texels = bank(identities, uv, mask[:, :, 0])
    return masked, texels, mask, refs, mel


# --- texture ---------------------------------------------------------------------------------

def test_texture_shapes_and_zero_outside_mask():
    torch.manual_seed(0)
    tex = NeuralTexture(channels=16, size=32, levels=4)
    assert [tuple(p.shape) for p in tex.pyramid] == [(1, 16, s, s) for s in (32, 16, 8, 4)]
    uv = torch.rand(B, 3, 20, 24, 2)
    mask = torch.rand(B, 3, 20, 24) > 0.5
    out = tex(uv, mask)                                                # (B, T, C, H, W)
    assert out.shape == (B, 3, 16, 20, 24)
    assert torch.all(out.permute(0, 1, 3, 4, 2)[~mask] == 0)
    assert torch.all(out.permute(0, 1, 3, 4, 2)[mask] != 0)


def test_texture_constant_uv_returns_texel_value():
    torch.manual_seed(0)
    tex = NeuralTexture(channels=4, size=16, levels=3)
    with torch.no_grad():
        tex.pyramid[1].zero_()
        tex.pyramid[2].zero_()
    i, j = 3, 11                                                       # row (v from top), column (u)
    uv = torch.tensor([(j + 0.5) / 16, (i + 0.5) / 16]).expand(1, 5, 7, 2)
    out = tex(uv, torch.ones(1, 5, 7))
    expected = tex.pyramid[0][0, :, i, j].detach()
    assert torch.allclose(out, expected.view(1, 4, 1, 1).expand_as(out), atol=1e-6)
    # constant levels: the summed pyramid is the sum of the constants wherever it is sampled
    with torch.no_grad():
        for level, value in zip(tex.pyramid, (0.5, -0.25, 2.0)):
            level.fill_(value)
    out = tex(torch.rand(1, 5, 7, 2), torch.ones(1, 5, 7))
    assert torch.allclose(out, torch.full_like(out, 2.25))


def test_texture_bank_mixed_identities_and_add():
    torch.manual_seed(0)
    bank = TextureBank(["a", "b"], channels=5, size=16, levels=2)
    uv, mask = torch.rand(3, 2, 8, 8, 2), torch.rand(3, 2, 8, 8) > 0.3
    out = bank(["b", "a", "b"], uv, mask)
    assert out.shape == (3, 2, 5, 8, 8)
    assert torch.equal(out[1], bank["a"](uv[1:2], mask[1:2])[0])
    assert torch.equal(out[2], bank["b"](uv[2:3], mask[2:3])[0])
    new = bank.add("new_actor")
    assert bank.identities == ["a", "b", "new_actor"] and new.pyramid[0].std() > 0
    with pytest.raises(KeyError):
        bank.add("a")
    with pytest.raises(KeyError, match="add"):
        bank(["unknown"] * 3, uv, mask)
    with pytest.raises(ValueError, match="mask"):
        bank(["a"] * 3, uv, mask[..., :4])


def test_a_texture_can_start_from_the_mean_of_the_bank():
    """adapt.texture_init 'mean': the new person's texture is the prior textures' average, level by
    level (so its lookups are the average of theirs); an empty bank has nothing to average."""
    torch.manual_seed(0)
    bank = TextureBank(["a", "b", "c"], channels=4, size=16, levels=2)
    new = bank.add("new_actor", "mean")
    for level in range(2):
        expected = (bank["a"].pyramid[level] + bank["b"].pyramid[level] + bank["c"].pyramid[level]) / 3
        assert torch.allclose(new.pyramid[level], expected, atol=1e-7)
    uv, mask = torch.rand(2, 8, 8, 2), torch.ones(2, 8, 8, dtype=torch.bool)
    assert torch.allclose(new(uv, mask), sum(bank[k](uv, mask) for k in "abc") / 3, atol=1e-6)
    assert new.pyramid[0].requires_grad                      # a trainable copy, not a view of the others
    with pytest.raises(ValueError, match="empty"):
        TextureBank([], channels=4, size=16, levels=2).add("x", "mean")
    with pytest.raises(ValueError, match="one of"):
        bank.add("y", "median")


# --- shapes, range, gradients ----------------------------------------------------------------

def test_module_shapes_and_output_range(cfg):
    torch.manual_seed(0)
    enc = AudioEncoder(cfg.window, style_dim=cfg.style_dim, base_channels=cfg.audio_channels)
    assert enc(torch.randn(B, cfg.window, 80, 16)).shape == (B, cfg.style_dim)
    gen = Generator(64, 3, 1, 16, cfg.style_dim, 16, 128, bottleneck=4)
    assert gen.in_channels == 3 * (4 + 16) + 3
    y = gen(torch.randn(B, 3, 20, 64, 64), torch.randn(B, 1, 3, 64, 64), torch.randn(B, cfg.style_dim))
    assert y.shape == (B, 3, 3, 64, 64)
    renderer = Renderer(cfg)
    out = renderer(*dummy_inputs(cfg, B))
    assert out.shape == (B, cfg.window, 3, 64, 64)
    assert out.abs().max() <= 1 and out.std() > 0
    disc = make_discriminator(cfg)
    assert disc(out).shape == (B,)
    with pytest.raises(ValueError, match="mel must be"):
        renderer.audio(torch.randn(B, cfg.window, 80, 8))


def test_gradients_reach_texture_audio_and_every_generator_parameter(cfg):
    cfg = RendererConfig.from_dict({**SMOKE, "noise": True})
    torch.manual_seed(0)
    renderer, bank = Renderer(cfg), make_texture_bank(cfg, ["a", "b"])
    inputs = window_inputs(cfg, bank, ["a", "b"])
    target = torch.rand(B, cfg.window, 3, 64, 64) * 2 - 1
    (renderer(*inputs) - target).abs().mean().backward()
    for name in ("a", "b"):
        for level, p in enumerate(bank[name].pyramid):
            assert p.grad is not None and p.grad.abs().sum() > 0, f"texture {name} level {level}"
    for name, p in renderer.named_parameters():                        # audio + every generator block
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient for {name}"
    assert any(n.startswith("audio.") for n, _ in renderer.named_parameters())
    assert any(".noise." in n for n, _ in renderer.named_parameters())


def test_discriminator_gradients_and_every_frame_matters(cfg):
    torch.manual_seed(0)
    disc = make_discriminator(cfg)
    frames = torch.rand(B, cfg.window, 3, 64, 64) * 2 - 1
    score = disc(frames)
    for t in (0, cfg.window - 1):
        bumped = frames.clone()
        bumped[:, t] += 0.3 * torch.randn_like(bumped[:, t])
        assert not torch.allclose(disc(bumped), score), f"score ignores frame {t}"
    score.sum().backward()
    for name, p in disc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient for {name}"
    x = torch.randn(4, 8, 4, 4)
    assert torch.equal(minibatch_stddev(x)[:, :8], x) and minibatch_stddev(x).shape == (4, 9, 4, 4)
    assert torch.all(minibatch_stddev(x[:1])[:, 8] < 1e-3)             # B=1: no variation


def test_output_depends_on_audio_and_references(cfg):
    torch.manual_seed(0)
    renderer = Renderer(cfg).eval()
    masked, texels, mask, refs, mel = dummy_inputs(cfg, B)
    with torch.no_grad():
        out = renderer(masked, texels, mask, refs, mel)
        out_mel = renderer(masked, texels, mask, refs, torch.randn_like(mel))
        out_ref = renderer(masked, texels, mask, torch.rand_like(refs) * 2 - 1, mel)
        out_tex = renderer(masked, texels + 0.5, mask, refs, mel)
    assert (out - out_mel).abs().max() > 1e-4
    assert (out - out_ref).abs().max() > 1e-4
    assert (out - out_tex).abs().max() > 1e-4


def test_determinism_under_seed(cfg):
    def build():
        torch.manual_seed(123)
        return Renderer(cfg), make_discriminator(cfg), make_texture_bank(cfg, ["x"])

    (r1, d1, t1), (r2, d2, t2) = build(), build()
    for m1, m2 in ((r1, r2), (d1, d2), (t1, t2)):
        s1, s2 = m1.state_dict(), m2.state_dict()
        assert s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)
    inputs = dummy_inputs(cfg, B)
    with torch.no_grad():
        assert torch.equal(r1(*inputs), r2(*inputs))
        assert torch.equal(d1(inputs[0]), d2(inputs[0]))


def test_config_from_dict_and_cost_estimates(cfg):
    assert RendererConfig.from_dict({**SMOKE, "lr": 1e-3, "steps": 5}) == cfg
    assert RendererConfig.from_dict(None) == RendererConfig()
    with pytest.raises(ValueError, match="power of two"):
        RendererConfig(resolution=100)
    with pytest.raises(ValueError, match="divisible"):
        RendererConfig(texture_size=4, texture_levels=4)
    renderer = Renderer(cfg)
    n = count_parameters(renderer)
    assert n == count_parameters(renderer.audio) + count_parameters(renderer.generator) > 0
    fpf = flops_per_frame(renderer, cfg)
    assert 1e7 < fpf < 1e10


# --- losses ----------------------------------------------------------------------------------

def test_texture_regulariser_zero_iff_texture_rgb_matches_target():
    torch.manual_seed(0)
    tex = NeuralTexture(channels=6, size=16, levels=2)
    with torch.no_grad():
        tex.pyramid[1].zero_()
    uv = identity_uv(1, 2, 16)                                          # pixel centre = texel centre
    mask = torch.zeros(1, 2, 16, 16)
    mask[..., 4:12, 2:10] = 1
    texels = tex(uv, mask)                                             # (1, 2, 6, 16, 16)
    colours = tex.pyramid[0][0, :3].detach()                           # (3, 16, 16)
    target = torch.rand(1, 2, 3, 16, 16) * 2 - 1                       # arbitrary off the mask
    target = torch.where(mask.bool().unsqueeze(2), colours.expand_as(target), target)
    assert texture_regulariser(texels, target, mask.unsqueeze(2)).item() == 0.0
    assert texture_regulariser(texels, target, mask).item() == 0.0     # (*, H, W) mask too
    target[0, 1, 0, 6, 5] += 0.5                                       # inside the mask
    reg = texture_regulariser(texels, target, mask)
    assert reg.item() == pytest.approx(0.5 / (mask.sum().item() * 3), rel=1e-4)


def test_lsgan_losses_known_values():
    ones, zeros = torch.ones(4), torch.zeros(4)
    assert lsgan_d_loss(ones, zeros).item() == 0.0
    assert lsgan_d_loss(zeros, ones).item() == pytest.approx(1.0)
    assert lsgan_d_loss(torch.tensor([3.0]), torch.tensor([2.0])).item() == pytest.approx(0.5 * (4 + 4))
    assert lsgan_g_loss(ones).item() == 0.0
    assert lsgan_g_loss(zeros).item() == pytest.approx(0.5)


def test_weighted_l1_emphasises_mouth():
    target = torch.zeros(1, 3, 3, 8, 8)
    mouth = torch.zeros(1, 3, 1, 8, 8)
    mouth[..., 5:7, 2:6] = 1
    weight = 1 + 10 * mouth
    err_in, err_out = target.clone(), target.clone()
    err_in[0, 1, :, 6, 3] = 1.0                                        # same error, inside the mouth
    err_out[0, 1, :, 1, 1] = 1.0                                       # ... and outside
    assert weighted_l1(err_in, target, weight) > 5 * weighted_l1(err_out, target, weight) > 0
    pred = torch.randn(2, 3, 3, 8, 8)
    assert torch.allclose(weighted_l1(pred, target, torch.full_like(mouth, 4.0)), (pred - target).abs().mean())


def test_vgg_style_loss_with_random_features():
    vgg = random_vgg19_features(seed=0)
    assert all(not p.requires_grad for p in vgg.parameters())
    assert len(vgg(torch.randn(1, 3, 32, 32))) == 4
    x = (torch.rand(1, 2, 3, 32, 32) * 2 - 1).requires_grad_()
    y = torch.rand(1, 2, 3, 32, 32) * 2 - 1
    assert vgg_style_loss(vgg, x.detach(), x.detach()).item() == 0.0
    loss = vgg_style_loss(vgg, x, y)
    assert loss.item() > 0
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    g = gram_matrix(torch.ones(2, 3, 4, 4))
    assert g.shape == (2, 3, 3) and torch.allclose(g, torch.full_like(g, 1 / 3))


def test_vgg_weights_unavailable_never_downloads(tmp_path, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    with pytest.raises(WeightsUnavailable, match=str(tmp_path)):
        load_vgg19_features(None, hub_dir=str(tmp_path))
    with pytest.raises(WeightsUnavailable, match="missing.pth"):
        load_vgg19_features(tmp_path / "missing.pth")


def test_vgg_loads_torchvision_checkpoint_from_hub_cache(tmp_path):
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    trunk = make_layers(cfgs["E"])
    state = {f"features.{k}": v for k, v in trunk.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(1)                      # ignored
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / "checkpoints" / VGG19_FILENAME)
    vgg = load_vgg19_features(None, hub_dir=str(tmp_path))
    assert torch.equal(vgg.slices[0][0].weight, trunk[0].weight)
    assert torch.equal(vgg.slices[3][-2].weight, trunk[25].weight)     # conv4_4
    assert not vgg.train().training


def test_r1_penalty_known_value():
    x = torch.randn(3, 5, requires_grad=True)
    scores = (2 * x).sum(1)                                            # ∇ = 2 everywhere
    assert r1_penalty(scores, x).item() == pytest.approx(4 * 5)
