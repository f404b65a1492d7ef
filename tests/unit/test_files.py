"""Atomic writers (deadlib.core.files): whole files or none, and the same content gives the same bytes."""

from __future__ import annotations

import pytest
import torch

from deadlib.core.files import partial_leftovers, save_torch, write_json


def test_save_torch_gives_the_same_bytes_for_the_same_object(tmp_path):
    """DVC hashes model files: two saves of the same weights (another path, another temporary name)
    must be byte-identical, or every retrained model looks changed."""
    obj = {"w": torch.arange(12.0).reshape(3, 4), "meta": {"k": 1}}
    a, b = save_torch(tmp_path / "a" / "model.pt", obj), save_torch(tmp_path / "b" / "other.pt", obj)
    assert a.read_bytes() == b.read_bytes()
    assert torch.equal(torch.load(a, weights_only=True)["w"], obj["w"])
    assert partial_leftovers(a) == [] and partial_leftovers(b) == []


def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = write_json(tmp_path / "m.json", {"x": 1})
    with pytest.raises(TypeError):
        write_json(path, {"x": object()})  # not serialisable: fails mid-write
    assert path.read_text().strip().replace(" ", "").replace("\n", "") == '{"x":1}'
    assert partial_leftovers(path) == []
