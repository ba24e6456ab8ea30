"""The playing order of a score's measures: repeats, voltas and jumps unfolded.

A pure function on plain measure flags, so that MusicXML and ABC inputs
(read with music21) unfold the same way and every rule has a test.  The
rules are the usual ones of printed music:

- a repeat plays its section ``times`` times (2 unless the end bar says
  otherwise) from the last start-repeat bar (or the piece's start, or the
  measure after the previous end-repeat);
- a volta (ending) measure is played on the passes its numbers name;
- after a *da capo* or *dal segno* jump, repeats are not taken again and only
  the last ending of each volta group is played; play stops at a *fine*, and
  a *to coda* jumps to the next coda measure.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MeasureFlags:
    """What one measure says about the playing order.

    Attributes
    ----------
    repeat_start : bool
        A start-repeat bar line at its beginning.
    repeat_end : int
        Times the section ending here is played (0: no end-repeat bar).
    volta : frozenset of int
        The passes on which this measure is played (empty: every pass).
    segno, coda : bool
        A segno sign, a coda sign (the coda's target) in this measure.
    to_coda : bool
        Jump to the coda from the end of this measure, after a D.C./D.S.
    da_capo, dal_segno : bool
        Jump back to the start, to the segno, at the end of this measure.
    fine : bool
        The piece ends after this measure once a jump was taken.
    """

    repeat_start: bool = False
    repeat_end: int = 0
    volta: frozenset = field(default_factory=frozenset)
    segno: bool = False
    coda: bool = False
    to_coda: bool = False
    da_capo: bool = False
    dal_segno: bool = False
    fine: bool = False


def _last_endings(flags: list[MeasureFlags]) -> list[bool]:
    """Per measure: it belongs to the last ending of its volta group."""
    out = [False] * len(flags)
    i = 0
    while i < len(flags):
        if not flags[i].volta:
            i += 1
            continue
        j = i
        while j < len(flags) and flags[j].volta:
            j += 1
        top = max(max(f.volta) for f in flags[i:j])
        for k in range(i, j):
            out[k] = top in flags[k].volta
        i = j
    return out


def playing_order(flags: list[MeasureFlags], *, max_factor: int = 16) -> list[int]:
    """Indices of the measures in the order they are played.

    Parameters
    ----------
    flags : list of MeasureFlags
        One per printed measure, in printed order.
    max_factor : int
        The order is cut at ``max_factor * len(flags)`` measures (a
        contradictory set of jumps cannot loop for ever).
    """
    n = len(flags)
    last_ending = _last_endings(flags)
    order: list[int] = []
    i, start, passes, jumped = 0, 0, 1, False
    coming_back = False
    while i < n and len(order) < max_factor * max(n, 1):
        f = flags[i]
        after_volta = i > 0 and flags[i - 1].volta and not f.volta
        if (f.repeat_start or after_volta) and not coming_back:
            start, passes = i, 1
        coming_back = False
        if f.volta and not (last_ending[i] if jumped else passes in f.volta):
            i += 1
            continue
        order.append(i)
        if jumped and f.fine:
            break
        if jumped and f.to_coda:
            nxt = next((k for k in range(i + 1, n) if flags[k].coda), None)
            if nxt is not None:
                i = nxt
                continue
        if f.repeat_end and not jumped:
            if passes < f.repeat_end:
                passes += 1
                i, coming_back = start, True
                continue
            start, passes = i + 1, 1
        if not jumped and (f.da_capo or f.dal_segno):
            jumped = True
            target = 0
            if f.dal_segno:
                target = next((k for k in range(i + 1) if flags[k].segno), 0)
            i, passes = target, 1
            continue
        i += 1
    return order
