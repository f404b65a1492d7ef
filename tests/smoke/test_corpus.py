"""The embedded corpus: written like real video, deterministic, and its audio predicts its mouth."""

import hashlib

import numpy as np
import pytest

from deadlib.data.facemesh_build import detect_landmarks
from deadlib.data.lipsync_probe import audio_predicts_mouth
from deadlib.data.video import probe_video, read_audio, read_video
from deadlib.synth.generate import SynthSettings, generate_corpus, identity_names


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    settings = SynthSettings(n_prior=2, n_heldout=1, duration_s=12.0, size=128, workers=2)
    return out, settings, generate_corpus(out, settings)


def test_corpus_is_ordinary_video_with_audio(corpus):
    out, settings, manifest = corpus
    prior, held = identity_names(settings)
    assert manifest["splits"] == {"prior": prior, "heldout": held}
    for name in prior + held:
        info = probe_video(out / f"{name}.mp4")
        assert info.fps == 25 and info.has_audio and (info.width, info.height) == (128, 128)
        assert abs(info.duration_s - settings.duration_s) < 0.1


def test_identities_look_different(corpus):
    out, settings, _ = corpus
    first = [read_video(out / f"{n}.mp4", max_frames=1)[0][0].astype(float) for n in ("synth_p00", "synth_p01")]
    assert np.abs(first[0] - first[1]).mean() > 10  # different skin, hair, backdrop


def test_generation_is_deterministic(corpus, tmp_path):
    out, settings, _ = corpus
    one = SynthSettings(**{**settings.__dict__, "n_prior": 1, "n_heldout": 0, "workers": 1})
    generate_corpus(tmp_path, one)
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()
    assert digest(tmp_path / "synth_p00.mp4") == digest(out / "synth_p00.mp4")


def test_audio_in_the_mp4_predicts_the_mouth(corpus):
    """Acceptance: a linear model on MEL bands explains most of the mouth-opening variance."""
    out, settings, _ = corpus
    clips = [(read_audio(out / f"{n}.mp4"), np.load(out / f"{n}.truth.npz")["articulation"][:, 0])
             for n in sum(identity_names(settings), [])]
    scores = audio_predicts_mouth(clips)
    assert scores["r2"] > 0.6, scores
    assert scores["r2_misaligned"] < 0.2, scores


def test_rendered_mouth_follows_the_articulation(corpus):
    """MediaPipe's inner-lip distance on the rendered frames tracks the ground-truth jaw opening."""
    out, _, _ = corpus
    frames, _ = read_video(out / "synth_p00.mp4", max_frames=120)
    jaw = np.load(out / "synth_p00.truth.npz")["articulation"][:120, 0]
    gaps = []
    for frame in frames[::2]:
        lm = detect_landmarks(np.ascontiguousarray(np.repeat(np.repeat(frame, 2, 0), 2, 1)))
        eyes = np.linalg.norm(lm[33, :2] - lm[263, :2])
        gaps.append(np.linalg.norm(lm[13, :2] - lm[14, :2]) / eyes)
    r = np.corrcoef(gaps, jaw[::2])[0, 1]
    assert r > 0.7, f"tracked mouth opening vs truth jaw_open: r={r:.2f}"
