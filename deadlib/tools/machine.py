"""One line naming the machine a benchmark ran on (CPU model, core count, torch threads), and the
results file every benchmark writes with it (``save_result``).

Benchmarks print it at the top of their result files: the same code runs at different speeds (and,
for short trainings, to slightly different floats) on an AMD EPYC and an Intel Xeon host."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe() -> str:
    """e.g. 'Intel(R) Xeon(R) Processor, 2 CPUs, torch threads 2'."""
    text = f"{cpu_model()}, {os.cpu_count()} CPUs"
    try:
        import torch
    except ImportError:
        return text
    return f"{text}, torch threads {torch.get_num_threads()}"


def save_result(script: str, name: str, argv: list[str] | None, text: str, report: dict) -> Path:
    """Write ``benchmarks/results/cpu<N>_<name>.txt``: a header with the benchmark ``script``'s command
    line and the date, then the printed ``text`` and the ``report`` as JSON; returns the path."""
    out = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / f"cpu{os.cpu_count()}_{name}.txt"
    command = " ".join(argv if argv is not None else sys.argv[1:])
    header = f"# benchmarks/{script} {command}  ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n"
    out.parent.mkdir(exist_ok=True)
    out.write_text(header + text + "\n" + json.dumps(report, indent=1) + "\n")
    print(f"written {out}")
    return out
