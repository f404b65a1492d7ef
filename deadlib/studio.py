"""Dubbing studio: an ipywidgets front end to ``deadlib.dub.dubbing`` for JupyterLab (notebook 07).

Pick a video and a new voice (files under ``data/raw`` and ``../shared/clips``, a typed path, or an
upload written to a temp folder), the identity (an adapted checkpoint found under ``models/adapt``
or the dub cache, or 'adapt-now' with a frame-count slider) and the settings; **Check** prepares
the video (cached, the dub reuses it) and shows its first face frame with the tracked box and the
lower-face / mouth masks, the frames without a face, and — when several faces are seen — which one
to dub (prepare.track.select: largest | central | longest, or a thumbnail click: point:X,Y). **Dub** runs ``deadlib.dub.dubbing.dub`` in a
background thread (one at a time) with a stage / ETA progress bar and a cancel button (the dub is
written atomically, so a cancelled run leaves no file); bad input is shown as the dub's one-line
message. The result: original | dubbed players, a before/after wipe on one frame, the mouth
opening vs the loudness of the new audio, the sync correlations of ``deadlib.dub.report`` and a
download link. Tests drive the same callbacks headlessly (``Studio.wait``).
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
import shutil
import tempfile
import threading
import time
import traceback
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from deadlib.core.config import ConfigError, load_params
from deadlib.core.files import partial_leftovers
from deadlib.data import face3d
from deadlib.data.blend import METHODS
from deadlib.data.corpus_report import VIDEO_SUFFIXES
from deadlib.data.track import SELECT_POLICIES, face_boxes
from deadlib.data.video import FPS
from deadlib.dub.dubbing import (
    ADAPT_NOW,
    DubCancelled,
    DubError,
    DubInputError,
    dub,
    dub_prepare_config,
    dub_settings,
)
from deadlib.dub.inputs import DubCheckpointError, check_video, load_new_audio
from deadlib.dub.person import prepare_cached

REPO = Path(__file__).resolve().parents[1]
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".m4a", ".aac", ".ogg")
STAGES = ("check", "prepare", "adapt", "audio2expr", "render")
ADAPT_NOW_LABEL = "adapt now (adapt the prior to this video)"  # the identity picker's adapt-now entry
COUNTED_STAGES = ("adapt", "render")  # stages that report done/total of their own work (steps, frames)


def counts_work(stage: str, total: int) -> bool:
    """True where ``stage`` reports done/total of its own work (adapt: steps, render: frames) rather than
    its start (total 1)."""
    return stage in COUNTED_STAGES and total > 1
PATH_KEYS = ("a2e", "basis", "prior", "prior_cache", "cache_dir")  # dub settings that are paths
EMBED_LIMIT = 40 << 20  # larger videos are linked by path, not embedded in the page


# ----------------------------------------------------------------------------- pure helpers


def media_roots(repo: Path = REPO) -> list[Path]:
    """Folders the pickers list: the raw corpus and the shared real clips (``$DEAD_SHARED_CLIPS``)."""
    return [repo / "data" / "raw", Path(os.environ.get("DEAD_SHARED_CLIPS", repo.parent / "shared" / "clips"))]


def find_media(roots, limit: int = 400) -> tuple[list[Path], list[Path]]:
    """(videos, audios) under ``roots``, sorted; a video's own sound can drive a dub, so audios ⊇ videos."""
    videos, sounds = set(), set()
    for root in map(Path, roots):
        if not root.is_dir():
            continue
        for path in root.rglob("*"):
            suffix = path.suffix.lower()
            if path.name.startswith(".") or not path.is_file():
                continue
            if suffix in VIDEO_SUFFIXES:
                videos.add(path)
            elif suffix in AUDIO_SUFFIXES:
                sounds.add(path)
    videos = sorted(videos)[:limit]
    return videos, sorted(sounds)[:limit] + videos


def find_identities(models_root: Path, cache_dir: Path | None = None) -> list[tuple[str, str]]:
    """(label, checkpoint folder) of adapted checkpoints: study cells (models/adapt/*) and earlier
    'adapt-now' runs in the dub cache (<cache_dir>/*/adapt_*)."""
    found = [(f"study cell {p.parent.name}", str(p.parent)) for p in sorted(Path(models_root).glob("adapt/*/checkpoint.pt"))]
    if cache_dir is not None:
        for p in sorted(Path(cache_dir).glob("*/adapt_*/checkpoint.pt")):
            found.append((f"adapt-now {p.parent.parent.name[:8]}/{p.parent.name}", str(p.parent)))
    return found


