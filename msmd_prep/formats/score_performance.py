"""The performance of a score read with music21, played from the input itself.

:func:`score_performance` plays the measures in the order of
:func:`.unfold.playing_order`, at the tempo marks of the input (``<sound
tempo>``, metronome marks, ABC ``Q:``; ``default_qpm`` before the first),
with its dynamics as velocities and grace notes just before their principal
note.  Every event names the head of its note (:func:`.input_checks.pair_heads`),
so the heads' onsets are exactly the performance's.
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import replace
from fractions import Fraction

from ..score import NoteEvent, Performance, sort_events
from .input_checks import Pairing
from .music21_to_ly import LyScore
from .unfold import playing_order

#: Velocity where the input gives no dynamics (mezzo-forte).
DEFAULT_VELOCITY = 80
#: Sounding length of one grace note, seconds (at most a 32nd note of the local tempo).
GRACE_S = 0.08


class _Timeline:
    """Seconds along the playing order from ``(time, quarter notes per minute)`` changes."""

    def __init__(self, changes: list[tuple[Fraction, float]], default_qpm: float):
        times, rates, starts = [Fraction(0)], [default_qpm], [0.0]
        for t, qpm in sorted(changes, key=lambda c: c[0]):
            if t == times[-1]:
                rates[-1] = qpm
                continue
            starts.append(starts[-1] + float(t - times[-1]) * 240.0 / rates[-1])
            times.append(t)
            rates.append(qpm)
        self.times, self.rates, self.starts = times, rates, starts

    def seconds(self, t: Fraction) -> float:
        i = bisect_right(self.times, t) - 1
        return self.starts[i] + float(t - self.times[i]) * 240.0 / self.rates[i]

    def qpm(self, t: Fraction) -> float:
        return self.rates[bisect_right(self.times, t) - 1]


def score_performance(score: LyScore, pairing: Pairing, heads, *,
                      default_qpm: float) -> tuple[list, Performance, dict]:
    """Play the input: the heads with their onsets, the performance, and a summary.

    Parameters
    ----------
    score : LyScore
        What the writer wrote (notes, measures, flags, tempo and dynamics marks).
    pairing : Pairing
        The heads of the notes (:func:`pair_heads`).
    heads : list of NoteHead
        All rendered heads; tie continuations keep no onsets.
    default_qpm : float
        Quarter notes per minute before the first tempo mark.

    Returns
    -------
    heads : list of NoteHead
        ``onsets_s`` replaced by the onsets of their notes in this performance.
    performance : Performance
    info : dict
        ``measures_played`` (the playing order, printed numbers), ``tempo_marks``,
        ``dynamics_marks``.
    """
    order = playing_order(score.flags)
    occurrences, t = [], Fraction(0)
    for i in order:
        occurrences.append((i, t))
        t += score.lengths[i]
    tempo_changes, dyn = [], {}
    marks_in = {}
    for i, off, qpm in score.tempi:
        marks_in.setdefault(i, []).append((off, qpm))
    dyn_in = {}
    for part, i, off, vel in score.dynamics:
        dyn_in.setdefault(i, []).append((part, off, vel))
    first_qpm = next((q for i, off, q in score.tempi if i == (order[0] if order else 0)),
                     default_qpm)
    for i, start in occurrences:
        tempo_changes += [(start + off, qpm) for off, qpm in marks_in.get(i, [])]
        for part, off, vel in dyn_in.get(i, []):
            dyn.setdefault(part, []).append((start + off, vel))
    timeline = _Timeline(tempo_changes, first_qpm)
    dyn_times = {p: ([t for t, _ in sorted(v)], [x for _, x in sorted(v)])
                 for p, v in dyn.items()}

    def velocity(part: int, when: Fraction) -> int:
        times, vels = dyn_times.get(part, ([], []))
        k = bisect_right(times, when) - 1
        return vels[k] if k >= 0 else DEFAULT_VELOCITY

    by_measure = {}
    for n in score.notes:
        if not n.tied and n.index in pairing.head_of:
            by_measure.setdefault(n.measure, []).append(n)
    raw = []
    for i, start in occurrences:
        for n in by_measure.get(i, []):
            when = start + n.offset
            on = timeline.seconds(when)
            if n.grace:
                step = min(GRACE_S, 7.5 / timeline.qpm(when))  # a 32nd note
                on -= n.grace_rank * step
                dur = step
            else:
                dur = timeline.seconds(when + n.length) - on
            raw.append((on, max(dur, 1e-3), n.pitch, velocity(n.part, when),
                        pairing.head_of[n.index].id))
    lead = max(-min((r[0] for r in raw), default=0.0), 0.0)
    events, seen = [], set()
    for on, dur, p, v, hid in raw:
        on = round(on + lead, 6)
        if (hid, on) not in seen:  # two notes sharing one head sound once
            seen.add((hid, on))
            events.append(NoteEvent(on, dur, p, v, hid))
    onsets = {}
    for e in events:
        onsets.setdefault(e.notehead_id, set()).add(e.onset_s)
    new_heads = [replace(h, onsets_s=tuple(sorted(onsets.get(h.id, ())))) if not h.tied else h
                 for h in heads]
    info = {"measures_played": len(order), "measures_printed": len(score.lengths),
            "tempo_marks": len(score.tempi), "dynamics_marks": len(score.dynamics)}
    return new_heads, Performance(sort_events(events)), info
