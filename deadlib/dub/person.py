"""The per-video side of dubbing: a cached prepared copy of the video, and 'adapt-now'.

``prepare_cached`` runs the prepare stage's two phases on one video (``deadlib.data.prepare.prepare_video``
with the corpus expression basis) into ``<cache_dir>/<sha256[:16]>_<settings hash>/prep/dub_<sha>/``;
the folder is reused while the video bytes, the prepare settings and the basis stay the same. The
prepare stage needs an audio track, so a silent video is first re-encoded with a silent one.
The dub cache has no test part (``test_seconds: 0``): every frame is a "train" frame.

``adapt_now`` adapts the prior renderer to that video (``deadlib.train.adapt.adapt``: fresh texture,
renderer initialised from the prior, generic prior windows mixed in at ``dub.adapt.mixed_ratio`` when
the prior identities' prepared caches are found under ``prior_cache``), and fits the person's
audio-to-expression on the video's own speech (``fit_person``: a fine-tuned copy of the generic model
+ the style layer). Both are cached beside the prepared copy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

import numpy as np

from deadlib.audio2expr.stage import (
    a2e_settings,
    basis_digest,
    fit_person,
    save_style,
)
from deadlib.core.config import resolve_device
from deadlib.core.files import write_json
from deadlib.data import face3d
from deadlib.data.prepare import PrepareError, prepare_video
from deadlib.data.track import TrackError
from deadlib.data.video import FPS, SAMPLE_RATE, MediaError, iter_frames, write_video
from deadlib.dub.inputs import (
    DubCheckpointError,
    DubInputError,
    inspect_checkpoint,
    sha256_file,
)
from deadlib.dub.render import even_frame
from deadlib.model.inference import render_precision

if TYPE_CHECKING:
    from deadlib.train.checkpoint import TrainConfig


def _silent_copy(video: Path, dest: Path, max_frames: int) -> None:
    """A copy of a video without audio, with a silent track (the prepare stage needs one)."""
    n = sum(1 for _ in iter_frames(video, fps=FPS, max_frames=max_frames))
    frames = (even_frame(f) for f in iter_frames(video, fps=FPS, max_frames=max_frames))
    write_video(dest, frames, FPS, audio=np.zeros(max(1, round(n / FPS * SAMPLE_RATE)), np.float32),
                sample_rate=SAMPLE_RATE, crf=12)


def prepare_cached(video: Path, prep_cfg: Mapping, basis: face3d.ExpressionBasis, cache_dir: Path,
                   has_audio: bool, max_frames: int) -> tuple[Path, dict]:
    """Prepared cache folder of ``video`` (made once per video SHA-256 + settings) and its info."""
    vhash = sha256_file(video)
    key = hashlib.sha256((json.dumps(prep_cfg, sort_keys=True, default=str) + basis_digest(basis)).encode())
    root = cache_dir / f"{vhash[:16]}_{key.hexdigest()[:8]}"
    name = f"dub_{vhash[:12]}"
    folder = root / "prep" / name
    ready = root / "ready.json"
    if ready.is_file() and folder.is_dir():
        return folder, json.loads(ready.read_text())
    (root / "src").mkdir(parents=True, exist_ok=True)
    src = root / "src" / f"{name}{video.suffix.lower() if has_audio else '.mp4'}"
    src.unlink(missing_ok=True)
    if has_audio:
        try:
            src.symlink_to(video.resolve())
        except OSError:
            shutil.copyfile(video, src)
    else:
        _silent_copy(video, src, max_frames)
    try:
        prepare_video(src, root / "prep", prep_cfg, basis)
    except (PrepareError, TrackError, face3d.Face3DError) as err:
        raise DubInputError(f"--video {video}: {err}") from err
    except MediaError as err:
        raise DubInputError(f"--video {video}: {err}") from err
    info = {"video": str(video), "sha256": vhash, "name": name, "has_audio": has_audio}
    write_json(ready, info)  # atomically: a dub killed here must not leave a half-written marker
    return folder, info


def _digest(*parts) -> str:
    """Short hash of JSON-able settings (cache keys)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def adapt_now_config(adapt_cfg: Mapping, profile: str | None, params: Mapping) -> TrainConfig:
    """adapt-now's training settings: the ``adapt`` section's, with ``dub.adapt``'s ``steps`` (the GAN
    terms start at the same share of them) and ``texture_init`` (null: the ``adapt`` section's), and no
    step selection: its "validation" is its own adaptation frames (``adapt_now`` below), nothing to
    choose a step on, so it is scored once, at the last step (a progress figure; evaluating does not
    change the weights, see tests/unit/test_train.py)."""
    from deadlib.train.adapt import adapt_config

    cfg, _ = adapt_config(profile, None, params=params)
    if adapt_cfg.get("steps") is not None:
        steps = int(adapt_cfg["steps"])
        start = int(round(cfg.loss.adv_start_step / max(cfg.steps, 1) * steps))  # same share of the budget
        cfg = dataclasses.replace(cfg, steps=steps, loss=dataclasses.replace(cfg.loss, adv_start_step=start))
    if adapt_cfg.get("texture_init") is not None:
        cfg = dataclasses.replace(cfg, texture_init=str(adapt_cfg["texture_init"]))
    return dataclasses.replace(cfg, select_metric=None, patience=0, eval_every=max(cfg.steps, 1))


