"""msmd-prep stats: counts of the fixture dataset and its histograms."""
from __future__ import annotations

import json

import cv2
import pytest
from click.testing import CliRunner

from msmd_prep.cli import main
from msmd_prep.stats import dataset_stats, pitch_name


@pytest.mark.parametrize("pitch,name", [(60, "C4"), (69, "A4"), (21, "A0"), (61, "C#4")])
def test_pitch_name(pitch, name):
    assert pitch_name(pitch) == name


def test_counts(fixture_ds):
    index = json.loads((fixture_ds.dataset / "index.json").read_text())
    stats = dataset_stats(fixture_ds.dataset)
    total = sum(s["count"] for s in index["splits"].values())
    assert stats.n_samples == total > 0
    assert {s: n for s, (_, n) in stats.splits.items()} == {
        s: e["count"] for s, e in index["splits"].items()}
    assert {p: n for p, (_, n) in stats.pieces.items()} == {
        p: e["samples"] for p, e in index["pieces"].items()}
    assert stats.performances == {"timgm6mb_t1.00": total}
    assert stats.tempos == {"1.00": total} and stats.soundfonts == {"timgm6mb": total}
    assert len(stats.pitches) == total and stats.onsets_per_second.sum() == total


def test_cli(fixture_ds, tmp_path):
    result = CliRunner().invoke(main, ["stats", str(fixture_ds.dataset), "--out",
                                       str(tmp_path)])
    assert result.exit_code == 0, result.output
    for word in ("train", "valid", "test", "multipage", "timgm6mb_t1.00", "1.00", "timgm6mb",
                 "pitch range"):
        assert word in result.output
    image = cv2.imread(str(tmp_path / "histograms.png"))
    assert image is not None and image.shape[1] > 800 and image.std() > 10
    assert (tmp_path / "stats.txt").read_text().startswith("dataset ")


def test_cli_not_a_dataset(tmp_path):
    result = CliRunner().invoke(main, ["stats", str(tmp_path)])
    assert result.exit_code == 1 and "[stats]" in result.output
