"""Run a training module as one process, or under torchrun when params ask for more (DVC stages).

    python -m deadlib.train.launch [--section train_prior] [--profile P] [--nproc N] MODULE [ARGS...]

The number of processes is ``--nproc``, else ``<section>.nproc`` of params.yaml under the
profile (``auto``: one per visible GPU, 1 without CUDA). With 1 it execs
``python -m MODULE ARGS``; with N > 1 it execs
``python -m torch.distributed.run --standalone --nproc_per_node N -m MODULE ARGS`` (torchrun;
standalone rendezvous on a free local port, so experiments run in parallel by ``dvc queue``
never collide). Multi-node runs call torchrun directly (see the README).
"""

from __future__ import annotations

import argparse
import os
import sys

from deadlib.core.config import stage_config


def resolve_nproc(value: int | str | None) -> int:
    """An ``nproc`` setting → process count (``auto``: CUDA device count, at least 1)."""
    if value in (None, "auto"):
        import torch

        return max(1, torch.cuda.device_count()) if value == "auto" else 1
    n = int(value)
    if n < 1:
        raise ValueError(f"nproc must be >= 1 or 'auto', got {value!r}")
    return n


def build_command(module: str, args: list[str], nproc: int, python: str = sys.executable) -> list[str]:
    """argv that runs ``module`` with ``args`` in ``nproc`` processes on this node."""
    if nproc == 1:
        return [python, "-m", module, *args]
    return [python, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
            "--nproc_per_node", str(nproc), "-m", module, *args]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m deadlib.train.launch", description=__doc__.splitlines()[0])
    ap.add_argument("--section", default="train_prior", help="params section holding nproc")
    ap.add_argument("--profile", default=None, help="profile whose by_profile override applies")
    ap.add_argument("--params", default=None, help="params file (default: params.yaml above the cwd)")
    ap.add_argument("--nproc", default=None, help="processes on this node (overrides params; 'auto' = GPUs)")
    ap.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    ap.add_argument("module", help="python module to run, e.g. deadlib.train.prior")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="arguments of the module")
    a = ap.parse_args(argv)
    setting = a.nproc if a.nproc is not None else stage_config(a.section, a.profile, params_path=a.params).get("nproc")
    cmd = build_command(a.module, a.args, resolve_nproc(setting))
    print("launch:", " ".join(cmd), file=sys.stderr, flush=True)
    if a.dry_run:
        print(" ".join(cmd))
        return
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
