"""data.dvc and the generator agree on what the embedded corpus is, so a fresh clone's
`corpus ensure` accepts (and can regenerate) the recorded corpus."""

from __future__ import annotations

from deadlib.synth.corpus import read_meta, recorded_settings
from deadlib.synth.generate import GENERATOR_ID, SynthSettings


def test_data_dvc_records_the_generator_id_that_ensure_accepts(repo_root):
    """The id is written into the recorded bytes (corpus.json) and into data.dvc's meta; a module
    rename once changed it in the code only, and every newcomer's `corpus ensure` failed."""
    meta = read_meta(repo_root)
    assert meta.get("generator") == GENERATOR_ID, (
        f"data.dvc says generator {meta.get('generator')!r}, the code writes {GENERATOR_ID!r}: a regenerated "
        "corpus would not match data.dvc")
    settings = SynthSettings.from_dict(recorded_settings(meta))
    assert (settings.n_prior, settings.n_heldout) == (12, 3)
