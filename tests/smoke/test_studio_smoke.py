"""The dubbing studio (deadlib.studio, notebook 07) on the smoke profile: driven headlessly through its
callbacks (check, dub, cancel, a video without a face, a video with two faces), then like a person
would, in JupyterLab with headless Chromium (Selenium): open the notebook, run all, pick a video
and an audio, press Dub, wait for the players, take a screenshot.

The world is a tiny version of test_dub_smoke.py's (2 prior + 1 held-out synthetic identity, 6 s at
128 px, prepared on the smoke profile, the audio-to-expression stage, an actor renderer laid out as a
study cell ``models/adapt/synth_h00`` and a 4-step prior), with a renderer trained only 30 steps:
these tests check the front end, not the dub's quality (test_dub_smoke.py does that).

The browser test skips (with the reason) only when chromium, chromedriver or selenium are absent;
``scripts/setup.sh`` installs Debian's ``chromium`` + ``chromium-driver`` when run as root. Set
``DEAD_STUDIO_SCREENSHOT=docs/studio.png`` to also copy its screenshot there (the README's picture).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from support import SHARED_CLIPS

from deadlib.data.video import probe_video, read_audio, read_video, write_video
from deadlib.dub.dubbing import dub
from deadlib.studio import ADAPT_NOW, ADAPT_NOW_LABEL, Studio

SR, FPS = 16000, 25
ACTOR_STEPS = 30
BROWSER_TIMEOUT_S = 600  # the whole browser test (server start, kernel, dub) must end within this
REAL_PICK = ("grid_bbaf2n.mp4", "vretalking_audio1.wav")  # the browser test's real face and driving voice


@pytest.fixture(scope="module", autouse=True)
def quiet_and_one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def world(tmp_path_factory, dub_world_builder) -> dict:
    root = tmp_path_factory.mktemp("studio")
    built = dub_world_builder(root, root / "models" / "adapt" / "synth_h00", ACTOR_STEPS)
    return {**built, "models": root / "models"}


def make_studio(world, out_dir: Path, roots=None) -> Studio:
    return Studio(profile="smoke", roots=roots or [world["raw"]], models_root=world["models"], out_dir=out_dir,
                  overrides=world["overrides"])


def run(studio: Studio, start) -> str:
    assert start(), studio.message.value
    assert studio.wait(900), "studio job did not end"
    return studio.message.value


def test_check_then_dub_with_a_study_cell(world, tmp_path):
    studio = make_studio(world, tmp_path / "out")
    assert studio.video_file() == world["raw"] / "synth_h00.mp4"
    assert studio.audio_file() == world["raw"] / "synth_p00.mp4"  # no .wav listed: another video's sound
    assert studio.identity.value == str(world["actor"]) and studio.adapt_frames.disabled

    msg = run(studio, studio.start_check)
    assert "check done" in msg, getattr(studio, "last_traceback", msg)
    check = studio.check_result
    assert check.no_face_frames == 0 and check.frames == 150 and not check.several_faces
    assert studio.face.layout.display == "none"  # one face: no choice offered
    image = cv2.imdecode(np.frombuffer(studio.check_image.value, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert image.shape == (128, 128, 3)
    assert ((image == (0, 230, 0)).all(-1)).sum() > 100  # the green face box is drawn
    assert "0 without a face" in studio.check_info.value

    msg = run(studio, studio.start_dub)
    assert "written" in msg, getattr(studio, "last_traceback", msg)
    out = tmp_path / "out" / "synth_h00__synth_p00.mp4"
    assert studio.result.out == out and out.is_file() and not list(out.parent.glob(".*partial*"))
    info = probe_video(out)
    assert info.codec == "h264" and info.has_audio
    assert studio.result.cache_folder == check.folder  # the dub reused the checked preparation
    assert studio.stages_seen == ["check", "prepare", "audio2expr", "render"]
    assert studio.bar.value == studio.bar.max
    assert studio.player.value.count("<video") == 2 and 'class="dead-studio-dubbed"' in studio.player.value
    assert "download" in studio.link.value and str(out) in studio.link.value
    assert studio.result_box.layout.display is None and studio.plot.value[:4] == b"\x89PNG"
    assert set(studio.sync) >= {"mouth_open_r_new", "mouth_open_r_own", "dark_out_r_new"}
    assert studio.sync["mouth_open_r_new"] > studio.sync["mouth_open_r_own"]  # the dub follows the new audio
    assert studio.frame.max == studio.result.n_frames - 1 and studio.compare.value[:4] == b"\x89PNG"
    before = studio.compare.value
    studio.split.value = 0.9
    assert studio.compare.value != before  # the before/after wipe moves


def test_cancel_leaves_no_file_and_the_next_run_works(world, tmp_path):
    studio = make_studio(world, tmp_path / "out")
    studio.shorter.value, studio.postprocess.value = "pad", False
    seen = []
    show = studio._on_progress

    def press_cancel_mid_render(stage, done, total):
        show(stage, done, total)
        seen.append((stage, done))
        if stage == "render" and done == 40:
            studio.cancel()

    studio._on_progress = press_cancel_mid_render
    msg = run(studio, studio.start_dub)
    out = Path(studio.out.value)
    assert "cancelled" in msg and ("render", 40) in seen and ("render", 41) not in seen
    assert not out.exists() and not [p for p in out.parent.iterdir() if "partial" in p.name]
    assert studio.result is None and studio.result_box.layout.display == "none"

    studio._on_progress = show
    msg = run(studio, studio.start_dub)
    assert "written" in msg and out.is_file() and studio.runs_started == 2


def test_adapt_now_reports_each_step_can_be_cancelled_and_resumes(world, tmp_path, monkeypatch):
    """Adapt-now shows its own progress (one report per training step, the bar counting steps); a
    cancel mid-adaptation stops within a step and writes nothing; the next dub resumes the adaptation
    from its last checkpoint (step 4 of 8 here; test_train.py::test_killed_run_resumes_exactly shows
    that a resumed run ends where an uninterrupted one does); a third dub reuses the finished adaptation
    without calling the trainer and writes the same bytes."""
    studio = make_studio(world, tmp_path / "out")
    studio.overrides = {**studio.overrides, "adapt": {"steps": 8}}  # smoke adapt checkpoints every 4 steps
    studio.identity.value = ADAPT_NOW
    assert not studio.adapt_frames.disabled
    studio.adapt_frames.value = 25
    show, seen, bars = studio._on_progress, [], []

    def record(stage, done, total, cancel_at=None):
        show(stage, done, total)
        seen.append((stage, done, total))
        if stage == "adapt" and done > 0:
            bars.append((studio.bar.value, studio.bar.max, studio.stage.value))
        if cancel_at is not None and stage == "adapt" and done == cancel_at:
            studio.cancel()

    studio._on_progress = lambda *a: record(*a, cancel_at=6)
    msg = run(studio, studio.start_dub)
    out = Path(studio.out.value)
    assert "cancelled during adapt" in msg, getattr(studio, "last_traceback", msg)
    steps = next(t for s, d, t in seen if s == "adapt" and d > 0)
    assert [d for s, d, _ in seen if s == "adapt"] == [0, 1, 2, 3, 4, 5, 6] and steps == 8
    # while counting, the bar counts steps: whenever the label shows "adapt k/8" the bar's scale is the
    # 8 steps. Both are redrawn together at most 4 times a second, so on a fast machine the first steps
    # may still show the stage-level bar of the step-0 report (label "adapt · 0 s", no count): only the
    # drawn pairs are checked, never how many of them there are. Once cancelled it shows the step the
    # run stopped at.
    counted = [(value, scale) for value, scale, label in bars if "/8" in label]
    assert counted and all(scale == 8 for _, scale in counted), bars
    assert (studio.bar.value, studio.bar.max) == (6, 8) and "adapt 6/8" in studio.stage.value
    assert not out.exists() and studio.result is None

    seen.clear()
    studio._on_progress = record
    msg = run(studio, studio.start_dub)
    assert "written" in msg, getattr(studio, "last_traceback", msg)
    adapt_steps = [d for s, d, _ in seen if s == "adapt"]
    assert adapt_steps == [0, 5, 6, 7, 8]  # resumed from the checkpoint of step 4, not restarted
    assert studio.stages_seen == ["check", "prepare", "adapt", "audio2expr", "render"]
    assert studio.result.checkpoint.parent.name.startswith("adapt_n25_s8_")  # the slider's frame count was used
    assert studio.result.identity.startswith("dub_") and studio.result.out.is_file()
    written = studio.result.out.read_bytes()

    def no_training(*args, **kwargs):
        raise AssertionError("an adapted video was adapted again")

    monkeypatch.setattr("deadlib.train.adapt.adapt", no_training)  # the finished adaptation is reused as is
    seen.clear()
    msg = run(studio, studio.start_dub)
    assert "written" in msg, getattr(studio, "last_traceback", msg)
    assert [d for s, d, _ in seen if s == "adapt"] == [0] and studio.result.out.read_bytes() == written


# One studio dub in a child process, as a JupyterLab kernel runs it; with "kill_at" the process SIGKILLs
# itself there (what a kernel shut down or restarted mid-dub gets: no Python cleanup runs). argv[1]: JSON.
KERNEL = r"""
import json, os, signal, sys
from pathlib import Path