def remove_stale_partials(out: Path) -> list[Path]:
    """Delete the half-written copies of ``out`` that an interrupted dub left beside it → their paths.

    The dub writes ``out`` through ``deadlib.core.files.atomic_output``, whose temporary sibling
    outlives the dub only when its process was killed (a kernel shut down or restarted mid-dub).
    The studio runs one dub at a time, so such a sibling that exists when a dub starts is a
    leftover: removing it never touches a finished file."""
    stale = partial_leftovers(out)
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


UPLOAD_PREFIX = "dead-studio-uploads-"  # each studio's folder of uploaded copies, in the temporary directory
UPLOAD_OWNER = ".owner-pid"  # the id of the process whose studio made the folder (uploads never start with '.')


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_orphan_uploads(tmp: str | os.PathLike | None = None) -> list[Path]:
    """Delete the upload folders of studios whose process is gone → their paths.

    A studio removes its folder on close(), when it is collected or when Python exits; a Jupyter
    kernel that is killed or restarted runs none of these, and its uploads (whole videos) stayed in
    /tmp for good. Each folder names its owner process (``UPLOAD_OWNER``), so a new studio removes
    those whose owner no longer runs; a folder without the mark, or of a live process, is left alone."""
    removed = []
    for folder in sorted(Path(tmp or tempfile.gettempdir()).glob(UPLOAD_PREFIX + "*")):
        try:
            pid = int((folder / UPLOAD_OWNER).read_text())
        except (OSError, ValueError):
            continue
        if pid != os.getpid() and not process_alive(pid):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def new_upload_folder(tmp: str | os.PathLike | None = None) -> Path:
    """A fresh upload folder marked with this process's id, after removing orphaned ones."""
    remove_orphan_uploads(tmp)
    folder = Path(tempfile.mkdtemp(prefix=UPLOAD_PREFIX, dir=tmp))
    (folder / UPLOAD_OWNER).write_text(str(os.getpid()))
    return folder


def save_upload(value, folder: Path) -> list[Path]:
    """Write a FileUpload value (ipywidgets 8: dicts with name/content) to ``folder``; the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for item in value or ():
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(item["name"])).name).lstrip(".") or "upload"
        path = folder / name
        path.write_bytes(bytes(item["content"]))
        paths.append(path)
    return paths


def one_line(err: BaseException) -> str:
    """The message shown in the widget: a DubError's own text, else the type and first line."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if isinstance(err, (DubError, ConfigError)):
        return text
    return f"unexpected {type(err).__name__}: {text}" if text else f"unexpected {type(err).__name__}"


def eta_text(stage: str, done: int, total: int, elapsed: float, stage_elapsed: float | None = None) -> str:
    """'render 40/125 · 12 s · ETA 25 s': ``elapsed`` since the dub started; the count and the ETA
    (from ``stage_elapsed``, the seconds this stage has run) where the stage counts its work —
    adapt its training steps, render its output frames."""
    counted = counts_work(stage, total)
    text = f"{stage} {done}/{total}" if counted else stage
    text += f" · {elapsed:.0f} s"
    if counted and 0 < done < total:
        rate_from = elapsed if stage_elapsed is None else stage_elapsed
        text += f" · ETA {rate_from / done * (total - done):.0f} s"
    return text


def overlay(frame: np.ndarray, box: tuple[float, float, float, float] | None, lower: np.ndarray | None = None,
            mouth: np.ndarray | None = None, others=(), width: int = 2) -> np.ndarray:
    """``frame`` (H, W, 3) with the lower-face mask tinted blue, the mouth red, the dubbed face's
    box green and other faces' boxes grey; boxes are (x0, y0, x1, y1) pixels."""
    img = frame.astype(np.float32).copy()
    for mask, colour, alpha in ((lower, (40, 120, 255), 0.35), (mouth, (255, 40, 40), 0.5)):
        if mask is not None:
            m = np.asarray(mask, bool)[..., None]
            img = np.where(m, (1 - alpha) * img + alpha * np.array(colour, np.float32), img)
    h, w = img.shape[:2]
    for (x0, y0, x1, y1), colour in [(b, (160, 160, 160)) for b in others] + ([(box, (0, 230, 0))] if box else []):
        x0, x1 = (int(np.clip(v, 0, w - 1)) for v in (x0, x1))
        y0, y1 = (int(np.clip(v, 0, h - 1)) for v in (y0, y1))
        img[y0:y0 + width, x0:x1 + 1] = img[max(y1 - width + 1, 0):y1 + 1, x0:x1 + 1] = colour
        img[y0:y1 + 1, x0:x0 + width] = img[y0:y1 + 1, max(x1 - width + 1, 0):x1 + 1] = colour
    return img.round().clip(0, 255).astype(np.uint8)


