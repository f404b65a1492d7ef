"""Land stages rerun in another workspace (a clone of this repository) into this checkout.

A long rerun (``dvc repro`` of the real pipeline's stages, hours on 2 cores) runs in a separate clone
so the main checkout stays usable. Its record then comes back as the stages' ``dvc.lock`` entries
plus their git-tracked outputs (metrics files, small reports), and nothing else:

    python -m deadlib.tools.land_rerun --from ../exp --lock real/dvc.lock --stages train_audio2expr style

lands every entry named ``<stage>`` or ``<stage>@<item>``, only after checking that the rerun is a
rerun of THIS checkout:

- every file dependency of the entry (code, the params file, …) is byte-identical here (DVC's md5):
  a record made by other code must not be committed as this code's;
- every recorded parameter value equals this checkout's params file;
- every output file in the other workspace still matches its lock entry (nothing changed after the run).

Outputs that git tracks in the rerun's workspace (not ignored: ``cache: false`` metrics and reports) are
copied; cached outputs (models, prepared data, executed notebooks) stay in the other workspace's DVC cache —
the lock records their md5 — and get the ``/<name>`` line DVC would have written into their folder's
``.gitignore`` here (an output new to this checkout would otherwise show up as an untracked file).
A dependency that is an output this checkout records (in any ``dvc.lock`` or ``.dvc`` file: prepared
data, models, the corpus) must have the hash that record gives it — a rerun downstream of another
record lands after that record (land ``dvc.lock``'s stages before ``real/dvc.lock``'s that read them);
entries landed in the same call count as this checkout's records for each other. Any other
dependency is hashed here as DVC hashes it (files, and folders by their ``.dir`` hash); a folder that
gathers other stages' outputs (``metrics/adapt`` for ``evaluate``: git-tracked metrics beside cached
sidecars) matches when each of its files in the rerun is this checkout's file or an output it records.
An entry here whose outputs a landed entry now produces (the stage that makes them moved, e.g. a
matrix split in two) is dropped from the lock: DVC keeps such old entries, and two entries would claim
the same outputs. Nothing is written when a check fails (``--dry-run``: check and report only).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from dvc.utils.serialize import dumps_yaml

from deadlib.core.files import atomic_output


class LandError(ValueError):
    """The rerun cannot be landed here; the message lists every reason."""


def md5_file(path: Path) -> str:
    """DVC's hash of a file: md5 of its bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def dir_hash(entries: list[dict]) -> str:
    """DVC's hash of a directory from its files' {md5, relpath}: md5 of their sorted JSON list, + ".dir"."""
    entries = sorted(entries, key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"


def md5_dir(path: Path) -> str:
    """DVC's hash of the directory ``path`` (see dir_hash)."""
    return dir_hash([{"md5": md5_file(f), "relpath": f.relative_to(path).as_posix()}
                     for f in path.rglob("*") if f.is_file()])


def stage_wdir(dvcyaml: dict, entry_name: str) -> str:
    """The ``wdir`` of stage ``entry_name`` (``name@item`` of a foreach stage) in a parsed dvc.yaml."""
    stage = dvcyaml["stages"][entry_name.split("@")[0]]
    return (stage.get("do", stage)).get("wdir", ".")


MISSING = object()


def in_repo(wdir: str | Path, path: str) -> str:
    """A lock path (relative to its stage's working directory ``wdir``) relative to the repository root."""
    return os.path.normpath(os.path.join(wdir, path))


def lookup(params: Any, dotted: str) -> Any:
    """``params['a']['b']`` for ``'a.b'``; MISSING when absent."""
    value = params
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def differences(here: Any, there: Any, prefix: str) -> list[str]:
    """Dotted keys under ``prefix`` whose values differ between two parameter trees."""
    if isinstance(here, dict) and isinstance(there, dict):
        return [d for k in sorted(set(here) | set(there), key=str)
                for d in differences(here.get(k, MISSING), there.get(k, MISSING), f"{prefix}.{k}")]
    if here is MISSING:
        return [f"{prefix} (only in the rerun)"]
    if there is MISSING:
        return [f"{prefix} (only here)"]
    return [] if here == there else [f"{prefix} ({there!r} → {here!r} here)"]


def pipeline_stages(root: Path, dvcfile: Path) -> set[str]:
    """The stage names ``dvcfile`` (relative to ``root``) defines now, foreach / matrix items resolved by DVC."""
    from dvc.dvcfile import load_file
    from dvc.repo import Repo

    repo = Repo(str(root), uninitialized=True)           # reads dvc.yaml and its vars; no .dvc folder needed
    try:
        return {stage.name for stage in load_file(repo, str(Path(root).resolve() / dvcfile)).stages.values()}
    finally:
        repo.close()


def selected(entries: dict, stages: list[str]) -> list[str]:
    """Lock entry names equal to a stage or of the form ``<stage>@<item>``."""
    return [name for name in entries if name in stages or name.split("@")[0] in stages]


def recorded_outputs(root: Path) -> dict[str, str | None]:
    """Every output this checkout records (``git ls-files``: each ``dvc.lock`` stage's outs and each
    ``.dvc`` file's), by path relative to ``root`` → md5 (a file's, or a folder's ``.dir`` hash)."""
    listed = git(root, "ls-files", "*dvc.lock", "*.dvc").split()
    outputs = {}
    for rel in listed:
        file = root / rel
        if not file.is_file():
            continue
        data = yaml.safe_load(file.read_text()) or {}
        if file.name == "dvc.lock":
            dvcyaml = yaml.safe_load(file.with_suffix(".yaml").read_text())
            entries = [(file.parent / stage_wdir(dvcyaml, name), stage.get("outs", []))
                       for name, stage in data.get("stages", {}).items()]
        else:
            entries = [(file.parent, data.get("outs", []))]
        for base, outs in entries:
            for out in outs:
                outputs[os.path.relpath(in_repo(base, out["path"]), root)] = out.get("md5")
    return outputs


def recorded_file_md5(rel: str, produced: dict, workspaces: tuple[Path, ...]) -> str | None:
    """Hash of ``rel`` inside a folder output this checkout records (a model's checkpoint in
    ``models/prior``, a sub-folder of the corpus in ``data/raw``) from that folder's ``.dir`` manifest in
    a workspace's DVC cache: a file's md5, a sub-folder's ``.dir`` hash; None when no recorded folder
    holds it or no cache has the manifest."""
    for folder, md5 in produced.items():
        if not (md5 and md5.endswith(".dir") and rel.startswith(folder.rstrip("/") + "/")):
            continue
        for root in workspaces:
            manifest = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
            if manifest.is_file():
                inner = os.path.relpath(rel, folder)
                entries = json.loads(manifest.read_text())
                file = next((e["md5"] for e in entries if e["relpath"] == inner), None)
                if file is not None:
                    return file
                below = [{"md5": e["md5"], "relpath": e["relpath"][len(inner) + 1:]} for e in entries
                         if e["relpath"].startswith(inner + "/")]
                return dir_hash(below) if below else None
    return None


def composed_dir_matches(rel: str, recorded: str, here: Path, there: Path, produced: dict) -> bool:
    """Whether the folder dependency ``rel`` — one that gathers other stages' outputs, e.g. an
    ``evaluate`` stage's ``metrics/adapt`` with each cell's cached ``.reasons.json`` beside its git-tracked
    metrics — is what this checkout holds: the rerun's folder has the ``recorded`` hash, and each of its
    files is either a file of this checkout (byte-identical, e.g. a landed metrics file) or an output this
    checkout records with that file's md5; and no git-tracked file here is missing from it."""
    folder = there / rel
    if not folder.is_dir():
        return False
    theirs = {f.relative_to(there).as_posix(): md5_file(f) for f in folder.rglob("*") if f.is_file()}  # each file hashed once
    if dir_hash([{"md5": md5, "relpath": os.path.relpath(inner, rel)} for inner, md5 in theirs.items()]) != recorded:
        return False
    for inner, md5 in theirs.items():   # the records first: hashing this checkout's copy is the costly check
        if produced.get(inner) == md5 or recorded_file_md5(inner, produced, (here, there)) == md5:
            continue
        if not ((here / inner).is_file() and md5_file(here / inner) == md5):
            return False
    listed = git(here, "ls-files", "--", rel).split()
    return all(path in theirs for path in listed)


def check_entry(name: str, entry: dict, here: Path, there: Path, wdir: str, produced: dict,
                cache: dict) -> list[str]:
    """Every reason ``entry`` (paths relative to its stage's working directory ``wdir`` in ``here`` /
    ``there``) is not a rerun of this checkout, whose recorded outputs are ``produced``; empty when it is.
    ``cache`` keeps what one call reads here (hashes, params files): entries share most dependencies."""
    problems = []
    for dep in entry.get("deps", []):
        path, recorded = dep["path"], dep.get("md5")
        rel = in_repo(wdir, path)
        if recorded is None:
            continue
        # inside a recorded folder (a checkpoint of models/prior): the folder's manifest is the record, not
        # the file on disk here, which is stale when that folder lands in this same call
        inside = None if rel in produced else recorded_file_md5(rel, produced, (here, there))
        if rel in produced:       # an output of one of this checkout's stages (or a .dvc file): its record
            if produced[rel] != recorded:
                problems.append(f"{name}: dependency {path} is {recorded} in the rerun, {produced[rel]} in this "
                                "checkout's records (rerun on other upstream outputs)")
        elif inside is not None:
            if inside != recorded:
                problems.append(f"{name}: dependency {path} is {recorded} in the rerun, {inside} in this checkout's "
                                "records (rerun on other upstream outputs)")
        elif not (here / rel).exists():
            problems.append(f"{name}: dependency {path} does not exist in this checkout and no record here "
                            "gives its hash")
        else:
            key = ("md5", rel, recorded.endswith(".dir"))            # hashed as DVC recorded it: folder or file
            if key not in cache:
                cache[key] = md5_dir(here / rel) if key[2] else md5_file(here / rel)
            if cache[key] != recorded and not (key[2] and composed_dir_matches(rel, recorded, here, there, produced)):
                problems.append(f"{name}: {path} differs from the rerun's (other code, settings or data)")
    for file, values in (entry.get("params") or {}).items():
        rel = in_repo(wdir, file)
        if ("params", rel) not in cache:
            cache["params", rel] = yaml.safe_load((here / rel).read_text()) if (here / rel).is_file() else None
        for key, value in values.items():
            current = lookup(cache["params", rel], key)
            if current is MISSING:
                problems.append(f"{name}: parameter {key} of {file} is missing in this checkout")
            elif current != value:
                changed = ", ".join(differences(current, value, key)) or key
                problems.append(f"{name}: parameter {changed} differs from the rerun's")
    for out in entry.get("outs", []):
        src, recorded = there / wdir / out["path"], out.get("md5")
        if src.is_file() and recorded and md5_file(src) != recorded:
            problems.append(f"{name}: output {out['path']} in the other workspace changed after the run")
    return problems


def git(root: Path, *args: str, stdin: str | None = None, ok: tuple[int, ...] = (0,)) -> str:
    """``git -C root <args>``'s output; LandError when its exit status is not in ``ok``."""
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, input=stdin)
    if done.returncode not in ok:
        raise LandError(f"git {args[0]} failed in {root}: {done.stderr.strip()} "
                        "(both workspaces must be git checkouts of this repository)")
    return done.stdout


