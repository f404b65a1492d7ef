"""Audio-to-expression stage (§3.4): pre-train on the prior identities, fit each held-out person's
style layer, and measure the lip vertex error before / after the style layer.

Data: the prepare stage's caches. Per video the input is ``mel.npy`` (log-MEL, 80 rows/s) and the
target is ``track.npz["expr"]`` — the face3d expression coefficients (N, K) in the corpus basis
``expr_basis.npz``. Only frames with a tracked face are used, as runs of consecutive valid frames
(a run starts on a multiple of 5 frames = 16 MEL rows so MEL and frames stay exactly aligned).
Pre-training reads the *train* part of every prior video and keeps the step that scores best on
their *validation* spans (``val_every``, ``val_select``); the style layer of a held-out person is
fitted on the first ``style.frames`` frames of its train part (the paper's few-shot setting) and
both models are scored on that person's *test* part. The lip vertex error (LVE) decodes the
coefficients through the basis at the FaceMesh mouth vertices (``facemesh.mouth``), in mm.

With ``ensemble: E`` > 1 the generic model is E such models pre-trained at seeds seed … seed+E-1
(each early-stopped on its own) whose predictions are averaged (``Audio2ExpressionEnsemble``).

Artefacts in ``out_dir``: ``audio2expr.pt`` (model config + weights + neutral + the basis hash it
was trained for; an ensemble's ``members`` count), ``style/<name>.pt`` per held-out identity,
``loss.csv``, ``val.csv`` (the validation curve; a ``member`` column for an ensemble). Flat metrics JSON.
Command line: ``python -m deadlib.audio2expr.stage --profile smoke --cache-root data/prepared``.
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from deadlib.audio2expr.losses import MouthBasis, lip_vertex_error
from deadlib.audio2expr.model import (
    Audio2ExprConfig,
    Audio2Expression,
    Audio2ExpressionEnsemble,
    Audio2ExprTrainConfig,
    predict,
    train_audio2expr,
    windowed_clips,
)
from deadlib.audio2expr.style import (
    PersonalisedAudio2Expression,
    StyleLayer,
    fine_tune_base,
    fit_style_layer,
)
from deadlib.core.config import seed_everything, stage_config, write_settings
from deadlib.core.files import save_torch, write_json
from deadlib.core.measures import pearson
from deadlib.core.progress import progress_bar
from deadlib.data.audio import log_mel
from deadlib.data.dataset import load_splits
from deadlib.data.face3d import ExpressionBasis
from deadlib.data.facemesh import load_topology

CKPT_FORMAT = 1
FRAMES_PER_ALIGN, MEL_PER_ALIGN = 5, 16  # 5 video frames = 16 MEL rows exactly (25 fps, 80 rows/s)
CM_TO_MM = 10.0

def a2e_settings(profile: str | None = None, params_path: str | os.PathLike | None = None,
                 params: Mapping | None = None) -> dict:
    """Effective ``audio2expr`` settings under ``profile`` (params.yaml's section, profile applied)."""
    return stage_config("audio2expr", profile, params=params, params_path=params_path)


# ----------------------------------------------------------------------------- data


def _report(folder: Path) -> dict:
    path = folder / "report.json"
    if not path.is_file():
        raise FileNotFoundError(f"no prepared cache at {folder} (report.json missing); run the prepare stage")
    report = json.loads(path.read_text())
    if "splits" not in report:
        raise FileNotFoundError(f"{folder} is only half prepared (no splits in report.json); re-run prepare")
    return report


def valid_runs(valid: np.ndarray, lo: int, hi: int, min_len: int = 1) -> list[tuple[int, int]]:
    """Runs [a, b) of consecutive valid frames inside [lo, hi), each starting on a multiple of 5."""
    runs, k = [], lo
    ok = np.asarray(valid, bool)
    while k < hi:
        if not ok[k]:
            k += 1
            continue
        end = k
        while end < hi and ok[end]:
            end += 1
        start = -(-k // FRAMES_PER_ALIGN) * FRAMES_PER_ALIGN  # round up: exact MEL alignment
        if end - start >= min_len:
            runs.append((start, end))
        k = end
    return runs


def clip_of(mel: np.ndarray, expr: np.ndarray, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """(mel rows of frames [a, b) + 16 rows of right context, expr[a:b]); a must be a multiple of 5."""
    row = a // FRAMES_PER_ALIGN * MEL_PER_ALIGN
    last = -(-b * MEL_PER_ALIGN // FRAMES_PER_ALIGN) + 16
    return np.asarray(mel[row:last], np.float32), np.asarray(expr[a:b], np.float32)


def load_person_clips(cache_root: str | os.PathLike, name: str, split: str = "train",
                      n_frames: int | None = None, min_len: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """(mel (M, 80), expr (N, K)) clips of one prepared video's ``split`` (first ``n_frames`` of it)."""
    folder = Path(cache_root) / name
    lo, hi = _report(folder)["splits"][split]
    if n_frames is not None:
        hi = min(hi, lo + n_frames)
    mel = np.load(folder / "mel.npy").astype(np.float32)  # (M, 80)
    with np.load(folder / "track.npz") as track:
        expr, valid = track["expr"].astype(np.float32), track["valid"]
    return [clip_of(mel, expr, a, b) for a, b in valid_runs(valid, lo, hi, min_len)]


def basis_digest(basis: ExpressionBasis) -> str:
    """Short hash of a basis: a model predicts coefficients of one basis only."""
    return hashlib.sha256(basis.mean.tobytes() + basis.components.tobytes()).hexdigest()[:16]


def mouth_basis(basis: ExpressionBasis, device: torch.device | str = "cpu") -> MouthBasis:
    """The basis restricted to the FaceMesh mouth vertices (on/inside the outer lip contour)."""
    return MouthBasis.from_linear(basis.mean, basis.components, load_topology().mouth, device)


# ----------------------------------------------------------------------------- models on disk


def build_model(settings: Mapping, k: int) -> Audio2Expression:
    return Audio2Expression(Audio2ExprConfig(K=k, **settings["model"]))


A2EModel = Audio2Expression | Audio2ExpressionEnsemble  # the generic model: one network or several averaged


def ensemble_size(settings: Mapping) -> int:
    """``audio2expr.ensemble``: how many models at consecutive seeds the generic model averages (1: one)."""
    size = settings.get("ensemble", 1)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"audio2expr.ensemble must be a positive integer, got {size!r}")
    return size


def save_a2e(path: str | os.PathLike, model: A2EModel, basis: ExpressionBasis, meta: Mapping | None = None) -> Path:
    """Atomic ``audio2expr.pt``: config, weights (incl. the neutral), basis hash, ``meta`` (+ ``members``,
    the number of averaged models, for an ensemble)."""
    ckpt = {"format": CKPT_FORMAT, "kind": "audio2expr", "config": dataclasses.asdict(model.config),
            "state_dict": model.state_dict(), "basis_digest": basis_digest(basis), "meta": dict(meta or {})}
    if isinstance(model, Audio2ExpressionEnsemble):
        ckpt["members"] = len(model.members)
    save_torch(path, ckpt)
    return path


def load_a2e(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[A2EModel, dict]:
    """(model in eval mode — an ensemble when the file holds several — checkpoint info {basis_digest, meta,
    config, members})."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no audio-to-expression model at {path}; run the train_audio2expr stage "
                                "(python -m deadlib.audio2expr.stage) or pass its audio2expr.pt")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("kind") != "audio2expr":
        raise ValueError(f"{path} is not an audio2expr checkpoint (kind={ckpt.get('kind')!r})")
    config, members = Audio2ExprConfig(**ckpt["config"]), int(ckpt.get("members", 1))
    model = Audio2Expression(config) if members == 1 else \
        Audio2ExpressionEnsemble([Audio2Expression(config) for _ in range(members)])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), {**{k: ckpt[k] for k in ("basis_digest", "meta", "config")}, "members": members}


def save_style(path: str | os.PathLike, person: PersonalisedAudio2Expression, generic: A2EModel,
               identity: str, meta: Mapping | None = None) -> Path:
    """Atomic file of one person's audio-to-expression: the style layer, and the fine-tuned copy's
    weights when ``fit_person`` fine-tuned ``generic`` for this person (``person.base is not generic``)."""
    data = {"format": CKPT_FORMAT, "kind": "style_layer", "identity": identity,
            "scale": person.style.scale.detach().cpu(), "bias": person.style.bias.detach().cpu(), "meta": dict(meta or {})}
    if person.base is not generic:
        data["base_config"] = dataclasses.asdict(person.base.config)
        data["base_state_dict"] = {k: v.detach().cpu() for k, v in person.base.state_dict().items()}
    save_torch(path, data)
    return path


def load_style(path: str | os.PathLike, generic: A2EModel) -> tuple[PersonalisedAudio2Expression, str]:
    """(the person's model in eval mode, identity) from ``save_style``'s file: ``generic`` (or its
    fine-tuned copy stored in the file) followed by the style layer. Raises when the file was made
    for a model of another shape."""
    data = torch.load(Path(path), map_location="cpu", weights_only=True)
    if data.get("kind") != "style_layer":
        raise ValueError(f"{path} is not a style-layer file (kind={data.get('kind')!r})")
    k = generic.config.K
    if data["scale"].numel() != k:
        raise ValueError(f"style layer {path} has {data['scale'].numel()} coefficients, the model K={k}")
    base = generic
    if "base_state_dict" in data:
        if data["base_config"] != dataclasses.asdict(generic.config):
            raise ValueError(f"{path} holds a fine-tune of another audio-to-expression architecture than the "
                             "model given; fit the person again with this model")
        base = copy.deepcopy(generic)
        if set(data["base_state_dict"]) != set(base.state_dict()):  # one model vs an ensemble (audio2expr.ensemble)
            kind = lambda ensemble: "an ensemble" if ensemble else "one model"  # noqa: E731
            raise ValueError(f"{path} holds a fine-tune of {kind('members.0.neutral' in data['base_state_dict'])}, "
                             f"the model given is {kind(isinstance(generic, Audio2ExpressionEnsemble))}; "
                             "fit the person again with this model")
        base.load_state_dict(data["base_state_dict"])
    style = StyleLayer(k)
    with torch.no_grad():
        style.scale.copy_(data["scale"])
        style.bias.copy_(data["bias"])
    return PersonalisedAudio2Expression(base.eval(), style).eval(), data["identity"]


# ----------------------------------------------------------------------------- training + scoring


def _train_config(settings: Mapping) -> Audio2ExprTrainConfig:
    seed = settings.get("seed") or 0
    return Audio2ExprTrainConfig(**{**settings["train"], "seed": int(seed)})


# What picks the kept step on the validation clips: the jaw coefficient's correlation with the
# tracked one (mouth opening, what a dub is judged on) or the lip vertex error (which also
# rewards a still, average mouth: a static neutral face beats an overfitted model on it).
VAL_SELECT = {"jaw_corr": +1.0, "lve_mean_mm": -1.0}  # key of evaluate_clips → sign of "better"


def pretrain(settings: Mapping, clips: list[tuple[np.ndarray, np.ndarray]], basis: ExpressionBasis,
             device: torch.device | str = "cpu", progress: bool = True,
             val_clips: list[tuple[np.ndarray, np.ndarray]] | None = None) -> tuple[Audio2Expression, dict]:
    """Multi-identity pre-training on (mel, expr) clips → (model, history).

    With ``val_clips`` (the prior identities' validation spans) the model is scored every
    ``val_every`` steps and the best step by ``val_select`` is kept (early stopping on validation,
    never on a test frame); ``history["val"]`` holds the curve and ``history["best_step"]`` the pick."""
    seed_everything(int(settings.get("seed") or 0))
    cfg = _train_config(settings)
    model = build_model(settings, basis.n_expr)
    clips = windowed_clips(clips, cfg.window)
    if not clips:
        raise ValueError(f"no prior clip has {cfg.window} consecutive face frames; lower audio2expr.train.window")
    select = settings.get("val_select", "jaw_corr")
    if select not in VAL_SELECT:
        raise ValueError(f"audio2expr.val_select {select!r}: one of {sorted(VAL_SELECT)}")
    every = int(settings.get("val_every") or 0)
    curve: list[dict] = []
    best: dict = {}

    def validate(step: int) -> None:
        model.eval()
        scores = evaluate_clips(model, val_clips, basis, settings["chunk"])
        model.train()
        curve.append({"step": step, "lve_mean_mm": scores["lve_mean_mm"], "jaw_corr": scores["jaw_corr"]})
        value = VAL_SELECT[select] * scores[select]
        if not best or value > best["value"]:
            best.update(value=value, step=step, state={k: v.detach().clone() for k, v in model.state_dict().items()})

    bar = progress_bar(total=cfg.steps, desc="audio2expr") if progress else None

    def on_step(step: int, terms: dict) -> None:
        if bar is not None:
            bar.update(1)
        if val_clips and every and ((step + 1) % every == 0 or step + 1 == cfg.steps):
            validate(step + 1)

    try:
        history = train_audio2expr(model, clips, cfg, mouth_basis(basis, device), device, on_step=on_step)
    finally:
        if bar is not None:
            bar.close()
    if best:
        model.load_state_dict(best["state"])
        model.eval()
        history.update(val=curve, best_step=best["step"], val_select=select)
    return model, history


def pretrain_ensemble(settings: Mapping, clips: list[tuple[np.ndarray, np.ndarray]], basis: ExpressionBasis,
                      device: torch.device | str = "cpu", progress: bool = True,
                      val_clips: list[tuple[np.ndarray, np.ndarray]] | None = None) -> tuple[A2EModel, list[dict]]:
    """The generic model: ``ensemble_size(settings)`` models pre-trained as ``pretrain`` does at seeds
    seed, seed + 1, … (each early-stopped on ``val_clips`` on its own) → (the model, or the ensemble
    averaging them; each one's history). With ensemble 1 this is ``pretrain`` at the settings' seed."""
    seed = int(settings.get("seed") or 0)
    runs = [pretrain({**settings, "seed": seed + i}, clips, basis, device, progress, val_clips)
            for i in range(ensemble_size(settings))]
    if len(runs) == 1:
        return runs[0][0], [runs[0][1]]
    return Audio2ExpressionEnsemble([model for model, _ in runs]).eval(), [history for _, history in runs]


def fine_tune_config(settings: Mapping) -> tuple[Audio2ExprTrainConfig, int] | None:
    """(training config, min_frames) of the per-person fine-tune (``style.finetune``), None when off:
    pre-training's settings with the fine-tune's steps, lr, window, batch and warm-up."""
    tune = dict(settings["style"].get("finetune") or {})
    if int(tune.get("steps") or 0) <= 0:
        return None
    min_frames = int(tune.pop("min_frames", 0))
    return dataclasses.replace(_train_config(settings), **tune), min_frames


def fit_person(base: A2EModel, cache_root: str | os.PathLike, name: str, basis: ExpressionBasis,
               settings: Mapping, n_frames: int | None = None) -> tuple[PersonalisedAudio2Expression, dict]:
    """``name``'s own audio-to-expression from its first ``n_frames`` train frames (default style.frames):
    a fine-tuned copy of ``base`` (``style.finetune``, when at least ``min_frames`` of those frames lie in
    runs of ``window`` frames) followed by a StyleLayer trained on its own. ``base`` is not changed.
    History: the style layer's ``loss`` and ``finetune_steps`` (0 = generic base kept)."""
    style = settings["style"]
    clips = load_person_clips(cache_root, name, "train", n_frames or style["frames"])
    if not clips:
        raise ValueError(f"{name}: no frames with a face among its first {n_frames or style['frames']} train frames")
    tuned, tune_steps = base, 0
    tune = fine_tune_config(settings)
    if tune is not None and sum(len(e) for _, e in windowed_clips(clips, tune[0].window)) >= tune[1]:
        tuned, tune_history = fine_tune_base(base, clips, tune[0], mouth_basis(basis))
        tune_steps = len(tune_history["loss"])
    model = PersonalisedAudio2Expression(tuned)
    history = fit_style_layer(model, clips, steps=style["steps"], lr=style["lr"], basis=mouth_basis(basis),
                              w_coef=style["w_coef"], w_vel=style["w_vel"], w_vertex=style["w_vertex"],
                              prior_frames=style["prior_frames"])
    return model, {**history, "finetune_steps": tune_steps}


def evaluate_clips(model: torch.nn.Module, clips: list[tuple[np.ndarray, np.ndarray]], basis: ExpressionBasis,
                   chunk: int = 200) -> dict[str, Any]:
    """LVE (mm) and jaw-coefficient correlation of ``model`` on clips; also the traces (pred, target)."""
    preds = [predict(model, mel, len(expr), chunk=chunk) for mel, expr in clips]
    pred, target = np.concatenate(preds), np.concatenate([e for _, e in clips])  # (N, K)
    return {**score_predictions(pred, target, basis), "pred": pred, "target": target}


def score_predictions(pred: np.ndarray, target: np.ndarray, basis: ExpressionBasis) -> dict[str, float]:
    """LVE mean / max (mm) and the jaw coefficient's correlation of predictions (N, K) against targets (N, K)."""
    lve = lip_vertex_error(pred, target, mouth_basis(basis))
    j = basis.jaw_index
    return {"lve_mean_mm": lve["lve_mean"] * CM_TO_MM, "lve_max_mm": lve["lve_max"] * CM_TO_MM,
            "jaw_corr": pearson(pred[:, j], target[:, j])}


def score_person(person: PersonalisedAudio2Expression, generic: A2EModel, test: list[tuple[np.ndarray, np.ndarray]],
                 basis: ExpressionBasis, chunk: int = 200) -> dict[str, Any]:
    """A person's test clips scored by the generic model ("before"), by the person's own model (fine-tune
    + style layer, "after"), and by a still neutral face (``static_lve_mean_mm``: no motion at all)."""
    target = np.concatenate([e for _, e in test])                                  # (N, K)
    neutral = np.broadcast_to(generic.neutral.cpu().numpy(), target.shape)
    static = lip_vertex_error(neutral, target, mouth_basis(basis))
    return {"before": evaluate_clips(generic, test, basis, chunk), "after": evaluate_clips(person, test, basis, chunk),
            "static_lve_mean_mm": static["lve_mean"] * CM_TO_MM}


def silence_check(model: torch.nn.Module, seconds: float = 2.0, floors_db: tuple[float, ...] = (-70.0, -60.0),
                  seed: int = 0) -> dict[str, float]:
    """Largest |expr − neutral| and frame-to-frame change on digital silence and on white-noise
    floors: at −70 dBFS the silence gate is shut (exactly neutral by construction); at −60 dBFS,
    README's noise floor, the gate is open and only training keeps the mouth still."""
    base = model.base if isinstance(model, PersonalisedAudio2Expression) else model
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    out = {}
    neutral = base.neutral.cpu().numpy()
    if isinstance(model, PersonalisedAudio2Expression):
        neutral = model.style(base.neutral[None]).detach().cpu().numpy()[0]
    inputs = [("digital", np.zeros(n, np.float32))]
    inputs += [(f"noise{-int(db)}", (10 ** (db / 20) * rng.standard_normal(n)).astype(np.float32)) for db in floors_db]
    for label, audio in inputs:
        pred = predict(model, log_mel(audio), int(seconds * 25))
        out[f"silence_{label}_max_dev"] = float(np.abs(pred - neutral).max())
        out[f"silence_{label}_jitter"] = float(np.abs(np.diff(pred, axis=0)).mean())
    return out


def write_curves(out_dir: Path, histories: list[dict]) -> None:
    """``loss.csv`` (every step's loss terms and lr) and ``val.csv`` (the validation curve) of the
    pre-training runs; a first ``member`` column numbers an ensemble's models."""
    member = [] if len(histories) == 1 else ["member"]
    with open(out_dir / "loss.csv", "w", newline="") as f:
        writer = csv.writer(f)
        for m, history in enumerate(histories):
            keys = [k for k in ("loss", "coef", "vel", "vertex", "lr") if k in history]
            if m == 0:
                writer.writerow([*member, "step", *keys])
            writer.writerows([*([m] if member else []), i, *(history[k][i] for k in keys)]
                             for i in range(len(history["loss"])))
    if histories[0].get("val"):
        with open(out_dir / "val.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=member + list(histories[0]["val"][0]))
            writer.writeheader()
            for m, history in enumerate(histories):
                writer.writerows({**({"member": m} if member else {}), **row} for row in history["val"])


def run_stage(settings: Mapping, cache_root: str | os.PathLike, out_dir: str | os.PathLike,
              metrics_path: str | os.PathLike | None = None, device: torch.device | str = "cpu",
              progress: bool = True) -> dict[str, Any]:
    """Pre-train, fit every held-out identity's style layer, score before/after; write artefacts + metrics."""
    cache_root, out_dir = Path(cache_root), Path(out_dir)
    splits = load_splits(cache_root)
    basis = ExpressionBasis.load(cache_root / "expr_basis.npz")
    window = settings["train"]["window"]
    prior_clips = [c for n in splits["prior"] for c in load_person_clips(cache_root, n, "train", min_len=window)]
    # validation: the prior identities' own validation spans (their speech after the train part)
    prior_val = [c for n in splits["prior"] for c in load_person_clips(cache_root, n, "val")]
    model, histories = pretrain_ensemble(settings, prior_clips, basis, device, progress, val_clips=prior_val)
    model.cpu().eval()
    best_steps = [history.get("best_step") for history in histories]
    meta = {"profile": settings.get("profile"), "steps": len(histories[0]["loss"]), "prior": splits["prior"],
            "best_step": best_steps[0] if len(histories) == 1 else best_steps}
    save_a2e(out_dir / "audio2expr.pt", model, basis, meta)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_curves(out_dir, histories)
    chunk = settings["chunk"]
    per_person = {}
    for name in splits["heldout"]:
        test = load_person_clips(cache_root, name, "test")
        if not test:
            continue
        person, style_hist = fit_person(model, cache_root, name, basis, settings)
        save_style(out_dir / "style" / f"{name}.pt", person, model, name,
                   {"frames": settings["style"]["frames"], "finetune_steps": style_hist["finetune_steps"]})
        per_person[name] = {**score_person(person, model, test, basis, chunk), "style_loss": style_hist["loss"],
                            "model": person}
    final_loss = [float(np.mean(history["loss"][-10:])) for history in histories]
    metrics: dict[str, float] = {"steps": len(histories[0]["loss"]),
                                 "final_loss": final_loss[0] if len(histories) == 1 else float(np.mean(final_loss)),
                                 "n_prior": len(splits["prior"]), "n_heldout": len(per_person),
                                 "prior_frames": int(sum(len(e) for _, e in prior_clips))}
    if len(histories) > 1:
        metrics["ensemble"] = len(histories)
        if None not in best_steps:  # each member's kept step: their range
            metrics.update(best_step_min=min(best_steps), best_step_max=max(best_steps))
    elif "best_step" in histories[0]:
        metrics["best_step"] = histories[0]["best_step"]
    if prior_val:  # the kept step's score on the spans that chose it: optimistic, an overfitting check only
        prior_eval = evaluate_clips(model, prior_val, basis, chunk)
        metrics.update(prior_val_lve_mean_mm=prior_eval["lve_mean_mm"], prior_val_jaw_corr=prior_eval["jaw_corr"])
    if per_person:
        mean = lambda f: float(np.mean([f(r) for r in per_person.values()]))  # noqa: E731
        for when in ("before", "after"):
            for key in ("lve_mean_mm", "lve_max_mm", "jaw_corr"):
                metrics[f"{key}_{when}"] = mean(lambda r: r[when][key])
        metrics["lve_mean_mm_static"] = mean(lambda r: r["static_lve_mean_mm"])
    metrics.update(silence_check(model))
    if metrics_path:
        write_json(metrics_path, metrics)
        write_settings(metrics_path, settings)
    return {"metrics": metrics, "model": model, "histories": histories, "basis": basis, "per_person": per_person,
            "checkpoint": out_dir / "audio2expr.pt"}


def main(argv: list[str] | None = None) -> dict:
    """CLI: ``python -m deadlib.audio2expr.stage --profile smoke --cache-root data/prepared --out models/audio2expr``."""
    ap = argparse.ArgumentParser(prog="python -m deadlib.audio2expr.stage", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=None, help="smoke | default | full (default: params.yaml's)")
    ap.add_argument("--params", default=None)
    ap.add_argument("--cache-root", default="data/prepared")
    ap.add_argument("--out", default="models/audio2expr")
    ap.add_argument("--metrics", default="metrics/train_audio2expr.json")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run_stage(a2e_settings(args.profile, args.params), args.cache_root, args.out, args.metrics)
    print(json.dumps(result["metrics"], indent=2))
    return result


if __name__ == "__main__":
    main()
