"""The studio's pure helpers and the input errors it shows before any model is loaded (no browser)."""

from __future__ import annotations

import os
import threading
import wave
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from deadlib import studio as S
from deadlib.core.files import atomic_output
from deadlib.data.video import write_audio, write_video
from deadlib.dub.dubbing import DubInputError


def test_find_media_lists_videos_and_sounds_and_skips_hidden_files(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for name in ("a/x.mp4", "a/deep/y.MOV", "a/voice.wav", "a/.partial.mp4", "a/notes.txt"):
        (tmp_path / name).write_bytes(b"0")
    videos, sounds = S.find_media([tmp_path / "a", tmp_path / "missing"])
    assert [p.name for p in videos] == ["y.MOV", "x.mp4"]
    assert [p.name for p in sounds] == ["voice.wav", "y.MOV", "x.mp4"]  # a video's sound can drive a dub


def test_find_identities_lists_study_cells_and_adapt_now_caches(tmp_path):
    for folder in ("models/adapt/prior_synth_h00_n25", "cache/abc123_ff/adapt_n50_s4_m1_k"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "checkpoint.pt").write_bytes(b"0")
    (tmp_path / "models/adapt/empty").mkdir()
    found = S.find_identities(tmp_path / "models", tmp_path / "cache")
    assert [Path(p).name for _, p in found] == ["prior_synth_h00_n25", "adapt_n50_s4_m1_k"]
    assert found[0][0].startswith("study cell") and found[1][0].startswith("adapt-now")


def test_save_upload_writes_bytes_under_a_safe_name(tmp_path):
    value = ({"name": "../../my clip (1).mp4", "content": memoryview(b"abc")},)
    [path] = S.save_upload(value, tmp_path / "up")
    assert path.parent == tmp_path / "up" and path.name == "my_clip_1_.mp4" and path.read_bytes() == b"abc"
    assert S.save_upload((), tmp_path / "up") == []


def test_one_line_keeps_dub_messages_and_shortens_others():
    assert S.one_line(DubInputError("--audio a.wav: empty\nmore")) == "--audio a.wav: empty"
    assert S.one_line(RuntimeError("boom\n  at frame 3")) == "unexpected RuntimeError: boom"


def test_eta_counts_steps_while_adapting_and_frames_while_rendering():
    assert S.eta_text("render", 25, 100, 10.0) == "render 25/100 · 10 s · ETA 30 s"
    assert S.eta_text("prepare", 0, 1, 3.2) == "prepare · 3 s"
    # the ETA comes from the stage's own pace, not from the time the stages before it took
    assert S.eta_text("adapt", 20, 100, 70.0, 10.0) == "adapt 20/100 · 70 s · ETA 40 s"
    assert S.eta_text("render", 50, 100, 300.0, 5.0) == "render 50/100 · 300 s · ETA 5 s"
    assert S.eta_text("adapt", 0, 1, 3.0) == "adapt · 3 s"  # the stage's start, before a step count is known


def test_stale_partials_of_the_output_are_removed_and_nothing_else(tmp_path):
    out = tmp_path / "clip__voice.mp4"
    with pytest.raises(FileNotFoundError):  # the leftover removed under a running writer: it cannot finish
        with atomic_output(out) as tmp:  # the dub's own writer names the half-written file
            tmp.write_bytes(b"half an mp4")
            assert S.remove_stale_partials(out) == [tmp] and not tmp.exists()
    keep = [out, tmp_path / ".clip__voice.notahex0.partial.mp4", tmp_path / ".clip__voice.1a2b3c4d.partial.wav",
            tmp_path / ".other.1a2b3c4d.partial.mp4", tmp_path / "clip__voice.1a2b3c4d.partial.mp4"]
    for p in keep:
        p.write_bytes(b"x")
    left = tmp_path / ".clip__voice.1a2b3c4d.partial.mp4"
    left.write_bytes(b"killed mid-write")
    assert S.remove_stale_partials(out) == [left] and all(p.exists() for p in keep)
    assert S.remove_stale_partials(tmp_path / "missing" / "x.mp4") == []


def test_overlay_draws_box_and_tints_masks():
    frame = np.full((40, 60, 3), 100, np.uint8)
    lower, mouth = np.zeros((40, 60), bool), np.zeros((40, 60), bool)
    lower[20:30, 20:40], mouth[24:26, 25:35] = True, True
    out = S.overlay(frame, (10, 5, 50, 35), lower, mouth, others=[(0, 0, 8, 8)])
    assert tuple(out[5, 30]) == (0, 230, 0) and tuple(out[35, 30]) == (0, 230, 0)  # green box edges
    assert tuple(out[0, 4]) == (160, 160, 160)  # another face: grey
    assert out[22, 30, 2] > 150 > out[22, 30, 0]  # lower face: blue tint
    assert out[25, 30, 0] > 150 > out[25, 30, 2]  # mouth: red tint
    assert tuple(out[15, 30]) == (100, 100, 100)  # untouched elsewhere


def test_wipe_splits_before_and_after():
    before, after = np.zeros((4, 10, 3), np.uint8), np.full((4, 10, 3), 50, np.uint8)
    out = S.wipe(before, after, 0.3)
    assert (out[:, :2] == 0).all() and (out[:, 2:4] == 255).all() and (out[:, 4:] == 50).all()
    # the dub is read at another reduction than the source frame: the same picture at another scale
    before = np.zeros((40, 50, 3), np.uint8)
    before[:, 25:] = 200
    after = np.zeros((80, 100, 3), np.uint8)
    after[:, 50:] = 100
    out = S.wipe(before, after, 0.6)  # left of x=30: before; right: after, scaled to 40 × 50
    assert out.shape == before.shape and (out[:, 25:29] == 200).all() and (out[:, 31:] == 100).all()


def test_relative_setting_paths_resolve_against_the_repository():
    st = {"a2e": "models/a.pt", "basis": "/abs/b.npz", "prior_cache": None, "shorter": "trim"}
    assert S.absolute_settings(st, Path("/repo")) == {"a2e": "/repo/models/a.pt", "basis": "/abs/b.npz",
                                                     "prior_cache": None}


@pytest.fixture
def studio(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    write_video(media / "clip.mp4", np.zeros((5, 32, 32, 3), np.uint8), 25)
    write_audio(media / "voice.wav", np.zeros(1600), 16000)
    st = S.Studio(profile="smoke", roots=[media], out_dir=tmp_path / "out", models_root=tmp_path / "models",
                  overrides={"cache_dir": str(tmp_path / "cache")})
    yield st
    st.close(timeout=60)


def test_studio_defaults_to_the_listed_files(studio, tmp_path):
    assert studio.video_file() == tmp_path / "media" / "clip.mp4"
    assert studio.audio_file() == tmp_path / "media" / "voice.wav"
    assert studio.identity.value == S.ADAPT_NOW and not studio.adapt_frames.disabled  # no checkpoint found
    assert studio.out.value == str(tmp_path / "out" / "clip__voice.mp4")
    studio.video_path.value = str(tmp_path / "typed.mp4")  # a typed path wins over the list
    assert studio.video_file() == tmp_path / "typed.mp4" and studio.out.value.endswith("typed__voice.mp4")


def upload(name: str, content: bytes) -> tuple:
    """A FileUpload value as the browser sends it (ipywidgets 8)."""
    return ({"name": name, "type": "video/mp4", "size": len(content), "content": memoryview(content),
             "last_modified": datetime.now(timezone.utc)},)


def test_upload_is_written_and_selected(studio):
    studio.video_upload.value = upload("up.mp4", b"not a video")
    assert studio.video_file() == studio.upload_dir / "up.mp4" and studio.video_file().read_bytes() == b"not a video"


def run(studio, start) -> str:
    assert start()
    assert studio.wait(300)
    return studio.message.value


def test_close_removes_the_uploads_and_nothing_else(studio, tmp_path):
    studio.video_upload.value = upload("up.mp4", b"not a video")
    folder = studio.upload_dir
    assert (folder / "up.mp4").is_file()
    studio.close()
    assert not folder.exists() and (tmp_path / "media" / "clip.mp4").is_file()
    studio.close()  # twice is fine


def test_orphaned_upload_folders_of_dead_processes_are_removed(tmp_path):
    """A killed kernel never runs close() or the finaliser: the next studio removes its uploads."""
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(gone.stdout)   # a process that has exited
    dead, live, unmarked = (tmp_path / f"{S.UPLOAD_PREFIX}{k}" for k in ("dead", "live", "unmarked"))
    for folder in (dead, live, unmarked):
        folder.mkdir()
        (folder / "up.mp4").write_bytes(b"video")
    (dead / S.UPLOAD_OWNER).write_text(str(dead_pid))
    (live / S.UPLOAD_OWNER).write_text(str(os.getpid()))
    (tmp_path / "not-a-studio").mkdir()
    fresh = S.new_upload_folder(tmp_path)
    assert not dead.exists() and live.is_dir() and unmarked.is_dir() and (tmp_path / "not-a-studio").is_dir()
    assert fresh.is_dir() and (fresh / S.UPLOAD_OWNER).read_text() == str(os.getpid())
    assert S.remove_orphan_uploads(tmp_path) == []   # its own and live folders stay


def test_studio_marks_its_upload_folder(studio):
    assert (studio.upload_dir / S.UPLOAD_OWNER).read_text() == str(os.getpid())
    assert studio.upload_dir.name.startswith(S.UPLOAD_PREFIX)


def test_upload_that_is_not_media_gives_one_line_message(studio):
    studio.video_upload.value = upload("up.mp4", b"not a video")
    msg = run(studio, studio.start_check)
    assert "dead-studio-error" in msg and "--video" in msg and "up.mp4" in msg and "Traceback" not in msg
    assert not studio.check_button.disabled and not studio.dub_button.disabled  # usable again


def test_zero_length_audio_gives_one_line_message(studio, tmp_path):
    with wave.open(str(tmp_path / "empty.wav"), "wb") as w:  # a valid WAV header, no samples
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
    studio.audio_path.value = str(tmp_path / "empty.wav")
    msg = run(studio, studio.start_dub)
    assert "dead-studio-error" in msg and "--audio" in msg and "empty.wav" in msg
    assert not any((tmp_path / "out").glob("*.mp4"))


def unwritable_folder(tmp_path) -> Path:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").write_bytes(b"")  # root writes anyway: use a folder no one can create files in
        (folder / "probe").unlink()
        folder = Path("/proc/1")
        if not folder.is_dir():
            pytest.skip("running as root and no /proc/1 to stand for an unwritable folder")
    except OSError:
        pass
    return folder


def test_unwritable_output_folder_gives_one_line_message(studio, tmp_path):
    folder = unwritable_folder(tmp_path)
    studio.out.value = str(folder / "dub.mp4")
    msg = run(studio, studio.start_dub)
    assert "dead-studio-error" in msg and "--out" in msg and "writable" in msg


def test_a_second_press_does_not_start_a_second_run(studio):
    release, calls = threading.Event(), []
    assert studio._start("dub", lambda: (calls.append(1), release.wait(30)))
    assert studio.dub_button.disabled and not studio.cancel_button.disabled
    assert not studio.start_dub() and not studio.start_check()  # refused while the first one runs
    assert "another run" in studio.message.value
    release.set()
    assert studio.wait(30) and calls == [1] and studio.runs_started == 0  # the refused dub never started
    assert not studio.dub_button.disabled and studio.cancel_button.disabled
