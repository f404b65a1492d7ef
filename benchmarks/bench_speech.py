"""Speed of the embedded corpus' speech synthesiser (deadlib.synth.speech): real-time factor.

Prints the machine, the seconds to synthesise ``--seconds`` of speech (voice + articulators +
formant audio) and the ratio of audio duration to compute time (x real time; > 1 = faster than
real time), median of ``--repeats`` runs. Writes benchmarks/results/<machine>_bench_speech.txt.

    python benchmarks/bench_speech.py --seconds 60 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from deadlib.synth.speech import random_voice, synthesize_utterance
from deadlib.tools.machine import describe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    times = []
    for k in range(args.repeats):
        rng = np.random.default_rng(k)
        start = time.perf_counter()
        synthesize_utterance(rng, random_voice(rng), args.seconds)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    machine = describe()
    text = (f"machine: {machine}\nspeech synthesis of {args.seconds:.0f} s: median {median:.2f} s over "
            f"{args.repeats} runs -> {args.seconds / median:.1f}x real time (runs: {', '.join(f'{t:.2f}' for t in times)})\n")
    print(text, end="")
    out = Path(__file__).parent / "results" / f"cpu{os.cpu_count()}_bench_speech.txt"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