import torch

from deadlib.data.raster_store import RasterWriter
from deadlib.studio import ADAPT_NOW, Studio

torch.set_num_threads(1)
cfg = json.loads(sys.argv[1])
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
if cfg["kill_at"] == "raster":  # mid-prepare: once the first chunk of rasters is on disk
    write = RasterWriter.write
    RasterWriter.write = lambda self, *a: (write(self, *a), die())
studio = Studio(profile="smoke", roots=[Path(cfg["raw"])], models_root=Path(cfg["models"]),
                out_dir=Path(cfg["out"]).parent, overrides={**cfg["overrides"], "adapt": {"steps": 8}})
studio.identity.value, studio.adapt_frames.value, studio.out.value = ADAPT_NOW, 25, cfg["out"]
show = studio._on_progress

def report(stage, done, total):
    show(stage, done, total)
    print("PROGRESS", stage, done, flush=True)  # the parent reads these even from a killed run
    if [stage, done] == cfg["kill_at"]:
        die()

studio._on_progress = report
assert studio.start_dub() and studio.wait(900)
print(json.dumps({"message": studio.message.value, "stale_removed": [str(p) for p in studio.stale_removed],
                  "traceback": studio.last_traceback}))
"""


def kernel_dub(world, cache: Path, out: Path, kill_at=None) -> dict:
    """Run KERNEL → its JSON report (none when it was killed where asked) + "seen": the (stage, done) it reported."""
    cfg = {"raw": str(world["raw"]), "models": str(world["models"]), "out": str(out), "kill_at": kill_at,
           "overrides": {**world["overrides"], "cache_dir": str(cache)}}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DEAD_PROGRESS": "off", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", KERNEL, json.dumps(cfg)], capture_output=True, text=True,
                          timeout=900, env=env, cwd=Path(__file__).resolve().parents[2])
    lines = done.stdout.strip().splitlines()
    seen = [(w[1], int(w[2])) for w in (line.split() for line in lines if line.startswith("PROGRESS "))]
    if kill_at is not None:
        assert done.returncode == -signal.SIGKILL, f"not killed at {kill_at}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        return {"seen": seen}
    assert done.returncode == 0, done.stderr[-3000:]
    return {**json.loads(lines[-1]), "seen": seen}


def adapt_steps(run: dict) -> list[int]:
    return [d for s, d in run["seen"] if s == "adapt"]


def test_a_kernel_killed_mid_dub_leaves_no_file_and_the_next_dub_is_the_same(world, tmp_path):
    """Closing the notebook mid-run: a kernel killed while preparing (rasters half written), while
    adapting (step 6 of 8) and while rendering (frame 40) leaves no output file; the next dub in that
    cache removes the killed render's half-written mp4, resumes the adaptation from its step-4
    checkpoint and writes the same bytes as an uninterrupted dub in a fresh cache."""
    reference = kernel_dub(world, tmp_path / "cache_ref", tmp_path / "ref" / "dub.mp4")
    assert "written" in reference["message"], reference["traceback"]
    cache, out = tmp_path / "cache", tmp_path / "out" / "dub.mp4"
    killed = {kill_at if isinstance(kill_at, str) else kill_at[0]: kernel_dub(world, cache, out, kill_at)
              for kill_at in ("raster", ["adapt", 6], ["render", 40])}
    assert killed["raster"]["seen"][-1] == ("prepare", 0) and not out.exists()
    assert adapt_steps(killed["adapt"]) == [0, 1, 2, 3, 4, 5, 6]  # the preparation was redone, then killed at 6
    assert adapt_steps(killed["render"]) == [0, 5, 6, 7, 8]  # resumed from the step-4 checkpoint, not restarted
    assert killed["render"]["seen"][-1] == ("render", 40) and not out.exists()
    half = [p.name for p in out.parent.iterdir()]
    assert len(half) == 1 and ".partial" in half[0]  # the killed render's mp4, never renamed to dub.mp4
    again = kernel_dub(world, cache, out)
    assert "written" in again["message"], again["traceback"]
    assert [Path(p).name for p in again["stale_removed"]] == half and adapt_steps(again) == [0]  # adapted: cached
    assert out.read_bytes() == (tmp_path / "ref" / "dub.mp4").read_bytes()
    assert [p.name for p in out.parent.iterdir()] == ["dub.mp4"]
    assert not [p for p in cache.rglob("*") if "partial" in p.name]


def test_progress_and_cancel_hooks_leave_the_dub_bytes_unchanged(world, tmp_path):
    """dub's on_progress / cancel hooks (what the studio passes) change nothing in the output file."""
    args = (world["raw"] / "synth_h00.mp4", world["raw"] / "synth_p01.mp4", world["actor"])
    plain = dub(*args, tmp_path / "plain.mp4", profile="smoke", progress=False, overrides=world["overrides"])
    calls = []
    hooked = dub(*args, tmp_path / "hooked.mp4", profile="smoke", progress=False, overrides=world["overrides"],
                 track_select="largest", on_progress=lambda *a: calls.append(a), cancel=lambda: False)
    assert (tmp_path / "plain.mp4").read_bytes() == (tmp_path / "hooked.mp4").read_bytes()
    assert hooked.cache_folder == plain.cache_folder  # 'largest' is the default selection: same cache key
    assert calls[0] == ("check", 0, 1) and calls[-1] == ("render", plain.n_frames, plain.n_frames)
    assert [c[1] for c in calls if c[0] == "render"] == [0] + list(range(plain.n_frames + 1))  # start, each frame, end


