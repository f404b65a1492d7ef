"""Per-person speaking style: the paper's final layer on top of the pre-trained model (§3.4).

DEAD adapts the generic audio-to-expression model to a new actor "by adding a final layer that
independently applies a linear transformation for each expression and jaw pose parameter" and
training only that layer. Here: ``expr_out[..., k] = scale[k] · expr_in[..., k] + bias[k]``,
2K parameters, initialised to the identity. Because the base is frozen (and in eval mode), its
output on the person's clips is computed once and the layer is fitted on those cached outputs —
the same optimisation as back-propagating through the frozen network, minus the cost.

Speaker adaptation (not in the paper, measured): before the style layer, ``fine_tune_base`` trains
a COPY of the whole generic model for a few hundred small steps on the person's own frames (the
generic model is never changed): the style layer alone cannot change *when* the mouth moves,
only how far. Measured on real speakers the generic model never heard, adapted on 250 frames and
scored on speech after them (``deadlib.audio2expr.crossval --adapt``: the real pipeline's
``audio2expr_crossval`` stage records it). Under
``audio2expr.style.finetune.min_frames`` usable frames the fine-tune is skipped (style layer only).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn as nn

from deadlib.audio2expr.losses import MouthBasis, expression_loss
from deadlib.audio2expr.model import (
    Audio2ExprConfig,
    Audio2Expression,
    Audio2ExpressionEnsemble,
    Audio2ExprTrainConfig,
    predict,
    train_audio2expr,
    windowed_clips,
)


class StyleLayer(nn.Module):
    """Independent affine map per coefficient: (..., K) → (..., K); starts as the identity."""

    def __init__(self, k: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(k))  # (K,)
        self.bias = nn.Parameter(torch.zeros(k))  # (K,)

    def forward(self, expr: torch.Tensor) -> torch.Tensor:
        return expr * self.scale + self.bias


class PersonalisedAudio2Expression(nn.Module):
    """The pre-trained ``base`` followed by one person's ``StyleLayer`` (same call as the base)."""

    def __init__(self, base: Audio2Expression | Audio2ExpressionEnsemble, style: StyleLayer | None = None):
        super().__init__()
        self.base = base
        self.style = style if style is not None else StyleLayer(base.config.K)
        if self.style.scale.numel() != base.config.K:
            raise ValueError(f"style layer has {self.style.scale.numel()} coefficients, "
                             f"the base K={base.config.K}")

    @property
    def config(self) -> Audio2ExprConfig:
        return self.base.config

    def forward(self, windows: torch.Tensor, start: torch.Tensor | int = 0) -> torch.Tensor:
        return self.style(self.base(windows, start))  # (B, N, K)


def freeze_all_but_style(model: PersonalisedAudio2Expression) -> list[nn.Parameter]:
    """Freeze the base (requires_grad False, eval mode); return the style layer's parameters."""
    model.base.requires_grad_(False)
    model.base.eval()
    model.style.requires_grad_(True)
    return list(model.style.parameters())


def fit_style_layer(model: PersonalisedAudio2Expression, clips: list[tuple[np.ndarray, np.ndarray]],
                    steps: int = 300, lr: float = 0.05, basis: MouthBasis | None = None,
                    w_coef: float = 1.0, w_vel: float = 0.0, w_vertex: float = 0.0, prior_frames: float = 0.0,
                    device: torch.device | str | None = None) -> dict[str, list[float]]:
    """Train ONLY the style layer on one person's (mel (M, 80), expr (N, K)) clips.

    Full-batch Adam over all frames. ``prior_frames``: the generic model's own predictions count
    as that many extra frames of targets (the same loss, pulling the layer toward the identity map
    in the data's units), so a fit on few frames stays near the generic model and one on many
    follows the person. Raises RuntimeError if any base weight or buffer changed (it cannot, by
    construction; the check guards future edits). Returns the loss history.
    """
    if not isinstance(model, PersonalisedAudio2Expression):
        raise TypeError("fit_style_layer needs a PersonalisedAudio2Expression(base, StyleLayer(K))")
    if not clips:
        raise ValueError("no clips of the person given")
    device = device or next(model.parameters()).device
    model.to(device)
    before = {k: v.detach().clone() for k, v in model.base.state_dict().items()}
    params = freeze_all_but_style(model)
    base_out = [torch.from_numpy(predict(model.base, mel, len(expr))).to(device) for mel, expr in clips]
    targets = [torch.as_tensor(np.asarray(expr), dtype=torch.float32, device=device) for _, expr in clips]
    opt = torch.optim.Adam(params, lr=lr)
    history: dict[str, list[float]] = {"loss": []}
    for _ in range(steps):
        total = torch.zeros((), device=device)
        n_frames = sum(len(t) for t in targets)
        for out, tgt in zip(base_out, targets):
            styled = model.style(out)
            loss, _ = expression_loss(styled, tgt, basis, w_coef, w_vel, w_vertex)
            total = total + loss * len(tgt)
            if prior_frames > 0:                 # pseudo-targets = the generic output, weight prior_frames in all
                keep, _ = expression_loss(styled, out, basis, w_coef, w_vel, w_vertex)
                total = total + keep * len(tgt) * prior_frames / n_frames
        total = total / n_frames
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        history["loss"].append(float(total.detach()))
    after = model.base.state_dict()
    changed = [k for k, v in before.items() if not torch.equal(v, after[k])]
    if changed:
        raise RuntimeError(f"fit_style_layer changed base weights {changed[:5]}; "
                           "only the style layer may train")
    return history


def fine_tune_base(base: Audio2Expression | Audio2ExpressionEnsemble, clips: list[tuple[np.ndarray, np.ndarray]], cfg: Audio2ExprTrainConfig,
                   basis: MouthBasis | None = None, device: torch.device | str | None = None
                   ) -> tuple[Audio2Expression, dict[str, list[float]]]:
    """A copy of ``base`` trained further on one person's (mel (M, 80), expr (N, K)) clips → (copy, history).

    Same loss, augmentation and schedule as pre-training (``cfg``: few steps, small lr). The copy
    keeps the generic closed-mouth target of silence (``base.neutral``), so a few frames of one
    person cannot teach it a new rest pose for silence; ``base`` itself is left untouched (checked).
    Clips shorter than ``cfg.window`` frames are left out. An ensemble is tuned member by member
    (same clips, same batches); its history is the members' mean loss per step."""
    if isinstance(base, Audio2ExpressionEnsemble):
        tuned = [fine_tune_base(member, clips, cfg, basis, device) for member in base.members]
        loss = np.mean([history["loss"] for _, history in tuned], axis=0)
        return Audio2ExpressionEnsemble([member for member, _ in tuned]).eval(), {"loss": loss.tolist()}
    usable = windowed_clips(clips, cfg.window)
    if not usable:
        raise ValueError(f"no clip of the person has {cfg.window} consecutive face frames to fine-tune on")
    before = {k: v.detach().clone() for k, v in base.state_dict().items()}
    tuned = copy.deepcopy(base).requires_grad_(True)
    device = device or next(base.parameters()).device
    history = train_audio2expr(tuned, usable, cfg, basis, device, neutral=base.neutral.detach().cpu().numpy())
    if any(not torch.equal(v, base.state_dict()[k]) for k, v in before.items()):
        raise RuntimeError("fine_tune_base changed the generic model; only its copy may train")
    return tuned.eval(), history
