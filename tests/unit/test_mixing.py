"""MixedDataset (§3.3 mixed training): sizes per ratio, determinism, per-epoch redraws, batch
composition through the real training batch iterator, and bad inputs."""

from __future__ import annotations

import pytest
import torch
from support import SMOKE_RENDERER
from torch.utils.data import Dataset

from deadlib.data.synthetic_windows import SyntheticWindows
from deadlib.train.loop import TrainConfig, iterate_batches
from deadlib.train.mixing import MixedDataset, MixingError, batch_composition


class Tagged(Dataset):
    """Items {identity, index} only (fast); counts set_epoch calls; optionally forbids access."""

    def __init__(self, names: list[str], per_name: int, forbid: bool = False):
        self.names, self.per_name, self.forbid, self.epochs = names, per_name, forbid, []

    def __len__(self) -> int:
        return len(self.names) * self.per_name

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __getitem__(self, i: int) -> dict:
        if self.forbid:
            raise AssertionError("generic data must not be read")
        return {"identity": self.names[i // self.per_name], "index": i}


@pytest.mark.parametrize("ratio, expected", [(1.0, 20), (0.5, 15), (2.0, 30), (0.0, 10)])
def test_length_follows_the_ratio(ratio, expected):
    mixed = MixedDataset(Tagged(["actor"], 10), Tagged(["p0", "p1"], 50), ratio)
    assert len(mixed) == expected
    assert mixed.person_fraction == pytest.approx(10 / expected)
    people = [mixed[i]["identity"] for i in range(len(mixed))]
    assert people.count("actor") == 10 and all(p in ("p0", "p1") for p in people[10:])


def test_ratio_zero_never_reads_generic_data():
    mixed = MixedDataset(Tagged(["actor"], 7), Tagged(["p0"], 5, forbid=True), 0.0)
    assert len(mixed) == 7 and mixed.names == ["actor"]
    assert {mixed[i]["identity"] for i in range(7)} == {"actor"}
    assert len(MixedDataset(Tagged(["actor"], 7), None, 0.0)) == 7


def test_items_are_deterministic_and_generic_slots_are_redrawn_per_epoch():
    a = MixedDataset(Tagged(["actor"], 10), Tagged(["p0", "p1", "p2"], 40), 1.0, seed=3)
    b = MixedDataset(Tagged(["actor"], 10), Tagged(["p0", "p1", "p2"], 40), 1.0, seed=3)
    draw = lambda ds: [ds[i]["index"] for i in range(len(ds))]            # noqa: E731
    first = draw(a)
    assert first == draw(b)
    assert first[:10] == list(range(10))                                   # actor windows in order
    a.set_epoch(1)
    second = draw(a)
    assert second[:10] == first[:10] and second[10:] != first[10:]
    a.set_epoch(0)
    assert draw(a) == first
    assert a.person.epochs == [1, 0] and a.generic.epochs == [1, 0]       # forwarded (reference redraws)


def test_names_put_the_actor_first():
    mixed = MixedDataset(Tagged(["actor"], 4), Tagged(["p0", "p1"], 4), 1.0)
    assert mixed.names == ["actor", "p0", "p1"]


@pytest.mark.parametrize("ratio", [-0.5, float("nan"), float("inf")])
def test_bad_ratio_raises(ratio):
    with pytest.raises(MixingError, match="mixed_ratio"):
        MixedDataset(Tagged(["actor"], 4), Tagged(["p0"], 4), ratio)


def test_mixing_without_generic_data_raises():
    with pytest.raises(MixingError, match="generic"):
        MixedDataset(Tagged(["actor"], 4), None, 1.0)
    with pytest.raises(MixingError, match="empty"):
        MixedDataset(Tagged(["actor"], 0), Tagged(["p0"], 4), 1.0)


def _batches(mixed: Dataset, n_batches: int, batch_size: int = 4) -> list[list[str]]:
    cfg = TrainConfig.from_dict(dict(batch_size=batch_size, seed=0, device="cpu", renderer=SMOKE_RENDERER))
    it = iterate_batches(mixed, cfg)
    out = [list(next(it)["identity"]) for _ in range(n_batches)]
    it.close()
    return out


def test_training_batches_mix_one_to_one_over_an_epoch():
    person = SyntheticWindows(("actor",), n_frames=18, size=16)            # 16 windows
    generic = SyntheticWindows(("p0", "p1"), n_frames=30, size=16)
    mixed = MixedDataset(person, generic, 1.0, seed=0)
    per_epoch = len(mixed) // 4                                            # 32 windows → 8 batches
    batches = _batches(mixed, 3 * per_epoch)
    share = batch_composition(batches, "actor")
    assert share.tolist() == [0.5] * len(batches)                          # exactly 2 + 2 in every batch
    assert {n for b in batches for n in b} == {"actor", "p0", "p1"}


def test_per_batch_ratio_follows_the_params_ratio_and_reuses_scarce_actor_windows():
    person = SyntheticWindows(("actor",), n_frames=6, size=16)             # 4 windows
    generic = SyntheticWindows(("p0",), n_frames=30, size=16)
    mixed = MixedDataset(person, generic, 3.0, seed=0)                     # 4 + 12 slots → 4 batches of 4
    assert mixed.person_per_batch(4) == 1 and mixed.person_per_batch(8) == 2
    assert batch_composition(_batches(mixed, 8), "actor").tolist() == [0.25] * 8
    order = mixed.batch_order(torch.Generator().manual_seed(0), 4).view(-1, 4)
    assert ((order < 4).sum(1) == 1).all() and len(set(order[order < 4].tolist())) == 4


def test_training_batches_without_mixing_hold_the_actor_only():
    person = SyntheticWindows(("actor",), n_frames=18, size=16)
    mixed = MixedDataset(person, SyntheticWindows(("p0",), n_frames=10, size=16), 0.0)
    batches = _batches(mixed, 10)
    assert batch_composition(batches, "actor").tolist() == [1.0] * 10
