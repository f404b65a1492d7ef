"""A user's own folder of talking-head clips as a pipeline corpus (issue 14).

Real footage lives outside the repository (``../shared/realcorpus``, HDTF downloads, a user's
``~/clips``). The ``real_corpus`` stage of ``real/dvc.yaml`` depends on that folder, so ``dvc
status`` / ``dvc repro`` notice when a clip is added, removed or changed, and copies the usable
clips into a DVC output with a ``corpus.json`` manifest whose ``splits`` say who is held out
(the study's actors) and who trains the prior (everybody else). ``prepare`` reads that manifest
exactly as it reads the synthetic corpus's.

    python -m deadlib.sources.folder --params params.yaml --section real_corpus --out real/data/raw

Checks, each failing with what to do: the folder exists and holds videos; ``SHA256SUMS`` (when the
folder has one) matches every copied file; every held-out name is a clip of the folder; no two
files share a stem. The output folder is built beside its target and swapped in, so a failed run
never leaves half a corpus.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import uuid
from pathlib import Path
from typing import Mapping

from deadlib.core.config import stage_config
from deadlib.core.files import write_json

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".mpg", ".webm")


class FolderCorpusError(ValueError):
    """The source folder cannot become a corpus; the message says what to fix."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_checksums(folder: Path) -> dict[str, str]:
    """``{file name: sha256}`` from the folder's ``SHA256SUMS`` (sha256sum format); {} when absent."""
    path = folder / "SHA256SUMS"
    if not path.is_file():
        return {}
    sums = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*").strip()] = digest
    return sums


def select_clips(folder: Path, include: list[str] | None) -> list[Path]:
    """The folder's videos (sorted), or only the stems in ``include`` (each must exist)."""
    if not folder.is_dir():
        raise FolderCorpusError(f"corpus folder {folder} does not exist; set real_corpus.source_dir in params.yaml "
                                "to a folder of talking-head videos (../shared/realcorpus in this project's setup)")
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    stems = [p.stem for p in videos]
    twins = sorted({s for s in stems if stems.count(s) > 1})
    if twins:
        raise FolderCorpusError(f"{folder}: several files share the name(s) {twins}; rename them (the file stem is the identity)")
    if include is not None:
        missing = sorted(set(include) - set(stems))
        if missing:
            raise FolderCorpusError(f"real_corpus.include names {missing}, which {folder} does not hold (it has {stems})")
        videos = [p for p in videos if p.stem in include]
    if len(videos) < 2:
        raise FolderCorpusError(f"{folder} has {len(videos)} usable video(s); a corpus needs a prior and a held-out clip")
    return videos


def build_manifest(videos: list[Path], heldout: list[str], source: Path) -> dict:
    """corpus.json: splits (held-out = ``heldout``, prior = the rest, both sorted) + per-file size/hash."""
    stems = [p.stem for p in videos]
    unknown = sorted(set(heldout) - set(stems))
    if unknown:
        raise FolderCorpusError(f"held-out identities {unknown} are not clips of the corpus {stems}; "
                                "fix real_study.identities in params.yaml")
    prior = sorted(s for s in stems if s not in heldout)
    if not prior:
        raise FolderCorpusError("every clip is held out; the prior needs at least one other clip")
    return {"generator": "deadlib.sources.folder", "source_dir": str(source),
            "splits": {"prior": prior, "heldout": list(heldout)},
            "videos": {p.name: {"bytes": p.stat().st_size, "sha256": sha256(p)} for p in videos}}


def import_folder(source: str | Path, out: str | Path, heldout: list[str], include: list[str] | None = None) -> dict:
    """Copy the clips of ``source`` into ``out`` with its corpus.json; returns the manifest.

    Checksums of ``source/SHA256SUMS`` are verified on the copies. ``out`` is replaced only when
    everything succeeded.
    """
    source, out = Path(source), Path(out)
    videos = select_clips(source, include)
    manifest = build_manifest(videos, heldout, source)
    expected = read_checksums(source)
    bad = [p.name for p in videos if p.name in expected and expected[p.name] != manifest["videos"][p.name]["sha256"]]
    if bad:
        raise FolderCorpusError(f"{source}: {bad} do not match its SHA256SUMS; the files are damaged or were "
                                "edited — restore them or regenerate SHA256SUMS")
    staging = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        staging.mkdir(parents=True)
        for p in videos:
            shutil.copy2(p, staging / p.name)
        write_json(staging / "corpus.json", manifest)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--profile", default=None)
    parser.add_argument("--section", default="real_corpus", help="params section with source_dir / include")
    parser.add_argument("--study-section", default="real_study", help="params section whose identities are held out")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    cfg: Mapping = stage_config(args.section, args.profile, params_path=args.params)
    study = stage_config(args.study_section, args.profile, params_path=args.params)
    try:
        manifest = import_folder(cfg["source_dir"], args.out, list(study["identities"]), cfg.get("include"))
    except FolderCorpusError as err:
        raise SystemExit(f"error: {err}") from None
    splits = manifest["splits"]
    print(json.dumps({"clips": len(manifest["videos"]), "prior": len(splits["prior"]), "heldout": splits["heldout"]}))


if __name__ == "__main__":
    main()
