"""deadlib.dub.dubbing input checks: each bad input raises a named DubError with a clear message, raised
before any long work, and leaves nothing behind; plus the timeline and mouth-replacement rules.

Fixtures are tiny stand-ins (an untrained smoke-size renderer checkpoint, a random expression
basis, an untrained audio2expr model): the checks must not need a trained model. Only the
"video without a face" test runs the face tracker (on 12 frames).
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from support import SMOKE_RENDERER

from deadlib.audio2expr.model import Audio2ExprConfig, Audio2Expression
from deadlib.audio2expr.stage import save_a2e
from deadlib.data.face3d import ExpressionBasis, vertex_weights
from deadlib.data.video import write_audio, write_video
from deadlib.dub import dubbing as dub_module
from deadlib.dub.dubbing import DubCheckpointError, DubError, DubInputError, dub
from deadlib.dub.inputs import (
    check_output_path,
    fit_audio,
    frame_timeline,
    inspect_checkpoint,
    load_new_audio,
    pick_identity,
    pingpong,
)
from deadlib.dub.render import mouth_blend, mouth_weights, replace_mouth
from deadlib.model.renderer import RendererConfig
from deadlib.train.checkpoint import TrainConfig, TrainState

SR = 16000
K = 6
TINY_A2E = dict(d_model=16, n_heads=2, n_layers=1, ff=32, dropout=0.0, context=4, period=10, conv_channels=8)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """Basis, audio2expr model and a smoke-size renderer checkpoint holding the texture 'actor'."""
    root = tmp_path_factory.mktemp("models")
    rng = np.random.default_rng(0)
    comps = rng.standard_normal((K, 468 * 3)).astype(np.float32) * 0.01
    basis = ExpressionBasis(mean=np.zeros(468 * 3, np.float32), components=comps, explained_variance=np.ones(K, np.float32),
                            explained_variance_ratio=np.full(K, 1 / K, np.float32), weights=vertex_weights(1.0, 0.1),
                            jaw_index=0)
    basis.save(root / "expr_basis.npz")
    torch.manual_seed(0)
    save_a2e(root / "a2e" / "audio2expr.pt", Audio2Expression(Audio2ExprConfig(K=K, **TINY_A2E)), basis)
    other = ExpressionBasis(**{**basis.__dict__, "components": comps[::-1].copy()})
    save_a2e(root / "a2e_other" / "audio2expr.pt", Audio2Expression(Audio2ExprConfig(K=K, **TINY_A2E)), other)
    state = TrainState(TrainConfig(renderer=RendererConfig(**SMOKE_RENDERER), profile="smoke"), ["actor"], "cpu")
    state.save_checkpoint(root / "actor" / "checkpoint.pt")
    return {"root": root, "basis": root / "expr_basis.npz", "a2e": root / "a2e" / "audio2expr.pt",
            "a2e_other": root / "a2e_other" / "audio2expr.pt", "ckpt": root / "actor"}


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict:
    """A face-less 12-frame clip with sound, a speech-like WAV, stereo 44.1 kHz, empty and corrupt files."""
    root = tmp_path_factory.mktemp("media")
    t = np.arange(SR) / SR
    tone = (0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    write_audio(root / "speech.wav", tone, SR)
    t44 = np.arange(44100) / 44100
    write_audio(root / "stereo44k.wav", np.stack([0.4 * np.sin(2 * np.pi * 300 * t44), np.zeros_like(t44)]), 44100)
    with wave.open(str(root / "empty.wav"), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(SR)
    (root / "corrupt.wav").write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (root / "corrupt.mp4").write_bytes(np.random.default_rng(2).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    frames = [np.full((64, 64, 3), 40 + 8 * k, np.uint8) for k in range(12)]
    write_video(root / "noface.mp4", frames, 25, audio=tone[: 12 * SR // 25], sample_rate=SR)
    return {k: root / f for k, f in (("speech", "speech.wav"), ("stereo", "stereo44k.wav"), ("empty", "empty.wav"),
                                     ("corrupt_audio", "corrupt.wav"), ("corrupt_video", "corrupt.mp4"),
                                     ("noface", "noface.mp4"))}


def run(models, media, tmp_path, *, video=None, audio=None, identity=None, out=None, profile="smoke",
        **overrides):
    over = {"a2e": str(models["a2e"]), "basis": str(models["basis"]), "cache_dir": str(tmp_path / "cache"),
            "prior": str(models["ckpt"] / "checkpoint.pt"), **overrides}
    return dub(video or media["noface"], audio or media["speech"], identity or models["ckpt"],
               out or tmp_path / "out.mp4", profile=profile, progress=False, overrides=over)


def assert_nothing_written(folder: Path) -> None:
    leftovers = [p.name for p in folder.iterdir() if p.suffix in (".mp4", ".tmp") or "partial" in p.name]
    assert leftovers == [], leftovers


@pytest.fixture
def no_long_work(monkeypatch):
    """Fail the test if dubbing gets as far as preparing the video."""
    def boom(*args, **kwargs):
        raise AssertionError("the video was prepared before the bad input was reported")
    monkeypatch.setattr(dub_module, "prepare_cached", boom)


# ----------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("case, pattern", [("missing", "no such file"), ("corrupt_audio", "cannot be opened"),
                                           ("empty", "zero length")])
def test_bad_audio_raises_before_any_work(models, media, tmp_path, no_long_work, case, pattern):
    audio = tmp_path / "nope.wav" if case == "missing" else media[case]
    with pytest.raises(DubInputError, match=pattern) as err:
        run(models, media, tmp_path, audio=audio)
    assert "--audio" in str(err.value) and str(audio) in str(err.value)
    assert_nothing_written(tmp_path)


def test_audio_shorter_than_a_frame_is_rejected(media, tmp_path):
    write_audio(tmp_path / "blip.wav", np.zeros(100, np.float32), SR)
    with pytest.raises(DubInputError, match="shorter than one video frame"):
        load_new_audio(tmp_path / "blip.wav")


def test_stereo_44k_audio_is_resampled_to_mono_16k(media):
    audio = load_new_audio(media["stereo"])
    assert audio.shape == (SR,) and audio.dtype == np.float32
    assert np.abs(audio[500:-500]).max() == pytest.approx(0.2, abs=0.01)  # the average of both channels
    assert np.argmax(np.abs(np.fft.rfft(audio))) == pytest.approx(300, abs=1)  # 1 s of audio: bin = Hz


@pytest.mark.parametrize("case, pattern", [("missing", "no such file"), ("corrupt_video", "cannot be opened"),
                                           ("audio_only", "no video stream")])
def test_bad_video_raises_before_any_work(models, media, tmp_path, no_long_work, case, pattern):
    video = {"missing": tmp_path / "nope.mp4", "corrupt_video": media["corrupt_video"],
             "audio_only": media["speech"]}[case]
    with pytest.raises(DubInputError, match=pattern) as err:
        run(models, media, tmp_path, video=video)
    assert "--video" in str(err.value)
    assert_nothing_written(tmp_path)


def test_video_without_a_face_is_reported_and_nothing_is_written(models, media, tmp_path):
    with pytest.raises(DubInputError, match="no face") as err:
        run(models, media, tmp_path)
    assert "--video" in str(err.value) and str(media["noface"]) in str(err.value)
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("case", ["no_folder", "is_folder", "not_mp4", "unwritable"])
def test_output_path_checked_first(models, media, tmp_path, no_long_work, case):
    out = {"no_folder": tmp_path / "missing" / "out.mp4", "is_folder": tmp_path,
           "not_mp4": tmp_path / "out.avi", "unwritable": Path("/proc/dub_test_out.mp4")}[case]
    # a missing audio file too: the output problem must be the one reported (it is checked first)
    with pytest.raises(DubInputError, match="--out") as err:
        run(models, media, tmp_path, out=out, audio=tmp_path / "nope.wav")
    assert str(out) in str(err.value)
    assert not (tmp_path / "missing").exists()


def test_output_equal_to_an_input_is_rejected(media, tmp_path):
    with pytest.raises(DubInputError, match="one of the inputs"):
        check_output_path(media["noface"], [media["noface"], media["speech"]])


def test_checkpoint_of_another_profile_names_both(models, media, tmp_path, no_long_work):
    with pytest.raises(DubCheckpointError) as err:
        run(models, media, tmp_path, profile="default")
    message = str(err.value)
    assert "'smoke'" in message and "'default'" in message and "resolution=64" in message and "resolution=128" in message
    assert_nothing_written(tmp_path)


def test_missing_or_corrupt_checkpoint(models, media, tmp_path, no_long_work):
    with pytest.raises(DubCheckpointError, match="no renderer checkpoint"):
        run(models, media, tmp_path, identity=tmp_path / "nowhere")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DubCheckpointError, match="not a readable torch checkpoint"):
        run(models, media, tmp_path, identity=tmp_path / "bad")


def test_texture_must_be_in_the_checkpoint(models):
    info = inspect_checkpoint(models["ckpt"], RendererConfig(**SMOKE_RENDERER), "smoke")
    assert pick_identity(info, None) == "actor" and info["identities"] == ["actor"]
    with pytest.raises(DubCheckpointError, match="no texture for identity 'bob'.*actor"):
        pick_identity(info, "bob")


def test_a2e_model_of_another_basis_is_rejected(models, media, tmp_path, no_long_work):
    with pytest.raises(DubCheckpointError, match="basis"):
        run(models, media, tmp_path, a2e=str(models["a2e_other"]))
    with pytest.raises(DubCheckpointError, match="no audio-to-expression model"):
        run(models, media, tmp_path, a2e=str(tmp_path / "none.pt"))


def test_unknown_setting_is_rejected(models, media, tmp_path, no_long_work):
    with pytest.raises(ValueError, match="unknown setting dub.shorten"):
        run(models, media, tmp_path, shorten="trim")
    with pytest.raises(ValueError, match="dub.shorter must be one of"):
        run(models, media, tmp_path, shorter="loop")  # rejected before any work, like every option
    with pytest.raises(DubError, match="shorter must be one of"):
        frame_timeline(10, 5, "loop")


def test_cli_reports_bad_input_with_exit_status_2(models, media, tmp_path, capsys):
    code = dub_module.main(["--video", str(media["noface"]), "--audio", str(tmp_path / "nope.wav"),
                            "--identity", str(models["ckpt"]), "--out", str(tmp_path / "o.mp4"), "--profile", "smoke",
                            "--a2e", str(models["a2e"]), "--basis", str(models["basis"])])
    assert code == 2
    assert "dub: error: --audio" in capsys.readouterr().err


# ----------------------------------------------------------------------------- timeline + mouth rules


def test_pingpong_loops_without_jumps():
    idx = pingpong(4, 11)
    assert idx.tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2]
    assert np.abs(np.diff(pingpong(7, 100))).max() == 1
    assert pingpong(1, 3).tolist() == [0, 0, 0]


def test_timeline_policies():
    assert frame_timeline(10, 4).tolist() == [0, 1, 2, 3]  # audio shorter: trim the video
    assert frame_timeline(10, 4, "pad").tolist() == list(range(10))  # ... or keep it (audio padded)
    assert frame_timeline(3, 6).tolist() == [0, 1, 2, 1, 0, 1]  # audio longer: ping-pong
    audio = np.ones(1000, np.float32)
    assert len(fit_audio(audio, 10)) == 6400 and fit_audio(audio, 10)[1000:].max() == 0
    assert len(fit_audio(np.ones(7000, np.float32), 10)) == 7000  # never trims the new audio


def _region_basis(jaw: int = 1) -> tuple[ExpressionBasis, np.ndarray]:
    """3 components: lower face only, upper face only, spread over the whole face; + the lower ids."""
    from deadlib.dub.render import lower_vertices

    rng = np.random.default_rng(0)
    lower = lower_vertices()
    upper = np.setdiff1d(np.arange(468), lower)
    comps = np.zeros((3, 468, 3), np.float32)
    comps[0, lower] = rng.standard_normal((len(lower), 3))  # mouth / jaw only
    comps[1, upper] = rng.standard_normal((len(upper), 3))  # brows / blinks only
    comps[2] = rng.standard_normal((468, 3))  # spread evenly: share ≈ 169/468 = 0.36
    basis = ExpressionBasis(mean=np.zeros(1404, np.float32), components=comps.reshape(3, -1),
                            explained_variance=np.ones(3, np.float32), explained_variance_ratio=np.ones(3, np.float32) / 3,
                            weights=np.ones(468, np.float32), jaw_index=jaw)
    return basis, lower


def test_ramp_weights_follow_lower_face_energy():
    basis, _ = _region_basis(jaw=1)
    w = mouth_weights(basis, (0.25, 0.5))
    assert w[0] == 1.0 and w[1] == 1.0  # lower-only component; the jaw component is always replaced
    assert 0.3 < w[2] < 0.6
    assert mouth_weights(ExpressionBasis(**{**basis.__dict__, "jaw_index": 0}))[1] == 0.0  # upper-only: kept
    video, audio = np.zeros((5, 3), np.float32), np.ones((5, 3), np.float32)
    np.testing.assert_allclose(replace_mouth(video, audio, w), np.broadcast_to(w, (5, 3)))
    np.testing.assert_allclose(mouth_blend(basis, "ramp"), np.diag(w))


def test_lsq_blend_puts_the_audio_on_the_lower_face_and_keeps_the_rest():
    basis, lower = _region_basis(jaw=0)
    m = mouth_blend(basis, "lsq")
    np.testing.assert_allclose(m[:2, :2], np.diag([1.0, 0.0]), atol=1e-5)  # separable parts: replaced / kept
    rng = np.random.default_rng(1)
    video, audio = rng.standard_normal((20, 3)).astype(np.float32), rng.standard_normal((20, 3)).astype(np.float32)
    comps = basis.components.reshape(3, 468, 3)

    def cost(c):  # the least-squares objective the blend minimises
        d_low = np.einsum("nk,kvc->nvc", c - audio, comps[:, lower])
        d_up = np.einsum("nk,kvc->nvc", c - video, np.delete(comps, lower, axis=1))
        return (d_low ** 2).sum() + (d_up ** 2).sum()

    best = cost(replace_mouth(video, audio, m))
    for other in (mouth_blend(basis, "ramp"), np.eye(3), np.zeros((3, 3))):
        assert best <= cost(replace_mouth(video, audio, other.astype(np.float32))) + 1e-3
    with pytest.raises(ValueError, match="lsq"):
        mouth_blend(basis, "copy")
    # 'none' (the self-reenactment's tracked drive) keeps the video's coefficients exactly
    np.testing.assert_array_equal(replace_mouth(video, audio, mouth_blend(basis, "none")), video)


@pytest.mark.parametrize("texture_init", [None, "mean"])
def test_adapt_now_takes_its_steps_and_texture_start_from_dub_adapt(texture_init):
    """dub.adapt.steps rescales the GAN onset to the same share of the budget; dub.adapt.texture_init
    (null: the adapt section's) is what the new person's texture starts from; no step selection."""
    from deadlib.core.config import load_params
    from deadlib.dub.person import adapt_now_config
    from deadlib.train.adapt import adapt_config

    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    study, _ = adapt_config("default", None, params=params)
    cfg = adapt_now_config({"steps": 60, "texture_init": texture_init}, "default", params)
    assert cfg.steps == 60 and cfg.select_metric is None and cfg.patience == 0
    assert cfg.loss.adv_start_step == round(study.loss.adv_start_step / study.steps * 60)
    assert cfg.texture_init == (texture_init or study.texture_init)
    assert adapt_now_config({"steps": None}, "default", params).steps == study.steps