def adapt_now(folder: Path, info: dict, prior: Path, dub_cfg: Mapping, profile: str | None, params: Mapping,
              a2e, basis: face3d.ExpressionBasis, progress: bool,
              on_step: Callable[[int, int], None] | None = None) -> tuple[Path, Path | None]:
    """Adapt the prior to this video with ``deadlib.train.adapt.adapt`` → (checkpoint, style file or None).
    ``on_step(step, steps)`` after every training step; raising from it stops the adaptation, whose
    folder keeps its last checkpoint: the next dub of the same video resumes there."""
    from deadlib.data.dataset import WindowDataset
    from deadlib.train.adapt import adapt

    name, adapt_cfg = info["name"], dub_cfg["adapt"]
    n_frames = int(adapt_cfg["frames"])
    cfg = adapt_now_config(adapt_cfg, profile, params)
    train_dtype = str(adapt_cfg.get("train_dtype", "float32"))
    prior_cache = Path(dub_cfg["prior_cache"]) if dub_cfg.get("prior_cache") else None
    prior_names = inspect_checkpoint(prior, cfg.renderer, cfg.profile, "--prior")["identities"]
    usable = [n for n in prior_names if prior_cache and (prior_cache / n / "report.json").is_file()]
    ratio = float(adapt_cfg["mixed_ratio"]) if usable else 0.0
    if adapt_cfg["mixed_ratio"] and not usable:
        warnings.warn(f"adapt-now: no prepared prior videos under {prior_cache}; adapting without mixed "
                      "generic data (mixed_ratio 0)", RuntimeWarning, stacklevel=2)

    def make(cache_root, names, split, window, n_refs, seed, n_train_frames=None, ref_split=None):
        mine = list(names) == [name]
        root = folder.parent if mine else prior_cache
        # the video to dub is not a study: its "validation" is its own adaptation frames (a progress
        # figure, never a choice), so every window of it comes from the first n_frames
        split, ref_split = ("train", None) if mine else (split, ref_split)
        n = n_frames if mine else n_train_frames
        return WindowDataset(root, list(names), split=split, n_train_frames=n, window=window, n_refs=n_refs,
                             seed=seed, ref_split=ref_split)

    # The folder name carries everything the adapted renderer depends on, so a retrained prior or
    # changed adapt params never reuse a stale adaptation (adapt() resumes whatever it finds there).
    # (float32 keeps the key it always had, so earlier adaptations stay reusable)
    run_key = _digest(sha256_file(prior), cfg.to_dict(), sorted(usable or prior_names),
                      *([train_dtype] if train_dtype != "float32" else []))
    out_dir = folder.parent.parent / f"adapt_n{n_frames}_s{cfg.steps}_m{ratio:g}_{run_key}"
    finished = out_dir / "adapt_now.json"  # written once the adaptation has run all its steps
    if not (finished.is_file() and (out_dir / "checkpoint.pt").is_file()):
        # a dub of an adapted video skips this: adapt() would build the generic datasets and load the
        # checkpoint only to find nothing left to train (seconds per dub)
        # dub.adapt.train_dtype bfloat16: every forward and backward of the adaptation under bfloat16
        # autocast (the weights, optimiser states and checkpoint stay float32), the same autocast as
        # dub.render_dtype's; train.loop's own ``amp`` switch is honoured on CUDA only, so this is
        # the way to it on CPUs with native bf16 (benchmarks/compare_adapt_now.py measured it)
        with render_precision(train_dtype, resolve_device(cfg.device)):
            result = adapt(prior, name, n_frames, cfg, folder.parent, {"prior": usable or prior_names}, out_dir,
                           ratio, progress=progress, make_dataset=make, on_step=on_step)
        write_json(finished, {"steps": result["info"]["steps"], "n_frames": n_frames, "mixed_ratio": ratio})
    style_path = None
    if info.get("has_audio") and int(adapt_cfg["style_steps"]) > 0:
        a2e_cfg = a2e_settings(profile, params=params)
        a2e_cfg["style"] = {**a2e_cfg["style"], "steps": int(adapt_cfg["style_steps"])}
        weights = hashlib.sha256(b"".join(t.detach().cpu().numpy().tobytes() for t in a2e.state_dict().values()))
        style_path = out_dir / f"style_{_digest(weights.hexdigest(), a2e_cfg['style'])}.pt"   # per a2e model + style/fine-tune settings
        if not style_path.is_file():
            person, history = fit_person(a2e, folder.parent, name, basis, a2e_cfg, n_frames)
            save_style(style_path, person, a2e, name, {"frames": n_frames, "finetune_steps": history["finetune_steps"]})
    return out_dir / "checkpoint.pt", style_path


def find_style(explicit: str | None, ckpt: Path, a2e_path: Path, name: str) -> Path | None:
    """The actor's style layer: ``explicit``, else ``style.pt`` beside the checkpoint, else
    ``<a2e folder>/style/<name>.pt`` (written by the train_audio2expr stage); None = generic model."""
    if explicit:
        if not Path(explicit).is_file():
            raise DubCheckpointError(f"--style {explicit}: no such style-layer file")
        return Path(explicit)
    for path in (ckpt.parent / "style.pt", a2e_path.parent / "style" / f"{name}.pt"):
        if path.is_file():
            return path
    return None


