"""Keep the weights of the best validation step, and stop when validation stops improving.

Session 9's real study showed every prior fine-tune peaking on its validation span at step 50–100
and losing 0.2–1.9 dB of lower-face PSNR by step 200: a fixed budget hurts the fine-tune and wastes
most of its compute, while the from-scratch baseline is still climbing at 200. Selecting the step on
the validation span (never the test part, issue 15) treats both methods alike: each ends on the
weights of its own best validation score, and a run whose score has not improved for ``patience``
evaluations stops early.

A :class:`Selection` is plain data (it travels inside the checkpoint, so a killed run resumes with
its best-so-far); ``deadlib.train.loop.train`` feeds it each evaluation and keeps ``best.pt``, a
hard link to the checkpoint written at the best step, which replaces the last weights at the end.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

# validation metric -> +1 when higher is better, -1 when lower is better (names of loop.evaluate)
SELECT_METRICS = {"psnr": 1, "ssim": 1, "psnr_lower": 1, "l1": -1}


def check_selection_settings(metric: str | None, patience: int) -> None:
    """Raise ValueError for an unknown metric or a patience without one."""
    if metric is not None and metric not in SELECT_METRICS:
        raise ValueError(f"select_metric must be one of {sorted(SELECT_METRICS)} or null, got {metric!r}")
    if int(patience) < 0:
        raise ValueError(f"patience must be >= 0 (0: never stop early), got {patience}")
    if patience and metric is None:
        raise ValueError(f"patience={patience} needs a select_metric to watch (e.g. psnr_lower)")


@dataclass
class Selection:
    """Best validation score so far of ``metric`` and whether the run is over.

    ``patience`` evaluations in a row without a better score end the run (0: run all steps, still
    ending on the best weights). A score equal to the best does not count as better, and a NaN
    never does.
    """

    metric: str
    patience: int = 0
    best_value: float | None = None
    best_step: int | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)
    evals_since_best: int = 0
    stopped_early: bool = False     # patience ran out before cfg.steps
    finished: bool = False          # training is over; the checkpoint holds the best step's weights
    last_step: int | None = None    # step the training reached before the best weights came back

    def __post_init__(self) -> None:
        check_selection_settings(self.metric, self.patience)

    def update(self, step: int, metrics: Mapping[str, float]) -> bool:
        """Feed step ``step``'s validation metrics; True when it is the new best."""
        value = float(metrics[self.metric])
        better = math.isfinite(value) and (
            self.best_value is None or SELECT_METRICS[self.metric] * (value - self.best_value) > 0)
        if better:
            self.best_value, self.best_step = value, int(step)
            self.best_metrics = {k: float(v) for k, v in metrics.items()}
            self.evals_since_best = 0
        else:
            self.evals_since_best += 1
        return better

    @property
    def out_of_patience(self) -> bool:
        return self.patience > 0 and self.evals_since_best >= self.patience

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Selection":
        return cls(**dict(d))
