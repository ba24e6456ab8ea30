"""The unrolled score and alignment.csv: geometry on synthetic pages, rows on real pieces."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from msmd_prep.align import (AlignConfig, align_piece, read_alignment_csv, render_dpi,
                             spectrogram_frame_rate)
from msmd_prep.errors import ConfigError, InputError
from msmd_prep.score import System, read_heads_csv
from msmd_prep.spectrogram import time_to_frames
from msmd_prep.synth import read_onsets_csv
from msmd_prep.unroll import UnrollConfig, unroll


def _page_with_dots(h: int, w: int, dots: list[tuple[int, int]]) -> np.ndarray:
    page = np.full((h, w), 255, np.uint8)
    for x, y in dots:
        page[y - 3:y + 3, x - 3:x + 3] = 0
    return page


@pytest.mark.parametrize("dpi", [150.0, 300.0])
def test_unroll_maps_points_onto_their_ink(dpi):
    s = dpi / 150.0
    dots = [(int(300 * s), int(200 * s)), (int(900 * s), int(260 * s)),
            (int(500 * s), int(1000 * s))]
    page = _page_with_dots(int(1754 * s), int(1240 * s), dots)
    systems = [System(0, 1, 200 * s, 150 * s, 1100 * s, 300 * s, 2),
               System(1, 1, 200 * s, 950 * s, 1100 * s, 1050 * s, 1)]
    u = unroll([page], systems, dpi=dpi, config=UnrollConfig(band_height_px=200, sheet_dpi=100))
    assert u.image.shape[0] == 200
    assert u.image.shape[1] == sum(b.width for b in u.bands)
    assert [b.x_offset for b in u.bands] == [0, u.bands[0].width]
    for band in u.bands:
        assert band.scale_x == pytest.approx(100 / dpi, rel=1e-2)
        assert band.center_y == pytest.approx(100, abs=1)
    for (x, y), system in zip(dots, (0, 0, 1)):
        ux, uy = u.band(system).to_unrolled(x, y)
        assert u.image[int(uy), int(ux)] < 128


def test_unroll_pads_white_beyond_the_page():
    page = np.zeros((400, 600), np.uint8)
    u = unroll([page], [System(0, 1, 100, 10, 500, 60, 1)], dpi=100.0,
               config=UnrollConfig(band_height_px=200, sheet_dpi=100))
    band = u.bands[0]
    assert band.src_y0 < 0
    assert (u.image[:-band.src_y0] == 255).all()
    assert (u.image[-band.src_y0:] == 0).all()


def test_unroll_system_height_scale():
    page = np.full((1000, 1000), 255, np.uint8)
    u = unroll([page], [System(0, 1, 100, 400, 900, 480, 1)], dpi=150.0,
               config=UnrollConfig(band_height_px=60, sheet_dpi=None, system_height_px=40.0))
    assert u.bands[0].scale_y == pytest.approx(0.5)
    assert u.image.shape == (60, 400)


@pytest.mark.parametrize("kwargs", [
    {"band_height_px": 0}, {"band_height_px": 200.5},
    {"sheet_dpi": None}, {"sheet_dpi": 100.0, "system_height_px": 40.0}, {"sheet_dpi": 5.0},
    {"sheet_dpi": None, "system_height_px": -1.0}])
def test_unroll_config_rejects(kwargs):
    with pytest.raises(ConfigError):
        UnrollConfig(**kwargs)


def test_align_config_rejects_empty_preset():
    with pytest.raises(ConfigError):
        AlignConfig(spectrogram_preset="")


@pytest.mark.parametrize("name", ["multipage", "piano_chords", "ties", "volta"])
def test_alignment_rows(fixture_ds, name):
    piece = fixture_ds.work / name
    (perf_dir,) = (piece / "performances").iterdir()
    rows = read_alignment_csv(perf_dir / "alignment.csv")
    onsets = read_onsets_csv(perf_dir / "onsets.csv")
    heads = {h.id: h for h in read_heads_csv(piece / "noteheads.csv")}
    # One row per onset, none for tie continuations, several for a repeated head.
    assert len(rows) == len(onsets)
    assert not {r.notehead_id for r in rows} & {h.id for h in heads.values() if h.tied}
    per_head = {hid: sum(r.notehead_id == hid for r in rows) for hid in heads}
    assert all(per_head[h.id] == len(h.onsets_s) for h in heads.values())
    fps = spectrogram_frame_rate(perf_dir, "msmd")
    frames = time_to_frames(np.array([r.onset_s for r in rows]), frame_rate_fps=fps)
    assert [r.onset_frame for r in rows] == frames.tolist()
    assert [r.onset_s for r in rows] == sorted(r.onset_s for r in rows)
    layout = json.loads((piece / "unrolled.json").read_text())
    image = cv2.imread(str(piece / "unrolled.png"), cv2.IMREAD_GRAYSCALE)
    assert image.shape == (layout["height_px"], layout["width_px"]) == (200, image.shape[1])
    bands = {b["system"]: b for b in layout["systems"]}
    for r in rows:
        h = heads[r.notehead_id]
        assert (r.x, r.y) == pytest.approx(((h.x0 + h.x1) / 2, (h.y0 + h.y1) / 2), abs=0.01)
        b = bands[r.system]
        assert r.unrolled_x == pytest.approx(
            b["x_offset"] + (r.x - b["source_cols"][0]) * b["scale_x"], abs=0.01)
        v = (r.y - b["source_rows"][0]) * b["scale_y"]
        if 3 <= v < image.shape[0] - 3:
            patch = image[int(v) - 2:int(v) + 3, int(r.unrolled_x) - 2:int(r.unrolled_x) + 3]
            assert (patch < 128).any(), (name, r)
    assert render_dpi(piece) == 150.0


def test_volta_head_has_one_row_per_pass(fixture_ds):
    perf_dir = next((fixture_ds.work / "volta" / "performances").iterdir())
    rows = read_alignment_csv(perf_dir / "alignment.csv")
    counts = {}
    for r in rows:
        counts[r.notehead_id] = counts.get(r.notehead_id, 0) + 1
    assert sorted(counts.values()) == [1, 1, 1, 2, 2]


def test_align_rerun_skips_and_missing_spectrogram_names_the_command(fixture_ds):
    piece = fixture_ds.work / "ties"
    assert align_piece(piece, AlignConfig(spectrogram_preset="msmd")) == (0, 1)
    with pytest.raises(InputError, match="msmd-prep spectrogram WORKDIR --preset nosuch"):
        align_piece(piece, AlignConfig(spectrogram_preset="nosuch"))
