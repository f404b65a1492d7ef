"""deadlib.audio2expr.crossval: speaker folds that cover the prior people once each and never the
held-out ones, and settings overrides that refuse keys the section does not have."""

from __future__ import annotations

import pytest

from deadlib.audio2expr.crossval import override, speaker_folds


def test_speaker_folds_partition_the_names():
    names = [f"p{i:02d}" for i in range(17)]
    folds = speaker_folds(list(reversed(names)), 3)
    assert [len(f) for f in folds] == [6, 6, 5]
    assert sorted(n for f in folds for n in f) == names
    assert folds[0][:2] == ["p00", "p03"]  # every third of the sorted names: no dependence on input order
    with pytest.raises(ValueError):
        speaker_folds(names[:2], 3)


def test_override_sets_nested_values_and_refuses_unknown_keys():
    settings = {"seed": 0, "train": {"formant_warp": 0.1, "steps": 2000}, "model": {"dropout": 0.1}}
    out = override(settings, ["train.formant_warp=0.0", "seed=1", "model.dropout=0.3"])
    assert out == {"seed": 1, "train": {"formant_warp": 0.0, "steps": 2000}, "model": {"dropout": 0.3}}
    assert settings["train"]["formant_warp"] == 0.1  # the input is not modified
    for bad in ("train.formant_wrap=0", "optim.lr=1", "train.steps"):
        with pytest.raises((KeyError, ValueError)):
            override(settings, [bad])
