"""Means with their confidence intervals, for tables and findings over a few runs or people.

Few values (3 seeds, 3 held-out people, 17 speakers) make the normal 1.96 too narrow: the
half-width uses Student's t with n − 1 degrees of freedom (4.30 for 3 values, 2.12 for 17).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float | None, float | None]:
    """(mean, half-width of its ``level`` Student-t interval); half-width None below 2 values."""
    values = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, None
    from scipy import stats

    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values))
    return mean, float(half)


def paired_summary(differences: Sequence[float]) -> dict | None:
    """Paired ``other − base`` differences → mean, 95 % half-width (None below 2), count higher, n.

    None when there is no pair at all. Callers build the differences from their own pairing
    (per person and seed, per speaker); this keeps the summary the same everywhere.
    """
    differences = [float(d) for d in differences if d is not None and math.isfinite(d)]
    if not differences:
        return None
    mean, half = mean_ci(differences)
    return {"mean": mean, "ci95": half, "higher": sum(d > 0 for d in differences), "n": len(differences)}