def test_video_without_a_face_gives_one_line_message(world, tmp_path):
    blank = np.full((50, 128, 128, 3), 90, np.uint8)
    write_video(tmp_path / "noface.mp4", blank, FPS, audio=read_audio(world["raw"] / "synth_h00.mp4", SR)[: 2 * SR],
                sample_rate=SR)
    studio = make_studio(world, tmp_path / "out")
    studio.video_path.value = str(tmp_path / "noface.mp4")
    msg = run(studio, studio.start_check)
    assert "dead-studio-error" in msg and "noface.mp4" in msg and "face" in msg and "Traceback" not in msg
    msg = run(studio, studio.start_dub)
    assert "dead-studio-error" in msg and "face" in msg and not list((tmp_path / "out").glob("*.mp4"))


def two_face_video(world, path: Path) -> None:
    """2 s, 272 × 128: synth_h00 at full size on the left (centre x ≈ 64), synth_p01 at 104 px right of
    the frame centre (x ≈ 188; frame centre 136): largest = the left face, central = the right one.
    (MediaPipe's detector misses faces much below ~100 px in such a frame.)"""
    left, _ = read_video(world["raw"] / "synth_h00.mp4", max_frames=50)
    right, _ = read_video(world["raw"] / "synth_p01.mp4", max_frames=50)
    frames = np.full((50, 128, 272, 3), 40, np.uint8)
    frames[:, :, :128] = left
    frames[:, 12:116, 136:240] = [cv2.resize(f, (104, 104), interpolation=cv2.INTER_AREA) for f in right]
    write_video(path, frames, FPS, audio=read_audio(world["raw"] / "synth_h00.mp4", SR)[: 2 * SR], sample_rate=SR)


