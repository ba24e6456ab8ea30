"""Self-checks pass on the fixtures and catch what they are for."""
from __future__ import annotations

import json
from dataclasses import replace
from fractions import Fraction

import pytest

from msmd_prep.checks import (check_columns, check_ink, check_moments, check_performance,
                              summarize)
from msmd_prep.export import merged_head_aliases, parse_export, printed_plays
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


TWO_NOTE_TREMOLO = r"""\version "2.24.0"
\score { \new PianoStaff <<
  \new Staff \relative c'' { \repeat volta 2 { c8 d e f g a b c } }
  \new Staff \relative c { \clef bass
    \repeat volta 2 { \repeat tremolo 8 { <aes des,>32 des32 } c2 } }
>> }
"""


def _render_moments(tmp_path, text):
    (tmp_path / "score.ly").write_text(text)
    piece = render_score(tmp_path / "score.ly", tmp_path / "piece", RenderConfig()).piece_dir
    heads = read_heads_csv(piece / "noteheads.csv")
    ex = parse_export((piece / "build" / "msmd-export.tsv").read_text())
    plays = printed_plays(ex, merged_head_aliases(ex, {int(h.id[1:]) for h in heads}))
    moments = json.loads((piece / "piece.json").read_text())["checks"]["moments"]
    return heads, {f"h{i}": ms for i, ms in plays.items()}, moments


def test_moment_check_passes_a_tremolo_under_moving_notes(tmp_path):
    heads, plays, moments = _render_moments(tmp_path, BOTH_STAVES_TREMOLO)
    assert moments["passed"] and moments["checked"] > 0, moments
    assert check_moments(heads, plays).passed


def test_moment_check_knows_a_two_note_tremolo(tmp_path):
    """The tremolo's second note is printed a quarter after the chord and first
    sounds a 32nd after it; both sound 8 times a pass, under moving eighths."""
    heads, plays, moments = _render_moments(tmp_path, TWO_NOTE_TREMOLO)
    assert moments["passed"] and moments["checked"] > 0, moments
    second = next(h for h in heads if h.pitch == 49 and h.moment == Fraction(1, 4))
    assert plays[second.id][0] == Fraction(1, 32) and len(second.onsets_s) == 16
    # Read as printed (one stroke per head at its printed moment), it is not.
    assert not check_moments(heads).passed


def test_moment_check_catches_a_wrong_tremolo_stroke(tmp_path):
    heads, plays, _ = _render_moments(tmp_path, TWO_NOTE_TREMOLO)
    chord = next(h for h in heads if h.pitch == 44)
    c2 = next(h for h in heads if h.pitch == 48 and h.moment == Fraction(1, 2))

    def changed(onsets):
        return [replace(h, onsets_s=onsets) if h is chord else h for h in heads]

    assert check_moments(changed(chord.onsets_s), plays).passed
    # A stroke lost, a stroke sounding after the voice's next head, all strokes late.
    assert not check_moments(changed(chord.onsets_s[1:]), plays).passed
    late = c2.onsets_s[0] + 0.01
    assert not check_moments(changed(chord.onsets_s[:7] + (late,) + chord.onsets_s[8:]),
                             plays).passed
    assert not check_moments(changed(tuple(t + 0.05 for t in chord.onsets_s)), plays).passed


SIXTEENTHS_OVER_A_TREMOLO = r"""\version "2.24.0"
\score { \new PianoStaff <<
  \new Staff \relative c'' { c16 d e f g a b c c2 }
  \new Staff \relative c { \clef bass \repeat tremolo 4 { c16 e16 } c2 }
>> }
"""


def test_column_check_leaves_out_a_tremolo_note_played_before_it_is_printed(tmp_path):
    """The tremolo's E is printed a quarter in and first sounds with the D16
    above, at a sixteenth: not a column."""
    heads, plays, _ = _render_moments(tmp_path, SIXTEENTHS_OVER_A_TREMOLO)
    info = json.loads((tmp_path / "piece" / "piece.json").read_text())
    assert info["checks"]["columns"]["passed"], info["checks"]["columns"]
    assert not check_columns(heads).passed
    # Still a column check: the D16 sounding with the last chord, a bar away.
    d16 = next(h for h in heads if h.pitch == 74)
    last = next(h for h in heads if h.pitch == 48 and h.moment == Fraction(1, 2))
    moved = [replace(h, onsets_s=last.onsets_s) if h is d16 else h for h in heads]
    assert not check_columns(moved, plays).passed


TIED_INTO_A_REPEAT = r"""\version "2.24.0"
\score { \new PianoStaff <<
  \new Staff \relative c'' { \repeat volta 2 { c2 } \alternative { { d2 } { e2 } }
                             \repeat volta 2 { f2 g2 } }
  \new Staff \relative c { \clef bass \repeat volta 2 { e2 } \alternative { { g2 } { c,2 ~ } }
                                      \repeat volta 2 { c2 d2 } }
>> }
"""


def test_moment_check_counts_a_pass_tied_into(tmp_path):
    """The second repeat's bass C is held from the tie on its first pass and
    struck on its second: it sounds once, the treble F above it twice."""
    heads, plays, moments = _render_moments(tmp_path, TIED_INTO_A_REPEAT)
    bass_c = next(h for h in heads if h.staff == 1 and h.pitch == 48 and h.onsets_s)
    assert len(bass_c.onsets_s) == 1 and not bass_c.tied
    assert moments["passed"] and moments["checked"] > 0, moments
    assert not check_moments(heads, plays).passed


def test_moment_check_catches_staves_that_drift_apart(rendered):
    heads = read_heads_csv(rendered["piano_chords"] / "noteheads.csv")
    bass = next(h for h in heads if h.pitch == 43)
    drifted = [replace(h, onsets_s=(h.onsets_s[0] + 7.2,)) if h is bass else h for h in heads]
    assert not check_moments(drifted).passed
