"""Is audio-to-expression on real speech limited by its model, its input features or its data? A linear probe.

    .venv/bin/python benchmarks/probe_a2e_features.py [--cache-root real/data/prepared] [--raw-dir real/data/raw]
        [--context 2] [--lambdas 100 10000] [--fractions 0.25 0.5 1.0] [--repeats 4] [--out FILE]

The audio-to-expression model reaches a jaw-coefficient correlation of about 0.3 on speakers it never
heard (``deadlib.audio2expr.crossval``, the real corpus's ``audio2expr_crossval`` stage). This script
asks why, with the cheapest model there is: ridge regression from per-frame audio features, stacked
over ±``--context`` frames, to the tracked jaw coefficient, on the same speaker folds of the PRIOR
people as the cross-validation (fit on the seen speakers' train parts, score the unseen speakers'
train + validation parts; the held-out people are never loaded, so nothing here peeks at a test
frame). Feature sets:

* ``energy``: the mean log-MEL of each frame (loudness only);
* ``mel``: the 80 log-MEL bands, averaged over each frame's 3.2 MEL rows;
* ``phones``: the share of each frame's 10 ms steps that the phone recogniser of pocketsphinx
  (CMU Sphinx's US-English acoustic model and phone language model, the only pretrained speech
  model on PyPI that runs offline) labels with each phone — a speaker-independent articulation
  code, if it is one. Needs ``pip install pocketsphinx`` (not in the project's environment: the
  rows read ``null`` with the reason without it);
* ``mel+phones``: both;
* ``mel_cmvn``: the ``mel`` bands standardised per clip (each band's mean and spread over the clip's
  own frames — what a dub can compute from its own audio): removes a speaker's and a microphone's
  average spectrum, the obvious normalisation for unseen speakers;
* ``formants``: F1–F3 and the log energy of each frame by linear prediction (``lpc_formants``: order
  12 on a 25 ms pre-emphasised Hann window at the frame's centre; roots under 400 Hz bandwidth), each
  standardised per clip — F1 follows how open the vocal tract is, the articulatory correlate of the
  jaw, if the vowels carry it;
* ``mel_cmvn+formants``: both.

``--features`` picks the sets (default: the first four, README's ``a2e_probe`` block; the normalised
ones are README's ``a2e_probe_norm`` block, run with ``--features mel mel_cmvn formants
mel_cmvn+formants --fractions 1 --out benchmarks/results/a2e_feature_probe_norm_real.json``).
Every feature set is fitted at each ``--lambdas`` value (features standardised on the seen speakers)
and reported at each; no value is picked. ``--fractions`` refits the ``mel`` and ``mel+phones`` probes
on a contiguous random span of that fraction of each seen speaker's train frames (``--repeats``
draws), so the table shows how the score grows with the amount of speech. The transformer's own
cross-validated score is read from ``real/metrics/audio2expr_crossval.json`` for comparison.

Writes ``benchmarks/results/a2e_feature_probe_real.json`` (README's generated ``a2e_probe`` block).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from scipy.linalg import solve_toeplitz

from deadlib.audio2expr.crossval import speaker_folds
from deadlib.core.files import write_json
from deadlib.core.measures import pearson
from deadlib.data.dataset import load_splits
from deadlib.data.face3d import ExpressionBasis
from deadlib.data.lipsync_probe import ridge_fit, ridge_predict
from deadlib.data.video import FPS, SAMPLE_RATE, read_audio
from deadlib.tools.machine import describe

REPO = Path(__file__).resolve().parents[1]
MEL_ROWS_PER_FRAME = 80 / FPS        # log-MEL rows per video frame (3.2)
PHONE_STEPS_PER_FRAME = 4            # pocketsphinx's 10 ms frames per 40 ms video frame
FEATURES = ("energy", "mel", "phones", "mel+phones")
NORMALISED = ("mel_cmvn", "formants", "mel_cmvn+formants")   # per-clip normalised sets (--features)
LPC_ORDER, LPC_WINDOW = 12, 400                               # linear prediction order; 25 ms at 16 kHz
MAX_BANDWIDTH = 400.0                                         # Hz: wider predictor roots are not formants
FOLDS = 3                            # speaker folds, as the audio2expr_crossval stage


def recognise_phones(audio: np.ndarray) -> list[tuple[str, int, int]]:
    """(phone, first, last 10 ms step) segments of 16 kHz mono float audio by pocketsphinx's phone decoder."""
    from pocketsphinx import Decoder, get_model_path

    model = get_model_path()
    decoder = Decoder(hmm=os.path.join(model, "en-us", "en-us"), allphone=os.path.join(model, "en-us", "en-us-phone.lm.bin"),
                      lw=2.0, beam=1e-20, pbeam=1e-20, backtrace=False, loglevel="ERROR")
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    return [(seg.word, seg.start_frame, seg.end_frame) for seg in decoder.seg()]


