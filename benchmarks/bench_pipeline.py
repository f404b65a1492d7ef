"""Where the README's first command spends its time: every stage of dvc.yaml, timed one by one.

    .venv/bin/python benchmarks/bench_pipeline.py                          # the default profile: hours
    .venv/bin/python benchmarks/bench_pipeline.py --profile smoke --tiny-corpus    # the same path in minutes
    .venv/bin/python benchmarks/bench_pipeline.py --profile smoke --tiny-corpus --stages corpus_report prepare

Clones this repository's committed HEAD into a temporary folder (a newcomer's checkout: no data,
no DVC cache), then runs what README's first command runs — ``python -m deadlib.synth.corpus ensure``
and ``dvc repro`` — one stage at a time (``dvc repro --single-item`` in the pipeline's topological
order), timing each. ``--tiny-corpus`` generates a 3-identity, 4 s corpus instead (and records it in
the clone's data.dvc), ``--profile smoke`` also narrows the study to README's smoke matrix, so the
whole code path runs in minutes. Prints each stage's wall time and share of the total, the study
cells summed, and the total against issue 18's goal (90 min on 2 cores). Because these machines
are noisy, a fixed reference workload (an fp32 matmul) is timed before and after: a machine that
slowed down during the run shows up as a lower second figure. Prints, never asserts; writes
``benchmarks/results/cpu<N>_bench_pipeline_<profile>.txt`` unless ``--no-save``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import matmul_peak  # noqa: E402  the reference workload

from deadlib.tools.machine import describe  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GOAL_S = 90 * 60                              # issue 18: the README pipeline in 90 min on 2 cores
TINY_SYNTH = {"n_prior": 2, "n_heldout": 1, "duration_s": 4.0, "size": 128}


def sh(cwd: Path, *args, timeout: float | None = None) -> float:
    """Run ``args`` in ``cwd`` with the venv first on PATH and the clone's deadlib importable; seconds."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(cwd)}
    start = time.perf_counter()
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout)
    if done.returncode:
        raise SystemExit(f"{' '.join(map(str, args))} failed in {cwd}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def pipeline_stages(root: Path) -> list[str]:
    """The top-level dvc.yaml's stages (matrix items expanded) in an order DVC can run them."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        graph = repo.index.graph
        order = [s for s in reversed(list(nx.topological_sort(graph)))]      # DVC's edges point at deps
        return [s.name for s in order if getattr(s, "path", "") == str(root / "dvc.yaml")]


def family(stage: str) -> str:
    """``adapt@synth_h00-25-0`` → ``adapt@*``: matrix items summed into one row."""
    return stage.split("@")[0] + "@*" if "@" in stage else stage


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=None, help="params.yaml profile for the run (default: the committed one)")
    ap.add_argument("--tiny-corpus", action="store_true", help="a 3-identity, 4 s corpus instead of the embedded one")
    ap.add_argument("--stages", nargs="*", default=None, help="only these stages (in pipeline order)")
    ap.add_argument("--workdir", default=None, help="clone here (default: a temporary folder)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds allowed per step")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="bench_pipeline_") if args.workdir is None else None
    root = Path(args.workdir or tmp.name) / "repo"
    before = matmul_peak(torch.device("cpu"), n=1024, reps=5) / 1e9
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(root)], check=True)
    params = yaml.safe_load((root / "params.yaml").read_text())
    if args.profile:
        params["profile"] = args.profile
    if args.tiny_corpus:
        params["synth"] = {**params["synth"], **TINY_SYNTH}
    if params["profile"] == "smoke":
        # the study matrix of dvc.yaml reads base values only: give it the smoke grid (README's smoke command)
        params["study"] = {**params["study"], **params["study"]["by_profile"]["smoke"]}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    times: dict[str, float] = {}
    corpus = "generate" if args.tiny_corpus else "ensure"
    times[f"corpus {corpus}"] = sh(root, sys.executable, "-m", "deadlib.synth.corpus", corpus, timeout=args.timeout)
    if args.tiny_corpus:                                          # the clone's data.dvc records the tiny corpus
        sh(root, BIN / "dvc", "add", "--quiet", "data/raw")
    stages = pipeline_stages(root)
    if args.stages:
        unknown = sorted(set(args.stages) - set(stages))
        if unknown:
            raise SystemExit(f"unknown stages {unknown}; the pipeline has {stages}")
        stages = [s for s in stages if s in args.stages]
    for i, stage in enumerate(stages, 1):
        print(f"[{i}/{len(stages)}] {stage} …", file=sys.stderr, flush=True)
        times[stage] = sh(root, BIN / "dvc", "repro", "--single-item", stage, timeout=args.timeout)
    after = matmul_peak(torch.device("cpu"), n=1024, reps=5) / 1e9

    total = sum(times.values())
    grouped: dict[str, list[float]] = {}
    for stage, seconds in times.items():
        grouped.setdefault(family(stage), []).append(seconds)
    lines = [f"machine: {describe()}; "
             f"reference fp32 matmul {before:.1f} GFLOP/s before, {after:.1f} after the run",
             f"profile {params['profile']}, corpus {'tiny ' + str(TINY_SYNTH) if args.tiny_corpus else 'embedded'}",
             f"{'step':34s} {'n':>4s} {'wall s':>9s} {'share':>7s}"]
    for name, values in sorted(grouped.items(), key=lambda kv: -sum(kv[1])):
        lines.append(f"{name:34s} {len(values):4d} {sum(values):9.1f} {sum(values) / total:7.1%}")
    lines.append(f"{'total':34s} {len(times):4d} {total:9.1f} {1:7.1%}")
    lines.append(f"total / issue 18's goal of {GOAL_S // 60} min: {total / GOAL_S:.2f}")
    report = "\n".join(lines)
    print(report)
    if not args.no_save:
        out = REPO / "benchmarks" / "results" / f"cpu{os.cpu_count()}_bench_pipeline_{params['profile']}.txt"
        out.write_text(report + "\n")
        print(f"wrote {out}", file=sys.stderr)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
