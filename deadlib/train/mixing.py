"""Mixed training data for adaptation (§3.3): the new actor's windows plus generic prior windows.

The paper "include[s] person-generic training data in the person-specific dataset at a ratio of
1:1". :class:`MixedDataset` is that dataset: its first ``n_person`` indices are the actor's
windows, followed by ``round(ratio · n_person)`` generic slots. Each generic slot shows a window
drawn from the whole prior pool, redrawn every epoch (``set_epoch``, called by
``deadlib.train.loop.iterate_batches``), so a short actor dataset still sees many prior windows
over a run. ``ratio = 0`` is the ablation "w/o mixed data" (the actor's windows only).

Batch composition is exact per batch, as in the paper: ``deadlib.train.loop`` asks the dataset for
its epoch order (:meth:`MixedDataset.batch_order`), which fills every batch of B with
``round(B / (1 + ratio))`` actor windows and the rest generic ones (a batch of 4 at ratio 1 holds
2 + 2); actor windows are reshuffled and reused when an epoch needs more of them than exist.
``batch_composition`` measures it. Every item is a pure function of (seed, epoch, index).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
from torch.utils.data import Dataset


class MixingError(ValueError):
    """Bad mixing inputs (ratio, empty datasets)."""


class MixedDataset(Dataset):
    """``person`` windows followed by ``round(ratio · len(person))`` slots drawn from ``generic``."""

    def __init__(self, person: Dataset, generic: Dataset | None, ratio: float = 1.0, seed: int = 0):
        if ratio < 0 or not np.isfinite(ratio):
            raise MixingError(f"mixed_ratio must be a finite number >= 0, got {ratio}")
        if len(person) == 0:
            raise MixingError("the person-specific dataset is empty: nothing to adapt to")
        if ratio > 0 and (generic is None or len(generic) == 0):
            raise MixingError(f"mixed_ratio={ratio} needs generic (prior) windows, but none were given; "
                              "pass the prior identities' training data or set mixed_ratio: 0")
        self.person, self.generic, self.ratio, self.seed = person, generic, float(ratio), seed
        self.n_person = len(person)
        self.n_generic = int(round(self.ratio * self.n_person)) if ratio > 0 else 0
        self.epoch = 0
        self.names = self._names()

    def _names(self) -> list[str]:
        """Identities that can appear (actor first), for ``train(identities=...)``."""
        names = list(getattr(self.person, "names", []))
        if self.n_generic:
            names += [n for n in getattr(self.generic, "names", []) if n not in names]
        return names

    def __len__(self) -> int:
        return self.n_person + self.n_generic

    def set_epoch(self, epoch: int) -> None:
        """Redraw the generic windows (and the sub-datasets' references) for ``epoch``."""
        self.epoch = epoch
        for ds in (self.person, self.generic):
            if ds is not None and hasattr(ds, "set_epoch"):
                ds.set_epoch(epoch)

    def generic_index(self, index: int) -> int:
        """Generic window shown by slot ``index`` (≥ n_person) in the current epoch."""
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        return int(rng.integers(len(self.generic)))

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} mixed windows")
        if index < self.n_person:
            return self.person[index]
        return self.generic[self.generic_index(index)]

    def person_per_batch(self, batch_size: int) -> int:
        """Actor windows in each batch of ``batch_size`` (= batch_size without mixing)."""
        if not self.n_generic:
            return batch_size
        return min(batch_size - 1, max(1, int(round(batch_size / (1.0 + self.ratio)))))

    def batch_order(self, generator: torch.Generator, batch_size: int) -> torch.Tensor:
        """One epoch's indices, (len(self) // batch_size · batch_size,): consecutive groups of
        ``batch_size`` are batches holding exactly :meth:`person_per_batch` actor windows (shuffled
        within the batch, so every process of a DDP run sees both kinds)."""
        n_batches = len(self) // batch_size
        if not self.n_generic or batch_size < 2:
            return torch.randperm(len(self), generator=generator)[:n_batches * batch_size]
        k = self.person_per_batch(batch_size)

        def cycled(n: int, count: int) -> torch.Tensor:           # fresh permutations of range(n), `count` long
            reps = -(-count // n)
            return torch.cat([torch.randperm(n, generator=generator) for _ in range(reps)])[:count]

        person = cycled(self.n_person, n_batches * k).view(n_batches, k)
        generic = self.n_person + cycled(self.n_generic, n_batches * (batch_size - k)).view(n_batches, -1)
        batches = torch.cat([person, generic], 1)                                    # (n_batches, B)
        within = torch.argsort(torch.rand(batches.shape, generator=generator), dim=1)
        return torch.gather(batches, 1, within).reshape(-1)

    @property
    def person_fraction(self) -> float:
        """Share of actor windows in the dataset (per batch: :meth:`person_per_batch` / B)."""
        return self.n_person / len(self)


def batch_composition(identities: Iterable[Iterable[str]], person: str) -> np.ndarray:
    """Actor share of each batch, given each batch's identity list → (n_batches,) float."""
    return np.array([np.mean([name == person for name in batch]) for batch in identities], float)
