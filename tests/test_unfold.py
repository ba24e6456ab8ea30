"""The playing order of measures: one test per unfolding rule."""
from __future__ import annotations

from msmd_prep.formats.unfold import MeasureFlags, playing_order

F = MeasureFlags


def v(*numbers: int) -> MeasureFlags:
    return F(volta=frozenset(numbers))


def test_no_repeats_plays_straight_through():
    assert playing_order([F(), F(), F()]) == [0, 1, 2]


def test_repeat_from_the_start_when_no_start_bar():
    assert playing_order([F(), F(repeat_end=2), F()]) == [0, 1, 0, 1, 2]


def test_repeat_from_its_start_bar_and_times():
    flags = [F(), F(repeat_start=True), F(repeat_end=3), F()]
    assert playing_order(flags) == [0, 1, 2, 1, 2, 1, 2, 3]


def test_voltas_play_on_their_passes():
    flags = [F(), F(), F(volta=frozenset({1}), repeat_end=2), v(2), F()]
    assert playing_order(flags) == [0, 1, 2, 0, 1, 3, 4]


def test_a_repeat_after_voltas_starts_after_them():
    # A | B [1 C :| [2 D | E :|  -- the second repeat goes back to E, not to A.
    flags = [F(), F(), F(volta=frozenset({1}), repeat_end=2), v(2), F(repeat_end=2)]
    assert playing_order(flags) == [0, 1, 2, 0, 1, 3, 4, 4]


def test_a_repeat_after_an_end_repeat_starts_after_it():
    flags = [F(repeat_end=2), F(), F(repeat_end=2)]
    assert playing_order(flags) == [0, 0, 1, 2, 1, 2]


def test_da_capo_al_fine_skips_repeats_and_takes_the_last_ending():
    flags = [F(), F(fine=True), F(volta=frozenset({1}), repeat_end=2), v(2), F(da_capo=True)]
    # First time: 0 1 2 | 0 1 3 4, then D.C.: 0 1 and stop at the fine.
    assert playing_order(flags) == [0, 1, 2, 0, 1, 3, 4, 0, 1]


def test_dal_segno_al_coda():
    flags = [F(), F(segno=True), F(to_coda=True), F(dal_segno=True), F(coda=True), F()]
    assert playing_order(flags) == [0, 1, 2, 3, 1, 2, 4, 5]


def test_fine_and_to_coda_count_only_after_a_jump():
    assert playing_order([F(fine=True), F(to_coda=True), F(coda=True)]) == [0, 1, 2]


def test_contradictory_jumps_end():
    flags = [F(repeat_end=1000)]
    assert len(playing_order(flags, max_factor=4)) == 4
