"""Losses and metrics on per-frame expression coefficients (B, N, K) (§3.4).

* ``coef_l2`` / ``coef_l1``: error of the coefficients themselves.
* ``velocity_loss``: squared difference of the first temporal derivatives (FaceFormer/Imitator's
  motion term) — penalises jitter and lag without caring about a constant offset.
* ``mouth_vertex_loss`` / ``lip_vertex_error``: coefficients are decoded through the face model's
  linear basis to the mouth vertices, so errors are measured where they are seen. The metric
  follows FaceFormer/VOCA: ``lve_max`` = mean over frames of the largest per-vertex L2 error,
  ``lve_mean`` = mean over frames and vertices of the per-vertex L2 error (units of the basis).

The basis contract (``MouthBasis``) is only the linear model of the face: mouth vertices of a
frame = ``(mean + expr @ components).reshape(V_all, 3)[mouth_ids]``; nothing else of the 3D face
model is assumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class MouthBasis:
    """The mouth part of a linear face basis: vertices = mean + expr @ components (torch)."""

    mean: torch.Tensor  # (V, 3) mouth vertices of the zero expression
    components: torch.Tensor  # (K, V, 3) per-coefficient displacement of the mouth vertices

    @classmethod
    def from_linear(cls, mean: np.ndarray | torch.Tensor, components: np.ndarray | torch.Tensor,
                    mouth_ids: np.ndarray | torch.Tensor,
                    device: torch.device | str = "cpu") -> "MouthBasis":
        """Cut the mouth rows out of a full basis: mean (V_all*3,), components (K, V_all*3)."""
        mean_t = torch.as_tensor(np.asarray(mean), dtype=torch.float32).reshape(-1, 3)  # (V_all, 3)
        comps = torch.as_tensor(np.asarray(components), dtype=torch.float32)
        if comps.ndim != 2 or comps.shape[1] != mean_t.numel():
            raise ValueError(f"components must be (K, {mean_t.numel()}) to match mean "
                             f"{tuple(mean_t.shape)}, got {tuple(comps.shape)}")
        ids = torch.as_tensor(np.asarray(mouth_ids), dtype=torch.long)
        if ids.numel() == 0 or int(ids.min()) < 0 or int(ids.max()) >= len(mean_t):
            raise ValueError(f"mouth_ids must index the {len(mean_t)} vertices of the basis")
        comps = comps.reshape(len(comps), len(mean_t), 3)[:, ids]  # (K, V, 3)
        return cls(mean=mean_t[ids].to(device), components=comps.to(device))

    @property
    def n_coeffs(self) -> int:
        return self.components.shape[0]

    def to(self, device: torch.device | str) -> "MouthBasis":
        return MouthBasis(self.mean.to(device), self.components.to(device))

    def vertices(self, expr: torch.Tensor) -> torch.Tensor:
        """(..., K) coefficients → (..., V, 3) mouth vertices."""
        if expr.shape[-1] != self.n_coeffs:
            raise ValueError(f"expr has {expr.shape[-1]} coefficients, the basis {self.n_coeffs}")
        return self.mean + torch.einsum("...k,kvc->...vc", expr, self.components)


def coef_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared coefficient error (scalar)."""
    return F.mse_loss(pred, target)


def coef_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute coefficient error (scalar)."""
    return F.l1_loss(pred, target)


def velocity_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of first temporal derivatives along dim -2 (time) of (..., N, K).

    Zero for any pair of constant sequences and for ``pred = target + c``; 0 when N < 2.
    """
    if pred.shape[-2] < 2:
        return pred.new_zeros(())
    dp = pred[..., 1:, :] - pred[..., :-1, :]  # (..., N-1, K)
    dt = target[..., 1:, :] - target[..., :-1, :]
    return F.mse_loss(dp, dt)


def mouth_vertex_loss(pred: torch.Tensor, target: torch.Tensor, basis: MouthBasis) -> torch.Tensor:
    """Mean squared mouth-vertex error (scalar); the basis mean cancels out."""
    diff = torch.einsum("...k,kvc->...vc", pred - target, basis.components)  # (..., V, 3)
    return diff.pow(2).sum(-1).mean()


def lip_vertex_error(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray,
                     basis: MouthBasis) -> dict[str, float]:
    """{'lve_mean', 'lve_max'} of (..., N, K) coefficient sequences (see module docstring)."""
    pred_t = torch.as_tensor(pred, dtype=torch.float32).detach()
    tgt_t = torch.as_tensor(target, dtype=torch.float32).detach()
    if pred_t.shape != tgt_t.shape:
        raise ValueError(f"pred {tuple(pred_t.shape)} and target {tuple(tgt_t.shape)} differ in shape")
    comps = basis.components.to(pred_t.device)
    with torch.no_grad():
        dist = torch.einsum("...k,kvc->...vc", pred_t - tgt_t, comps).norm(dim=-1)  # (..., N, V)
    return {"lve_mean": float(dist.mean()), "lve_max": float(dist.amax(-1).mean())}


def expression_loss(pred: torch.Tensor, target: torch.Tensor, basis: MouthBasis | None = None,
                    w_coef: float = 1.0, w_vel: float = 1.0,
                    w_vertex: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the terms above → (loss, {term: value}); the vertex term needs a basis."""
    terms = {"coef": coef_l2(pred, target), "vel": velocity_loss(pred, target)}
    total = w_coef * terms["coef"] + w_vel * terms["vel"]
    if w_vertex > 0:
        if basis is None:
            raise ValueError("w_vertex > 0 needs a MouthBasis (pass basis=MouthBasis.from_linear(...))")
        terms["vertex"] = mouth_vertex_loss(pred, target, basis)
        total = total + w_vertex * terms["vertex"]
    return total, {k: float(v.detach()) for k, v in terms.items()}
