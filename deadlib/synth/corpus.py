"""The DVC-tracked raw corpus (``data.dvc`` → ``data/raw``) and how a fresh clone gets it.

``data.dvc`` is an ordinary DVC-tracked folder. Its default content is the embedded synthetic
corpus, which ``deadlib.synth.generate`` regenerates byte for byte from the settings recorded in
``data.dvc``'s ``meta`` block — so a fresh, offline clone needs no DVC remote:

    python -m deadlib.synth.corpus ensure     # regenerate / pull whatever data.dvc records, then verify
    python -m deadlib.synth.corpus generate   # (re)build data/raw/synthetic from params.yaml's synth
                                        # section and record it in data.dvc (dvc add + meta)
    python -m deadlib.synth.corpus status     # what is present, what data.dvc expects

Real corpora (HDTF, CelebV-HQ, your own clips) go into ``data/raw/<name>/``; ``dvc add`` them
with the same command (``generate --add-only``) and push to your own remote (README "Data").
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from deadlib.core.config import find_params_file, load_params
from deadlib.synth.generate import GENERATOR_ID, SynthSettings, generate_corpus

DVC_FILE = "data.dvc"
RAW_DIR = Path("data/raw")
SYNTH_SUBDIR = "synthetic"


class CorpusError(RuntimeError):
    """The raw corpus is missing or differs from data.dvc, with what to do about it."""


def dvc(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the venv's dvc (next to this interpreter) and capture its output."""
    exe = Path(sys.executable).with_name("dvc")
    return subprocess.run([str(exe if exe.exists() else "dvc"), *args], cwd=cwd, text=True, capture_output=True)


def repo_root() -> Path:
    return find_params_file().parent


def read_meta(root: Path) -> dict:
    """The ``meta`` block of data.dvc (generator + settings of the embedded corpus)."""
    path = root / DVC_FILE
    if not path.exists():
        return {}
    return (yaml.safe_load(path.read_text()) or {}).get("meta", {}) or {}


def raw_changes(root: Path) -> list[str]:
    """How data/raw differs from the hashes data.dvc records ([] when it matches).

    Why not ``dvc status``: in a fresh clone the DVC cache is empty, and ``dvc status`` then
    reports ``not in cache`` for the output whether or not the files on disk match the recorded
    hashes — a matching regenerated corpus looked like a mismatch (issue 13). ``dvc data status``
    hashes the workspace and reports a changed output separately (``uncommitted``) from an
    object that is merely missing from the cache (``not_in_cache``, harmless here).
    """
    result = dvc("data", "status", "--json", str(RAW_DIR), cwd=root)  # the output path, not data.dvc: a .dvc target reports nothing
    if result.returncode != 0:
        raise CorpusError(f"`dvc data status` failed:\n{result.stderr.strip()}")
    report = json.loads(result.stdout or "{}")
    return sorted(f"{kind}: {path}" for kind, paths in (report.get("uncommitted") or {}).items()
                  for path in paths if Path(path.rstrip("/")).is_relative_to(RAW_DIR))


def is_clean(root: Path) -> bool:
    """True when data/raw exists and matches the hashes recorded in data.dvc (cached or not)."""
    return not raw_changes(root)


def commit_to_cache(root: Path) -> None:
    """Put the verified data/raw into the local DVC cache, so that ``dvc status`` is clean too.

    Only called after :func:`is_clean`; ``dvc commit`` then records the same hashes, which is
    checked: data.dvc must come out byte-identical.
    """
    before = (root / DVC_FILE).read_bytes()
    committed = dvc("commit", "--force", "--quiet", DVC_FILE, cwd=root)
    if committed.returncode != 0 or (root / DVC_FILE).read_bytes() != before:
        (root / DVC_FILE).write_bytes(before)
        raise CorpusError(f"`dvc commit {DVC_FILE}` did not reproduce the recorded hashes:\n{committed.stderr.strip()}")


def settings_from_params(params: dict) -> SynthSettings:
    return SynthSettings.from_dict(params.get("synth", {}))


def recorded_settings(meta: dict) -> dict:
    """The corpus-defining settings (without run-time knobs such as the worker count)."""
    return {k: v for k, v in meta.get("settings", {}).items() if k != "workers"}