def phone_shares(segments: list[tuple[str, int, int]], phones: list[str], n_frames: int) -> np.ndarray:
    """(n_frames, len(phones)): the share of each video frame's 10 ms steps labelled with each phone."""
    index = {p: i for i, p in enumerate(phones)}
    out = np.zeros((n_frames, len(phones)), np.float32)
    for phone, first, last in segments:
        steps = np.arange(first, last + 1)
        frames = steps // PHONE_STEPS_PER_FRAME
        keep = frames < n_frames
        np.add.at(out, (frames[keep], index[phone]), 1.0 / PHONE_STEPS_PER_FRAME)
    return out


def standardise(x: np.ndarray) -> np.ndarray:
    """(n, d) → each column minus its mean over the n frames, divided by its spread."""
    return (x - x.mean(0)) / (x.std(0) + 1e-6)


def lpc_formants(audio: np.ndarray, n_frames: int, sample_rate: int = SAMPLE_RATE, order: int = LPC_ORDER,
                 window: int = LPC_WINDOW) -> np.ndarray:
    """(n_frames, 4): F1, F2, F3 (Hz) and log energy of each video frame's ``window`` samples at its centre.

    Linear prediction (autocorrelation method, Levinson–Durbin) of the pre-emphasised, Hann-windowed
    samples; the formants are the angles of the predictor's complex roots between 90 Hz and 4 kHz whose
    bandwidth is under ``MAX_BANDWIDTH``, lowest first. A frame with fewer than three such roots (silence,
    noise) takes the clip's median of that formant."""
    hop = sample_rate / FPS
    emphasised = np.append(audio[:1], audio[1:] - 0.97 * audio[:-1]).astype(np.float64)
    taper = np.hanning(window)
    out = np.full((n_frames, 4), np.nan)
    for i in range(n_frames):
        start = int(round((i + 0.5) * hop)) - window // 2
        seg = emphasised[max(0, start):max(0, start) + window]
        seg = np.pad(seg, (0, window - len(seg))) * taper
        r = np.correlate(seg, seg, "full")[window - 1:window + order]       # lags 0 .. order
        out[i, 3] = np.log(r[0] + 1e-10)
        if r[0] < 1e-8:
            continue
        # The predictor a (1, a1 … a_order) solves the Toeplitz normal equations (Levinson–Durbin inside).
        roots = np.roots(np.append(1.0, solve_toeplitz(r[:order], -r[1:order + 1])))
        roots = roots[(roots.imag > 0) & (-np.log(np.abs(roots) + 1e-12) * sample_rate / np.pi < MAX_BANDWIDTH)]
        freqs = np.sort(np.angle(roots) * sample_rate / (2 * np.pi))
        freqs = freqs[(freqs > 90) & (freqs < 4000)][:3]
        out[i, :len(freqs)] = freqs
    for j in range(3):
        column = out[:, j]
        column[~np.isfinite(column)] = np.nanmedian(column) if np.isfinite(column).any() else 0.0
    return out


def load_person(cache_root: Path, name: str, jaw: int) -> dict:
    """Per-frame log-MEL (n, 80) raw and standardised over the clip, its mean (n, 1: loudness), jaw
    coefficient (n,), valid mask and split ranges of one prepared video."""
    folder = cache_root / name
    report = json.loads((folder / "report.json").read_text())
    mel = np.load(folder / "mel.npy").astype(np.float32)                       # (M, 80), 80 rows/s
    with np.load(folder / "track.npz") as track:
        expr, valid = track["expr"], track["valid"].astype(bool)
    n = len(expr)
    rows = (np.arange(n)[:, None] * MEL_ROWS_PER_FRAME + np.arange(3)[None]).astype(int).clip(0, len(mel) - 1)
    per_frame = mel[rows].mean(1)                                               # (n, 80)
    return {"mel": per_frame, "mel_cmvn": standardise(per_frame), "energy": per_frame.mean(1, keepdims=True),
            "jaw": expr[:, jaw].astype(np.float64), "valid": valid, "splits": report["splits"]}


def frame_mask(person: dict, parts: list[str]) -> np.ndarray:
    """Valid frames inside the named split parts."""
    inside = np.zeros(len(person["jaw"]), bool)
    for part in parts:
        lo, hi = person["splits"][part]
        inside[lo:hi] = True
    return inside & person["valid"]


def with_context(x: np.ndarray, k: int) -> np.ndarray:
    """(n, d) → (n, (2k+1)·d): each frame with its k neighbours on each side (edges repeated)."""
    padded = np.pad(x, ((k, k), (0, 0)), mode="edge")
    return np.concatenate([padded[i:i + len(x)] for i in range(2 * k + 1)], 1)


def features(person: dict, kind: str, context: int) -> np.ndarray:
    """(n, (2·context+1)·d) features of the ``kind`` set for every frame of one person."""
    names = {"energy": ["energy"], "mel": ["mel"], "phones": ["phones"], "mel+phones": ["mel", "phones"],
             "mel_cmvn": ["mel_cmvn"], "formants": ["formants"], "mel_cmvn+formants": ["mel_cmvn", "formants"]}[kind]
    return with_context(np.concatenate([person[name] for name in names], 1), context)