def wipe(before: np.ndarray, after: np.ndarray, split: float) -> np.ndarray:
    """Before/after comparison at ``before``'s size: ``before`` left of ``split`` × width, ``after``
    (scaled to the same size: the two frames are read at different reductions) right, a white seam."""
    import cv2

    h, w = before.shape[:2]
    if after.shape[:2] != (h, w):
        after = cv2.resize(after, (w, h), interpolation=cv2.INTER_AREA)
    x = int(round(np.clip(split, 0, 1) * w))
    out = np.concatenate([before[:, :x], after[:, x:]], axis=1)
    out[:, max(x - 1, 0):x + 1] = 255
    return out


def png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return buf.getvalue()


def data_url(path: Path, mime: str = "video/mp4") -> str | None:
    """base64 data URL of a file (None when larger than EMBED_LIMIT)."""
    if path.stat().st_size > EMBED_LIMIT:
        return None
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


def absolute_settings(dub_cfg: Mapping, base: Path) -> dict:
    """The path-valued dub settings made absolute against ``base`` (the params file's folder): the
    notebook's kernel runs in notebooks/, the settings are relative to the repository."""
    return {k: str(base / dub_cfg[k]) if dub_cfg.get(k) and not Path(dub_cfg[k]).is_absolute() else dub_cfg[k]
            for k in PATH_KEYS if k in dub_cfg}


# ----------------------------------------------------------------------------- the check step


@dataclass
class FaceChoice:
    """One face seen on the check's multi-face frame, offered as a thumbnail to pick."""

    box: tuple[float, float, float, float]  # (x0, y0, x1, y1) in that frame's pixels
    thumbnail: np.ndarray  # (THUMB, THUMB, 3) uint8 crop around the face
    select: str  # the prepare.track.select value that picks this face: "point:X,Y" (its centre)
    dubbed: bool  # the face the current selection dubs


THUMB = 96  # face thumbnail side (px)


@dataclass
class FaceCheck:
    """What the check step found in a video (its prepared cache is the one the dub reuses)."""

    folder: Path
    frames: int
    no_face_frames: int
    tracked_faces: int  # distinct faces (tracklets) in the video
    faces_seen_max: int  # most faces on one frame
    first: int  # first frame with the dubbed face
    image: np.ndarray  # that frame with box + masks drawn
    warnings: list
    choices: list = field(default_factory=list)  # FaceChoice per face on the first multi-face frame

    @property
    def several_faces(self) -> bool:
        return self.tracked_faces > 1 or self.faces_seen_max > 1


def _frame(video: Path, index: int) -> np.ndarray:
    from deadlib.data.video import iter_frames

    frame = None
    for frame in iter_frames(video, fps=FPS, max_frames=index + 1):
        pass
    return frame


def check_face(video: str | os.PathLike, settings: Mapping, params: Mapping, track_select: str | None = None) -> FaceCheck:
    """Prepare ``video`` as the dub will (cached) and draw its first face frame; DubError on bad input."""
    import cv2

    from deadlib.data.dataset import load_cache

    video = Path(video)
    info = check_video(video)
    prep_cfg = dub_prepare_config(settings["profile"], params, settings, track_select)
    try:
        basis = face3d.ExpressionBasis.load(settings["basis"])
    except face3d.Face3DError as err:
        raise DubCheckpointError(f"basis: {err}") from err
    folder, _ = prepare_cached(video, prep_cfg, basis, Path(settings["cache_dir"]), info.has_audio,
                               int(settings["max_frames"]))
    cache = load_cache(folder)
    track, report = cache["track"], cache["report"]
    valid = np.asarray(track["valid"], bool)
    first = int(np.argmax(valid))
    frame = _frame(video, first)
    h, w = frame.shape[:2]
    centre, side = face_boxes(track["landmarks"][first][None])
    box = (*(centre[0] - side[0] / 2), *(centre[0] + side[0] / 2))
    bits = np.asarray(cache["masks"][first])
    warp = lambda m: cv2.warpAffine(m.astype(np.uint8), np.asarray(track["crop"][first], np.float64), (w, h),  # noqa: E731
                                    flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP) > 0
    choices = []
    if int(report.get("faces_seen_max", 1)) > 1:
        choices = face_choices(video, track, prep_cfg, box)
    others = [c.box for c in choices if not c.dubbed]
    image = overlay(frame, box, warp(bits & face3d.MASK_LOWER), warp(bits & face3d.MASK_MOUTH), others)
    return FaceCheck(folder=folder, frames=int(report["frames"]), no_face_frames=int(report["no_face_frames"]),
                     tracked_faces=int(report.get("tracked_faces", 1)), faces_seen_max=int(report.get("faces_seen_max", 1)),
                     first=first, image=image, warnings=list(report.get("warnings", [])), choices=choices)