def ensure(root: Path | None = None, workers: int | None = None) -> str:
    """Make data/raw match data.dvc: verify, else pull, else regenerate the synthetic corpus."""
    root = root or repo_root()
    if is_clean(root):
        commit_to_cache(root)
        return "data/raw matches data.dvc"
    meta = read_meta(root)
    if dvc("remote", "list", cwd=root).stdout.strip():
        pulled = dvc("pull", DVC_FILE, cwd=root)
        if pulled.returncode == 0 and is_clean(root):
            return "pulled data/raw from the DVC remote"
    if meta.get("generator") != GENERATOR_ID:
        raise CorpusError(
            "data/raw differs from data.dvc and data.dvc does not record a generated corpus; "
            "configure your DVC remote (`dvc remote add -d ...`) and run `dvc pull data.dvc`.")
    settings = SynthSettings.from_dict(recorded_settings(meta))
    settings.workers = workers or settings_from_params(load_params(root / "params.yaml")).workers
    target = root / RAW_DIR / SYNTH_SUBDIR
    print(f"regenerating the embedded corpus into {target} (settings from data.dvc meta) ...", flush=True)
    shutil.rmtree(target, ignore_errors=True)
    generate_corpus(target, settings, progress=lambda s: print(f"  {s['name']}: {s['frames']} frames", flush=True))
    changes = raw_changes(root)
    if changes:
        raise CorpusError(
            f"the regenerated corpus differs from the bytes recorded in data.dvc ({'; '.join(changes)}): "
            "different library versions than the pinned ones in requirements/lock.txt? Either reinstall "
            "with scripts/setup.sh, or accept the new bytes with `python -m deadlib.synth.corpus generate`.")
    commit_to_cache(root)
    return "regenerated data/raw/synthetic; it matches data.dvc"


def synthetic_meta(root: Path) -> dict | None:
    """data.dvc ``meta`` describing data/raw/synthetic, read from its corpus.json (None if absent)."""
    manifest = root / RAW_DIR / SYNTH_SUBDIR / "corpus.json"
    if not manifest.exists():
        return None
    return {"generator": GENERATOR_ID, "settings": json.loads(manifest.read_text())["settings"]}


def record(root: Path, meta: dict | None) -> None:
    """`dvc add data/raw`, moved to the top-level data.dvc, plus the generator ``meta`` block.

    dvc 3 writes ``data/raw.dvc`` next to a folder it does not track yet, and updates the .dvc
    file that already tracks it (our data.dvc) in place; the project keeps one ``data.dvc`` at
    the repo root (path relative to it), so the tracked corpus is visible at a glance.
    """
    added = dvc("add", str(RAW_DIR), cwd=root)
    if added.returncode != 0:
        raise CorpusError(f"`dvc add` failed:\n{added.stderr.strip()}")
    sidecar = root / RAW_DIR.with_suffix(".dvc")
    doc = yaml.safe_load((sidecar if sidecar.exists() else root / DVC_FILE).read_text())
    doc["outs"][0]["path"] = str(RAW_DIR)
    sidecar.unlink(missing_ok=True)
    if meta:
        doc["meta"] = meta
    else:
        doc.pop("meta", None)
    (root / DVC_FILE).write_text(yaml.safe_dump(doc, sort_keys=False))


def generate(root: Path | None = None) -> str:
    """Rebuild data/raw/synthetic from params.yaml's ``synth`` section and record it in data.dvc."""
    root = root or repo_root()
    settings = settings_from_params(load_params(root / "params.yaml"))
    target = root / RAW_DIR / SYNTH_SUBDIR
    shutil.rmtree(target, ignore_errors=True)
    manifest = generate_corpus(target, settings, progress=lambda s: print(f"  {s['name']}", flush=True))
    record(root, {"generator": GENERATOR_ID, "settings": manifest["settings"]})
    return f"generated {len(manifest['videos'])} videos into {target} and recorded them in {DVC_FILE}"


def status(root: Path | None = None) -> str:
    root = root or repo_root()
    meta = read_meta(root)
    present = sorted(p.name for p in (root / RAW_DIR).glob("*") if p.is_dir())
    clean = is_clean(root)
    return (f"data.dvc: {'matches' if clean else 'DIFFERS from'} data/raw; sub-folders present: {present}; "
            f"generator: {meta.get('generator', 'none recorded')}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deadlib.synth.corpus", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["ensure", "generate", "record", "status"])
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    root = repo_root()
    try:
        if args.command == "ensure":
            print(ensure(root, args.workers))
        elif args.command == "generate":
            print(generate(root))
        elif args.command == "record":  # after adding your own videos under data/raw/<name>/
            record(root, synthetic_meta(root))
            print(f"recorded data/raw in {DVC_FILE}")
        else:
            print(status(root))
    except CorpusError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
