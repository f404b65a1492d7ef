"""Settings of the adaptation study (§3.3, §4.3–4.4): the ``adapt``, ``study`` and ``evaluate``
sections of params.yaml, the names of the study's cells and their step budgets.

params.yaml is authoritative. ``STUDY_PARAMS_YAML`` is the text these sections have there; it is
used (with a warning) only when a params file lacks a section, so the stage code and notebooks
run against an older params.yaml too.
"""

from __future__ import annotations

import re

import os
import warnings
from typing import Any, Mapping

import yaml

from .config import ConfigError, load_params, stage_config

METHODS = ("prior", "scratch")

STUDY_PARAMS_YAML = """
# Adaptation to a held-out actor (§3.3, deadlib.adapt): a fresh texture, the renderer initialised
# from the prior (method prior) or from scratch (method scratch = the baseline), trained on the
# first N train frames of the actor. Keys of train_prior (deadlib.train.TrainConfig) plus:
#   mixed_ratio          generic prior windows per actor window (1.0 = the paper's 1:1 mixing;
#                        0 = ablation "w/o mixed data"); scratch_mixed_ratio: the same for the
#                        baseline (0: renderer + texture trained on the actor's frames only)
#   steps_by_n           step budget per N, EQUAL for prior and scratch; an N between entries
#                        takes the budget of the largest listed N below it (by_profile tables
#                        MERGE into this one: list every N there)
#   adv_start_fraction   the GAN terms start after this share of the budget
adapt:
  mixed_ratio: 1.0
  scratch_mixed_ratio: 0.0
  # ≈ 0.85 s/step at batch 4 on 2 idle cores (default profile): N=100 → 200 steps ≈ 3 min + evaluation
  steps_by_n: {25: 150, 50: 150, 100: 200, 250: 250, 500: 300, 1000: 350}
  adv_start_fraction: 0.5
  batch_size: 4
  lr_g: 0.001                # as train_prior (2e-3 can saturate the output tanh)
  # The audio encoder's layers are equalised-lr (like the generator's): one learning rate (null = lr_g)
  lr_audio: null
  divergence_factor: 10
  lr_d: 0.002
  lr_texture: 0.01
  betas: [0.5, 0.999]
  lambda_l1: 1.0
  lambda_vgg: 1.0
  lambda_reg: 0.5
  lambda_adv: 0.05
  r1_gamma: 0.0
  r1_every: 16
  amp: false
  log_every: 10
  eval_every: 100
  ckpt_every: 100
  n_val_windows: 8
  n_samples: 4
  num_workers: 0
  vgg_weights: null
  hub_dir: null
  by_profile:
    smoke: {steps_by_n: {25: 6, 50: 8, 100: 10, 250: 10, 500: 10, 1000: 10}, batch_size: 2, log_every: 1,
            eval_every: 4, ckpt_every: 4, n_val_windows: 4}
    full: {steps_by_n: {25: 3000, 50: 3000, 100: 5000, 250: 8000, 500: 10000, 1000: 15000}, batch_size: 16,
           amp: true, log_every: 50, eval_every: 1000, ckpt_every: 1000, n_val_windows: 32, num_workers: 8}

# The data-size study (Table 4 / Fig. 7) and the ablations (Table 3). dvc.yaml's `adapt` matrix
# iterates over the BASE lists below (DVC cannot read by_profile): for the smoke study run
#   dvc exp run -S profile=smoke -S 'study.identities=[synth_h00]' -S 'study.sizes=[25,50]' -S study.ablation_size=25
# The by_profile lists are what deadlib.study expects when it aggregates under a profile.
# The default lists run ONE held-out actor (14 cells, ≈ 70 min on 2 CPU cores); the paper-style
# study over all three is  dvc exp run -S 'study.identities=[synth_h00,synth_h01,synth_h02]'
study:
  identities: [synth_h00]
  sizes: [25, 50, 100, 250, 500, 1000]
  methods: [prior, scratch]
  ablation_size: 100          # Table 3 uses the 100-frame setting
  table_sizes: [100, 1000]    # Table 1-style columns
  by_profile:
    smoke: {identities: [synth_h00], sizes: [25, 50], ablation_size: 25, table_sizes: [25, 50]}

# Reconstruction-mode evaluation on the actor's test part (last test_seconds; deadlib.evaluate).
#   blend        paste-back method (deadlib.blend): laplacian | feather | none (= "w/o post-processing")
#   paste_mask   crop region pasted back: face | lower
#   frame_max_side   full-frame metrics on frames downscaled to at most this side
#   lmd_max_frames   FaceMesh runs on at most this many evenly spaced test frames (LMD, sync)
#   *_weights    offline Inception-v3 / I3D weights; null → FID / FVD are null with the reason
evaluate:
  blend: laplacian
  paste_mask: face
  feather_px: 6
  frame_max_side: 512
  lmd_max_frames: 250
  lmd_upscale: 256
  fvd_clip: 16
  inception_weights: null
  i3d_weights: null
  hub_dir: null
  batch_size: 8
  n_sample_frames: 4
  video_seconds: 4
  raw_dir: null               # folder of the source videos; null → the path prepare recorded
  by_profile:
    smoke: {lmd_max_frames: 50, video_seconds: 2, batch_size: 4}
"""


def fallback_params() -> dict:
    """The three sections as a params mapping (``STUDY_PARAMS_YAML``)."""
    return yaml.safe_load(STUDY_PARAMS_YAML)


def section(name: str, profile: str | None = None, params_path: str | os.PathLike | None = None,
            params: Mapping | None = None) -> dict:
    """``stage_config(name, profile)`` of params.yaml; the built-in section when the file lacks it."""
    params = dict(params) if params is not None else load_params(params_path)
    if name not in params:
        fallback = fallback_params()
        if name not in fallback:
            raise ConfigError(f"params.yaml has no section {name!r}")
        warnings.warn(f"params file has no {name!r} section; using deadlib.study_config defaults "
                      f"(add the section to params.yaml)", RuntimeWarning, stacklevel=2)
        params[name] = fallback[name]
    return stage_config(name, profile, params=params)


def step_budget(n_frames: int, steps_by_n: Mapping[Any, int]) -> int:
    """Optimiser steps for an actor dataset of ``n_frames``: the entry of the largest listed N
    ≤ n_frames (the smallest entry below the table). Same for prior and scratch."""
    if not steps_by_n:
        raise ConfigError("adapt.steps_by_n is empty; give at least one {N: steps} entry")
    table = sorted((int(k), int(v)) for k, v in steps_by_n.items())
    below = [steps for n, steps in table if n <= n_frames]
    return below[-1] if below else table[0][1]


def cell_name(method: str, identity: str, n_frames: int, variant: str | None = None) -> str:
    """File-system name of one study cell, e.g. ``prior_synth_h00_n100`` (+ ``_nomix``)."""
    if method not in METHODS:
        raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
    return f"{method}_{identity}_n{int(n_frames)}" + (f"_{variant}" if variant else "")


def parse_cell_name(name: str) -> dict | None:
    """Inverse of :func:`cell_name`: {method, identity, n_frames, variant} (None: not a cell name)."""
    match = re.fullmatch(rf"(?P<method>{'|'.join(METHODS)})_(?P<identity>.+)_n(?P<n>\d+)(?:_(?P<variant>[a-z]+))?", name)
    if not match:
        return None
    return {"method": match["method"], "identity": match["identity"], "n_frames": int(match["n"]),
            "variant": match["variant"]}