def face_choices(video: Path, track: Mapping, prep_cfg: Mapping, box) -> list[FaceChoice]:
    """Every face on the first frame where several were seen, left to right, each with a thumbnail and
    the ``point:X,Y`` selection that picks it (so the user can choose any of them, not only what the
    largest / central / longest policies pick)."""
    import cv2

    from deadlib.data.track import FaceMeshDetector, TrackSettings

    k = int(np.argmax(np.asarray(track["faces_seen"]) > 1))
    if track["valid"][k]:  # compare with the dubbed face on that frame
        c, s = face_boxes(track["landmarks"][k][None])
        box = (*(c[0] - s[0] / 2), *(c[0] + s[0] / 2))
    settings = TrackSettings.from_config({**prep_cfg["track"], "max_faces": max(2, int(prep_cfg["track"]["max_faces"]))})
    frame = _frame(video, k)
    h, w = frame.shape[:2]
    with FaceMeshDetector(settings) as detect:
        meshes = detect(frame)
    out = []
    for mesh in meshes:
        c, s = face_boxes(mesh[None])
        b = (*(c[0] - s[0] / 2), *(c[0] + s[0] / 2))
        x0, y0 = (max(int(v - 0.15 * s[0]), 0) for v in b[:2])
        x1, y1 = min(int(b[2] + 0.15 * s[0]), w), min(int(b[3] + 0.15 * s[0]), h)
        thumb = cv2.resize(frame[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)], (THUMB, THUMB), interpolation=cv2.INTER_AREA)
        dubbed = bool(abs(b[0] - box[0]) + abs(b[1] - box[1]) <= 0.25 * (box[2] - box[0]))
        out.append(FaceChoice(box=b, thumbnail=thumb, select=f"point:{c[0][0] / w:.3f},{c[0][1] / h:.3f}", dubbed=dubbed))
    return sorted(out, key=lambda f: f.box[0])


# ----------------------------------------------------------------------------- the widget


def plot_sync(curves: Mapping[str, np.ndarray]) -> bytes:
    """PNG: the dubbed mouth opening and the rendered mouth darkness vs the new audio's loudness."""
    from matplotlib.figure import (
        Figure,  # no pyplot: safe in the worker thread, never auto-displayed
    )

    z = lambda x: (x - x.mean()) / (x.std() + 1e-9)  # noqa: E731
    t = np.arange(len(curves["energy_new"])) / FPS
    fig = Figure(figsize=(8, 2.6), dpi=90)
    ax = fig.subplots()
    ax.plot(t, z(curves["energy_new"]), "k", lw=2, label="new audio loudness (RMS)")
    ax.plot(t, z(curves["mouth_open"]), label="dubbed mouth opening (mesh)")
    ax.plot(t, z(curves["dark_out"]), label="output pixels: mouth darkness")
    ax.set_xlabel("output time (s)"), ax.set_ylabel("z-score"), ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


