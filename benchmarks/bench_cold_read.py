"""What a cold page cache costs a new person's dub (issue 18, goal 3): the files it reads, read cold vs warm.

    .venv/bin/python benchmarks/bench_cold_read.py [--models realdata|synthetic] [--with-env] [--repeats 3]

``bench_new_person.py`` measured the same new-person run at 97 s and 137 s on the same host; the
README's guess was that the first run after other work reads the prior people's prepared windows
(the generic data adapt-now mixes in) from disk and the next from the page cache. This benchmark
tests that guess without the CPU noise of a whole run: it takes every file of the model set
(``params.yaml`` ``reenact.model_sets``: the prior's folder, the audio-to-expression model, the
expression basis and the whole prepared cache of the prior people — more than a run reads, which
maps only the windows it samples, so an upper bound), drops them from the page cache
(``posix_fadvise(DONTNEED)``, no root needed), reads them once (cold), then again (warm, the
same-run baseline), ``--repeats`` times. ``--with-env`` adds the Python environment's torch, numpy
and scipy files (the imports); pages another process has mapped stay resident, so the benchmark
reports how many bytes the eviction really dropped (``fincore``, util-linux): the cold read covers
only those cold, the rest from memory. Prints the cold − warm time (the penalty a cold start can add) and the cold / warm ratio;
never asserts; writes ``benchmarks/results/cpu<N>_bench_cold_read_<models>[_env].txt`` unless ``--no-save``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from deadlib.core.config import load_params
from deadlib.tools.machine import describe, save_result

REPO = Path(__file__).resolve().parents[1]
BLOCK = 1 << 24  # 16 MiB reads


def model_set_files(models: str) -> list[Path]:
    """Every file of ``reenact.model_sets[models]``: the prior's folder, the audio-to-expression model,
    the basis and the prepared cache of the prior people (the folder, all of it)."""
    entry = load_params(REPO / "params.yaml")["reenact"]["model_sets"][models]
    roots = [REPO / Path(entry["prior"]).parent, REPO / entry["a2e"], REPO / entry["basis"], REPO / entry["prior_cache"]]
    missing = [str(r) for r in roots if not r.exists()]
    if missing:
        raise SystemExit(f"not produced yet: {', '.join(missing)} — run `dvc repro` of the "
                         f"{'real/dvc.yaml ' if models == 'realdata' else ''}pipeline first")
    return sorted({f for r in roots for f in ([r] if r.is_file() else r.rglob("*")) if f.is_file()})


def environment_files() -> list[Path]:
    """The files `import torch, numpy, scipy` can read: those packages' folders in the environment."""
    import numpy
    import scipy
    import torch

    return sorted(f for m in (torch, numpy, scipy) for f in Path(m.__file__).parent.rglob("*") if f.is_file())


def evict(files: list[Path]) -> None:
    """Ask the kernel to drop the files' pages from the page cache (pages mapped elsewhere stay)."""
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def resident_bytes(files: list[Path]) -> int | None:
    """Bytes of ``files`` in the page cache now (util-linux ``fincore``); None without fincore."""
    if shutil.which("fincore") is None:
        return None
    total = 0
    for start in range(0, len(files), 500):
        out = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "--output", "RES",
                              *map(str, files[start:start + 500])], capture_output=True, text=True, check=True)
        total += sum(int(x) for x in out.stdout.split())
    return total


def read_all(files: list[Path]) -> float:
    """Seconds to read every byte of ``files`` once."""
    start = time.perf_counter()
    for f in files:
        with open(f, "rb", buffering=0) as fh:
            while fh.read(BLOCK):
                pass
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", choices=("realdata", "synthetic"), default="realdata")
    parser.add_argument("--with-env", action="store_true", help="also the torch/numpy/scipy files of the environment")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)

    files = model_set_files(args.models) + (environment_files() if args.with_env else [])
    size = sum(f.stat().st_size for f in files)
    colds, warms, dropped = [], [], []
    for _ in range(args.repeats):
        evict(files)
        after = resident_bytes(files)
        dropped.append(None if after is None else size - after)
        colds.append(read_all(files))
        warms.append(read_all(files))
    cold, warm = statistics.median(colds), statistics.median(warms)
    known = [d for d in dropped if d is not None]
    evicted = f"{min(known) / 2**20:.0f} MiB" if known else "unknown (no fincore)"
    lines = [
        f"machine: {describe()}",
        f"files: {len(files)} of the '{args.models}' model set{' + the environment' if args.with_env else ''}, "
        f"{size / 2**20:.0f} MiB; dropped from the page cache before each cold read: at least {evicted}",
        f"cold read (median of {args.repeats}): {cold:.2f} s ({size / 2**20 / cold:.0f} MiB/s)",
        f"warm read, same run (the baseline): {warm:.2f} s ({size / 2**20 / warm:.0f} MiB/s)",
        f"cold / warm: {cold / warm:.1f}x; what a cold page cache can add to a new person's run: {cold - warm:.2f} s "
        f"(an upper bound for these files: a run reads only the windows it samples)",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_save:
        save_result("bench_cold_read.py", f"bench_cold_read_{args.models}{'_env' if args.with_env else ''}", argv, text,
                    {"files": len(files), "bytes": size, "evicted_bytes": dropped, "cold_s": colds, "warm_s": warms})


if __name__ == "__main__":
    main()
