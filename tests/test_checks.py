"""Self-checks pass on the fixtures and catch what they are for."""
from __future__ import annotations

from dataclasses import replace

import pytest

from msmd_prep.checks import (check_columns, check_ink, check_moments, check_performance,
                              summarize)
from msmd_prep.pages import load_gray
from msmd_prep.render import RenderConfig, render_score
from msmd_prep.score import Performance, read_heads_csv, read_performance_csv


def _load(piece):
    heads = read_heads_csv(piece / "noteheads.csv")
    pages = {p: load_gray(piece / "pages" / f"page-{p:03d}.png") for p in {h.page for h in heads}}
    return heads, pages, read_performance_csv(piece / "performance.csv")


@pytest.mark.parametrize("name", ["piano_chords", "voices", "cross_staff", "grace", "ties",
                                  "volta", "multipage"])
def test_checks_pass_on_fixtures(rendered, name):
    heads, pages, perf = _load(rendered[name])
    result = summarize([check_ink(heads, pages), check_columns(heads),
                        check_performance(heads, perf)])
    assert result["aligned_well"], result


def test_ink_check_catches_a_box_on_blank_paper(rendered):
    heads, pages, _ = _load(rendered["melody"])
    moved = [replace(heads[0], y0=heads[0].y0 + 300, y1=heads[0].y1 + 300)] + heads[1:]
    check = check_ink(moved, pages)
    assert not check.passed and check.failed == 1 and heads[0].id in check.detail


def test_column_check_catches_a_displaced_chord_note(rendered):
    heads, _, _ = _load(rendered["piano_chords"])
    moved = [replace(heads[0], x0=heads[0].x0 + 100, x1=heads[0].x1 + 100)] + heads[1:]
    assert not check_columns(moved).passed


def test_performance_check_catches_a_lost_note(rendered):
    heads, _, perf = _load(rendered["volta"])
    assert not check_performance(heads, Performance(perf.events[1:])).passed


@pytest.mark.parametrize("name", ["piano_chords", "voices", "cross_staff", "grace", "ties",
                                  "volta", "multipage"])
def test_moment_check_passes_on_fixtures(rendered, name):
    assert check_moments(read_heads_csv(rendered[name] / "noteheads.csv")).passed


BOTH_STAVES_TREMOLO = r"""\version "2.24.0"
\score { \new PianoStaff <<
  \new Staff \relative c'' { \repeat volta 2 { c8 d e f g a b c } }
  \new Staff \relative c { \clef bass \repeat volta 2 { \repeat tremolo 4 <c e>8 g'2 } }
>> }
"""


def test_moment_check_passes_a_tremolo_under_moving_notes(tmp_path):
    (tmp_path / "score.ly").write_text(BOTH_STAVES_TREMOLO)
    piece = render_score(tmp_path / "score.ly", tmp_path / "piece", RenderConfig()).piece_dir
    check = check_moments(read_heads_csv(piece / "noteheads.csv"))
    assert check.passed and check.checked > 0, check


def test_moment_check_catches_staves_that_drift_apart(rendered):
    heads = read_heads_csv(rendered["piano_chords"] / "noteheads.csv")
    bass = next(h for h in heads if h.pitch == 43)
    drifted = [replace(h, onsets_s=(h.onsets_s[0] + 7.2,)) if h is bass else h for h in heads]
    assert not check_moments(drifted).passed
