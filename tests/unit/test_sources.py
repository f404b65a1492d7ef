"""deadlib.sources.folder: a folder of clips outside the repo becomes a corpus with held-out splits."""

from __future__ import annotations

import hashlib
import json

import pytest

from deadlib.sources.folder import FolderCorpusError, import_folder, main


def make_folder(root, names, sums=True):
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, name in enumerate(names):
        data = f"clip {i} {name}".encode() * (i + 1)
        (root / name).write_bytes(data)
        lines.append(f"{hashlib.sha256(data).hexdigest()}  {name}")
    (root / "README.md").write_text("not a video")
    if sums:
        (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return root


def test_import_copies_clips_and_writes_splits(tmp_path):
    src = make_folder(tmp_path / "src", ["b.mp4", "a.mp4", "c.mov", "d.mp4"])
    manifest = import_folder(src, tmp_path / "raw", heldout=["d", "a"])
    assert manifest["splits"] == {"prior": ["b", "c"], "heldout": ["d", "a"]}
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["a.mp4", "b.mp4", "c.mov", "corpus.json", "d.mp4"]
    assert json.loads((tmp_path / "raw" / "corpus.json").read_text()) == manifest
    assert (tmp_path / "raw" / "b.mp4").read_bytes() == (src / "b.mp4").read_bytes()


def test_include_selects_clips(tmp_path):
    src = make_folder(tmp_path / "src", ["a.mp4", "b.mp4", "c.mp4"])
    manifest = import_folder(src, tmp_path / "raw", heldout=["c"], include=["a", "c"])
    assert manifest["splits"] == {"prior": ["a"], "heldout": ["c"]}
    with pytest.raises(FolderCorpusError, match="include names"):
        import_folder(src, tmp_path / "raw2", heldout=["c"], include=["a", "zz"])


@pytest.mark.parametrize("names, heldout, match", [
    (["a.mp4", "a.mov", "b.mp4"], ["b"], "share the name"),
    (["a.mp4", "b.mp4"], ["x"], "not clips of the corpus"),
    (["a.mp4", "b.mp4"], ["a", "b"], "every clip is held out"),
    (["a.mp4"], ["a"], "usable video"),
])
def test_bad_folders_fail_with_what_to_fix(tmp_path, names, heldout, match):
    src = make_folder(tmp_path / "src", names)
    with pytest.raises(FolderCorpusError, match=match):
        import_folder(src, tmp_path / "raw", heldout=heldout)
    assert not (tmp_path / "raw").exists()


def test_checksum_mismatch_keeps_the_previous_corpus(tmp_path):
    src = make_folder(tmp_path / "src", ["a.mp4", "b.mp4"])
    import_folder(src, tmp_path / "raw", heldout=["b"])
    before = (tmp_path / "raw" / "corpus.json").read_text()
    (src / "a.mp4").write_bytes(b"edited")
    with pytest.raises(FolderCorpusError, match="SHA256SUMS"):
        import_folder(src, tmp_path / "raw", heldout=["b"])
    assert (tmp_path / "raw" / "corpus.json").read_text() == before          # untouched
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]      # no staging left behind


def test_missing_folder_names_the_setting(tmp_path):
    with pytest.raises(FolderCorpusError, match="real_corpus.source_dir"):
        import_folder(tmp_path / "nowhere", tmp_path / "raw", heldout=["a"])


def test_cli_reads_params_sections(tmp_path, capsys):
    src = make_folder(tmp_path / "src", ["p.mp4", "q.mp4", "h.mp4"], sums=False)
    params = tmp_path / "params.yaml"
    params.write_text(f"profile: default\nseed: 0\ndevice: cpu\nreal_corpus: {{source_dir: {src}, include: null}}\n"
                      "real_study: {identities: [h]}\n")
    main(["--params", str(params), "--out", str(tmp_path / "raw")])
    assert json.loads(capsys.readouterr().out)["heldout"] == ["h"]
    assert json.loads((tmp_path / "raw" / "corpus.json").read_text())["splits"]["prior"] == ["p", "q"]