def git_tracked(root: Path, relatives: list[str]) -> set[str]:
    """Those of ``relatives`` git would track in ``root`` (not ignored): one ``git check-ignore`` call."""
    # exit 0: some ignored, 1: none ignored, 128: not a git repository or a bad path
    ignored = git(root, "check-ignore", "--stdin", "-z", stdin="".join(f"{r}\0" for r in relatives), ok=(0, 1))
    return set(relatives) - set(ignored.split("\0"))


def git_indexed(root: Path, relatives: list[str]) -> set[str]:
    """Those of ``relatives`` that are in ``root``'s git index (committed or staged)."""
    return set(git(root, "ls-files", "-z", "--", *relatives).split("\0")) & set(relatives) if relatives else set()


def ignore_line(relative: str) -> tuple[str, str]:
    """(the ``.gitignore`` beside a DVC-cached output, the line DVC writes into it): ``/<name>``."""
    path = Path(relative)
    return (path.parent / ".gitignore").as_posix(), f"/{path.name}"


def land(here: Path, there: Path, lock: str, stages: list[str], dry_run: bool = False) -> dict[str, list[str]]:
    """Check and land the entries (see the module doc) → {"entries": [...], "copied": [...]}; raises
    LandError listing every problem, before anything is written."""
    dvcfile = Path(lock).with_suffix(".yaml")
    dvcyaml = yaml.safe_load((here / dvcfile).read_text())
    theirs = yaml.safe_load((there / lock).read_text())
    mine = yaml.safe_load((here / lock).read_text()) if (here / lock).is_file() else {"schema": "2.0", "stages": {}}
    # entries the rerun left as this checkout records them (stages not rerun) are not a rerun, and entries
    # of stages this dvc.yaml no longer defines (old foreach / matrix items DVC keeps in the lock) are
    # leftovers: nothing to land or check
    current = pipeline_stages(here, dvcfile)
    names = [n for n in selected(theirs.get("stages", {}), stages)
             if n in current and theirs["stages"][n] != mine.get("stages", {}).get(n)]
    missing = [s for s in stages if not selected(theirs.get("stages", {}), [s])]
    if missing:
        raise LandError(f"the rerun's {lock} has no entry for {missing}: run `dvc repro` there first")
    problems, copies, ignores, cache = [], [], {}, {}
    produced = recorded_outputs(here)
    wdir = lambda name: os.path.normpath(dvcfile.parent / stage_wdir(dvcyaml, name))  # noqa: E731  relative to here
    landing = {in_repo(wdir(name), o["path"]): o.get("md5")
               for name in names for o in theirs["stages"][name].get("outs", [])}
    produced.update(landing)    # what lands together is checked against itself: prepare + train_prior in one call
    outputs = list(landing)
    # an entry here whose outputs a landed entry now produces was moved to another stage (the real
    # study's scratch cells left `adapt` for `baseline`): DVC keeps such old entries in the lock, where
    # they would still claim the outputs, so they leave with the landing
    superseded = [name for name, entry in mine.get("stages", {}).items()
                  if name not in current and name.split("@")[0] in dvcyaml.get("stages", {})
                  and any(in_repo(wdir(name), o["path"]) in landing for o in entry.get("outs", []))]
    tracked_there, tracked_here = git_tracked(there, outputs), git_tracked(here, outputs)
    # a DVC-cached output that git tracks here (committed by hand before DVC ignored it) would reach
    # a clone as the old bytes beside the new record: it leaves the index (the file stays on disk)
    untrack = sorted(git_indexed(here, [r for r in outputs if r not in tracked_there]))
    for name in names:
        problems += check_entry(name, theirs["stages"][name], here, there, wdir(name), produced, cache)
    for relative in outputs:
        if relative not in tracked_there:               # DVC-cached there: ignored here too, as DVC would
            if relative in tracked_here:
                gitignore, line = ignore_line(relative)
                ignores.setdefault(gitignore, []).append(line)
        elif (there / relative).is_file():
            copies.append((there / relative, here / relative))
    if problems:
        raise LandError("not landed:\n  " + "\n  ".join(problems))
    if not dry_run:
        for src, dest in copies:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(dest) as tmp:
                shutil.copyfile(src, tmp)
        for gitignore, lines in ignores.items():
            existing = (here / gitignore).read_text() if (here / gitignore).is_file() else ""
            dvc_wrote = (there / gitignore).read_text() if (there / gitignore).is_file() else ""
            if set(existing.splitlines()) | set(lines) <= set(dvc_wrote.splitlines()):
                # DVC's own file holds every line: take it byte for byte, so a folder that is another
                # stage's dependency (evaluate reads metrics/adapt) hashes here as it did in the rerun
                text = dvc_wrote
            else:
                text = (existing + ("" if not existing or existing.endswith("\n") else "\n")
                        + "".join(f"{line}\n" for line in lines))
            (here / gitignore).parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(here / gitignore) as tmp:
                tmp.write_text(text)
        if untrack:
            git(here, "rm", "--cached", "-q", "--", *untrack)
        for name in superseded:
            del mine["stages"][name]
        mine.setdefault("stages", {}).update({name: theirs["stages"][name] for name in names})
        with atomic_output(here / lock) as tmp:
            # written by DVC's own serializer: byte for byte what `dvc repro` writes, so the diff is the landed entries
            tmp.write_text(dumps_yaml(mine))
    return {"entries": names, "copied": [str(dest.relative_to(here)) for _, dest in copies],
            "ignored": [f"{gitignore}: {line}" for gitignore, lines in ignores.items() for line in lines],
            "untracked": untrack, "superseded": superseded}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deadlib.tools.land_rerun", description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="there", required=True, type=Path, help="the workspace the stages were rerun in")
    parser.add_argument("--stages", nargs="+", required=True, help="stage names (a foreach stage lands every item)")
    parser.add_argument("--lock", default="dvc.lock", help="the pipeline's lock file (real/dvc.lock for the real run)")
    parser.add_argument("--root", default=Path(__file__).resolve().parents[2], type=Path, help="this checkout")
    parser.add_argument("--dry-run", action="store_true", help="check and list, write nothing")
    args = parser.parse_args(argv)
    try:
        result = land(args.root, args.there, args.lock, args.stages, args.dry_run)
    except LandError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    verb = "would land" if args.dry_run else "landed"
    print(f"{verb} {len(result['entries'])} entries of {args.lock}: {', '.join(result['entries'])}")
    for path in result["copied"]:
        print(f"  {'would copy' if args.dry_run else 'copied'} {path}")
    for line in result["ignored"]:
        print(f"  {'would ignore' if args.dry_run else 'ignored'} (DVC-cached) {line}")
    for path in result["untracked"]:
        print(f"  {'would untrack' if args.dry_run else 'untracked'} (DVC-cached, was in git) {path}")
    for name in result["superseded"]:
        print(f"  {'would drop' if args.dry_run else 'dropped'} {name} (its outputs are a landed entry's now)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
