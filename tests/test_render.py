"""The render stage on real LilyPond: heads, pitches, onsets, boxes, ink."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pretty_midi
import pytest

from msmd_prep.pages import ink_fraction, load_gray
from msmd_prep.render import RenderConfig, render_many, render_score
from msmd_prep.score import NoteHead, read_heads_csv, read_performance_csv

# (pitch, onsets in seconds, tie continuation, grace) of every printed head,
# known by construction from the fixture scores.
EXPECTED = {
    "melody": [(60, (0.0,), 0, 0), (62, (0.5,), 0, 0), (64, (1.0,), 0, 0), (65, (1.5,), 0, 0),
               (67, (2.0,), 0, 0), (67, (3.0,), 0, 0)],
    "piano_chords": [(60, (0.0,), 0, 0), (64, (0.0,), 0, 0), (67, (0.0,), 0, 0),
                     (48, (0.0,), 0, 0), (62, (2.0,), 0, 0), (65, (2.0,), 0, 0),
                     (69, (2.0,), 0, 0), (43, (2.0,), 0, 0)],
    "ties": [(60, (0.0,), 0, 0), (64, (2.0,), 0, 0), (64, (), 1, 0), (65, (5.0,), 0, 0),
             (65, (), 1, 0), (60, (12.0,), 0, 0), (64, (12.0,), 0, 0), (60, (), 1, 0),
             (64, (), 1, 0)],
    "volta": [(60, (0.0, 4.0), 0, 0), (62, (1.0, 5.0), 0, 0), (64, (2.0,), 0, 0),
              (65, (6.0,), 0, 0), (67, (8.0,), 0, 0)],
    "unfold": [(60, (0.0,), 0, 0), (62, (0.5,), 0, 0), (60, (1.0,), 0, 0), (62, (1.5,), 0, 0),
               (60, (2.0,), 0, 0), (62, (2.5,), 0, 0), (64, (3.0,), 0, 0)],
    # Grace notes as in LilyPond's MIDI: 9/40 of a grace 8th (0.1125 s) before the main note.
    "grace": [(60, (0.0,), 0, 0), (62, (0.8875,), 0, 1), (64, (1.0,), 0, 0),
              (65, (1.8875,), 0, 1), (67, (2.0,), 0, 0), (69, (2.8875,), 0, 1),
              (71, (3.0,), 0, 0)],
    "tie_staccato": [(60, (0.0,), 0, 0), (60, (0.5,), 0, 0), (64, (1.0,), 0, 0),
                     (64, (1.5,), 0, 0), (67, (2.0,), 0, 0), (71, (2.0,), 0, 0), (67, (), 1, 0),
                     (71, (), 1, 0), (69, (4.0,), 0, 0), (69, (), 1, 0)]
                    + [(48, (i * 0.25,), 0, 0) for i in range(8)] + [(48, (2.0,), 0, 0)],
    "tie_wait": [(60, (0.0,), 0, 0), (64, (0.5,), 0, 0), (67, (1.0,), 0, 0), (60, (), 1, 0),
                 (64, (), 1, 0), (67, (), 1, 0), (60, (4.0,), 0, 0), (60, (6.0,), 0, 0)],
    "voices": [(76, (0.0,), 0, 0), (77, (1.0,), 0, 0), (79, (2.0,), 0, 0), (72, (0.0,), 0, 0),
               (71, (2.0,), 0, 0)],
    "cross_staff": [(72, (0.0,), 0, 0), (74, (1.0,), 0, 0), (76, (2.0,), 0, 0),
                    (77, (3.0,), 0, 0), (48, (0.0,), 0, 0), (67, (1.0,), 0, 0),
                    (52, (2.0,), 0, 0), (48, (3.0,), 0, 0)],
    "ottava": [(96, (0.0,), 0, 0), (98, (1.0,), 0, 0), (84, (2.0,), 0, 0), (86, (3.0,), 0, 0)],
    "tempo_change": [(60, (0.0,), 0, 0), (62, (1.0,), 0, 0), (64, (2.0,), 0, 0),
                     (65, (2.5,), 0, 0), (67, (3.0,), 0, 0)],
    "multipage": [([60, 62, 64, 65][i % 4], (i * 0.25,), 0, 0) for i in range(160)],
}


def _key(h: tuple) -> tuple:
    return (h[1][:1] or (1e9,), h[0], h[1], h[2], h[3])


def _summary(heads: list[NoteHead]) -> list[tuple]:
    return sorted(((h.pitch, tuple(round(t, 6) for t in h.onsets_s), int(h.tied), int(h.grace))
                   for h in heads), key=_key)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_heads_pitches_onsets(rendered, name):
    heads = read_heads_csv(rendered[name] / "noteheads.csv")
    assert _summary(heads) == sorted(EXPECTED[name], key=_key)
    assert len({h.id for h in heads}) == len(heads)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_head_box_covers_ink(rendered, name):
    piece = rendered[name]
    pages = {}
    for h in read_heads_csv(piece / "noteheads.csv"):
        image = pages.setdefault(h.page, load_gray(piece / "pages" / f"page-{h.page:03d}.png"))
        assert 0 <= h.x0 < h.x1 <= image.shape[1] and 0 <= h.y0 < h.y1 <= image.shape[0]
        assert 6 < h.x1 - h.x0 < 40 and 4 < h.y1 - h.y0 < 30, h
        assert ink_fraction(image, (h.x0, h.y0, h.x1, h.y1)) > 0.25, h


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_performance_matches_heads(rendered, name):
    piece = rendered[name]
    heads = {h.id: h for h in read_heads_csv(piece / "noteheads.csv")}
    perf = read_performance_csv(piece / "performance.csv")
    played = sorted((e.notehead_id, round(e.onset_s, 6)) for e in perf.events)
    expected = sorted((h.id, round(t, 6)) for h in heads.values() for t in h.onsets_s)
    assert played == expected
    assert all(heads[e.notehead_id].pitch == e.pitch for e in perf.events)
    midi = pretty_midi.PrettyMIDI(str(piece / "performance.mid"))
    # performance.mid holds times to 1/1920 s.
    notes = sorted((n.start, n.pitch) for n in midi.instruments[0].notes)
    events = sorted((e.onset_s, e.pitch) for e in perf.events)
    assert [p for _, p in notes] == [p for _, p in events]
    assert all(abs(a - b) <= 1 / 1920 for (a, _), (b, _) in zip(notes, events))


def test_tie_lengthens_the_sounding_note(rendered):
    perf = read_performance_csv(rendered["ties"] / "performance.csv")
    durations = {(e.pitch, e.onset_s): e.duration_s for e in perf.events}
    assert durations[(64, 2.0)] == pytest.approx(3.0)
    assert durations[(65, 5.0)] == pytest.approx(7.0)
    assert durations[(60, 12.0)] == pytest.approx(4.0)


def test_unfolded_heads_share_source_but_not_id(rendered):
    heads = [h for h in read_heads_csv(rendered["unfold"] / "noteheads.csv") if h.pitch == 60]
    assert len({h.source for h in heads}) == 1
    assert len({h.id for h in heads}) == 3
    assert heads[0].x0 < heads[1].x0 < heads[2].x0


def test_cross_staff_note_sits_on_the_upper_staff(rendered):
    heads = read_heads_csv(rendered["cross_staff"] / "noteheads.csv")
    crossed = next(h for h in heads if h.pitch == 67)
    bass_voice = next(h for h in heads if h.pitch == 52).voice
    assert crossed.voice == bass_voice
    assert crossed.staff == next(h for h in heads if h.pitch == 72).staff
    upper_bottom = max(h.y1 for h in heads if h.pitch in (72, 74))
    assert crossed.y1 < upper_bottom + 20


def test_ottava_changes_the_print_not_the_pitch(rendered):
    heads = {h.pitch: h for h in read_heads_csv(rendered["ottava"] / "noteheads.csv")}
    assert heads[96].y0 == pytest.approx(heads[84].y0, abs=0.5)
    assert heads[98].y0 == pytest.approx(heads[86].y0, abs=0.5)


def test_multipage_systems_and_pages(rendered):
    piece = rendered["multipage"]
    info = json.loads((piece / "piece.json").read_text())
    assert info["counts"]["pages"] >= 2
    assert len(list((piece / "pages").glob("page-*.png"))) == info["counts"]["pages"]
    heads = read_heads_csv(piece / "noteheads.csv")
    with open(piece / "systems.csv") as f:
        systems = list(csv.DictReader(f))
    assert {h.page for h in heads} == set(range(1, info["counts"]["pages"] + 1))
    by_index = {int(s["system"]): s for s in systems}
    for h in heads:
        s = by_index[h.system]
        assert int(s["page"]) == h.page
        assert float(s["x0"]) - 1 <= h.x0 and h.x1 <= float(s["x1"]) + 1
    onsets = [h.onsets_s[0] for h in sorted(heads, key=lambda h: (h.system, h.x0))]
    assert onsets == sorted(onsets)


def test_piece_json_provenance(rendered):
    info = json.loads((rendered["melody"] / "piece.json").read_text())
    assert info["status"] == "ok"
    assert info["lilypond_version"].startswith("2.")
    assert len(info["inputs_sha256"]) == 64
    assert info["config"]["dpi"] == 150
    assert info["tempo_source"] == ["score"]


def test_rerun_skips_and_config_change_redoes(tmp_path):
    score = Path(__file__).parent / "fixtures" / "scores" / "melody.ly"
    first = render_score(score, tmp_path / "melody", RenderConfig(dpi=100))
    before = (tmp_path / "melody" / "noteheads.csv").read_text()
    again = render_score(score, tmp_path / "melody", RenderConfig(dpi=100))
    assert not first.skipped and again.skipped
    assert (tmp_path / "melody" / "noteheads.csv").read_text() == before
    redone = render_score(score, tmp_path / "melody", RenderConfig(dpi=120))
    assert not redone.skipped
    assert (tmp_path / "melody" / "noteheads.csv").read_text() != before


def test_default_tempo_and_midi_only_score(tmp_path):
    score = tmp_path / "two.ly"
    score.write_text('\\version "2.24.0"\n'
                     "music = { c'4 d' e' f' }\n"
                     "\\score { \\music \\layout { } }\n"
                     "\\score { \\music \\midi { \\tempo 4 = 120 } }\n")
    plain = tmp_path / "plain.ly"
    plain.write_text("\\version \"2.24.0\"\n{ c'4 d' }\n")
    results = render_many([score, plain], tmp_path / "out", RenderConfig(default_qpm=100))
    assert not [r.error for r in results if r.error]
    two = read_heads_csv(results[0].piece_dir / "noteheads.csv")
    assert sorted(h.onsets_s[0] for h in two) == [0.0, 0.5, 1.0, 1.5]
    one = read_heads_csv(results[1].piece_dir / "noteheads.csv")
    assert sorted(h.onsets_s[0] for h in one) == [0.0, pytest.approx(0.6)]


# Burgmuller Op. 100 No. 2 (Mutopia) in small: the repeat and its endings are
# written in the right hand only; the left hand writes both endings out.  The
# page repeats both staves, and so does the performance.
ONE_STAFF_REPEAT = r"""\version "2.24.0"
\score { \new PianoStaff <<
  \new Staff \relative c'' { \tempo 4 = 60 \repeat volta 2 { c4 d e f } \alternative { { g1 } { c,1 } } }
  \new Staff \relative c { \clef bass c4 d e f g1 c,1 }
>> }
"""


def test_a_repeat_written_in_one_staff_repeats_every_staff(tmp_path):
    (tmp_path / "score.ly").write_text(ONE_STAFF_REPEAT)
    piece = render_score(tmp_path / "score.ly", tmp_path / "piece", RenderConfig()).piece_dir
    heads = read_heads_csv(piece / "noteheads.csv")
    bass = sorted((h.onsets_s for h in heads if h.pitch < 60), key=lambda t: t[0])
    assert bass == [(0.0, 8.0), (1.0, 9.0), (2.0, 10.0), (3.0, 11.0), (4.0,), (12.0,)]
    info = json.loads((piece / "piece.json").read_text())
    assert info["repeat_mode"] == ["printed"] and info["aligned_well"], info["checks"]


# Two printed movements and one MIDI-only score that plays both, each at its tempo.
MIDI_SCORE_TEMPI = r"""\version "2.24.0"
one = { c'4 d' e' f' }
two = { g'4 a' b' c'' }
\score { \one \layout { } }
\score { \two \layout { } }
\score { { \tempo 4 = 120 \one \tempo 4 = 60 \two } \midi { } }
"""


def test_a_midi_score_gives_each_movement_its_own_tempi(tmp_path):
    (tmp_path / "score.ly").write_text(MIDI_SCORE_TEMPI)
    piece = render_score(tmp_path / "score.ly", tmp_path / "piece", RenderConfig()).piece_dir
    onsets = sorted(t for h in read_heads_csv(piece / "noteheads.csv") for t in h.onsets_s)
    assert onsets == [0.0, 0.5, 1.0, 1.5, 3.0, 4.0, 5.0, 6.0]
    info = json.loads((piece / "piece.json").read_text())
    assert info["tempo_source"] == ["midi-score", "midi-score"] and info["aligned_well"]


MARKUP_SCORE = r"""\version "2.24.0"
chord = \markup \score { \new Staff \with { \remove "Staff_symbol_engraver" }
                         { <c'' e''>4 } \layout { } }
\score { \new Staff { c'4^\chord d' e' f' } }
"""


def test_a_score_in_a_markup_is_not_music_of_the_piece(tmp_path):
    """Its heads lie in no staff system of the piece and are never played:
    left out and listed, instead of failing the piece (Chopin Op. 23)."""
    (tmp_path / "score.ly").write_text(MARKUP_SCORE)
    piece = render_score(tmp_path / "score.ly", tmp_path / "piece", RenderConfig()).piece_dir
    info = json.loads((piece / "piece.json").read_text())
    heads = read_heads_csv(piece / "noteheads.csv")
    assert sorted(h.pitch for h in heads) == [60, 62, 64, 65]
    assert len(info["unplaced_heads"]) == 2 and info["aligned_well"]
