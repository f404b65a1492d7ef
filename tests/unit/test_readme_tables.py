"""README's results tables are generated from the committed metrics files (deadlib.tools.readme_tables)."""

from __future__ import annotations

import json

import pytest

from deadlib.tools import readme_tables


def test_readme_tables_match_the_committed_metrics(repo_root):
    text, stale = readme_tables.render((repo_root / "README.md").read_text(), repo_root)
    assert "<!-- generated:study -->" in text
    assert not stale, f"README blocks {stale} disagree with metrics/: run python -m deadlib.tools.readme_tables"


def test_a_changed_metric_makes_its_block_stale(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "dub.json").write_text(json.dumps({"frames": 10, "r": 0.81234, "fid": None}))
    readme = "x\n<!-- generated:dub -->\nold\n<!-- /generated:dub -->\ny\n"
    text, stale = readme_tables.render(readme, tmp_path)
    assert stale == ["dub"] and "| r | 0.8123 |" in text and "| fid | — |" in text and text.endswith("y\n")
    assert readme_tables.render(text, tmp_path)[1] == []
    with pytest.raises(KeyError, match="unknown_block"):
        readme_tables.render("<!-- generated:unknown_block -->\n<!-- /generated:unknown_block -->", tmp_path)
