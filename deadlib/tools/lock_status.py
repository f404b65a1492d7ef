"""Which stages' ``dvc.lock`` records the code on this commit would reproduce — from git alone.

``dvc status`` answers for a workspace: on a fresh clone (no data, no DVC cache) it lists every
stage, because every output is missing, and on a busy workspace it mixes in whatever data is
lying there. README needs the answer for the *commit*: which recorded numbers were made by the
code, params and commands committed beside them. A stage's record is **current** when

- it has a lock entry, its command is the one ``dvc.yaml`` resolves to now, and its params are
  the values ``params.yaml`` holds now;
- every dependency that lives in the repository and no stage produces (code, notebooks, assets)
  hashes to what the lock recorded;
- every dependency that another stage (or a ``.dvc`` file) produces was recorded with the hash
  that the producer's own record gives it, and that producer is current itself.

A dependency that has no hash of its own in any record — a file inside a produced folder
(``models/prior/checkpoint.pt``) or a folder holding several stages' outputs (``evaluate``'s
``metrics/adapt``) — is followed through its producers' states only: git cannot hash it.
Otherwise a stage is **stale** (with the reasons) or **not run** (no lock entry). Dependencies outside
the repository (the real corpus folder in ``../shared``) are not checked: they are not part of a
commit. Output files in the workspace are never read, so the answer is the same in a fresh clone,
on CI and in a workspace in the middle of a run.

    python -m deadlib.tools.lock_status              # one line per stage group, per pipeline
    python -m deadlib.tools.lock_status --stale      # every stale stage with its reasons
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

CURRENT, STALE, NOT_RUN = "current", "stale", "not run"


@dataclass
class StageRecord:
    """One stage of one pipeline file and whether its lock entry is reproducible by this commit."""

    pipeline: str                 # the dvc.yaml it is defined in, relative to the repository root
    name: str                     # its name in that file, matrix/foreach item included ("baseline@synth_h00-25-0")
    state: str = CURRENT          # CURRENT | STALE | NOT_RUN
    reasons: list[str] = field(default_factory=list)
    outs: list[str] = field(default_factory=list)       # its outputs and metrics files, repository-relative

    @property
    def group(self) -> str:
        """The stage's name without its matrix/foreach item: the row README shows."""
        return self.name.split("@", 1)[0]


def _relative(path: str, root: str) -> str | None:
    """``path`` relative to the repository root, or None when it lies outside the repository."""
    rel = os.path.relpath(path, root)
    return None if rel == ".." or rel.startswith(".." + os.sep) else rel.replace(os.sep, "/")


def _lock_entries(lock_path: Path) -> dict:
    """The ``stages`` mapping of a dvc.lock (libyaml's loader when present: the lock is ~10k lines)."""
    if not lock_path.is_file():
        return {}
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return (yaml.load(lock_path.read_text(), Loader=loader) or {}).get("stages", {})


def _hash(entry) -> str | None:
    value = entry.hash_info.value if entry.hash_info else None
    return str(value) if value else None


