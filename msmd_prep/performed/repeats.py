"""Repeats as performed: the score's unfoldings a performer may have played.

The rendered performance (``performance.csv``) plays every repeat.  A jump
back in it is found where the music returns to an earlier printed moment
(``noteheads.csv`` ``moment``) with heads it has already played; the passage
from that heads' previous playing up to the jump is the pass a performer
skips who does not take the repeat (for a volta repeat with alternative
endings this skips the first ending, as it should).  Three unfoldings are
tried:

* ``all``: every repeat taken (the rendered performance);
* ``none``: no repeat taken;
* ``first``: repeats taken the first time only, not again inside a repeated
  passage (an inner repeat within an outer repeat's second pass, a da capo).

Unfoldings that play the same events are given once (``first`` exists only
where repeats are nested; a score without repeats has ``all`` alone).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

# A jump back by less than a quarter note is a grace note or an
# arpeggio, not a repeat.
MIN_JUMP_WHOLE = Fraction(1, 4)


@dataclass(frozen=True)
class Jump:
    """One return to an earlier passage in the unfolded performance.

    Attributes
    ----------
    start_s : float
        When the passage returned to was last played, seconds.
    at_s : float
        When it is played again (the jump), seconds.
    """

    start_s: float
    at_s: float

    @property
    def length_s(self) -> float:
        return self.at_s - self.start_s


@dataclass(frozen=True)
class Unfolding:
    """A choice of repeats: which events of the rendered performance are played, and when.

    Attributes
    ----------
    name : str
        ``all``, ``none`` or ``first``.
    events : np.ndarray [dtype=int64]
        Indices of the played events in the rendered performance, in order.
    onset_s : np.ndarray [dtype=float64]
        Their score times with the skipped passages cut out, seconds.
    skipped : tuple of (float, float)
        The cut passages ``[start, stop)`` in rendered score time, seconds.
    """

    name: str
    events: np.ndarray
    onset_s: np.ndarray
    skipped: tuple[tuple[float, float], ...]


def find_jumps(onset_s: np.ndarray, heads: list[str], moments: list[Fraction]) -> list[Jump]:
    """The jumps back of an unfolded performance.

    Parameters
    ----------
    onset_s : np.ndarray [shape=(n,)]
        Event onsets, seconds, sorted.
    heads : list of str
        The note head each event sounds.
    moments : list of Fraction
        Each event's head's printed moment (whole notes).
    """
    jumps: list[Jump] = []
    last_seen: dict[str, float] = {}
    prev_max: Fraction | None = None
    i, n = 0, len(onset_s)
    while i < n:
        j = i
        while j < n and onset_s[j] - onset_s[i] < 1e-6:
            j += 1
        group = range(i, j)
        t = float(onset_s[i])
        lo = min(moments[k] for k in group)
        replayed = [last_seen[heads[k]] for k in group if heads[k] in last_seen]
        if prev_max is not None and replayed and lo <= prev_max - MIN_JUMP_WHOLE:
            jumps.append(Jump(min(replayed), t))
        for k in group:
            last_seen[heads[k]] = t
        prev_max = max(moments[k] for k in group)
        i = j
    return jumps


def _cut(onset_s: np.ndarray, passages: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Events outside ``passages`` and their times with the passages cut out."""
    merged: list[list[float]] = []
    for a, b in sorted(passages):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    keep = np.ones(len(onset_s), dtype=bool)
    shift = np.zeros(len(onset_s))
    eps = 1e-6
    for a, b in merged:
        keep &= ~((onset_s >= a - eps) & (onset_s < b - eps))
        shift += np.where(onset_s >= b - eps, b - a, 0.0)
    idx = np.flatnonzero(keep)
    return idx, onset_s[idx] - shift[idx]


def unfoldings(onset_s: np.ndarray, heads: list[str],
               moments: list[Fraction]) -> list[Unfolding]:
    """The distinct unfoldings ``all``, ``none``, ``first`` of a rendered performance.

    Parameters
    ----------
    onset_s, heads, moments
        As for :func:`find_jumps`.
    """
    onset_s = np.asarray(onset_s, dtype=np.float64)
    jumps = find_jumps(onset_s, heads, moments)
    nested = [jb for jb in jumps
              if any(ja.at_s < jb.at_s < ja.at_s + ja.length_s for ja in jumps if ja is not jb)]
    choices = {"all": [], "none": [(j.start_s, j.at_s) for j in jumps],
               "first": [(j.start_s, j.at_s) for j in nested]}
    out: list[Unfolding] = []
    seen: set[tuple[int, ...]] = set()
    for name, passages in choices.items():
        idx, times = _cut(onset_s, passages)
        key = tuple(idx.tolist())
        if key in seen:
            continue
        seen.add(key)
        out.append(Unfolding(name, idx, times, tuple(passages)))
    return out
