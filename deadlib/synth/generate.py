"""The embedded default corpus: procedural talking heads rendered with pytorch3d.

Each identity (``synth_head.random_identity``) speaks synthetic speech (``speech``): the same
articulator trajectories drive the audio and the jaw/lips, so the audio predicts the mouth.
Head pose and blinks come from ``motion``. Frames are rasterised with pytorch3d
(``raster.rasterize``), textured from the identity's atlas, Lambert-shaded, composited over
the backdrop and written as an ordinary H.264/AAC mp4 — the rest of the pipeline treats them
exactly like real video. A ``<name>.truth.npz`` beside each video keeps the ground truth
(articulation, pose, blink, phonemes) for tests and analysis; it is never used for training.

Determinism: a corpus is a pure function of (seed, settings). Vertex positions are snapped to
1/64 px and normals to 1e-4 before rasterising so that last-bit float differences between
machines cannot change a pixel, and the encoder runs single-threaded; regenerating a corpus
therefore reproduces the bytes that ``data.dvc`` records (see ``deadlib.synth.corpus``).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from deadlib.data.facemesh import load_topology
from deadlib.data.raster import interpolate, rasterize
from deadlib.synth.head import Identity, articulate, random_identity, rotate_x, tile_uv
from deadlib.synth.motion import blink_track, head_pose_track
from deadlib.synth.speech import random_voice, synthesize_utterance

FACE_WIDTH_FRACTION = 0.36  # face width / frame width at neutral pose
SNAP_PX = 64.0  # vertex positions are rounded to 1/SNAP_PX pixel


# The corpus format's name, written into data/raw/synthetic/corpus.json and data.dvc's meta. It is
# part of the recorded bytes, so it must not follow module renames: the package restructure once
# renamed it to "deadlib.synth.generate" and every regenerated corpus then differed from data.dvc.
GENERATOR_ID = "deadlib.synth"


@dataclass
class SynthSettings:
    """What to generate; the corpus is a pure function of these values."""

    seed: int = 0
    n_prior: int = 12  # identities for the multi-person prior
    n_heldout: int = 3  # unseen identities for adaptation / dubbing experiments
    duration_s: float = 60.0
    size: int = 256  # square frame side in pixels
    fps: float = 25.0
    sample_rate: int = 16000
    workers: int = 2
    names: list[str] = field(default_factory=list)  # filled in by ``identity_names``

    @classmethod
    def from_dict(cls, d: dict) -> "SynthSettings":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__ and k != "names"})


def identity_names(settings: SynthSettings) -> tuple[list[str], list[str]]:
    """Stable names: prior identities ``synth_p00…``, held-out ones ``synth_h00…``."""
    prior = [f"synth_p{i:02d}" for i in range(settings.n_prior)]
    held = [f"synth_h{i:02d}" for i in range(settings.n_heldout)]
    return prior, held


def rotation_matrices(pose_deg: np.ndarray) -> np.ndarray:
    """(N, 3) yaw, pitch, roll in degrees → (N, 3, 3) rotations (yaw about y, pitch about x, roll about z)."""
    yaw, pitch, roll = np.deg2rad(pose_deg).T
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    one, zero = np.ones_like(yaw), np.zeros_like(yaw)
    ry = np.stack([np.stack([cy, zero, sy], -1), np.stack([zero, one, zero], -1), np.stack([-sy, zero, cy], -1)], 1)
    rx = np.stack([np.stack([one, zero, zero], -1), np.stack([zero, cp, -sp], -1), np.stack([zero, sp, cp], -1)], 1)
    rz = np.stack([np.stack([cr, -sr, zero], -1), np.stack([sr, cr, zero], -1), np.stack([zero, zero, one], -1)], 1)
    return np.einsum("nij,njk,nkl->nil", rz, rx, ry)


def vertex_normals_batched(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(B, V, 3) area-weighted unit normals for B copies of one triangle list."""
    a, b, c = (verts[:, faces[:, k]] for k in range(3))
    fn = np.cross(b - a, c - a)  # (B, F, 3)
    vn = np.zeros_like(verts)
    for k in range(3):
        np.add.at(vn, (slice(None), faces[:, k]), fn)
    return vn / np.maximum(np.linalg.norm(vn, axis=-1, keepdims=True), 1e-9)


