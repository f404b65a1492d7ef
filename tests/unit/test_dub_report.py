"""deadlib.dub.report.heldout_test_audio: the unseen driving speech is a held-out video's test part."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deadlib.data.video import SAMPLE_RATE, read_audio, write_video
from deadlib.dub.report import heldout_test_audio


def _prepared(tmp_path, name: str, group: str, test: list[int]) -> None:
    (tmp_path / "cache" / name).mkdir(parents=True)
    report = {"source": f"/elsewhere/{name}.mp4", "group": group, "splits": {"test": test}}
    (tmp_path / "cache" / name / "report.json").write_text(json.dumps(report))


def test_test_part_speech_is_cut_exactly_and_a_prior_video_is_refused(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE                                   # 2 s = 50 frames
    audio = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    write_video(raw / "held.mp4", np.zeros((50, 32, 32, 3), np.uint8), 25, audio=audio, sample_rate=SAMPLE_RATE)
    write_video(raw / "prior.mp4", np.zeros((50, 32, 32, 3), np.uint8), 25, audio=audio, sample_rate=SAMPLE_RATE)
    _prepared(tmp_path, "held", "heldout", [30, 50])
    _prepared(tmp_path, "prior", "prior", [50, 50])
    path, span = heldout_test_audio(tmp_path / "cache", raw, "held", tmp_path / "held.wav")
    assert span == (30, 50) and len(read_audio(path, SAMPLE_RATE)) == 20 * SAMPLE_RATE // 25
    with pytest.raises(ValueError, match="prior video.*held-out identity"):
        heldout_test_audio(tmp_path / "cache", raw, "prior", tmp_path / "prior.wav")
    assert not (tmp_path / "prior.wav").exists()