class Studio:
    """The studio widget (``Studio(...).widget``); every button is a method the tests can call."""

    def __init__(self, profile: str | None = None, params_path: str | os.PathLike | None = None,
                 roots=None, out_dir: str | os.PathLike | None = None, overrides: Mapping | None = None,
                 models_root: str | os.PathLike | None = None):
        import ipywidgets as W

        self.params_path = Path(params_path) if params_path else REPO / "params.yaml"
        self.params = load_params(self.params_path)
        self.base = self.params_path.resolve().parent
        self.overrides = dict(overrides or {})
        dub_cfg = self.settings(profile or self.params.get("profile", "default"))
        self.out_dir = Path(out_dir) if out_dir else Path(dub_cfg["cache_dir"]) / "studio"
        self.models_root = Path(models_root) if models_root else self.base / "models"
        self.upload_dir = new_upload_folder()
        # uploaded copies are only this studio's inputs: removed by close(), when the studio is collected,
        # or when Python exits; those of a killed kernel by the next studio (remove_orphan_uploads)
        self._remove_uploads = weakref.finalize(self, shutil.rmtree, self.upload_dir, ignore_errors=True)
        self.roots = [Path(r) for r in roots] if roots else media_roots(self.base)
        self._lock, self._cancel = threading.Lock(), threading.Event()
        self._thread: threading.Thread | None = None
        self.runs_started, self.check_result, self.result, self.curves, self.sync = 0, None, None, None, None
        self.stages_seen: list[str] = []  # stages the last dub reported (check, prepare, adapt, audio2expr, render)
        self.last_traceback = ""  # of the last unexpected error (the widget shows one line)
        self._quiet = False  # True while pick_face rewrites the face list
        self.stale_removed: list[Path] = []  # half-written dubs of the output path removed by the last dub
        self._frames: tuple[np.ndarray, np.ndarray] | None = None
        self._t0, self._last_update, self._stage_t0 = 0.0, 0.0, 0.0
        self._unshown: tuple[str, int, int] | None = None  # the latest progress report not yet drawn

        wide = W.Layout(width="520px")
        self.video = W.Dropdown(description="video", layout=wide)
        self.video_path = W.Text(description="or path", placeholder="any video file", layout=wide)
        self.video_upload = W.FileUpload(description="upload video", accept="video/*", multiple=False)
        self.audio = W.Dropdown(description="audio", layout=wide)
        self.audio_path = W.Text(description="or path", placeholder="any audio (or video) file", layout=wide)
        self.audio_upload = W.FileUpload(description="upload audio", accept="audio/*,video/*", multiple=False)
        self.identity = W.Dropdown(description="identity", layout=wide)
        self.adapt_frames = W.IntSlider(value=int(dub_cfg["adapt"]["frames"]), min=25, max=1500, step=25,
                                        description="adapt frames")
        self.profile = W.Dropdown(options=["smoke", "default", "full"], value=dub_cfg["profile"], description="profile")
        self.postprocess = W.Checkbox(value=bool(dub_cfg["postprocess"]), description="post-processing (blend)")
        self.blend = W.Dropdown(options=list(METHODS), value=dub_cfg["blend"]["method"], description="blend")
        self.shorter = W.ToggleButtons(options=["trim", "pad"], value=dub_cfg["shorter"], description="audio shorter")
        self.face = W.Dropdown(options=list(SELECT_POLICIES), value=self.params.get("prepare", {}).get("track", {})
                               .get("select", "largest"), description="face", layout=W.Layout(display="none"))
        self.face_picks = W.HBox(layout=W.Layout(display="none"))  # a thumbnail + button per face seen
        self.out = W.Text(description="output", layout=wide)
        self.check_button = W.Button(description="Check", icon="search")
        self.dub_button = W.Button(description="Dub", icon="play", button_style="primary")
        self.cancel_button = W.Button(description="Cancel", icon="stop", disabled=True)
        self.message = W.HTML()
        self.bar = W.IntProgress(value=0, min=0, max=len(STAGES), description="")
        self.stage = W.HTML()
        self.check_image = W.Image(format="png", layout=W.Layout(width="320px"))
        self.check_info = W.HTML()
        self.player = W.HTML()
        self.frame = W.IntSlider(description="frame", min=0, max=0)
        self.split = W.FloatSlider(description="before|after", min=0, max=1, step=0.01, value=0.5)
        self.compare = W.Image(format="png", layout=W.Layout(width="320px"))
        self.plot = W.Image(format="png")
        self.figures = W.HTML()
        self.link = W.HTML()

        self.refresh()
        self.video_upload.observe(lambda c: self._uploaded(self.video_upload, self.video), "value")
        self.audio_upload.observe(lambda c: self._uploaded(self.audio_upload, self.audio), "value")
        for w in (self.video, self.video_path, self.audio, self.audio_path):
            w.observe(self._default_out, "value")
        self.identity.observe(lambda c: self._identity_changed(), "value")
        self.face.observe(lambda c: self._face_changed(), "value")
        self.check_button.on_click(lambda b: self.start_check())
        self.dub_button.on_click(lambda b: self.start_dub())
        self.cancel_button.on_click(lambda b: self.cancel())
        self.frame.observe(lambda c: self._show_compare(), "value")
        self.split.observe(lambda c: self._show_compare(), "value")
        self._identity_changed()
        self._default_out()

        box = lambda *c, **k: W.VBox(list(c), **k)  # noqa: E731
        self.check_box = W.HBox([self.check_image, self.check_info], layout=W.Layout(display="none"))
        self.result_box = box(W.HTML("<b>Result</b>"), self.player, W.HBox([box(self.frame, self.split), self.compare]),
                              self.plot, self.figures, self.link, layout=W.Layout(display="none"))
        self.widget = box(
            W.HTML("<h3>DEAD dubbing studio</h3>"),
            W.HBox([box(self.video, self.video_path), self.video_upload]),
            W.HBox([box(self.audio, self.audio_path), self.audio_upload]),
            W.HBox([self.identity, self.adapt_frames]),
            W.HBox([self.profile, self.blend, self.postprocess]), self.shorter, self.face, self.face_picks, self.out,
            W.HBox([self.check_button, self.dub_button, self.cancel_button]),
            W.HBox([self.bar, self.stage]), self.message,
            self.check_box, self.result_box)
        self.widget.add_class("dead-studio")

    # ------------------------------------------------------------------ inputs

    def settings(self, profile: str | None = None) -> dict:
        """Effective dub settings of ``profile`` with the user's overrides, paths made absolute."""
        dub_cfg = dub_settings(profile or self.profile.value, params=self.params, overrides=self.overrides)
        return {**dub_cfg, **absolute_settings(dub_cfg, self.base)}

    def refresh(self) -> None:
        """Re-scan the media folders and the adapted checkpoints."""
        videos, sounds = find_media(self.roots)
        self.video.options = [(p.name if p.parent.name in ("clips", "synthetic") else f"{p.parent.name}/{p.name}", str(p))
                              for p in videos]
        self.audio.options = [(p.name if p.parent.name in ("clips", "synthetic") else f"{p.parent.name}/{p.name}", str(p))
                              for p in sounds]
        found = find_identities(self.models_root, Path(self.settings()["cache_dir"]))
        self.identity.options = [(ADAPT_NOW_LABEL, ADAPT_NOW)] + found
        if self.video.value is None and videos:  # a held-out synthetic actor, else the first clip
            self.video.value = str(next((p for p in videos if p.stem.startswith("synth_h")), videos[0]))
        if self.audio.value is None and sounds:  # a speech file, else another video's sound
            self.audio.value = str(next((p for p in sounds if p.suffix.lower() in AUDIO_SUFFIXES),
                                        next((p for p in sounds if str(p) != self.video.value), sounds[0])))
        if self.identity.value is None:  # an adapted checkpoint dubs in seconds; else adapt now
            self.identity.value = found[0][1] if found else ADAPT_NOW

    def _uploaded(self, upload, dropdown) -> None:
        paths = save_upload(upload.value, self.upload_dir)
        if paths:
            dropdown.options = list(dropdown.options) + [(f"uploaded/{p.name}", str(p)) for p in paths]
            dropdown.value = str(paths[-1])
            (self.video_path if dropdown is self.video else self.audio_path).value = ""

    def video_file(self) -> Path | None:
        typed = self.video_path.value.strip()
        return Path(typed).expanduser() if typed else (Path(self.video.value) if self.video.value else None)

    def audio_file(self) -> Path | None:
        typed = self.audio_path.value.strip()
        return Path(typed).expanduser() if typed else (Path(self.audio.value) if self.audio.value else None)

    def _default_out(self, change=None) -> None:
        v, a = self.video_file(), self.audio_file()
        if v and a:
            self.out.value = str(self.out_dir / f"{v.stem}__{a.stem}.mp4")

    def _identity_changed(self) -> None:
        self.adapt_frames.disabled = self.identity.value != ADAPT_NOW

    def _show_face_picks(self, choices: list) -> None:
        """One thumbnail per face with a button that dubs that face (its point:X,Y selection)."""
        import ipywidgets as W

        items = []
        for k, choice in enumerate(choices):
            button = W.Button(description="dubbed" if choice.dubbed else f"dub face {k + 1}",
                              icon="check" if choice.dubbed else "user", disabled=choice.dubbed)
            button.on_click(lambda b, c=choice, k=k: self.pick_face(c.select, f"face {k + 1} (picked)"))
            items.append(W.VBox([W.Image(value=png(choice.thumbnail), format="png"), button]))
        self.face_picks.children = items
        self.face_picks.layout.display = None if items else "none"

    def pick_face(self, select: str, label: str) -> None:
        """Dub the face that ``select`` (point:X,Y) picks; re-runs the check like the 'face' list does."""
        self._quiet = True  # replacing the options moves the value: one check, after both changes
        try:  # (label, value) pairs throughout: ipywidgets reads a mixed list's pairs as values
            self.face.options = [(p, p) for p in SELECT_POLICIES] + [(label, select)]
            self.face.value = select
        finally:
            self._quiet = False
        self._face_changed()

    def _face_changed(self) -> None:
        if self._quiet:
            return
        if self.check_result is not None and not self.busy:
            self.start_check()

    def dub_overrides(self) -> dict:
        dub_cfg = self.settings()
        return {**self.overrides, **absolute_settings(dub_cfg, self.base), "postprocess": bool(self.postprocess.value),
                "shorter": self.shorter.value, "blend": {"method": self.blend.value},
                "adapt": {**self.overrides.get("adapt", {}), "frames": int(self.adapt_frames.value)}}

    # ------------------------------------------------------------------ jobs

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def say(self, text: str, kind: str = "info") -> None:
        colour = {"error": "#b00020", "ok": "#0a7d28", "info": "#333"}[kind]
        self.message.value = f'<span class="dead-studio-{kind}" style="color:{colour}">{html.escape(text)}</span>'

    def _start(self, what: str, job: Callable[[], None]) -> bool:
        """Run ``job`` in the background unless a job runs; errors become one-line messages."""
        with self._lock:
            if self.busy:
                self.say(f"a {what} cannot start: another run is still going (wait, or press Cancel)", "error")
                return False
            self._cancel.clear()
            self._thread = threading.Thread(target=self._guarded, args=(what, job), daemon=True, name=f"studio-{what}")
            self.check_button.disabled = self.dub_button.disabled = True
            self.cancel_button.disabled = what != "dub"
            self._thread.start()
        return True

    def _guarded(self, what: str, job: Callable[[], None]) -> None:
        self._unshown = None
        try:
            job()
        except DubCancelled as err:
            self._show_progress(time.perf_counter())
            self.say(f"cancelled: {err}", "info")
        except Exception as err:  # noqa: BLE001 - shown as one line, never a traceback wall
            self._show_progress(time.perf_counter())
            self.say(one_line(err), "error")
            self.last_traceback = traceback.format_exc()
        finally:
            self.check_button.disabled = self.dub_button.disabled = False
            self.cancel_button.disabled = True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running job ends (tests); True when none runs any more."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.busy

    def cancel(self) -> None:
        if self.busy:
            self._cancel.set()
            self.say("cancelling after the current chunk…")

    def close(self, timeout: float | None = None) -> None:
        """Cancel a running dub, wait for it (at most ``timeout`` s), and remove the uploaded files (the dubs
        stay in ``out_dir``)."""
        self.cancel()
        self.wait(timeout)
        self._remove_uploads()

    def _need(self, path: Path | None, what: str) -> Path:
        if path is None:
            raise DubInputError(f"--{what}: choose a {what} file (list, typed path or upload)")
        return path

    def start_check(self) -> bool:
        return self._start("check", self._check)

    def _check(self) -> None:
        video = self._need(self.video_file(), "video")
        self.say(f"checking {video.name}: tracking the face (cached for the dub)…")
        self._t0 = time.perf_counter()
        self.stage.value = "check: prepare"
        res = check_face(video, self.settings(), self.params, self.face.value)
        self.check_result = res
        self.check_image.value = png(res.image)
        self.check_box.layout.display = None
        several = res.several_faces
        self.face.layout.display = None if several else "none"
        self._show_face_picks(res.choices if several else [])
        lines = [f"{res.frames} frames, {res.no_face_frames} without a face (passed through unchanged)",
                 f"first face on frame {res.first}: green box = dubbed face, blue = lower face re-rendered, red = mouth"]
        if several:
            lines.append(f"{max(res.tracked_faces, res.faces_seen_max)} faces seen (grey boxes): choose which to dub "
                         f"with 'face' or a thumbnail's button (now: {self.face.value})")
        lines += [f"note: {w}" for w in res.warnings]
        self.check_info.value = "<ul class='dead-studio-check'>" + "".join(f"<li>{html.escape(t)}</li>" for t in lines) + "</ul>"
        self.stage.value = f"check done · {time.perf_counter() - self._t0:.0f} s"
        self.say("check done: press Dub", "ok")

    def start_dub(self) -> bool:
        return self._start("dub", self._dub)

    def _on_progress(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if stage not in self.stages_seen:
            self.stages_seen.append(stage)
            self._stage_t0 = now
        self._unshown = (stage, done, total)
        if stage not in COUNTED_STAGES or done in (0, total) or now - self._last_update > 0.25:
            self._show_progress(now)

    def _show_progress(self, now: float) -> None:
        """Draw the latest report; the widgets are redrawn at most 4 times a second while counting, and
        once more when a run stops between redraws (cancel, error), so the bar shows where it stopped."""
        if self._unshown is None:
            return
        stage, done, total = self._unshown
        self._unshown, self._last_update = None, now
        counted = counts_work(stage, total)
        self.bar.max, self.bar.value = (total, done) if counted else (len(STAGES), STAGES.index(stage))
        self.stage.value = html.escape(eta_text(stage, done, total, now - self._t0, now - self._stage_t0))

    def _dub(self) -> None:
        video, audio = self._need(self.video_file(), "video"), self._need(self.audio_file(), "audio")
        out = Path(self.out.value.strip() or self.out_dir / "dub.mp4")
        if out.parent == self.out_dir:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self.stale_removed = remove_stale_partials(out)  # left by a kernel killed mid-dub
        self.runs_started += 1
        self.stages_seen = []
        self.result_box.layout.display = "none"
        self.say(f"dubbing {video.name} with {audio.name}…")
        self._t0 = time.perf_counter()
        result = dub(video, audio, self.identity.value, out, profile=self.profile.value, params_path=self.params_path,
                     progress=False, overrides=self.dub_overrides(), track_select=self.face.value,
                     on_progress=self._on_progress, cancel=self._cancel.is_set)
        self.result = result
        self.stage.value = html.escape(f"done: {result.n_frames} frames in {time.perf_counter() - self._t0:.0f} s")
        self.bar.max, self.bar.value = 1, 1
        self._show_result(result, audio)
        self.say(f"written {result.out}", "ok")

    # ------------------------------------------------------------------ result

    def _show_result(self, result, audio: Path) -> None:
        from deadlib.data.video import read_video
        from deadlib.dub.report import (
            correlations,
            mouth_curves,
            own_audio,
            source_frames,
        )

        self.curves = mouth_curves(result, load_new_audio(audio), own_audio(result.video))
        self.sync = correlations(self.curves, result.valid)
        out_frames, _ = read_video(result.out, max_side=320)
        src = source_frames(result)
        step = max(1, int(np.ceil(max(src.shape[1:3]) / 320)))
        self._frames = (src[:, ::step, ::step], out_frames)
        original, dubbed = data_url(Path(result.video)), data_url(Path(result.out))
        cell = lambda cls, title, url, path: (  # noqa: E731
            f'<figure style="margin:0 8px 0 0"><figcaption>{title}</figcaption>'
            + (f'<video class="{cls}" controls width="360" src="{url}"></video>' if url else
               f'<code>{html.escape(str(path))}</code> (too large to embed)') + "</figure>")
        self.player.value = ('<div class="dead-studio-player" style="display:flex">'
                             + cell("dead-studio-original", "original", original, result.video)
                             + cell("dead-studio-dubbed", "dubbed (new audio)", dubbed, result.out) + "</div>")
        self.frame.max = len(out_frames) - 1
        self.frame.value = int(np.argmax(self.curves["mouth_open"])) if len(out_frames) else 0
        self._show_compare()
        self.plot.value = plot_sync(self.curves)
        rows = "".join(f"<tr><td>{k}</td><td>{v:+.3f}</td></tr>" for k, v in self.sync.items())
        self.figures.value = ("<table class='dead-studio-sync'><tr><th>sync figure (r with audio loudness; "
                              "_new = the new audio, _own = the video's own)</th><th>r</th></tr>" + rows + "</table>")
        link = (f' · <a download="{html.escape(result.out.name)}" href="{dubbed}">download</a>' if dubbed else "")
        self.link.value = f'<span class="dead-studio-output">output: <code>{html.escape(str(result.out))}</code></span>{link}'
        self.result_box.layout.display = None

    def _show_compare(self) -> None:
        if self._frames is None:
            return
        src, out = self._frames
        k = min(int(self.frame.value), len(out) - 1, len(src) - 1)
        self.compare.value = png(wipe(src[k], out[k], self.split.value))
