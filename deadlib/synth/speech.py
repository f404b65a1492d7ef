"""Procedural speech: a formant synthesiser driven by the articulator trajectories it returns.

The embedded corpus must be able to teach lip-sync, so the mouth motion and the audio come from
one source: a random phoneme sequence is turned into per-phoneme targets, smoothed by a
dominance-weighted coarticulation model (Cohen & Massaro style: Gaussian kernel, sigma 15-25 ms,
i.e. ~40-60 ms FWHM), and *both* the visible articulators (jaw_open, lip_width, lip_round) and
the acoustic controls (formants, voicing, nasal murmur, frication) are read off those same
trajectories. Radiated loudness follows the jaw opening and the oral occlusion, so an open /a/
is loud and a closed mouth is quiet: log-MEL energy genuinely predicts opening.

Phoneme inventory (formants F1/F2/F3 in Hz for an adult male; scaled per voice):

=====  ===========  ================  ====  =====  =====  ======================================
sym    kind         F1/F2/F3          jaw   width  round  acoustics
=====  ===========  ================  ====  =====  =====  ======================================
a      vowel        730/1090/2440     0.90   0.25   0.05  loudest vowel
E      vowel (ae)   660/1720/2410     0.78   0.60   0.00
e      vowel        530/1840/2480     0.55   0.55   0.00
o      vowel        570/ 840/2410     0.55  -0.45   0.75  rounding lowers F2
@      vowel (uh)   500/1500/2500     0.40   0.10   0.15  target of vowel reduction
i      vowel        280/2250/2900     0.20   0.90   0.00
u      vowel        310/ 870/2250     0.22  -0.85   1.00
m      nasal        250/1000/2200     0.05   0.00   0.10  lips closed, nasal murmur only
b      stop         250/ 900/2200     0.05   0.00   0.10  lips closed, voice bar, weak burst
p      stop         250/ 900/2200     0.05   0.00   0.10  lips closed, silent, burst + aspiration
f      fricative    300/1100/2300     0.12   0.15   0.00  lower lip to teeth, weak broad noise
v      fricative    300/1100/2300     0.14   0.15   0.00  as f, voiced, weaker noise
s      fricative    320/1700/2700     0.18   0.35   0.00  strong high-band (>4 kHz) noise
t      stop         300/1700/2600     0.22   0.20   0.00  silent closure, mid/high burst + asp.
k      stop         300/2000/2500     0.30   0.10   0.00  silent closure, low/mid burst + asp.
n      nasal        250/1700/2600     0.20   0.10   0.00  tongue closure, nasal murmur
l      approximant  360/1100/2700     0.30   0.15   0.00  voiced, partly occluded
sil    silence      500/1500/2500     0.00   0.00   0.00  closed relaxed mouth, no source
=====  ===========  ================  ====  =====  =====  ======================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import signal
from scipy.ndimage import gaussian_filter1d

CONTROL_RATE = 1000.0  # Hz: rate of the articulator / parameter trajectories
BLOCK = 64  # samples per block of the time-varying formant cascade (4 ms at 16 kHz)
NOISE_FLOOR_DB = -60.0  # background noise RMS, dB re full scale
FRICATION_BANDS = ((500.0, 1800.0), (1800.0, 4000.0), (4000.0, 7600.0))  # Hz, low/mid/high


@dataclass(frozen=True)
class Phoneme:
    """One inventory entry: acoustic targets plus the articulation that produces them."""

    symbol: str
    kind: str  # vowel | nasal | stop | fricative | approximant | silence
    formants: tuple[float, float, float]  # F1, F2, F3 (Hz, adult male)
    bandwidths: tuple[float, float, float]  # B1, B2, B3 (Hz)
    jaw: float  # jaw_open target in [0, 1]
    width: float  # lip_width target in [-1, 1] (spread +, rounded -)
    round: float  # lip_round / protrusion target in [0, 1]
    occlusion: float = 0.0  # oral closure in [0, 1]; 1 blocks oral radiation
    voicing: float = 1.0  # glottal source amplitude
    murmur: float = 0.0  # nasal / voice-bar path amplitude (radiates with the lips closed)
    frication: tuple[float, float, float] = (0.0, 0.0, 0.0)  # noise gain per FRICATION_BANDS
    burst: tuple[float, float, float] = (0.0, 0.0, 0.0)  # release-burst gain per band
    aspirated: bool = False  # voiceless release: aspiration noise, delayed voicing
    dur_ms: tuple[float, float] = (60.0, 100.0)  # duration range at speaking rate 1
    dominance: float = 1.0  # coarticulation weight of the jaw/tongue targets
    lip_dominance: float = 1.0  # coarticulation weight of the lip-shape targets


def _vowel(sym: str, f: tuple, b: tuple, jaw: float, width: float, rnd: float) -> Phoneme:
    return Phoneme(sym, "vowel", f, b, jaw, width, rnd, dur_ms=(70.0, 190.0))


_B_CONS = (80.0, 120.0, 200.0)
_LABIAL = dict(formants=(250.0, 900.0, 2200.0), bandwidths=_B_CONS, jaw=0.05, width=0.0,
               round=0.1, occlusion=1.0, dominance=4.0, lip_dominance=2.0)
PHONEMES: dict[str, Phoneme] = {p.symbol: p for p in (
    _vowel("a", (730, 1090, 2440), (90, 110, 170), 0.90, 0.25, 0.05),
    _vowel("E", (660, 1720, 2410), (80, 110, 160), 0.78, 0.60, 0.00),
    _vowel("e", (530, 1840, 2480), (60, 100, 150), 0.55, 0.55, 0.00),
    _vowel("o", (570, 840, 2410), (80, 90, 150), 0.55, -0.45, 0.75),
    _vowel("@", (500, 1500, 2500), (70, 100, 160), 0.40, 0.10, 0.15),
    _vowel("i", (280, 2250, 2900), (50, 100, 160), 0.20, 0.90, 0.00),
    _vowel("u", (310, 870, 2250), (60, 90, 150), 0.22, -0.85, 1.00),
    Phoneme("m", "nasal", **{**_LABIAL, "formants": (250.0, 1000.0, 2200.0)}, murmur=0.5,
            dur_ms=(55.0, 95.0)),
    Phoneme("b", "stop", **_LABIAL, voicing=0.6, murmur=0.12, burst=(0.5, 0.3, 0.15),
            dur_ms=(50.0, 85.0)),
    Phoneme("p", "stop", **_LABIAL, voicing=0.0, burst=(0.8, 0.5, 0.3), aspirated=True,
            dur_ms=(60.0, 100.0)),
    Phoneme("f", "fricative", (300, 1100, 2300), _B_CONS, 0.12, 0.15, 0.0, occlusion=0.85,
            voicing=0.0, frication=(0.15, 0.35, 0.45), dur_ms=(80.0, 130.0), dominance=2.0,
            lip_dominance=2.0),
    Phoneme("v", "fricative", (300, 1100, 2300), _B_CONS, 0.14, 0.15, 0.0, occlusion=0.7,
            voicing=0.8, frication=(0.08, 0.18, 0.25), dur_ms=(55.0, 95.0), dominance=2.0,
            lip_dominance=2.0),
    Phoneme("s", "fricative", (320, 1700, 2700), _B_CONS, 0.18, 0.35, 0.0, occlusion=0.9,
            voicing=0.0, frication=(0.02, 0.2, 1.0), dur_ms=(80.0, 140.0), dominance=1.5,
            lip_dominance=0.5),
    Phoneme("t", "stop", (300, 1700, 2600), _B_CONS, 0.22, 0.20, 0.0, occlusion=1.0,
            voicing=0.0, burst=(0.1, 0.6, 0.9), aspirated=True, dur_ms=(45.0, 80.0),
            dominance=0.6, lip_dominance=0.3),
    Phoneme("k", "stop", (300, 2000, 2500), _B_CONS, 0.30, 0.10, 0.0, occlusion=1.0,
            voicing=0.0, burst=(0.8, 0.7, 0.2), aspirated=True, dur_ms=(50.0, 85.0),
            dominance=0.5, lip_dominance=0.2),
    Phoneme("n", "nasal", (250, 1700, 2600), _B_CONS, 0.20, 0.10, 0.0, occlusion=1.0,
            murmur=0.5, dur_ms=(50.0, 85.0), dominance=0.6, lip_dominance=0.3),
    Phoneme("l", "approximant", (360, 1100, 2700), _B_CONS, 0.30, 0.15, 0.0, occlusion=0.25,
            dur_ms=(45.0, 80.0), dominance=0.6, lip_dominance=0.3),
    Phoneme("sil", "silence", (500, 1500, 2500), (70, 100, 160), 0.0, 0.0, 0.0, occlusion=1.0,
            voicing=0.0),
)}
VOWELS = ("a", "E", "e", "o", "@", "i", "u")
_VOWEL_P = (0.22, 0.12, 0.16, 0.14, 0.14, 0.12, 0.10)
ONSETS = ("m", "b", "p", "f", "v", "s", "t", "k", "n", "l")
CODAS = ("m", "n", "s", "t", "k", "l", "f")
BILABIALS = ("m", "b", "p")


@dataclass(frozen=True)
class Voice:
    """Identity-level speaking style; drawn once per synthetic speaker."""

    f0: float = 120.0  # base fundamental frequency (Hz), 90-230
    formant_scale: float = 1.0  # vocal-tract length factor (0.85 long .. 1.15 short tract)
    rate: float = 1.0  # speaking-rate factor: phoneme durations are divided by it
    loudness_db: float = -22.0  # target speech RMS, dB re full scale
    breathiness: float = 0.1  # aspiration noise mixed into voicing, 0-0.4
    mouth_range: float = 1.0  # how far vowels open the jaw (hypo < 1 < hyper articulation)


def random_voice(rng: np.random.Generator) -> Voice:
    """Draw a plausible voice; formant scale is correlated with f0 (high voices, short tracts)."""
    f0 = float(rng.uniform(90.0, 230.0))
    scale = 0.88 + 0.22 * (f0 - 90.0) / 140.0 + rng.normal(0.0, 0.03)
    return Voice(f0=f0, formant_scale=float(np.clip(scale, 0.85, 1.15)),
                 rate=float(rng.uniform(0.85, 1.2)), loudness_db=float(rng.uniform(-26, -18)),
                 breathiness=float(rng.uniform(0.02, 0.3)),
                 mouth_range=float(rng.uniform(0.85, 1.1)))


@dataclass
class Utterance:
    """Synthesised audio with the articulation that produced it, sampled per video frame."""

    audio: np.ndarray  # (S,) float32 in [-1, 1]
    articulation: np.ndarray  # (N, 3) float32 [jaw_open, lip_width, lip_round] at frame centres
    phonemes: list[tuple[float, float, str]]  # (start_s, end_s, symbol), covering [0, duration]
    voiced: np.ndarray  # (N,) bool: glottal source on at the frame centre
    f0: np.ndarray  # (N,) float32 Hz at the frame centre (0 where unvoiced)
    sample_rate: int
    fps: float


class _Token(NamedTuple):
    """One phoneme instance before layout: duration and per-token prosodic variation."""

    symbol: str
    dur: float  # seconds
    jaw_scale: float = 1.0  # stress: stressed vowels open more, reduced ones less
    reduce: float = 0.0  # 0..1 move of the formants toward schwa (vowel reduction)
    gain: float = 1.0  # source level (stressed syllables are louder)
    accent: float = 0.0  # log-f0 bump centred on this token (pitch accent), 0 if none


def _word(rng: np.random.Generator, voice: Voice, accent: bool) -> list[_Token]:
    """1-3 CV / CVC / V syllables with one stressed syllable."""
    n_syl = int(rng.choice([1, 2, 3], p=[0.45, 0.4, 0.15]))
    stressed = int(rng.integers(n_syl))
    tokens = []
    for s in range(n_syl):
        hit = s == stressed
        shape = rng.choice(["CV", "CVC", "V"], p=[0.6, 0.3, 0.1])
        syms = [] if shape == "V" else [str(rng.choice(ONSETS))]
        syms.append(str(rng.choice(VOWELS, p=_VOWEL_P)))
        if shape == "CVC":
            syms.append(str(rng.choice(CODAS)))
        for sym in syms:
            ph = PHONEMES[sym]
            lo, hi = ph.dur_ms
            frac = rng.uniform(0.45, 1.0) if (hit and ph.kind == "vowel") else rng.uniform(0, .6)
            dur = (lo + (hi - lo) * frac) / 1000.0 / voice.rate
            if ph.kind != "vowel":
                tokens.append(_Token(sym, dur))
            elif hit:
                bump = rng.uniform(0.08, 0.22) if accent else 0.0
                tokens.append(_Token(sym, dur, rng.uniform(1.0, 1.12), accent=bump))
            else:
                tokens.append(_Token(sym, dur, rng.uniform(0.7, 0.9), rng.uniform(0.1, 0.4),
                                     rng.uniform(0.6, 0.8), 0.0))
    return tokens


def _layout(rng: np.random.Generator, voice: Voice, duration_s: float
            ) -> tuple[list[tuple[float, _Token]], list[tuple[float, float]]]:
    """Sentences of words separated by pauses, filling exactly ``duration_s``.

    Returns (start_s, token) pairs covering [0, duration_s] and the (start, end) of sentences.
    """
    items = [_Token("sil", rng.uniform(0.15, 0.5))]
    sentences, t = [], items[0].dur
    while True:
        start, placed = t, 0
        for w in range(int(rng.integers(3, 10))):
            word = _word(rng, voice, accent=(w == 0) or rng.random() < 0.35)
            length = sum(tok.dur for tok in word)
            if t + length + 0.15 > duration_s:
                break
            if placed and rng.random() < 0.25:  # occasional short pause between words
                items.append(_Token("sil", rng.uniform(0.06, 0.2)))
                t += items[-1].dur
            items.extend(word)
            t, placed = t + length, placed + 1
        if not placed:
            break
        sentences.append((start, t))
        items.append(_Token("sil", rng.uniform(0.3, 1.0)))
        t += items[-1].dur
    if t < duration_s:
        items.append(_Token("sil", duration_s - t))
    starts = np.concatenate([[0.0], np.cumsum([tok.dur for tok in items])[:-1]])
    keep = starts < duration_s
    return [(float(s), tok) for s, tok, k in zip(starts, items, keep) if k], sentences


# Trajectory columns, their coarticulation smoothing (sigma, ms) and weight source.
_COLS = ("jaw", "width", "round", "F1", "F2", "F3", "B1", "B2", "B3",
         "occl", "AV", "AN", "fr_lo", "fr_mid", "fr_hi", "gain")
_SIGMA_MS = np.array([18, 25, 25, 15, 15, 15, 15, 15, 15, 5, 6, 8, 6, 6, 6, 10], float)
_C = {name: i for i, name in enumerate(_COLS)}


def _targets(tokens: list[_Token], voice: Voice) -> tuple[np.ndarray, np.ndarray]:
    """Per-token target rows (n, P) and coarticulation weights (n, P).

    Token variation is articulatory: the jaw scales with stress and voice.mouth_range, and F1
    follows it (~450 Hz per unit of jaw opening); reduction pulls formants toward schwa.
    """
    schwa = np.array(PHONEMES["@"].formants)
    rows, weights = [], []
    for tok in tokens:
        ph = PHONEMES[tok.symbol]
        f = np.array(ph.formants, float)
        jaw = ph.jaw
        if ph.kind == "vowel":
            jaw = float(np.clip(ph.jaw * tok.jaw_scale * voice.mouth_range, 0.05, 1.0))
            f = f + tok.reduce * (schwa - f)
            f[0] += 450.0 * (jaw - ph.jaw)
        f = f * voice.formant_scale
        rows.append([jaw, ph.width, ph.round, *f, *ph.bandwidths, ph.occlusion, ph.voicing,
                     ph.murmur, *ph.frication, tok.gain])
        d, ld = ph.dominance, ph.lip_dominance
        weights.append([d, ld, ld] + [d] * 6 + [1.0] * 7)
    return np.array(rows), np.array(weights)


def _coarticulate(x: np.ndarray, w: np.ndarray, sigma_ms: np.ndarray) -> np.ndarray:
    """Dominance-weighted Gaussian smoothing of step targets: G*(w x) / G*(w), per column."""
    out = np.empty_like(x)
    for sigma in np.unique(sigma_ms):
        cols = sigma_ms == sigma
        s = sigma * CONTROL_RATE / 1000.0
        num = gaussian_filter1d(x[:, cols] * w[:, cols], s, axis=0, mode="nearest")
        out[:, cols] = num / gaussian_filter1d(w[:, cols], s, axis=0, mode="nearest")
    return out


def _f0_contour(rng: np.random.Generator, voice: Voice, layout: list[tuple[float, _Token]],
                sentences: list[tuple[float, float]], t: np.ndarray) -> np.ndarray:
    """f0 (Hz) at times ``t``: per-sentence declination + pitch-accent bumps + slow drift."""
    log_f0 = np.zeros_like(t)
    for start, end in sentences:
        inside = (t >= start) & (t < end)
        log_f0[inside] = 0.08 - 0.2 * (t[inside] - start) / max(end - start, 1e-3)
    impulses = np.zeros_like(t)
    for start, tok in layout:
        if tok.accent:
            impulses[min(int((start + tok.dur / 2) * CONTROL_RATE), len(t) - 1)] += tok.accent
    sigma = 0.07 * CONTROL_RATE
    log_f0 += gaussian_filter1d(impulses, sigma, mode="constant") * sigma * np.sqrt(2 * np.pi)
    sigma = 0.15 * CONTROL_RATE  # slow drift, 3 % std (the kernel's energy sets the scale)
    drift = gaussian_filter1d(rng.standard_normal(len(t)), sigma)
    log_f0 += 0.03 * drift * np.sqrt(2 * np.sqrt(np.pi) * sigma)
    return voice.f0 * np.exp(log_f0)


def _glottal_source(rng: np.random.Generator, f0: np.ndarray, sample_rate: int,
                    breathiness: float) -> tuple[np.ndarray, np.ndarray]:
    """Rosenberg glottal-flow derivative with per-cycle jitter/shimmer, and the flow itself.

    Returns (derivative (S,), flow (S,) in [0, 1]); the derivative includes lip radiation.
    """
    cycle = np.floor(np.cumsum(f0 / sample_rate)).astype(np.int64)
    f0 = f0 * (1.0 + rng.normal(0.0, 0.01, int(cycle[-1]) + 1)[cycle])  # ~1 % jitter
    phase = np.cumsum(f0 / sample_rate)
    p, cycle = phase % 1.0, np.floor(phase).astype(np.int64)
    tp, tn = 0.4 + 0.15 * breathiness, 0.16 + 0.1 * breathiness  # opening / closing quotients
    opening, closing = p < tp, (p >= tp) & (p < tp + tn)
    flow = np.where(opening, 0.5 * (1 - np.cos(np.pi * p / tp)), 0.0)
    flow = np.where(closing, np.cos(0.5 * np.pi * (p - tp) / tn), flow)
    deriv = np.where(opening, 0.5 * np.pi / tp * np.sin(np.pi * p / tp), 0.0)
    deriv = np.where(closing, -0.5 * np.pi / tn * np.sin(0.5 * np.pi * (p - tp) / tn), deriv)
    shimmer = 1.0 + rng.normal(0.0, 0.05, int(cycle[-1]) + 1)[cycle]  # ~5 % per cycle
    return deriv * shimmer, flow


def _resonator_sos(freq: np.ndarray, bw: np.ndarray, sample_rate: int) -> np.ndarray:
    """Klatt resonators (unity gain at DC) as second-order sections; (..., 6) per (F, B)."""
    r = np.exp(-np.pi * bw / sample_rate)
    b1 = 2 * r * np.cos(2 * np.pi * np.minimum(freq, 0.45 * sample_rate) / sample_rate)
    b2 = -r * r
    sos = np.zeros(freq.shape + (6,))
    sos[..., 0], sos[..., 3], sos[..., 4], sos[..., 5] = 1 - b1 - b2, 1.0, -b1, -b2
    return sos


def _formant_cascade(x: np.ndarray, freqs: np.ndarray, bws: np.ndarray,
                     sample_rate: int) -> np.ndarray:
    """Time-varying all-pole cascade, coefficients per BLOCK (freqs/bws: (n_blocks, K)).

    The filter state is carried across blocks with direct-form-I semantics (the last two
    outputs of each resonator), so coefficient updates cause no transient, hence no clicks.
    """
    sos = _resonator_sos(freqs, bws, sample_rate)  # (n_blocks, K, 6)
    a1, a2 = sos[..., 4], sos[..., 5]  # (n_blocks, K); all sections have b1 = b2 = 0
    y, zi = np.empty_like(x), np.zeros((freqs.shape[1], 2))
    for k in range(sos.shape[0]):
        if k:  # DF2T state -> last two outputs (old coefficients) -> DF2T state (new ones)
            y1 = -zi[:, 1] / a2[k - 1]
            y2 = -(zi[:, 0] + a1[k - 1] * y1) / a2[k - 1]
            zi = np.stack([-a1[k] * y1 - a2[k] * y2, -a2[k] * y1], axis=1)
        part = slice(k * BLOCK, (k + 1) * BLOCK)
        y[part], zi = signal.sosfilt(sos[k], x[part], zi=zi)
    return y


def _release_events(rng: np.random.Generator, layout: list[tuple[float, _Token]],
                    n: int) -> tuple[np.ndarray, np.ndarray]:
    """Stop releases at control rate: burst gains (n, 3) and aspiration (n,) in [0, 1]."""
    impulses, aspiration = np.zeros((n, 3)), np.zeros(n)
    for start, tok in layout:
        ph = PHONEMES[tok.symbol]
        release = int((start + tok.dur) * CONTROL_RATE)
        if ph.kind != "stop" or release >= n:
            continue
        impulses[release] = ph.burst
        if ph.aspirated:
            aspiration[release:release + int(rng.uniform(0.03, 0.06) * CONTROL_RATE)] = 1.0
    decay = np.exp(-np.arange(int(0.025 * CONTROL_RATE)) / (0.004 * CONTROL_RATE))  # 4 ms
    bursts = signal.lfilter(decay, [1.0], impulses, axis=0)
    return bursts, gaussian_filter1d(aspiration, 0.004 * CONTROL_RATE)


def _lip_gain(jaw: np.ndarray) -> np.ndarray:
    """Radiated oral level vs jaw opening: /a/ (0.9) is ~6 dB louder than /i/ (0.2) from this."""
    return np.clip(jaw / 0.9, 0.0, 1.2) ** 0.5


def _render_audio(rng: np.random.Generator, voice: Voice, t_ctrl: np.ndarray, traj: np.ndarray,
                  bursts: np.ndarray, aspiration: np.ndarray, f0_ctrl: np.ndarray,
                  n_samples: int, sample_rate: int) -> np.ndarray:
    """Audio (S,) from the control-rate trajectories (T, P), release events and f0 (T,)."""
    t_audio = np.arange(n_samples) / sample_rate
    at = lambda col: np.interp(t_audio, t_ctrl, col)  # noqa: E731  control -> audio rate
    voicing = at(traj[:, _C["AV"]]) * at(traj[:, _C["gain"]])
    glottal, flow = _glottal_source(rng, at(f0_ctrl), sample_rate, voice.breathiness)
    noise = rng.standard_normal((3, n_samples))  # aspiration, frication, background

    # Oral branch: glottal + breath/aspiration noise through the time-varying formant cascade,
    # radiated in proportion to the lip aperture (jaw) unless the tract is occluded.
    source = voicing * (glottal + 2.0 * voice.breathiness * (0.3 + flow) * noise[0])
    source += 2.5 * at(aspiration) * noise[0]
    n_blocks = -(-n_samples // BLOCK)
    t_block = (np.arange(n_blocks) * BLOCK + BLOCK / 2) / sample_rate
    fixed = np.ones(n_blocks)  # F4, F5 do not move: (3300, 3850) Hz * scale, B = (250, 300)
    freqs = np.stack([np.interp(t_block, t_ctrl, traj[:, _C[c]]) for c in ("F1", "F2", "F3")]
                     + [3300.0 * voice.formant_scale * fixed,
                        3850.0 * voice.formant_scale * fixed], axis=1)  # (n_blocks, 5)
    bws = np.stack([np.interp(t_block, t_ctrl, traj[:, _C[c]]) for c in ("B1", "B2", "B3")]
                   + [250.0 * fixed, 300.0 * fixed], axis=1)  # (n_blocks, 5)
    oral_gain = (1.0 - at(np.clip(traj[:, _C["occl"]], 0, 1))) * _lip_gain(at(traj[:, _C["jaw"]]))
    speech = _formant_cascade(source, freqs, bws, sample_rate) * oral_gain

    # Nasal murmur / voice bar: radiates through the nose (cheeks) even with the lips closed.
    nasal = _resonator_sos(np.array([270.0, 2100.0]) * voice.formant_scale,
                           np.array([100.0, 300.0]), sample_rate)
    speech += 1.2 * signal.sosfilt(nasal, voicing * glottal) * at(traj[:, _C["AN"]])

    # Frication and release bursts: fixed noise bands with time-varying gains.
    for band, (lo, hi) in enumerate(FRICATION_BANDS):
        sos = signal.butter(4, [lo, hi], btype="bandpass", fs=sample_rate, output="sos")
        gain = at(traj[:, _C["fr_lo"] + band] + bursts[:, band])
        speech += 2.5 * signal.sosfilt(sos, noise[1]) * gain

    rms = np.sqrt(np.mean(speech**2)) + 1e-12
    level = min(10 ** (voice.loudness_db / 20) / rms, 0.95 / (np.abs(speech).max() + 1e-12))
    audio = speech * level + 10 ** (NOISE_FLOOR_DB / 20) * noise[2]
    return np.clip(audio, -1.0, 1.0)


def synthesize_utterance(rng: np.random.Generator, voice: Voice, duration_s: float,
                         sample_rate: int = 16000, fps: float = 25.0) -> Utterance:
    """Random sentences spoken by ``voice``: audio plus the per-frame articulation behind it.

    Deterministic for a given ``rng`` state. Frame i's articulation is the articulator state at
    its centre time (i + 0.5) / fps.
    """
    n_samples, n_frames = round(duration_s * sample_rate), round(duration_s * fps)
    if sample_rate <= 0 or fps <= 0 or n_frames < 1:
        raise ValueError(f"duration_s, sample_rate and fps must be positive and give at least "
                         f"one video frame, got {duration_s}, {sample_rate}, {fps}")
    layout, sentences = _layout(rng, voice, duration_s)
    starts = np.array([s for s, _ in layout])
    rows, weights = _targets([tok for _, tok in layout], voice)

    # Articulatory + acoustic trajectories at the control rate: (T, P).
    t_ctrl = np.arange(int(np.ceil(duration_s * CONTROL_RATE)) + 2) / CONTROL_RATE
    seg = np.searchsorted(starts, t_ctrl, side="right") - 1
    traj = _coarticulate(rows[seg], weights[seg], _SIGMA_MS)
    bursts, aspiration = _release_events(rng, layout, len(t_ctrl))
    traj[:, _C["AV"]] *= 1.0 - aspiration  # voice-onset time after voiceless releases
    f0_ctrl = _f0_contour(rng, voice, layout, sentences, t_ctrl)
    audio = _render_audio(rng, voice, t_ctrl, traj, bursts, aspiration, f0_ctrl, n_samples,
                          sample_rate)

    t_frame = (np.arange(n_frames) + 0.5) / fps  # (N,) frame-centre times
    art = np.stack([np.interp(t_frame, t_ctrl, traj[:, _C[c]]) for c in _COLS[:3]], axis=1)
    art = np.clip(art, [0.0, -1.0, 0.0], [1.0, 1.0, 1.0])  # (N, 3)
    voiced = np.interp(t_frame, t_ctrl, traj[:, _C["AV"]]) > 0.5
    f0 = np.where(voiced, np.interp(t_frame, t_ctrl, f0_ctrl), 0.0)
    phonemes = [(s, min(s + tok.dur, duration_s), tok.symbol) for s, tok in layout]
    return Utterance(audio=audio.astype(np.float32), articulation=art.astype(np.float32),
                     phonemes=phonemes, voiced=voiced, f0=f0.astype(np.float32),
                     sample_rate=sample_rate, fps=fps)
