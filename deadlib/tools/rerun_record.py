"""Record how a rerun of DVC stages compares with what a commit records — the evidence behind
README's "Reproducibility" section (issue 13), kept as a file instead of typed into prose.

After ``dvc repro <stage> ...`` in a workspace (another machine, another day), before the rerun's
``dvc.lock`` / metrics are thrown away or committed:

    python -m deadlib.tools.rerun_record --name intel_xeon_2026-12-02 --stages prepare train_prior \\
        --recorded-on "AMD EPYC host, fresh workspace, 2026-12-02"

writes ``metrics/reruns/<name>.json``: for every stage, whether its code and params deps were the
same in both runs (so any difference comes from the machine or upstream data, not from code), whether
each output is byte-identical (DVC's md5), and every metric of its metrics file side by side with the
relative difference. ``python -m deadlib.tools.readme_tables`` turns the records into README tables.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from deadlib.core.files import write_json
from deadlib.tools.machine import describe

RECORD_DIR = "metrics/reruns"


def git_show(root: Path, ref: str, path: str) -> str:
    """The text of ``path`` at commit ``ref``; a clear error when git does not have it."""
    done = subprocess.run(["git", "-C", str(root), "show", f"{ref}:{path}"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: git has no {path} at {ref}: {done.stderr.strip()}")
    return done.stdout


def _hashes(entries: list[dict] | None) -> dict[str, str | None]:
    return {e["path"]: e.get("md5") for e in entries or []}


def relative_difference(recorded: Any, rerun: Any) -> float | None:
    """|rerun − recorded| / |recorded| for two numbers (0 when both are 0); None otherwise."""
    numbers = (int, float)
    if not isinstance(recorded, numbers) or not isinstance(rerun, numbers) or isinstance(recorded, bool):
        return None
    if recorded == rerun:
        return 0.0
    return abs(rerun - recorded) / abs(recorded) if recorded else float("inf")


def compare_stage(stage: str, recorded_lock: dict, rerun_lock: dict, recorded_metrics: dict | None,
                  rerun_metrics: dict | None, data_deps: set[str]) -> dict[str, Any]:
    """One stage's entry: code/params identity, output identity and the metrics side by side."""
    if stage not in recorded_lock.get("stages", {}) or stage not in rerun_lock.get("stages", {}):
        raise SystemExit(f"error: stage {stage!r} is missing from one of the two dvc.lock files")
    old, new = recorded_lock["stages"][stage], rerun_lock["stages"][stage]
    old_deps, new_deps, new_outs = _hashes(old.get("deps")), _hashes(new.get("deps")), _hashes(new.get("outs"))
    code_deps = sorted((set(old_deps) | set(new_deps)) - data_deps)
    changed_code = [d for d in code_deps if old_deps.get(d) != new_deps.get(d)]
    entry: dict[str, Any] = {
        "code_deps_identical": not changed_code,
        "changed_code_deps": changed_code,
        "params_identical": old.get("params") == new.get("params"),
        "upstream_data_identical": {d: old_deps.get(d) == new_deps.get(d) for d in sorted(data_deps & set(old_deps))},
        "outs_identical": {p: md5 == new_outs.get(p) for p, md5 in _hashes(old.get("outs")).items()},
        "metrics": {},
    }
    if recorded_metrics is not None and rerun_metrics is not None:
        for key in list(recorded_metrics) + [k for k in rerun_metrics if k not in recorded_metrics]:
            a, b = recorded_metrics.get(key), rerun_metrics.get(key)
            entry["metrics"][key] = {"recorded": a, "rerun": b, "relative_difference": relative_difference(a, b)}
    return entry


def metrics_path(lock_stage: dict) -> str | None:
    """The stage's flat metrics file: the ``metrics/<x>.json`` out that is not ``*.settings.json``."""
    for out in lock_stage.get("outs", []):
        path = out["path"]
        if path.endswith(".json") and "metrics" in Path(path).parts and not path.endswith(".settings.json"):
            return path
    return None


def record(root: Path, name: str, stages: list[str], recorded_ref: str, recorded_on: str,
           lock: str = "dvc.lock") -> dict[str, Any]:
    """Compare the workspace's ``lock`` (dvc.lock or real/dvc.lock) + metrics (the rerun) with ``recorded_ref``'s."""
    recorded_lock = yaml.safe_load(git_show(root, recorded_ref, lock))
    rerun_lock = yaml.safe_load((root / lock).read_text())
    # data, not code: any stage's outputs and any .dvc-tracked folder (the raw corpus)
    data_deps = {o["path"] for s in recorded_lock["stages"].values() for o in s.get("outs", [])}
    for tracked in (p for p in root.glob("*.dvc") if p.is_file()):
        data_deps |= {o["path"] for o in (yaml.safe_load(tracked.read_text()) or {}).get("outs", [])}
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", recorded_ref],
                            capture_output=True, text=True, check=True).stdout.strip()
    result: dict[str, Any] = {
        "name": name,
        # when the rerun's dvc.lock was written, not when this record is made
        "rerun_date": datetime.date.fromtimestamp((root / lock).stat().st_mtime).isoformat(),
        "rerun_machine": describe(),
        "recorded_commit": commit,
        "recorded_on": recorded_on,
        "lock": lock,
        "stages": {},
    }
    for stage in stages:
        path = metrics_path(recorded_lock["stages"].get(stage, {}))
        old = json.loads(git_show(root, recorded_ref, path)) if path else None
        new = json.loads((root / path).read_text()) if path and (root / path).is_file() else None
        result["stages"][stage] = compare_stage(stage, recorded_lock, rerun_lock, old, new, data_deps)
        result["stages"][stage]["metrics_file"] = path
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deadlib.tools.rerun_record", description=__doc__.split("\n")[0])
    parser.add_argument("--name", required=True, help="record name, e.g. <host>_<date>")
    parser.add_argument("--stages", nargs="+", required=True, help="the stages that were rerun")
    parser.add_argument("--recorded-ref", default="HEAD", help="the commit whose dvc.lock/metrics are the record")
    parser.add_argument("--recorded-on", required=True, help="where the recorded numbers were produced (free text)")
    parser.add_argument("--lock", default="dvc.lock", help="the pipeline's lock file (real/dvc.lock for the real run)")
    parser.add_argument("--root", default=Path(__file__).resolve().parents[2], type=Path)
    args = parser.parse_args(argv)
    result = record(args.root, args.name, args.stages, args.recorded_ref, args.recorded_on, args.lock)
    out = write_json(args.root / RECORD_DIR / f"{args.name}.json", result)
    print(f"wrote {out.relative_to(args.root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
