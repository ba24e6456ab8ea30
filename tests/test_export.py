"""Pure functions of the export: tempo maps, tie merging, parsing."""
from __future__ import annotations

from fractions import Fraction as F

import pytest

from msmd_prep.errors import InputError
from msmd_prep.export import PlayedNote, TempoMap, build_performance, merge_ties, parse_export


def note(moment, pitch=60, duration=F(1, 4), context=1, tied=False, grace=F(0), nid=1,
         wait=False):
    return PlayedNote(0, nid, pitch, F(moment), F(grace), F(duration), context, 90, tied, wait)


def test_tempo_map_integrates_piecewise():
    tempo = TempoMap([(F(0), F(15)), (F(1), F(30))])  # quarter = 60, then 120
    assert tempo.seconds(F(1)) == 4
    assert tempo.seconds(F(3, 2)) == 5
    assert tempo.tempo_at(F(1, 2)) == 15


def test_tie_merges_only_same_voice_same_pitch_adjacent():
    notes = [note(0, tied=True, nid=1), note(F(1, 4), nid=2),
             note(0, pitch=64, tied=True, nid=3), note(F(1, 2), pitch=64, nid=4),
             note(0, pitch=67, tied=True, context=2, nid=5),
             note(F(1, 4), pitch=67, context=3, nid=6)]
    starts = {n.id: end for n, end in merge_ties(notes)}
    assert starts == {1: F(1, 2), 3: F(1, 4), 4: F(3, 4), 5: F(1, 4), 6: F(1, 2)}


def test_tie_chain_spans_three_notes():
    notes = [note(0, tied=True, nid=1), note(F(1, 4), tied=True, nid=2), note(F(1, 2), nid=3)]
    assert [(n.id, end) for n, end in merge_ties(notes)] == [(1, F(3, 4))]


def test_tie_lapses_after_a_rest_unless_tie_wait_for_note():
    # c4~ r4 c4: struck twice.  With tieWaitForNote, c8~ e8~ <c e>4 holds c and e.
    lapsed = [note(0, tied=True, nid=1), note(F(1, 4), pitch=62, nid=2), note(F(1, 2), nid=3)]
    assert [n.id for n, _ in merge_ties(lapsed)] == [1, 2, 3]
    waiting = [note(0, duration=F(1, 8), tied=True, wait=True, nid=1),
               note(F(1, 8), pitch=64, duration=F(1, 8), tied=True, wait=True, nid=2),
               note(F(1, 4), nid=3), note(F(1, 4), pitch=64, nid=4),
               note(F(1, 4), pitch=67, nid=5)]
    assert {n.id: end for n, end in merge_ties(waiting)} == {1: F(1, 2), 2: F(1, 2), 5: F(1, 2)}


def test_grace_note_ties_into_its_main_note():
    notes = [note(0, duration=F(1, 16), grace=F(-1, 16), tied=True, nid=1), note(0, nid=2)]
    assert [(n.id, end) for n, end in merge_ties(notes)] == [(1, F(1, 4))]


def test_midi_only_score_tempo_applies_per_movement():
    # Two printed movements; one MIDI score plays both, at 120 then at 60 quarters.
    text = ("C\t0\t1\nC\t1\t1\nC\t2\t0\nT\t0\t0\t15\nT\t1\t0\t15\n"
            "T\t2\t0\t30\nT\t2\t1/2\t15\n"
            "E\t0\t1\t60\t0\t0\t1/4\t1\t90\t0\nE\t0\t2\t62\t1/4\t0\t1/4\t1\t90\t0\n"
            "E\t1\t3\t64\t0\t0\t1/4\t1\t90\t0\nE\t1\t4\t65\t1/4\t0\t1/4\t1\t90\t0\n"
            "E\t2\t5\t60\t0\t0\t1/4\t1\t90\t0\nE\t2\t6\t62\t1/4\t0\t1/4\t1\t90\t0\n"
            "E\t2\t7\t64\t1/2\t0\t1/4\t1\t90\t0\nE\t2\t8\t65\t3/4\t0\t1/4\t1\t90\t0\n"
            + "".join(f"H\t{i}\t0\t0\t{p}\t0\t0\ta.ly\t{i}\t1\n"
                      for i, p in ((1, 60), (2, 62), (3, 64), (4, 65))))
    result = build_performance(parse_export(text), gap_s=1.0)
    assert [round(e.onset_s, 6) for e in result.performance.events] == [0.0, 0.5, 2.0, 3.0]
    assert result.tempo_source == ["midi-score", "midi-score"]
    assert [m.start_s for m in result.movements] == [0.0, 2.0]