def green_box_centre_x(studio: Studio) -> float:
    image = cv2.imdecode(np.frombuffer(studio.check_image.value, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    xs = np.flatnonzero((image == (0, 230, 0)).all(-1).any(0))
    return float(xs.mean())


def test_two_face_video_offers_a_choice_passed_to_tracking(world, tmp_path):
    two_face_video(world, tmp_path / "two.mp4")
    studio = make_studio(world, tmp_path / "out")
    studio.video_path.value = str(tmp_path / "two.mp4")
    studio.face.value = "largest"
    msg = run(studio, studio.start_check)
    assert "check done" in msg, getattr(studio, "last_traceback", msg)
    assert studio.check_result.several_faces and studio.face.layout.display is None  # the choice is offered
    assert "faces seen" in studio.check_info.value
    image = cv2.imdecode(np.frombuffer(studio.check_image.value, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert ((image == (160, 160, 160)).all(-1)).sum() > 50  # the other face's box (grey)
    largest = studio.check_result.folder
    assert green_box_centre_x(studio) < 136

    studio.face.value = "central"  # choosing re-runs the check with prepare.track.select = central
    assert studio.wait(900)
    assert "check done" in studio.message.value, getattr(studio, "last_traceback", studio.message.value)
    assert studio.check_result.folder != largest and green_box_centre_x(studio) > 136
    central = studio.check_result.folder

    # any face can be picked by its thumbnail (here the left one again, by a point:X,Y selection)
    picks = studio.face_picks.children
    assert studio.face_picks.layout.display is None and len(picks) == 2
    assert [b.children[1].disabled for b in picks] == [False, True]  # left to right; the right one is dubbed
    assert all(b.children[0].value[:4] == b"\x89PNG" for b in picks)
    picks[0].children[1].click()
    assert studio.wait(900)
    assert "check done" in studio.message.value, getattr(studio, "last_traceback", studio.message.value)
    assert studio.face.value.startswith("point:") and green_box_centre_x(studio) < 136
    assert studio.check_result.folder not in (central, largest)
    assert [b.children[1].disabled for b in studio.face_picks.children] == [True, False]
    studio.face.value = "central"  # back to the policy: the point option stays listed, the check is cached
    assert studio.wait(900) and studio.check_result.folder == central
    msg = run(studio, studio.start_dub)  # ... and the dub tracks the same face
    assert "written" in msg, getattr(studio, "last_traceback", msg)
    assert studio.result.cache_folder == studio.check_result.folder


# ----------------------------------------------------------------------------- in a real browser


def browser_tools() -> tuple[str, str]:
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -r requirements/lock.txt)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("headless Chromium not found (apt-get install chromium chromium-driver; scripts/setup.sh does it "
                    f"as root): chromium={chromium}, chromedriver={driver}")
    return chromium, driver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(root: Path, port: int, token: str, logs: Path) -> subprocess.Popen:
    """JupyterLab on 127.0.0.1:port serving ``root``, with its config/runtime/settings in ``logs``."""
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(logs / "config"), "JUPYTER_RUNTIME_DIR": str(logs / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(logs / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(logs / "workspaces"),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "DEAD_PROGRESS": "off", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.allow_root=True",
           "--ServerApp.port_retries=0", "--LabApp.news_url=", "--LabServerApp.workspaces_dir=" + str(logs / "ws")]
    return subprocess.Popen(cmd, env=env, stdout=open(logs / "lab.log", "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    """End the server started here (its own process group: the server and its kernels)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_studio_in_jupyterlab_with_headless_chromium(world, tmp_path, repo_root):
    chromium, chromedriver = browser_tools()
    import nbformat
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    deadline = time.monotonic() + BROWSER_TIMEOUT_S
    left = lambda: max(5.0, deadline - time.monotonic())  # noqa: E731
    served, logs, out_dir = tmp_path / "lab", tmp_path / "logs", tmp_path / "out"
    served.mkdir(), logs.mkdir()
    # a real face and another speaker's voice from ../shared/clips, adapted now; the synthetic world without them
    real = SHARED_CLIPS.is_dir() and all((SHARED_CLIPS / f).is_file() for f in REAL_PICK)
    video, audio, identity = REAL_PICK + (ADAPT_NOW,) if real else ("raw/synth_h00.mp4", "raw/synth_p01.mp4", None)
    roots = [str(world["raw"])] + ([str(SHARED_CLIPS)] if real else [])
    nb = nbformat.read(repo_root / "notebooks" / "07_studio.ipynb", as_version=4)
    values = dict(profile="smoke", params_path=str(repo_root / "params.yaml"), media_roots=roots,
                  models_root=str(world["models"]), out_dir=str(out_dir), overrides=world["overrides"])
    at = next(k for k, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell("".join(f"{k} = {v!r}\n" for k, v in values.items())))
    nbformat.write(nb, served / "07_studio.ipynb")
    port, token = free_port(), "dead-studio-test-token"
    server = start_lab(served, port, token, logs)
    driver = None
    try:
        for _ in range(240):  # the server answers within a minute even on a busy machine
            if server.poll() is not None:
                pytest.fail(f"jupyter lab exited: {(logs / 'lab.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("jupyter lab did not answer in 2 minutes")
        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,2200",
                    "--disable-gpu", "--no-first-run", f"--user-data-dir={logs / 'chromium'}"):
            opts.add_argument(arg)
        driver = webdriver.Chrome(service=Service(chromedriver, log_output=str(logs / "chromedriver.log")), options=opts)
        driver.set_page_load_timeout(120)
        driver.get(f"http://127.0.0.1:{port}/lab/tree/07_studio.ipynb?token={token}")
        wait = lambda secs: WebDriverWait(driver, min(secs, left()), poll_frequency=0.5)  # noqa: E731

        def click_menu(menu: str, item: str) -> None:
            wait(60).until(lambda d: d.find_element(By.XPATH, f"//div[contains(@class,'lm-MenuBar-itemLabel') and "
                                                              f"text()='{menu}']")).click()
            wait(30).until(lambda d: d.find_element(By.XPATH, f"//div[contains(@class,'lm-Menu-itemLabel') and "
                                                              f"text()='{item}']")).click()

        wait(120).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"))
        try:  # JupyterLab may ask which kernel to start: the notebook's own (python3)
            WebDriverWait(driver, 20).until(lambda d: d.find_element(By.CSS_SELECTOR, ".jp-Dialog .jp-mod-accept")).click()
        except TimeoutException:
            pass
        click_menu("Run", "Run All Cells")
        studio = wait(300).until(lambda d: d.find_element(By.CSS_SELECTOR, ".dead-studio"))

        def dropdown(label: str) -> Select:
            return Select(studio.find_element(By.XPATH, f".//div[contains(@class,'widget-dropdown')][label[text()='{label}']]//select"))

        wait(60).until(lambda d: len(dropdown("video").options) >= 3)
        dropdown("video").select_by_visible_text(video)
        dropdown("audio").select_by_visible_text(audio)
        out = out_dir / f"{Path(video).stem}__{Path(audio).stem}.mp4"
        wait(30).until(lambda d: out.name in studio.find_element(
            By.XPATH, ".//div[contains(@class,'widget-text')][label[text()='output']]//input").get_attribute("value"))
        assert dropdown("profile").first_selected_option.text == "smoke"
        if identity is not None:
            dropdown("identity").select_by_visible_text(ADAPT_NOW_LABEL)
        assert dropdown("identity").first_selected_option.get_attribute("value") is not None
        print(f"dubbing {video} with {audio}, identity: {dropdown('identity').first_selected_option.text}")
        studio.find_element(By.XPATH, ".//button[normalize-space()='Dub']").click()
        try:
            wait(BROWSER_TIMEOUT_S).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".dead-studio .dead-studio-output")
                                          or d.find_elements(By.CSS_SELECTOR, ".dead-studio .dead-studio-error"))
        except TimeoutException:
            pytest.fail(f"no result in the page: {studio.text[-500:]}")
        errors = driver.find_elements(By.CSS_SELECTOR, ".dead-studio .dead-studio-error")
        assert not errors, errors[0].text
        assert out.is_file() and probe_video(out).has_audio
        players = driver.find_elements(By.CSS_SELECTOR, ".dead-studio-player video")
        assert [p.get_attribute("class") for p in players] == ["dead-studio-original", "dead-studio-dubbed"]
        assert all(p.get_attribute("src").startswith("data:video/mp4;base64,") for p in players)
        link = driver.find_element(By.CSS_SELECTOR, ".dead-studio a[download]")
        assert link.get_attribute("download") == out.name
        assert str(out) in driver.find_element(By.CSS_SELECTOR, ".dead-studio-output").text
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(
            "return arguments[0].readyState", players[1]) >= 1)  # Chromium decoded the dub's header (H.264/AAC)
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", studio)
        time.sleep(1)  # let the images paint before the screenshot
        shot = tmp_path / "studio.png"
        assert studio.screenshot(str(shot)) and shot.stat().st_size > 10_000
        if os.environ.get("DEAD_STUDIO_SCREENSHOT"):
            shutil.copyfile(shot, os.environ["DEAD_STUDIO_SCREENSHOT"])
        print(f"screenshot: {shot}")
    except Exception:
        if driver is not None:  # what the browser showed, for the failure report
            driver.save_screenshot(str(tmp_path / "failure.png"))
            outputs = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output")]
            print(f"screenshot: {tmp_path / 'failure.png'}; cell outputs: {outputs}")
        print((logs / "lab.log").read_text()[-3000:])
        raise
    finally:
        if driver is not None:
            driver.quit()
        stop(server)
    assert server.poll() is not None
