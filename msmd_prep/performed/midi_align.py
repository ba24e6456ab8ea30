"""Note-level alignment of a MIDI performance to the score's notes.

1. MrMsDTW on chroma + DLNCO features of both note lists (synctoolbox) gives
   a coarse map from score time to performance time.
2. Per pitch, score notes are paired with performed notes of that pitch by a
   minimum-cost assignment of |predicted - played| onset (scipy's
   ``linear_sum_assignment``), pairs further apart than a window dropped.
3. The map is rebuilt from the pairs themselves (median played onset per
   score onset, kept monotonic) and step 2 is repeated with a narrower
   window (``REFINE_WINDOWS_S``), each time followed by step 4.  A score
   note such a pass leaves without a partner keeps its first-pass partner
   if no other score note took it and it is within 0.5 s of the map
   (:func:`keep_first_pairs`: hands played apart by more than the narrow
   window).
4. A score note still without a partner is paired, if it can be, with an
   unpaired performed note of its pitch played *between its paired
   neighbours*: after the performance time of the last paired score onset
   before it and before that of the first paired one after it (the map's
   anchors; :func:`pair_between_neighbours`).  Where the DTW map is off by
   more than the windows (a long pause before a final chord, a passage
   taken much slower), step 2 cannot reach the note that plays it, but the
   notes around it are paired, and a note of its pitch between them, that
   nothing else plays, is the one the performer played for it.

A score note without a partner is *left out* (the performer did not play
it), a performed note without one is *extra* (ornaments, wrong notes); both
are counted, never given an onset.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from .dtw import Warping, warp_score
from .features import Notes, note_features

# The first pass's window, around the DTW map: 1.0 s put more ASAP beats within
# 50 ms than 0.5 or 0.75 s (a map off by more than the window leaves whole
# chords out; the note of issue 15, session 4).
FIRST_WINDOW_S = 1.0
# Windows of the passes after the first, each on the map the previous one made
# (each followed by step 4).  A second pass, on a map that step 4's pairs
# correct, put more ASAP beats within 50 ms than one (the note of issue 15,
# session 4).
REFINE_WINDOWS_S = (0.25, 0.25)
# How far from a refinement pass's map a first-pass pair it did not reach may
# lie and still be kept (:func:`keep_first_pairs`): 0.5 s put more ASAP beats
# within 50 ms than keeping any such pair or none, on both halves of the
# corpus (the note of issue 15, session 5).
KEEP_WINDOW_S = 0.5

# MrMsDTW's anchor bound for two note lists: synctoolbox's tutorials' 10**6 put
# more ASAP beats within 50 ms than its default 10**4 (fewer anchors forced on the
# fine path; benchmarks/bench_performed.py, the note of issue 15).  Note lists
# have no audio features to compute, so the slower DTW costs little here.
THRESHOLD_REC = 10 ** 6


@dataclass(frozen=True)
class NoteMatch:
    """Which performed note plays which score note.

    Attributes
    ----------
    partner : np.ndarray [shape=(n_score,), dtype=int64]
        Index of the performed note playing score note ``i``, -1 if left out.
    n_extra : int
        Performed notes that play no score note.
    warping : Warping
        The coarse DTW map (its cost is the alignment's cost).
    n_between : int
        Score notes that step 4 (:func:`pair_between_neighbours`) paired in
        some pass and that are paired in the end.
    n_kept : int
        Score notes whose first-pass partner a refinement pass's window did
        not reach and no other note took, kept (:func:`keep_first_pairs`).
    """

    partner: np.ndarray
    n_extra: int
    warping: Warping
    n_between: int = 0
    n_kept: int = 0

    @property
    def n_left_out(self) -> int:
        return int(np.sum(self.partner < 0))


def pair_by_pitch(score: Notes, predicted_s: np.ndarray, performance: Notes,
                  window_s: float) -> np.ndarray:
    """Pair score notes with performed notes of the same pitch.

    Parameters
    ----------
    score : Notes
    predicted_s : np.ndarray [shape=(len(score),)]
        Where each score note is expected in the performance, seconds.
    performance : Notes
    window_s : float
        Largest |predicted - played| of a pair, seconds.

    Returns
    -------
    partner : np.ndarray [shape=(len(score),), dtype=int64]
        Index into ``performance`` or -1.
    """
    partner = np.full(len(score), -1, dtype=np.int64)
    for pitch in np.intersect1d(score.pitch, performance.pitch):
        si = np.flatnonzero(score.pitch == pitch)
        pj = np.flatnonzero(performance.pitch == pitch)
        cost = np.abs(predicted_s[si][:, None] - performance.onset_s[pj][None, :])
        # Far pairs get a cost above any sum of near ones, so they are chosen
        # only when nothing else is left, and then dropped.
        cost[cost > window_s] = 1e6
        rows, cols = linear_sum_assignment(cost)
        keep = cost[rows, cols] <= window_s
        partner[si[rows[keep]]] = pj[cols[keep]]
    return partner


def monotone_map(score_s: np.ndarray, performance_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Anchor points of a strictly increasing map through matched onset pairs.

    Pairs are grouped by score onset (median performed onset per group), and
    the longest strictly increasing run of groups is kept, so a stray pair
    cannot fold the map back.
    """
    order = np.argsort(score_s, kind="stable")
    s, p = score_s[order], performance_s[order]
    keys, start = np.unique(np.round(s, 4), return_index=True)
    groups = np.split(p, start[1:])
    anchors_s = keys
    anchors_p = np.array([np.median(g) for g in groups])
    keep = longest_increasing(anchors_p)
    return anchors_s[keep], anchors_p[keep]


def longest_increasing(x: np.ndarray) -> np.ndarray:
    """Indices of a longest strictly increasing subsequence of ``x`` (O(n log n))."""
    import bisect

    tails: list[float] = []
    tail_idx: list[int] = []
    prev = np.full(len(x), -1, dtype=np.int64)
    for i, v in enumerate(x):
        k = bisect.bisect_left(tails, v)
        if k == len(tails):
            tails.append(v)
            tail_idx.append(i)
        else:
            tails[k] = v
            tail_idx[k] = i
        prev[i] = tail_idx[k - 1] if k else -1
    out = []
    i = tail_idx[-1] if tail_idx else -1
    while i >= 0:
        out.append(i)
        i = prev[i]
    return np.array(out[::-1], dtype=np.int64)


def match_notes(score: Notes, performance: Notes, warping: Warping | None = None) -> NoteMatch:
    """Align a MIDI performance to the score note by note.

    Parameters
    ----------
    score : Notes
        The score's notes (one per played head onset), seconds in the score.
    performance : Notes
        The performed notes, seconds in the performance.
    warping : Warping, optional
        A precomputed DTW of the two (else computed here).
    """
    if warping is None:
        warping = warp_score(score, note_features(performance), threshold_rec=THRESHOLD_REC)
    first = pair_by_pitch(score, warping.to_performance(score.onset_s), performance,
                          FIRST_WINDOW_S)
    partner = first
    between = np.zeros(len(score), dtype=bool)
    kept = np.zeros(len(score), dtype=bool)
    for window_s in REFINE_WINDOWS_S:
        matched = partner >= 0
        if matched.sum() < 2:
            break
        s_anchor, p_anchor = monotone_map(score.onset_s[matched],
                                          performance.onset_s[partner[matched]])
        if len(s_anchor) < 2:
            break
        predicted = _extrapolated(score.onset_s, s_anchor, p_anchor)
        refined = pair_by_pitch(score, predicted, performance, window_s)
        partner = keep_first_pairs(first, refined, predicted, performance.onset_s)
        kept |= (partner >= 0) & (refined < 0)
        paired = partner >= 0
        partner = pair_between_neighbours(score, performance, partner)
        between |= (partner >= 0) & ~paired
    n_between = int(np.sum(between & (partner >= 0)))
    n_kept = int(np.sum(kept & (partner == first) & (partner >= 0)))
    n_extra = len(performance) - int(np.sum(partner >= 0))
    return NoteMatch(partner, n_extra, warping, n_between, n_kept)


def keep_first_pairs(first: np.ndarray, refined: np.ndarray, predicted_s: np.ndarray,
                     performed_s: np.ndarray, window_s: float = KEEP_WINDOW_S) -> np.ndarray:
    """``refined``, plus the first pass's pairs of the score notes it left without a partner,
    if no refined pair took their performed note and it lies within ``window_s`` of the map.

    A refinement pass's narrow window is there to choose between the notes
    of one pitch along a better map, not to drop a note the performer played
    somewhat further from that map: the map has one time per score onset,
    and where the hands are played apart (a bass entering 0.3 s after the
    melody note written with it) it follows one of them, so the other's
    pairs fall outside the window although nothing else plays their notes.
    A first pair further than ``window_s`` from the map stays dropped (such
    a pair is mostly a left-out note given a stray note of its pitch).

    Parameters
    ----------
    first, refined : np.ndarray [shape=(n_score,), dtype=int64]
        Partner per score note (-1: none) of the first pass and of a refinement pass.
    predicted_s : np.ndarray [shape=(n_score,)]
        The refinement's map at each score note, seconds.
    performed_s : np.ndarray [shape=(n_performed,)]
        Performed onsets, seconds.
    window_s : float
        Largest |played - map| of a kept pair, seconds.

    Returns
    -------
    partner : np.ndarray [shape=(n_score,), dtype=int64]
    """
    taken = np.zeros(len(performed_s), dtype=bool)
    taken[refined[refined >= 0]] = True
    j = np.maximum(first, 0)
    back = ((refined < 0) & (first >= 0) & ~taken[j]
            & (np.abs(performed_s[j] - predicted_s) <= window_s))
    return np.where(back, first, refined)


def pair_between_neighbours(score: Notes, performance: Notes, partner: np.ndarray) -> np.ndarray:
    """Pair left-out score notes with unpaired performed notes between their paired neighbours.

    The paired notes give a strictly increasing map (:func:`monotone_map`).
    A left-out score note at score time ``s`` may take an unpaired performed
    note of its pitch whose onset lies strictly between the map's
    performance times of the last anchor before ``s`` and the first after
    ``s`` (either side open at the ends).  Per pitch, a minimum-cost
    assignment by |map(s) - played| among those chooses when several could.

    Returns
    -------
    partner : np.ndarray [shape=(len(score),), dtype=int64]
        ``partner`` with the new pairs; pairs already made are kept.
    """
    partner = partner.copy()
    paired = partner >= 0
    if paired.sum() < 2:
        return partner
    s_a, p_a = monotone_map(score.onset_s[paired], performance.onset_s[partner[paired]])
    if len(s_a) < 2:
        return partner
    predicted = _extrapolated(score.onset_s, s_a, p_a)
    key = np.round(score.onset_s, 4)  # as monotone_map groups score onsets
    before = np.searchsorted(s_a, key, side="left") - 1
    after = np.searchsorted(s_a, key, side="right")
    lo = np.where(before >= 0, p_a[np.maximum(before, 0)], -np.inf)
    hi = np.where(after < len(s_a), p_a[np.minimum(after, len(s_a) - 1)], np.inf)
    free = np.ones(len(performance), dtype=bool)
    free[partner[paired]] = False
    for pitch in np.intersect1d(score.pitch[~paired], performance.pitch[free]):
        si = np.flatnonzero(~paired & (score.pitch == pitch))
        pj = np.flatnonzero(free & (performance.pitch == pitch))
        played = performance.onset_s[pj][None, :]
        inside = (played > lo[si][:, None]) & (played < hi[si][:, None])
        cost = np.where(inside, np.abs(predicted[si][:, None] - played), 1e6)
        rows, cols = linear_sum_assignment(cost)
        keep = inside[rows, cols]
        partner[si[rows[keep]]] = pj[cols[keep]]
    return partner


def _extrapolated(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Linear interpolation through (xp, fp), continued at the ends with the end slopes."""
    y = np.interp(x, xp, fp)
    lo, hi = x < xp[0], x > xp[-1]
    y[lo] = fp[0] + (x[lo] - xp[0]) * (fp[1] - fp[0]) / (xp[1] - xp[0])
    y[hi] = fp[-1] + (x[hi] - xp[-1]) * (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    return y