def test_parse_rejects_malformed_lines():
    with pytest.raises(InputError, match="line 2"):
        parse_export("C\t0\t1\nE\t0\tx\n")


def test_printed_scores_play_in_order_with_gap():
    text = ("C\t0\t1\nT\t0\t0\t15\nE\t0\t1\t60\t0\t0\t1/4\t1\t90\t0\n"
            "C\t1\t1\nT\t1\t0\t15\nE\t1\t2\t62\t0\t0\t1/4\t1\t90\t0\n"
            "H\t1\t0\t0\t60\t0\t0\ta.ly\t1\t1\nH\t2\t0\t0\t62\t0\t0\ta.ly\t2\t1\n")
    result = build_performance(parse_export(text), gap_s=2.0)
    assert [(e.notehead_id, e.onset_s) for e in result.performance.events] == [
        ("h1", 0.0), ("h2", 3.0)]


def test_grace_note_before_the_first_beat_starts_the_performance():
    text = ("C\t0\t1\nT\t0\t0\t15\n"
            "E\t0\t1\t62\t0\t-1/8\t1/8\t1\t90\t0\nE\t0\t2\t60\t0\t0\t1/4\t1\t90\t0\n"
            "H\t1\t0\t0\t62\t0\t-1/8\ta.ly\t1\t1\nH\t2\t0\t0\t60\t0\t0\ta.ly\t1\t5\n")
    result = build_performance(parse_export(text))
    # LilyPond's MIDI plays the grace 8th 9/40 of an 8th (0.1125 s) before its main note.
    assert [(e.notehead_id, e.onset_s) for e in result.performance.events] == [
        ("h1", 0.0), ("h2", pytest.approx(0.1125))]
    assert result.performance.events[0].duration_s == pytest.approx(0.1125)


def test_merged_head_plays_for_its_undrawn_twin():
    from msmd_prep.export import merged_head_aliases

    text = ("C\t0\t1\nT\t0\t0\t15\n"
            "E\t0\t1\t61\t0\t0\t1/32\t1\t90\t0\nE\t0\t2\t61\t0\t0\t3/16\t2\t90\t0\n"
            "E\t0\t3\t64\t0\t0\t1/4\t2\t90\t0\n"
            "H\t1\t0\t0\t61\t0\t0\ta.ly\t1\t1\nH\t2\t0\t1\t61\t0\t0\ta.ly\t2\t1\n"
            "H\t3\t0\t1\t64\t0\t0\ta.ly\t3\t1\n"
            "S\t1\t0:0\nS\t2\t0:0\nS\t3\t0:0\n")
    ex = parse_export(text)
    aliases = merged_head_aliases(ex, drawn={2, 3})
    assert aliases == {1: 2}
    result = build_performance(ex, aliases=aliases)
    assert [(e.notehead_id, e.duration_s) for e in result.performance.events] == [
        ("h2", 0.75), ("h3", 1.0)]
    assert result.onsets == {2: [0.0], 3: [0.0]} and result.merged_heads == 1


def _repeat(start, end, count=2, parts=()):
    from msmd_prep.export import Repeat

    return Repeat(F(start), F(end), count, [(F(a), F(b), frozenset(n)) for a, b, n in parts])


def test_playback_of_a_volta_with_two_endings():
    from msmd_prep.export import playback

    r = _repeat(1, 3, parts=[(2, F(5, 2), {1}), (F(5, 2), 3, {2})])
    assert playback([r, r], F(4)) == [(0, F(5, 2)), (1, 2), (F(5, 2), 4)]


def test_playback_of_nested_repeats_and_a_shared_first_ending():
    from msmd_prep.export import playback

    inner = _repeat(1, 2)
    outer = _repeat(0, 3, count=3, parts=[(2, F(5, 2), {1, 2}), (F(5, 2), 3, {3})])
    segments = playback([outer, inner], F(3))
    assert segments == [(0, 2), (1, F(5, 2)), (0, 2), (1, F(5, 2)), (0, 2), (1, 2),
                        (F(5, 2), 3)]


def test_playback_refuses_repeats_that_disagree():
    from msmd_prep.export import playback

    assert playback([_repeat(0, 2), _repeat(1, 3)], F(3)) is None
    assert playback([_repeat(0, 2), _repeat(0, 2, count=3)], F(3)) is None