def ridge_fold(people: dict, seen: list[str], unseen: list[str], kind: str, context: int, lam: float,
               fraction: float, rng: np.random.Generator) -> list[float]:
    """Fit on the seen speakers' train frames (a random contiguous ``fraction`` of each), score each unseen one."""
    xs, ys = [], []
    for name in seen:
        idx = np.flatnonzero(frame_mask(people[name], ["train"]))
        if fraction < 1:
            take = max(1, int(len(idx) * fraction))
            start = int(rng.integers(0, len(idx) - take + 1))
            idx = idx[start:start + take]
        xs.append(features(people[name], kind, context)[idx])
        ys.append(people[name]["jaw"][idx])
    model = ridge_fit(np.concatenate(xs), np.concatenate(ys), alpha=lam)      # features standardised on the seen
    scores = []
    for name in unseen:
        keep = frame_mask(people[name], ["train", "val"])
        scores.append(pearson(ridge_predict(model, features(people[name], kind, context)[keep]), people[name]["jaw"][keep]))
    return scores


def probe(people: dict, kind: str, context: int, lam: float, fraction: float, repeats: int, seed: int = 0) -> dict:
    """Mean over the unseen speakers (and ``repeats`` draws when fraction < 1) of the probe's jaw correlation."""
    names = sorted(people)
    rng = np.random.default_rng(seed)
    per_draw = []
    for _ in range(repeats if fraction < 1 else 1):
        scores = []
        for unseen in speaker_folds(names, FOLDS):
            scores += ridge_fold(people, [n for n in names if n not in unseen], unseen, kind, context, lam, fraction, rng)
        per_draw.append(float(np.mean(scores)))
    return {"features": kind, "lambda": lam, "fraction": fraction, "mean_jaw_corr": float(np.mean(per_draw)),
            "per_draw": per_draw}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-root", default="real/data/prepared")
    ap.add_argument("--raw-dir", default="real/data/raw", help="the raw clips (their audio, for the phone recogniser)")
    ap.add_argument("--context", type=int, default=2, help="frames of context on each side")
    ap.add_argument("--lambdas", type=float, nargs="+", default=[100.0, 10000.0])
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--features", nargs="+", choices=FEATURES + NORMALISED, default=list(FEATURES))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "a2e_feature_probe_real.json"))
    args = ap.parse_args(argv)
    cache_root, raw_dir = Path(args.cache_root), Path(args.raw_dir)
    jaw = ExpressionBasis.load(cache_root / "expr_basis.npz").jaw_index
    prior = load_splits(cache_root)["prior"]
    people = {name: load_person(cache_root, name, jaw) for name in prior}
    needs = lambda feature: any(feature in kind for kind in args.features)  # noqa: E731
    audio = {name: read_audio(raw_dir / f"{name}.mp4", SAMPLE_RATE) for name in prior} if needs("formants") or needs("phones") else {}
    if needs("formants"):
        for name in prior:
            people[name]["formants"] = standardise(lpc_formants(audio[name], len(people[name]["jaw"])))
    if not needs("phones"):
        phones, phone_reason = [], None
    else:
        try:
            segments = {name: recognise_phones(audio[name]) for name in prior}
            phones = sorted({p for segs in segments.values() for p, _, _ in segs})
            for name in prior:
                people[name]["phones"] = phone_shares(segments[name], phones, len(people[name]["jaw"]))
            phone_reason = None
        except ImportError:
            phones, phone_reason = [], "pocketsphinx is not installed (pip install pocketsphinx)"
    rows = []
    for kind in args.features:
        uses_phones = "phones" in kind
        for lam in args.lambdas:
            for fraction in (args.fractions if kind in ("mel", "mel+phones") else [1.0]):
                if uses_phones and phone_reason:
                    rows.append({"features": kind, "lambda": lam, "fraction": fraction, "mean_jaw_corr": None,
                                 "reason": phone_reason})
                    continue
                rows.append(probe(people, kind, args.context, lam, fraction, args.repeats))
                print(json.dumps({k: rows[-1][k] for k in ("features", "lambda", "fraction", "mean_jaw_corr")}), flush=True)
    crossval_path = REPO / "real" / "metrics" / "audio2expr_crossval.json"
    crossval = json.loads(crossval_path.read_text()) if crossval_path.is_file() else {}
    result = {"machine": describe(), "cache_root": str(cache_root), "speakers": len(prior),
              "train_frames": int(sum(frame_mask(p, ["train"]).sum() for p in people.values())),
              "context": args.context, "folds": FOLDS, "phones": phones, "phone_reason": phone_reason,
              "transformer_crossval_mean_jaw_corr": crossval.get("mean_jaw_corr"), "rows": rows}
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