@lru_cache(maxsize=4)
def lock_status(root: Path) -> tuple[StageRecord, ...]:
    """Every pipeline stage under ``root`` (all dvc.yaml files), in DVC's order, with its state."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    root = Path(root).resolve()
    with Repo(str(root)) as repo:
        stages = list(repo.index.stages)
        # Who produces each path: pipeline stages from their lock records, .dvc files from themselves.
        producers: dict[str, tuple[object, str | None]] = {}
        for stage in stages:
            for out in stage.outs:
                rel = _relative(out.fs_path, str(root))
                if rel is not None:
                    producers[rel] = (stage, _hash(out))
        locks: dict[str, dict] = {}
        records: dict[int, StageRecord] = {}
        for stage in stages:
            if not getattr(stage, "cmd", None):          # a .dvc file: the data record itself, current by definition
                continue
            pipeline = _relative(stage.dvcfile.path, str(root))
            lock_path = Path(stage.dvcfile.path).with_name("dvc.lock")
            if pipeline not in locks:
                locks[pipeline] = _lock_entries(lock_path)
            record = StageRecord(pipeline, stage.name,
                                 outs=[r for o in stage.outs if (r := _relative(o.fs_path, str(root)))])
            records[id(stage)] = record
            entry = locks[pipeline].get(stage.name)
            if entry is None:
                record.state, record.reasons = NOT_RUN, ["no lock entry"]
                continue
            if entry.get("cmd") != stage.cmd:                # what DVC's own cmd_changed compares
                record.reasons.append("command changed")
            for key, now in (("deps", [d for d in stage.deps if not isinstance(d, ParamsDependency)]), ("outs", stage.outs)):
                if {e["path"] for e in entry.get(key, [])} != {str(o.def_path) for o in now}:
                    record.reasons.append(f"list of {'dependencies' if key == 'deps' else 'outputs'} changed")
            for dep in stage.deps:
                rel = _relative(dep.fs_path, str(root))
                if rel is None:
                    continue                             # outside the repository: not part of a commit
                upstream = _producers(producers, rel, stage)
                if upstream:
                    # Data another stage makes: its record must name the hash that stage's record gives
                    # it. A file inside a produced folder, or a folder holding several stages' outputs,
                    # has no hash in any record: it is followed through its producers' states only.
                    if rel in producers and _hash(dep) != producers[rel][1]:
                        record.reasons.append(f"recorded on another `{rel}` than {_label(root, upstream[0])} records")
                    continue
                for path, change in dep.status().items():
                    if isinstance(change, dict):          # params: {key: "modified" | "new" | "deleted"}
                        record.reasons += [f"param `{key}` {state}" for key, state in change.items()]
                    else:
                        record.reasons.append(f"`{path}` {change}")
            if record.reasons:
                record.state = STALE
        # Upstream staleness propagates: a record made from a stale producer's output is stale too.
        changed = True
        while changed:
            changed = False
            for stage in stages:
                record = records.get(id(stage))
                if record is None or record.state != CURRENT:
                    continue
                for dep in stage.deps:
                    rel = _relative(dep.fs_path, str(root))
                    for producer in _producers(producers, rel, stage) if rel else []:
                        upstream = records.get(id(producer))
                        if upstream is not None and upstream.state != CURRENT:
                            record.state = STALE
                            record.reasons.append(f"upstream {_label(root, producer)} is {upstream.state}")
                            changed = True
                            break
                    if record.state != CURRENT:
                        break
        return tuple(records[id(s)] for s in stages if id(s) in records)


def _producers(producers: dict[str, tuple[object, str | None]], rel: str, stage) -> list:
    """The stages other than ``stage`` that make ``rel``: its producer, the producer of the folder it
    lies in, or every producer of an output inside it (a folder such as ``metrics/adapt``)."""
    found = []
    for out, (producer, _) in producers.items():
        if producer is not stage and (out == rel or rel.startswith(out + "/") or out.startswith(rel + "/")):
            found.append(producer)
    return list(dict.fromkeys(found))


def _label(root: Path, stage) -> str:
    pipeline = _relative(stage.dvcfile.path, str(root))
    name = getattr(stage, "name", None) or pipeline
    return f"`{name}`" if pipeline == "dvc.yaml" or not getattr(stage, "name", None) else f"`{pipeline}:{name}`"


def state_of_output(root: Path, path: str) -> str | None:
    """The state of the stage whose outputs include ``path`` (repository-relative), None if none does."""
    for record in lock_status(Path(root).resolve()):
        if path in record.outs:
            return record.state
    return None


def _summarise_reasons(reasons: list[str], limit: int = 3) -> str:
    """Reasons of a group, most frequent first; long lists of changed files collapse to a count."""
    files = sorted({r.split("`")[1] for r in reasons if r.startswith("`") and r.endswith((" modified", " new", " deleted"))})
    others: dict[str, int] = {}
    for reason in reasons:
        if not (reason.startswith("`") and reason.endswith((" modified", " new", " deleted"))):
            others[reason] = others.get(reason, 0) + 1
    parts = [r for r, _ in sorted(others.items(), key=lambda kv: -kv[1])]
    if files:
        shown = ", ".join(f"`{f}`" for f in files[:limit])
        parts.insert(0, f"changed since its record: {shown}" + (f" and {len(files) - limit} more files" if len(files) > limit else ""))
    return "; ".join(parts)


def status_table(root: Path, pipeline: str) -> list[list[str]]:
    """Rows ``[stage, entries, current, stale, not run, why]`` for one pipeline file, in DVC's order."""
    groups: dict[str, list[StageRecord]] = {}
    for record in lock_status(Path(root).resolve()):
        if record.pipeline == pipeline:
            groups.setdefault(record.group, []).append(record)
    rows = []
    for group, members in groups.items():
        count = {s: sum(m.state == s for m in members) for s in (CURRENT, STALE, NOT_RUN)}
        reasons = [r for m in members if m.state == STALE for r in m.reasons]
        rows.append([f"`{group}`", str(len(members)), str(count[CURRENT]), str(count[STALE]), str(count[NOT_RUN]),
                     _summarise_reasons(reasons) or "—"])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deadlib.tools.lock_status", description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=Path(__file__).resolve().parents[2], type=Path)
    parser.add_argument("--stale", action="store_true", help="list every stale stage with its reasons")
    args = parser.parse_args(argv)
    records = lock_status(args.root.resolve())
    if args.stale:
        for record in records:
            if record.state != CURRENT:
                print(f"{record.pipeline}:{record.name}: {record.state}: {'; '.join(record.reasons)}")
        return 0
    for pipeline in dict.fromkeys(r.pipeline for r in records):
        print(pipeline)
        for row in status_table(args.root, pipeline):
            print("  " + " | ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