class HeadRenderer:
    """Renders one identity's frames from articulation, blink and pose tracks."""

    def __init__(self, ident: Identity, size: int):
        topo = load_topology()
        self.ident, self.size = ident, size
        face_faces = np.concatenate([topo.skin_faces, topo.faces[topo.eye_opening_faces]])
        faces, uvs, offset = [face_faces], [tile_uv(topo.uv, (0, 0))], len(ident.face)
        self.jaw_parts = []
        for part in ident.extras:
            faces.append(part.faces + offset)
            uvs.append(part.uv)
            if part.moves_with_jaw:
                self.jaw_parts.append(slice(offset, offset + len(part.verts)))
            offset += len(part.verts)
        self.faces = np.concatenate(faces).astype(np.int64)
        self.uv = torch.tensor(np.concatenate(uvs), dtype=torch.float32)
        self.extra_verts = np.concatenate([p.verts for p in ident.extras])
        self.atlas = torch.tensor(ident.atlas).permute(2, 0, 1)[None]  # (1, 3, A, A)
        self.background = torch.tensor(ident.background)
        self.scale = FACE_WIDTH_FRACTION * size / np.ptp(ident.face[:, 0])  # px per cm

    def geometry(self, art: np.ndarray, blink: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """(B, V, 3) all vertices in pixel space (x right, y down, z away) for B frames."""
        face, jaw_angle = articulate(self.ident, art, blink)
        extras = np.broadcast_to(self.extra_verts, (len(art), *self.extra_verts.shape)).copy()
        n_face = face.shape[1]
        for sl in self.jaw_parts:
            local = slice(sl.start - n_face, sl.stop - n_face)
            extras[:, local] = rotate_x(extras[:, local], self.ident.jaw_pivot, jaw_angle[:, None])
        verts = np.concatenate([face, extras], axis=1)
        head_centre = np.array([0.0, 0.0, -6.0])
        verts = np.einsum("nij,nvj->nvi", rotation_matrices(pose[:, :3]), verts - head_centre) + head_centre
        scale = self.scale * (1.0 + pose[:, 5:6])  # (B, 1)
        face_px = FACE_WIDTH_FRACTION * self.size  # motion.py gives tx, ty in face widths
        cx = self.size / 2 + pose[:, 3:4] * face_px
        cy = 0.47 * self.size - pose[:, 4:5] * face_px
        pix = np.stack([cx + scale * verts[..., 0], cy - scale * verts[..., 1], -scale * verts[..., 2]], -1)
        return np.round(pix * SNAP_PX) / SNAP_PX

    def render(self, art: np.ndarray, blink: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """(B, S, S, 3) uint8 frames."""
        pix = self.geometry(art, blink, pose)
        normals = np.round(vertex_normals_batched(pix * np.array([1, -1, -1]), self.faces) * 1e4) / 1e4
        frags = rasterize(torch.tensor(pix, dtype=torch.float32), torch.tensor(self.faces), self.size)
        uv = interpolate(frags, self.uv)  # (B, S, S, 2)
        n = interpolate(frags, torch.tensor(normals, dtype=torch.float32))
        grid = uv * 2 - 1  # grid_sample wants x=u, y=v in [-1, 1]
        albedo = F.grid_sample(self.atlas.expand(len(pix), -1, -1, -1), grid, mode="bilinear",
                               padding_mode="border", align_corners=False).permute(0, 2, 3, 1)
        light = torch.tensor(self.ident.light, dtype=torch.float32)
        shade = 0.42 + 0.58 * (n * light).sum(-1, keepdim=True).clamp(min=0)
        image = torch.where(frags.mask[..., None], albedo * shade, self.background)
        return (image.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()

    def frames(self, art, blink, pose, batch: int = 25) -> Iterator[np.ndarray]:
        """Yield (S, S, 3) uint8 frames, rendering ``batch`` at a time."""
        for start in range(0, len(art), batch):
            sl = slice(start, start + batch)
            yield from self.render(art[sl], blink[sl], pose[sl])


def identity_rng(seed: int, name: str) -> np.random.Generator:
    """Independent, order-free random stream per identity (same name + seed → same person)."""
    return np.random.default_rng(np.random.SeedSequence([seed, *name.encode()]))


def make_identity_video(name: str, settings: SynthSettings):
    """Sample person, voice and motion for ``name``; returns (renderer, utterance, blink, pose)."""
    rng = identity_rng(settings.seed, name)
    ident = random_identity(rng, name, settings.size)
    utterance = synthesize_utterance(rng, random_voice(rng), settings.duration_s,
                                     sample_rate=settings.sample_rate, fps=settings.fps)
    n = len(utterance.articulation)
    return HeadRenderer(ident, settings.size), utterance, blink_track(rng, n, settings.fps), \
        head_pose_track(rng, n, settings.fps)


def write_identity(out_dir: Path, name: str, settings: SynthSettings) -> dict:
    """Render and write ``<name>.mp4`` (H.264 + AAC) and ``<name>.truth.npz``; returns a summary."""
    from deadlib.data.video import write_video

    torch.set_num_threads(1)  # one process per identity; keeps float reductions single-threaded
    renderer, utt, blink, pose = make_identity_video(name, settings)
    write_video(out_dir / f"{name}.mp4", renderer.frames(utt.articulation, blink, pose),
                fps=settings.fps, audio=utt.audio, sample_rate=settings.sample_rate)
    phon = np.array([(s, e) for s, e, _ in utt.phonemes], np.float64)
    tmp = out_dir / f".{name}.truth.tmp.npz"
    np.savez_compressed(tmp, articulation=utt.articulation, blink=blink.astype(np.float32),
                        pose=pose.astype(np.float32), phoneme_times=phon,
                        phoneme_symbols=np.array([p for _, _, p in utt.phonemes]), voiced=utt.voiced)
    os.replace(tmp, out_dir / f"{name}.truth.npz")
    return {"name": name, "frames": int(len(utt.articulation)), "duration_s": settings.duration_s}


def generate_corpus(out_dir: str | Path, settings: SynthSettings, progress=None) -> dict:
    """Write every identity of the corpus plus ``corpus.json`` (splits + settings) into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prior, held = identity_names(settings)
    names = prior + held
    with ProcessPoolExecutor(max_workers=max(1, settings.workers)) as pool:
        summaries = []
        for summary in pool.map(write_identity, [out_dir] * len(names), names, [settings] * len(names)):
            summaries.append(summary)
            if progress:
                progress(summary)
    manifest = {"generator": GENERATOR_ID, "settings": {k: v for k, v in asdict(settings).items()
                                                            if k not in ("names", "workers")},
                "splits": {"prior": prior, "heldout": held}, "videos": summaries}
    (out_dir / "corpus.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
