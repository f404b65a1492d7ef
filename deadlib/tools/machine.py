"""One line naming the machine a benchmark ran on: CPU model, core count, torch threads.

Benchmarks print it at the top of their result files: the same code runs at different speeds (and,
for short trainings, to slightly different floats) on an AMD EPYC and an Intel Xeon host."""

from __future__ import annotations

import os
import platform


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
