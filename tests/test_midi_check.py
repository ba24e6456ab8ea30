"""The self-check against LilyPond's own MIDI, on real LilyPond runs."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from msmd_prep import render
from msmd_prep.export import build_performance, merged_head_aliases, parse_export
from msmd_prep.midi_check import (check_midi, parse_check_tsv, performed_ticks,
                                  run_check_lilypond, tempo_differences)
from msmd_prep.render import RenderConfig, render_score
from msmd_prep.score import read_heads_csv


@pytest.mark.parametrize("name", ["grace", "tie_wait", "tie_staccato", "volta", "voices",
                                  "tempo_change", "cross_staff"])
def test_fixtures_play_what_lilypond_plays(rendered, name):
    info = json.loads((rendered[name] / "piece.json").read_text())
    midi = info["checks"]["midi"]
    assert midi["passed"], midi
    assert midi["checked"] == info["counts"]["events"] - info["midi_check"]["unisons"]
    assert info["midi_check_seconds"] > 0
    assert info["midi_check_run"] == "export"


# A leading grace note, a unison of two voices, a repeat, and a MIDI-only
# score that holds the tempo.
SCORE = r"""\version "2.24.0"
music = \new Staff << { \grace d''16 \repeat volta 2 { c''4 e'' g''2 } } \\ { \repeat volta 2 { c'4 e' g''4 r } } >>
\score { \music \layout { } }
\score { \music \midi { \tempo 4 = 90 } }
"""


@pytest.fixture(scope="module")
def piece(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("midi_check")
    (tmp / "score.ly").write_text(SCORE)
    return render_score(tmp / "score.ly", tmp / "piece", RenderConfig()).piece_dir


def _inputs(piece):
    build = piece / "build"
    ex = parse_export((build / "msmd-export.tsv").read_text())
    drawn = {int(h.id[1:]) for h in read_heads_csv(piece / "noteheads.csv")}
    perf = build_performance(ex, aliases=merged_head_aliases(ex, drawn))
    lily = run_check_lilypond(build / "score.ly", build, timeout_s=120)
    return perf, lily, {f"h{i}": h.source for i, h in ex.heads.items()}


def test_a_score_with_grace_unison_repeat_and_midi_tempo_passes(piece):
    info = json.loads((piece / "piece.json").read_text())
    assert info["aligned_well"], info["checks"]
    assert info["tempo_source"] == ["midi-score"]
    assert info["midi_check"]["unisons"] == 2 and info["midi_check"]["compared"] == 11


def test_the_check_catches_onsets_pitches_and_sources_that_differ(piece):
    perf, lily, sources = _inputs(piece)
    events = list(perf.performance.events)
    check, _ = check_midi(perf.movements, events, lily, sources)
    assert check.passed
    late = [replace(events[0], onset_s=events[0].onset_s + 0.01)] + events[1:]
    check, numbers = check_midi(perf.movements, late, lily, sources)
    assert not check.passed and numbers["only_lilypond"] == numbers["only_performance"] == 1
    i = next(k for k, e in enumerate(events) if e.pitch == 76)
    wrong = events[:i] + [replace(events[i], pitch=77)] + events[i + 1:]
    assert not check_midi(perf.movements, wrong, lily, sources)[0].passed
    # Two heads' sources swapped: each event names a head whose source LilyPond
    # plays at another pitch.
    a = events[i].notehead_id
    b = next(e.notehead_id for e in events if e.pitch == 72)
    swapped = dict(sources, **{a: sources[b], b: sources[a]})
    check, numbers = check_midi(perf.movements, events, lily, swapped)
    assert not check.passed and numbers["wrong_source"] == 4


def test_midi_notes_are_timed_where_lilypond_performed_them():
    # A track whose writer went back in time: after tick 100 it lags 28 ticks.
    origins = {(0, 60): {"a"}, (100, 62): {"b"}, (72, 64): {"c"}, (200, 60): {"d"}}
    notes = [(1, 0, 60), (1, 100, 62), (1, 100, 64), (1, 228, 60)]
    ticks, lagged = performed_ticks(notes, origins, shift=0)
    assert ticks == [(0, 60), (100, 62), (72, 64), (200, 60)] and lagged == 2


def test_tempo_maps_compare_as_lilypond_writes_them():
    from fractions import Fraction as F

    from msmd_prep.export import TempoMap

    # Quarter = 69 for a half note, then dotted quarter = 50 (75 quarters): LilyPond's
    # file holds 69 and 75 at ticks 0 and 768, 2 ticks late after a grace note.
    tempo = TempoMap([(F(0), F(69, 4)), (F(1, 2), F(75, 4))])
    assert tempo_differences(tempo, [(0, 69), (768, 75)], shift=0) == []
    assert tempo_differences(tempo, [(2, 69), (770, 75)], shift=2) == []
    assert len(tempo_differences(tempo, [(0, 69), (800, 75)], shift=0)) == 1
    assert len(tempo_differences(tempo, [(0, 69)], shift=0)) == 1


# SCORE with a \repeat unfold (the export expands it before the check copies
# the music) and the score's own \midi (LilyPond writes it in the export's
# run, where the check's performer must write nothing).
ONE_RUN_SCORE = r"""\version "2.24.0"
music = \new Staff << { \grace d''16 \repeat volta 2 { c''4 e'' g''2 } \repeat unfold 2 { f''8 a'' } }
                    \\ { \repeat volta 2 { c'4 e' g''4 r } \repeat unfold 2 { f'4 } } >>
\score { \music \layout { } \midi { } }
\score { \music \midi { \tempo 4 = 90 } }
"""


def test_one_lilypond_run_gives_what_the_export_and_check_runs_give(tmp_path, monkeypatch):
    (tmp_path / "s.ly").write_text(ONE_RUN_SCORE)
    one = render_score(tmp_path / "s.ly", tmp_path / "one", RenderConfig()).piece_dir
    # A combined run that fails: the export runs alone, then the check in its own run.
    broken = tmp_path / "broken.ily"
    broken.write_text('#(error "this combined run fails")\n')
    monkeypatch.setattr(render, "EXPORT_CHECK_ILY", broken)
    two = render_score(tmp_path / "s.ly", tmp_path / "two", RenderConfig()).piece_dir
    info_one, info_two = (json.loads((p / "piece.json").read_text()) for p in (one, two))
    assert (info_one["midi_check_run"], info_two["midi_check_run"]) == ("export", "own")
    assert not (one / "build" / "lilypond-midi-check.log").exists()
    assert (two / "build" / "lilypond-midi-check.log").exists()
    files = sorted(str(p.relative_to(two)) for p in two.rglob("*")
                   if p.is_file() and p.suffix not in (".pdf", ".log", ".json"))
    assert "build/msmd-check-1.midi" in files and "pages/page-001.png" in files
    assert files == sorted(str(p.relative_to(one)) for p in one.rglob("*")
                           if p.is_file() and p.suffix not in (".pdf", ".log", ".json"))
    for name in files:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    # The check compared every note LilyPond played in the printed score.
    played = parse_check_tsv((one / "build" / "msmd-check.tsv").read_text())
    # 19 notes, two of them unisons of the two voices.
    assert info_one["midi_check"]["compared"] == len(played[0].origins) == 17
    for key in ("checks", "midi_check", "counts", "aligned_well"):
        assert info_one[key] == info_two[key], key
    assert info_one["checks"]["midi"]["passed"]
