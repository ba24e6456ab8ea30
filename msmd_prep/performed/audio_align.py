"""Alignment of an audio recording to the score's notes.

1. Chroma + DLNCO features of the recording (:func:`features.audio_features`)
   and of the score, synthesized (:mod:`.reference`; then log pitch energies
   for chroma, with the recording's silence row, :func:`dtw.with_silence_row`,
   and register onsets, DLNRO, beside DLNCO) or its own note list,
   MrMsDTW between them (synctoolbox): every score onset gets a performance
   time off the path.  A synthesized reference is first warped where its
   tempo is far from the recording's (:mod:`.tempo`).
2. Refinement by the recording's onset peaks: each score onset (a chord)
   moves to an onset peak near the path's time that its pitches support
   (nearer where chords are dense, :func:`search_widths`), a peak weighed
   by how much the chord's pitch energies rise there (:func:`rise_weights`),
   the chords' peaks chosen together so that their times keep score order
   and no two chords share one (:func:`chord_times`); chords that found
   none are searched between their refined neighbours where their pitch
   energies rise (:func:`rise_search`), and those still without one follow
   their neighbours.  Last, a chord moves to the median of its pitches' own
   onsets, where each pitch's energy rises (:func:`pitch_onsets`): a spread
   chord sounds where most of its notes do.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dtw import SCORE_PAD_S, Warping, warp, warp_score
from .features import FEATURE_RATE_FPS, MIDI_MIN, Features, Notes, audio_features
from .midi_align import longest_increasing
from .tempo import bounded_time_map, coarse_path, warp_reference

SEARCH_WINDOW_S = 0.15
PRIOR_WIDTH_S = 0.06
# Where chords are sparse, a chord's window reaches this share of the way to the nearer of
# its neighbours' path times (never beyond 1 s), and its prior widens to this share of its
# window: in slow passages and ritardandi the path lags by 0.3-0.9 s, beyond 150 ms, while
# a window short of half the gap still cannot reach a neighbour's onset when the path is
# right (dev seeds 7 and 11; the note of issue 15, session 6).
SPARSE_WINDOW_SHARE = 0.45
SPARSE_PRIOR_SHARE = 0.3
MAX_WINDOW_S = 1.0
CHORD_SPREAD_S = 0.03
# A candidate's score is multiplied by (RISE_FLOOR + rise) ** RISE_POWER, rise being the
# mean over the chord's pitches of the increase of their log energy (the recording's
# 186 ms, 50 fps pitch bands) from RISE_BEFORE_S before the candidate to RISE_AFTER_S after
# it, where it increases.  The onset peaks (46 ms frames) leak into neighbouring pitch rows
# below about C6 (a note's own row held the highest peak of its row and the semitone rows
# beside it for only 44-75 % of the notes of pitches 36-83, dev seed 7), so in a fast run a
# chord's rows have peaks at its neighbours' onsets too; the long frames tell the pitches
# apart.  ASAP beats median / within 50 / 100 ms, dev seeds 7 and 11, audio: 5.7 ms / 96.99 /
# 98.26 -> 5.4 / 97.10 / 98.29 and 6.8 / 93.25 / 97.01 -> 6.5 / 93.50 / 97.01; noisy: 5.8 /
# 96.62 / 98.18 -> 5.5 / 97.03 / 98.26 and 7.1 / 92.89 / 96.80 -> 6.9 / 93.02 / 96.82.  Power
# 0.5 gained more within 50 ms but lost 4 beats within 100 ms on noisy seed 11; the weight
# exp(rise), or reading 100 ms before instead of 60, did worse (the note of issue 15, session 7).
RISE_BEFORE_S = 0.06
RISE_AFTER_S = 0.04
RISE_FLOOR = 0.3
RISE_POWER = 0.25
# A chord the onset peaks left (none near its path time, or out of score order) is searched
# again between its refined neighbours' onsets, wherever its pitches' log energy rises by at
# least MIN_RISE (a local maximum of the mean rise, on a grid of RISE_STEP_S).  In slow, free
# playing the path is 0.4-1.5 s off where a chord follows a held chord the pianist stretches,
# or a pause, beyond any window around it; soft high chords and low octaves there often have
# no onset peak, but their 186 ms pitch bands do rise.  ASAP beats within 100 ms (dev seeds
# 7 and 11, audio): 98.55 -> 98.63 % and 97.20 -> 97.45 %; noisy 98.44 -> 98.48 %, 97.03 ->
# 97.28 %.  A second search by the onset peaks instead, ungated, was worse (98.48 / 97.07 %;
# the notes of issue 15, sessions 7 and 8).  A least rise of 0.05 instead of 0.2 leaves fewer
# chords to interpolation: low octaves stepping down under the sound of the one before rise
# by less (Scherzo 31 ZhangW04M: two of them 0.5 and 1.2 s off when interpolated, within
# 65 ms when searched).  ASAP beats beyond 100 ms, the benchmark's parts 0 + 1 of 12: audio
# 789 -> 780, noisy 851 -> 839; dev seeds 7 and 11, audio: 40 -> 40 and 122 -> 119 (0.1: 40
# and 120; 0: 41 and 120; the note of issue 15, session 12).
MIN_RISE = 0.05
RISE_STEP_S = 0.01
# A searched chord's span keeps clear of its refined neighbours' attacks by RISE_BEFORE_S after
# the earlier one and RISE_AFTER_S before the later one (at most RISE_EDGE_SHARE of the span
# each): a rise read across a neighbour's attack is that neighbour's, and where the two
# chords share pitches (a soft chord repeated after a 2 s rest) it outweighed the chord's
# own weaker rise.  ASAP beats beyond 100 ms, the benchmark's parts 0 + 1 of 12: 819 -> 794
# (97.76 -> 97.83 % within 100 ms; Scherzo 31 ZhangW04M 76 -> 66); dev seeds 7 and 11,
# audio: 40 -> 40 and 121 -> 122 (the note of issue 15, session 10).
RISE_EDGE_SHARE = 0.25
# A searched chord's prior is at most RISE_PRIOR_MAX_S wide, however long its span: across a
# span of several seconds a prior of half the span is nearly flat, and a low octave whose own
# attack is weak moved seconds early to an earlier chord's stronger rise in the same pitch
# bands (the path was right there).  ASAP beats beyond 100 ms, the benchmark's parts 0 + 1 of
# 12: audio 794 -> 789, noisy 854 -> 851; dev seeds 7 and 11: audio 40 -> 40 and 122 -> 122,
# noisy 44 -> 44 and 129 -> 131.  A cap of 0.3 s gave 792 (the note of issue 15, session 12).
RISE_PRIOR_MAX_S = 0.5
# A run of successive chords with the same pitches, one of which the onset peaks refined where
# its pitches rise by less than SHIFTED_RUN_RISE, is searched again by its rise as a whole:
# the path and the peaks had put the run one chord early, its first chord on a peak where
# nothing was played and each of the others on its predecessor's onset (Mozart K. 475
# Huangci05M: five dyads after a pause, each about 0.3 s early; refined, the first has a rise
# of 0 and the others 0.7-2.0).  Runs closer than one rise's span (a trill's repeated notes,
# Bach BWV 860 Ko04M) are left alone.  ASAP beats beyond 100 ms, the benchmark's parts 0 + 1
# of 12: audio 780 -> 775, noisy 839 -> 836; dev seeds 7 and 11, audio: 40 -> 40 and 119 ->
# 120.  0.3 (without the span rule) gave 783 (the note of issue 15, session 12).
SHIFTED_RUN_RISE = 0.1
# Where a pianist spreads a chord (the melody before the rest, an arpeggio), the onset peaks
# put the whole chord on its first or loudest note, and the beats around it follow.  Each
# pitch of a chord of two or more pitches is therefore placed at its own onset: the local
# maximum of its pitch_rise, reaching PITCH_MIN_RISE, within PITCH_WINDOW_S of the chord's
# onset and between its neighbours', nearest by a Gaussian of PITCH_PRIOR_S; the chord's
# onset is the median over its pitches (a pitch with none keeps the chord's).  Soft inner
# voices often have no onset peak at all, but their pitch bands rise (Scherzo 31 LuoJ12M,
# chord 1122: the melody 0.15 s before three softer notes, none of which had a peak).  ASAP
# beats beyond 100 / 50 ms, the benchmark's parts 0 + 1 of 12, audio: 775 -> 716 and 1680 ->
# 1404 (windows of 0.15 / 0.2 / 0.3 s: 748 / 730 / 717; the onset peaks first, the rise only
# where a pitch has none: 747; the note of issue 15, session 13).
PITCH_WINDOW_S = 0.25
PITCH_PRIOR_S = 0.1
PITCH_MIN_RISE = 0.1
# A chord of one pitch moves to its own onset only when that is at least a rise's span from
# the onset peak it took: nearer, the peak is more exact (46 ms frames against 186 ms); this
# far, the peak was a neighbour's onset leaking into its rows.  Beats beyond 100 / 50 ms as
# above: 716 -> 708 and 1404 -> 1396 (always: 709 and 1428; 50 ms: 708 and 1423; never: 716).
LONE_PITCH_SHIFT_S = RISE_BEFORE_S + RISE_AFTER_S
# A pitch's onset by its rise then takes the time of its own onset peak within half an onset
# frame (1024 samples at 22.05 kHz, 23 ms) of it, the more exact of the two.  Beats as above,
# median / beyond 50 / 100 ms: audio 8.2 / 1379 / 707 -> 4.7 / 1379 / 711 (15 ms: 6.5 / 1377 /
# 711; 25 ms: 4.4 / 1380 / 711; 30 ms: 4.3 / 1391 / 713), noisy 8.1 / 1500 / 772 -> 5.1 /
# 1522 / 771.
PITCH_PEAK_SNAP_S = 0.023
# Least time between the onsets two successive chords are refined to (seconds): one onset
# shows in the peak rows of several pitches, and serves one chord only.  10 ms put more ASAP
# beats within 50 and 100 ms than 20 ms (dev seeds 7 and 11; the note of issue 15, session 5).
MIN_CHORD_GAP_S = 0.01
# Weight of chroma against DLNCO onsets in the finest MrMsDTW level: 0.3 put
# more ASAP beats of recordings within 100 ms than synctoolbox's 0.5 (and 0.7)
# at no cost in time (benchmarks/bench_performed.py, the note of issue 15).
DTW_ALPHA = 0.3
# MrMsDTW's anchor bound: synctoolbox's tutorials' 10**6 instead of its default
# 10**4 put 1.0-1.2 points more ASAP beats of recordings within 50 and 100 ms
# (dev seed 7; held out: seeds 0 and 3) for 5-7x the DTW's time, which the speed
# goal affords (the note of issue 15, session 3).
DTW_THRESHOLD_REC = 10 ** 6
# Against a synthesized reference 3 * 10**5 gave the same beat errors as 10**6 on ASAP
# (dev seeds 7 and 11, both conditions; held out: seed 3 the same, seed 0 one beat
# fewer within 100 ms) in a third less of the DTW's time; 10**5 lost 3-4 beats within
# 100 ms on seed 11 (the note of issue 15, session 6).
REFERENCE_THRESHOLD_REC = 3 * 10 ** 5
# Against a synthesized reference (both sides audio features), synctoolbox's
# default weight 0.5 did as well as 0.3 and better than 0.7 (dev seed 7).
REFERENCE_ALPHA = 0.5
# Against a synthesized reference, horizontal and vertical steps weigh 1.3 (synctoolbox's
# 1.5 for chroma + DLNCO keeps the path nearer the diagonal than log pitch needs; 1.7 and
# 1.0 were worse; dev seeds 7 and 11, judged on seeds 0 and 3: the note of issue 15, session 4).
REFERENCE_STEP_WEIGHTS = np.array([1.3, 1.3, 2.0])


@dataclass(frozen=True)
class AudioAlignment:
    """Where each score note sounds in a recording.

    Attributes
    ----------
    onset_s : np.ndarray [shape=(n_score,)]
        Aligned onset of each score note, seconds in the recording.
    refined : np.ndarray [shape=(n_score,), dtype=bool]
        Whether the onset of the note's chord was refined by onset peaks.
    warping : Warping
    tuning_cents : int
        The recording's tuning offset the features were computed at.
    """

    onset_s: np.ndarray
    refined: np.ndarray
    warping: Warping
    tuning_cents: int


@dataclass(frozen=True)
class PeakTable:
    """A recording's onset peaks per pitch, each with its octave above, for lookups.

    Attributes
    ----------
    times_s, heights : np.ndarray [shape=(n,)]
        All pitches' peaks, pitch by pitch, each pitch's sorted by time.
    start, stop : np.ndarray [shape=(128,), dtype=int64]
        Pitch ``p``'s peaks are ``times_s[start[p]:stop[p]]``.
    """

    times_s: np.ndarray
    heights: np.ndarray
    start: np.ndarray
    stop: np.ndarray

    def search(self, pitch: int, t_s: np.ndarray, side: str = "left") -> np.ndarray:
        """Indices into ``times_s`` where ``t_s`` would go among ``pitch``'s peaks."""
        a, b = self.start[pitch], self.stop[pitch]
        return a + np.searchsorted(self.times_s[a:b], t_s, side=side)


def peak_table(peaks: dict, octave: bool = True) -> PeakTable:
    """The :class:`PeakTable` of onset peaks ``{pitch: [[ms...], [height...]]}``.

    A pitch's entries are its own peaks and, with ``octave``, those of the
    octave above (a piano note's second harmonic), so that a chord pitch is
    supported by either.
    """
    times, heights, start, stop = [], [], np.zeros(128, np.int64), np.zeros(128, np.int64)
    n = 0
    for pitch in range(128):
        rows = [peaks[p] for p in ((pitch, pitch + 12) if octave else (pitch,))
                if p in peaks and peaks[p].shape[1]]
        start[pitch] = n
        if rows:
            both = np.concatenate(rows, axis=1)
            order = np.argsort(both[0])
            times.append(both[0, order] / 1000.0)
            heights.append(both[1, order])
            n += len(order)
        stop[pitch] = n
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0)
    return PeakTable(cat(times), cat(heights), start, stop)


def _ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges ``[lo[k], hi[k])``: each member index and the ``k`` it belongs to."""
    count = np.maximum(hi - lo, 0)
    owner = np.repeat(np.arange(len(lo)), count)
    return lo[owner] + np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count), owner


def _range_max(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``values[lo[k]:hi[k]].max()`` for every ``k``, 0 for empty ranges."""
    out = np.zeros(len(lo))
    full = hi > lo
    if full.any():
        padded = np.append(values, 0.0)  # reduceat needs an index past every range's end
        bounds = np.stack([lo[full], hi[full]], axis=1).ravel()
        out[full] = np.maximum.reduceat(padded, bounds)[::2]
    return out


def _grid(lo_s: np.ndarray, hi_s: np.ndarray,
          step_s: float) -> tuple[np.ndarray, np.ndarray]:
    """For spans ``[lo_s[k], hi_s[k])``: every point ``lo_s[k] + j * step_s`` in one
    (seconds), and its ``k``."""
    count = np.maximum(np.ceil((hi_s - lo_s) / step_s).astype(np.int64), 0)
    idx, owner = _ranges(np.zeros(len(lo_s), np.int64), count)
    return lo_s[owner] + step_s * idx, owner


def _grid_maxima(values: np.ndarray, owner: np.ndarray, least: float) -> np.ndarray:
    """Where ``values`` (on a :func:`_grid`) has a local maximum of at least ``least``: at
    least its predecessor and above its successor, both in the same span."""
    peak = np.zeros(len(values), dtype=bool)
    peak[1:-1] = ((owner[:-2] == owner[1:-1]) & (owner[2:] == owner[1:-1])
                  & (values[1:-1] >= values[:-2]) & (values[1:-1] > values[2:])
                  & (values[1:-1] >= least))
    return peak


def chord_pitches(chord: np.ndarray, pitch: np.ndarray,
                  n_chords: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each chord's distinct pitches, chord by chord.

    Returns
    -------
    pairs : np.ndarray [shape=(n_pairs, 2), dtype=int64]
        (chord, pitch) rows, sorted, pitches clipped to 0..127.
    first, count : np.ndarray [shape=(n_chords,), dtype=int64]
        Chord ``c``'s rows are ``pairs[first[c]:first[c] + count[c]]``.
    """
    pairs = np.unique(np.stack([chord, np.clip(pitch, 0, 127)], axis=1), axis=0)
    count = np.bincount(pairs[:, 0], minlength=n_chords)
    return pairs, np.cumsum(count) - count, count


def search_widths(t0_s: np.ndarray, window_s: float = SEARCH_WINDOW_S,
                  prior_s: float = PRIOR_WIDTH_S) -> tuple[np.ndarray, np.ndarray]:
    """Each chord's search window and prior width (seconds), from its path time's neighbours.

    ``window_s`` and ``prior_s`` at least; where the nearer neighbouring chord is
    further than ``window_s / SPARSE_WINDOW_SHARE`` away on the path, the window
    is ``SPARSE_WINDOW_SHARE`` of that distance (at most ``MAX_WINDOW_S``) and the
    prior ``SPARSE_PRIOR_SHARE`` of the window, when that is wider.

    Parameters
    ----------
    t0_s : np.ndarray [shape=(n_chords,)]
        Each chord's time on the warping path, seconds, in score order.
    """
    gap = np.minimum(np.diff(t0_s, prepend=-np.inf), np.diff(t0_s, append=np.inf))
    window = np.clip(SPARSE_WINDOW_SHARE * gap, window_s, max(MAX_WINDOW_S, window_s))
    return window, np.maximum(prior_s, SPARSE_PRIOR_SHARE * window)


def chord_candidates(chord: np.ndarray, pitch: np.ndarray, t0_s: np.ndarray, table: PeakTable, *,
                     window_s: float | np.ndarray = SEARCH_WINDOW_S,
                     prior_s: float | np.ndarray = PRIOR_WIDTH_S,
                     spread_s: float = CHORD_SPREAD_S
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every chord's candidate onsets near its path time in a recording's onset peaks.

    For a chord, every peak of a chord pitch (or its octave) within
    ``window_s`` of its path time ``t0`` is a candidate; a candidate's
    score is the sum over the chord's pitches of their strongest peak
    within ``spread_s`` of it (its support), weighted by a Gaussian of
    width ``prior_s`` around ``t0``.  All chords at once, one pass per pitch.

    Parameters
    ----------
    chord, pitch : np.ndarray [shape=(n,), dtype=int64]
        The chord index (0 .. n_chords - 1) and MIDI pitch of every score note.
    t0_s : np.ndarray [shape=(n_chords,)]
        Each chord's time on the warping path, seconds.
    table : PeakTable
    window_s, prior_s : float or np.ndarray [shape=(n_chords,)]
        One for all chords, or each chord's (:func:`search_widths`).

    Returns
    -------
    cand_chord, cand_s, cand_score : np.ndarray [shape=(n_candidates,)]
        Sorted by chord, then time; no (chord, time) twice.
    """
    window = np.broadcast_to(np.asarray(window_s, dtype=np.float64), t0_s.shape)
    prior = np.broadcast_to(np.asarray(prior_s, dtype=np.float64), t0_s.shape)
    pairs, first, n_pitches = chord_pitches(chord, pitch, len(t0_s))
    pair_g, pair_p = pairs[:, 0], pairs[:, 1]
    lo, hi = np.zeros(len(pairs), np.int64), np.zeros(len(pairs), np.int64)
    for p in np.unique(pair_p):
        r = pair_p == p
        t0, w = t0_s[pair_g[r]], window[pair_g[r]]
        lo[r] = table.search(p, t0 - w)
        hi[r] = table.search(p, t0 + w, side="right")
    cand, cand_pair = _ranges(lo, hi)
    cand_g, cand_t = pair_g[cand_pair], table.times_s[cand]
    # Every candidate against every pitch of its chord, in pitch order.
    sup_pair, sup_c = _ranges(first[cand_g], first[cand_g] + n_pitches[cand_g])
    sup_p = pair_p[sup_pair]
    best = np.zeros(len(sup_pair))
    for p in np.unique(sup_p):
        r = sup_p == p
        tc = cand_t[sup_c[r]]
        best[r] = _range_max(table.heights, table.search(p, tc - spread_s),
                             table.search(p, tc + spread_s))
    support = np.zeros(len(cand))
    np.add.at(support, sup_c, best)
    score = support * np.exp(-0.5 * ((cand_t - t0_s[cand_g]) / prior[cand_g]) ** 2)
    order = np.lexsort((cand_t, cand_g))
    g, t, score = cand_g[order], cand_t[order], score[order]
    # A peak found through two pitch rows (a pitch and its octave) is one candidate.
    new = np.ones(len(g), dtype=bool)
    new[1:] = (g[1:] != g[:-1]) | (t[1:] != t[:-1])
    return g[new], t[new], score[new]


def pitch_rise(log_pitch: np.ndarray, pitch: np.ndarray, t_s: np.ndarray,
               before_s: float = RISE_BEFORE_S, after_s: float = RISE_AFTER_S) -> np.ndarray:
    """How much each pitch's log energy rises around each time: ``L(t + after_s) - L(t - before_s)``.

    Parameters
    ----------
    log_pitch : np.ndarray [shape=(88, n_frames)]
        Log pitch energies of MIDI pitches 21..108 (:func:`features.log_pitch`),
        frame ``i`` centred at ``i / FEATURE_RATE_FPS`` seconds; read with linear
        interpolation between frames (pitches outside 21..108: the nearest row).
    pitch, t_s : np.ndarray [shape=(n,)]
        MIDI pitch and time (seconds) of each query.
    """
    last = log_pitch.shape[1] - 1
    row = np.clip(pitch - MIDI_MIN, 0, log_pitch.shape[0] - 1)

    def at(t: np.ndarray) -> np.ndarray:
        f = np.clip(t * FEATURE_RATE_FPS, 0, max(last - 1e-3, 0))
        i = f.astype(np.int64)
        w = f - i
        return log_pitch[row, i] * (1 - w) + log_pitch[row, np.minimum(i + 1, last)] * w

    return at(t_s + after_s) - at(t_s - before_s)


def rise_weights(chord: np.ndarray, pitch: np.ndarray, cand_chord: np.ndarray,
                 cand_s: np.ndarray, log_pitch: np.ndarray, floor: float = RISE_FLOOR,
                 power: float = RISE_POWER) -> np.ndarray:
    """Each candidate's weight ``(floor + rise) ** power``, rise being the mean over its
    chord's pitches of their :func:`pitch_rise` at the candidate where positive (else 0).

    Parameters
    ----------
    chord, pitch : np.ndarray [shape=(n,), dtype=int64]
        The chord index and MIDI pitch of every score note.
    cand_chord, cand_s : np.ndarray [shape=(n_candidates,)]
        As :func:`chord_candidates` returns them.
    log_pitch : np.ndarray [shape=(88, n_frames)]
        The recording's log pitch energies (:attr:`features.Features.log_pitch`).
    """
    return (floor + chord_rise(chord, pitch, cand_chord, cand_s, log_pitch)) ** power


def chord_rise(chord: np.ndarray, pitch: np.ndarray, cand_chord: np.ndarray,
               cand_s: np.ndarray, log_pitch: np.ndarray) -> np.ndarray:
    """At each candidate, the mean over its chord's pitches of their :func:`pitch_rise`
    where positive (else 0), in the log energy's units (natural log).

    Parameters are those of :func:`rise_weights`.
    """
    pairs, first, n_pitches = chord_pitches(chord, pitch, int(chord.max()) + 1 if len(chord) else 0)
    pair, cand = _ranges(first[cand_chord], first[cand_chord] + n_pitches[cand_chord])
    rise = np.maximum(pitch_rise(log_pitch, pairs[pair, 1], cand_s[cand]), 0.0)
    total = np.zeros(len(cand_s))
    np.add.at(total, cand, rise)
    return total / n_pitches[cand_chord]


def increasing_choice(cand_chord: np.ndarray, cand_s: np.ndarray, cand_score: np.ndarray,
                      n_chords: int, min_gap_s: float = MIN_CHORD_GAP_S) -> np.ndarray:
    """One candidate or none per chord, in score order, with the highest total score.

    Of two successive chords that both take a candidate, the later one's is
    more than ``min_gap_s`` later.  A chord may take none (score 0), which
    constrains neither neighbour.  Choosing chord by chord instead lets a
    chord take its neighbour's onset (in a fast run a low pitch's peak
    shows in its semitone neighbours' rows too, and the nearer one wins), and
    the neighbour then loses its own.  Viterbi over the chords with candidates.

    Parameters
    ----------
    cand_chord, cand_s, cand_score : np.ndarray [shape=(n_candidates,)]
        As :func:`chord_candidates` returns them (sorted by chord).
    n_chords : int

    Returns
    -------
    t_s : np.ndarray [shape=(n_chords,)]
        The chosen candidate's time, NaN where none.
    """
    out = np.full(n_chords, np.nan)
    if not len(cand_chord):
        return out
    chords, first = np.unique(cand_chord, return_index=True)
    # Each chord's candidates and then "none": for the chord after it, "none" is at -inf
    # (it constrains nothing); for the chord before it, at +inf.
    ends = np.append(first[1:], len(cand_chord))
    as_prev = np.insert(cand_s, ends, -np.inf)
    as_next = np.insert(cand_s, ends, np.inf)
    gains = np.insert(cand_score, ends, 0.0)
    start = first + np.arange(len(first))
    stop = ends + np.arange(len(first)) + 1
    value, back = gains[start[0]:stop[0]], []
    for c in range(1, len(chords)):
        prev = as_prev[start[c - 1]:stop[c - 1]]
        allowed = as_next[start[c]:stop[c]][None, :] > prev[:, None] + min_gap_s
        total = np.where(allowed, value[:, None], -np.inf)
        back.append(total.argmax(axis=0))
        value = total.max(axis=0) + gains[start[c]:stop[c]]
    j = int(np.argmax(value))
    for c in range(len(chords) - 1, -1, -1):
        if j < stop[c] - start[c] - 1:
            out[chords[c]] = as_prev[start[c] + j]
        if c:
            j = int(back[c - 1][j])
    return out


def chord_times(chord: np.ndarray, pitch: np.ndarray, t0_s: np.ndarray, table: PeakTable,
                log_pitch: np.ndarray | None = None, **options) -> np.ndarray:
    """The onset of every chord in a recording's onset peaks (NaN: none), chosen jointly.

    Each chord's window and prior come from :func:`search_widths`, then
    :func:`chord_candidates` (``options`` go to it), weighted by
    :func:`rise_weights` when the recording's ``log_pitch`` is given, then
    :func:`increasing_choice`.
    """
    window_s, prior_s = search_widths(t0_s)
    g, t, score = chord_candidates(chord, pitch, t0_s, table, window_s=window_s,
                                   prior_s=prior_s, **options)
    if log_pitch is not None and len(g):
        score = score * rise_weights(chord, pitch, g, t, log_pitch)
    return increasing_choice(g, t, score, len(t0_s))


def rise_candidates(chord: np.ndarray, pitch: np.ndarray, chords: np.ndarray,
                    lo_s: np.ndarray, hi_s: np.ndarray, log_pitch: np.ndarray,
                    min_rise: float = MIN_RISE, step_s: float = RISE_STEP_S
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate onsets of some chords where their pitch energies rise, not where peaks are.

    On a grid of ``step_s`` from ``lo_s`` to ``hi_s`` (each chord's own span,
    seconds), every local maximum of the chord's :func:`chord_rise` that reaches
    ``min_rise`` is a candidate.

    Parameters
    ----------
    chord, pitch : np.ndarray [shape=(n,), dtype=int64]
        The chord index and MIDI pitch of every score note.
    chords, lo_s, hi_s : np.ndarray [shape=(n_searched,)]
        The chords searched (increasing) and their spans, seconds in the recording.
    log_pitch : np.ndarray [shape=(88, n_frames)]
        The recording's log pitch energies (:attr:`features.Features.log_pitch`).

    Returns
    -------
    cand_chord, cand_s, cand_rise : np.ndarray [shape=(n_candidates,)]
        Sorted by chord, then time.
    """
    t, owner = _grid(lo_s, hi_s, step_s)
    g = chords[owner]
    r = chord_rise(chord, pitch, g, t, log_pitch) if len(g) else np.zeros(0)
    peak = _grid_maxima(r, owner, min_rise)
    return g[peak], t[peak], r[peak]


def rise_search(chord: np.ndarray, pitch: np.ndarray, t_path_s: np.ndarray,
                t_found_s: np.ndarray, refined: np.ndarray,
                log_pitch: np.ndarray) -> np.ndarray:
    """Onsets, by their pitch energies' rise, of the chords the onset peaks left.

    Each chord that is not ``refined`` but lies between two that are is searched
    over the whole span between their onsets (less ``RISE_BEFORE_S`` after the
    earlier and ``RISE_AFTER_S`` before the later, at most ``RISE_EDGE_SHARE``
    of the span and at least ``MIN_CHORD_GAP_S`` each),
    not near its path time: its candidates are the :func:`rise_candidates`,
    scored by their rise and a Gaussian around the path's time (clipped into the
    span) as wide as half the span (at least ``PRIOR_WIDTH_S``, at most
    ``RISE_PRIOR_MAX_S``), then chosen jointly in score order
    (:func:`increasing_choice`).

    Parameters
    ----------
    chord, pitch : np.ndarray [shape=(n,), dtype=int64]
        The chord index and MIDI pitch of every score note.
    t_path_s, t_found_s : np.ndarray [shape=(n_chords,)]
        Each chord's path time and its refined onset (seconds; NaN where none).
    refined : np.ndarray [shape=(n_chords,), dtype=bool]
        The chords whose ``t_found_s`` are kept (increasing in score order).
    log_pitch : np.ndarray [shape=(88, n_frames)]
        The recording's log pitch energies (:attr:`features.Features.log_pitch`).

    Returns
    -------
    t_s : np.ndarray [shape=(n_chords,)]
        The onsets found for the searched chords, NaN elsewhere.
    """
    keep = np.flatnonzero(refined)
    out = np.full(len(t_path_s), np.nan)
    if len(keep) < 2:
        return out
    nxt = np.clip(np.searchsorted(keep, np.arange(len(t_path_s))), 1, len(keep) - 1)
    before_s, after_s = t_found_s[keep[nxt - 1]], t_found_s[keep[nxt]]
    edge = RISE_EDGE_SHARE * (after_s - before_s)
    lo = before_s + np.maximum(MIN_CHORD_GAP_S, np.minimum(RISE_BEFORE_S, edge))
    hi = after_s - np.maximum(MIN_CHORD_GAP_S, np.minimum(RISE_AFTER_S, edge))
    inside = ~refined & (np.arange(len(t_path_s)) > keep[0]) & (np.arange(len(t_path_s)) < keep[-1])
    chords = np.flatnonzero(inside & (hi > lo))
    g, t, rise = rise_candidates(chord, pitch, chords, lo[chords], hi[chords], log_pitch)
    if not len(g):
        return out
    centre = np.clip(t_path_s[g], lo[g], hi[g])
    width = np.clip((hi[g] - lo[g]) / 2, PRIOR_WIDTH_S, max(RISE_PRIOR_MAX_S, PRIOR_WIDTH_S))
    score = rise * np.exp(-0.5 * ((t - centre) / width) ** 2)
    found = increasing_choice(g, t, score, len(t_path_s))
    out[chords] = found[chords]
    return out


def same_pitches_runs(chord: np.ndarray, pitch: np.ndarray, n_chords: int) -> np.ndarray:
    """Each chord's run: successive chords with the same set of pitches share one run index.

    Parameters
    ----------
    chord, pitch : np.ndarray [shape=(n,), dtype=int64]
        The chord index (0 .. n_chords - 1, none empty) and MIDI pitch of every score note.

    Returns
    -------
    run : np.ndarray [shape=(n_chords,), dtype=int64]
        Increasing from 0 in score order.
    """
    pairs, start, count = chord_pitches(chord, pitch, n_chords)
    same = np.zeros(n_chords, dtype=bool)
    # Chord c + 1's pitches follow chord c's in ``pairs``, count[c] rows later.
    c = np.flatnonzero(count[:-1] == count[1:])
    idx, owner = _ranges(start[c], start[c] + count[c])
    match = np.ones(len(c), dtype=bool)
    np.logical_and.at(match, owner, pairs[idx, 1] == pairs[idx + count[c][owner], 1])
    same[c + 1] = match
    return np.cumsum(~same) - 1


def shifted_runs(chord: np.ndarray, pitch: np.ndarray, t_path_s: np.ndarray,
                 t_found_s: np.ndarray, refined: np.ndarray, log_pitch: np.ndarray,
                 min_rise: float = SHIFTED_RUN_RISE) -> np.ndarray:
    """The chords of every run of at least two with the same pitches
    (:func:`same_pitches_runs`) in which a ``refined`` chord's onset has a
    :func:`chord_rise` below ``min_rise``, and whose chords are at least
    ``RISE_BEFORE_S + RISE_AFTER_S`` apart, on the path and as refined (closer,
    as in a trill, one rise spans two onsets).

    Parameters are those of :func:`rise_search`, and ``min_rise`` in the log
    energy's units (natural log).

    Returns
    -------
    mask : np.ndarray [shape=(n_chords,), dtype=bool]
        The chords to search again.
    """
    run = same_pitches_runs(chord, pitch, len(t_found_s))
    done = np.flatnonzero(refined)
    weak = np.zeros(len(t_found_s), dtype=bool)
    weak[done] = chord_rise(chord, pitch, done, t_found_s[done], log_pitch) < min_rise
    n_runs = int(run[-1]) + 1 if len(run) else 0
    long = np.bincount(run, minlength=n_runs) >= 2
    gap = np.full(n_runs, np.inf)
    inner = np.flatnonzero(run[1:] == run[:-1])
    np.minimum.at(gap, run[inner], np.fmin(np.diff(t_path_s), np.diff(t_found_s))[inner])
    apart = gap >= RISE_BEFORE_S + RISE_AFTER_S
    return (long & apart & (np.bincount(run, weights=weak, minlength=n_runs) > 0))[run]


def pitch_onsets(chord: np.ndarray, pitch: np.ndarray, t_s: np.ndarray, log_pitch: np.ndarray,
                 window_s: float = PITCH_WINDOW_S, prior_s: float = PITCH_PRIOR_S,
                 min_rise: float = PITCH_MIN_RISE, step_s: float = RISE_STEP_S
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Each chord pitch's own onset near its chord's, by where that pitch's energy rises.

    On a grid of ``step_s`` within ``window_s`` of the chord's onset, and more
    than ``MIN_CHORD_GAP_S`` after the previous chord's and before the next
    chord's, the local maxima of the pitch's :func:`pitch_rise` that reach
    ``min_rise`` are its candidates, scored by the rise times a Gaussian of
    width ``prior_s`` around the chord's onset; the best, less
    ``(RISE_BEFORE_S - RISE_AFTER_S) / 2``, is the pitch's onset, and a pitch
    without one keeps the chord's onset.

    Parameters
    ----------
    chord, pitch : np.ndarray [shape=(n,), dtype=int64]
        The chord index (0 .. n_chords - 1) and MIDI pitch of every score note.
    t_s : np.ndarray [shape=(n_chords,)]
        Each chord's onset, seconds in the recording, non-decreasing.
    log_pitch : np.ndarray [shape=(88, n_frames)]
        The recording's log pitch energies (:attr:`features.Features.log_pitch`).

    Returns
    -------
    pairs : np.ndarray [shape=(n_pairs, 2), dtype=int64]
        (chord, pitch) rows, as :func:`chord_pitches` returns them.
    onset_s : np.ndarray [shape=(n_pairs,)]
        Each row's onset, seconds.
    """
    pairs, _, _ = chord_pitches(chord, pitch, len(t_s))
    g = pairs[:, 0]
    prev_s = np.concatenate([[-np.inf], t_s[:-1]])[g]
    next_s = np.concatenate([t_s[1:], [np.inf]])[g]
    lo = np.maximum(t_s[g] - window_s, prev_s + MIN_CHORD_GAP_S)
    hi = np.minimum(t_s[g] + window_s, next_s - MIN_CHORD_GAP_S)
    t, owner = _grid(lo, hi, step_s)
    r = pitch_rise(log_pitch, pairs[owner, 1], t)
    peak = _grid_maxima(r, owner, min_rise)
    onset_s = t_s[g].astype(np.float64)
    cand, own = t[peak], owner[peak]
    score = r[peak] * np.exp(-0.5 * ((cand - t_s[g][own]) / prior_s) ** 2)
    order = np.lexsort((score, own))
    last = np.ones(len(order), dtype=bool)
    last[:-1] = own[order][1:] != own[order][:-1]
    best = order[last]
    # The rise from RISE_BEFORE_S before to RISE_AFTER_S after is largest where those two
    # straddle the onset evenly (a frame's energy is symmetric about it): half their
    # difference late.  Taken back, beats beyond 50 ms as above: audio 1396 -> 1379, noisy
    # 1566 -> 1500 (beyond 100 ms: 708 -> 707, 780 -> 772).
    onset_s[own[best]] = cand[best] - (RISE_BEFORE_S - RISE_AFTER_S) / 2
    return pairs, onset_s


def nearest_peaks(pitch: np.ndarray, t_s: np.ndarray, table: PeakTable,
                  within_s: float = PITCH_PEAK_SNAP_S) -> np.ndarray:
    """Each time moved to its pitch's nearest onset peak, where one is within ``within_s``.

    Parameters
    ----------
    pitch, t_s : np.ndarray [shape=(n,)]
        MIDI pitch (0..127) and time (seconds) of each query.
    table : PeakTable
        The peaks looked up, as :func:`peak_table` makes them.
    """
    out = t_s.astype(np.float64)
    for p in np.unique(pitch):
        r = np.flatnonzero(pitch == p)
        a, b = table.start[p], table.stop[p]
        if a == b:
            continue
        i = table.search(p, t_s[r])
        after = table.times_s[np.minimum(i, b - 1)]
        before = table.times_s[np.maximum(i - 1, a)]
        near = np.where(np.abs(after - t_s[r]) < np.abs(before - t_s[r]), after, before)
        out[r] = np.where(np.abs(near - t_s[r]) <= within_s, near, t_s[r])
    return out


def group_medians(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The median of ``values`` over each group (``group``: 0 .. n_groups - 1, none empty).

    The same numbers as ``np.median`` group by group, in one sort (a loop of
    ``np.median`` calls took 4 % of a recording's alignment time).
    """
    order = np.lexsort((values, group))
    count = np.bincount(group)
    start = np.cumsum(count) - count
    v = values[order]
    return (v[start + (count - 1) // 2] + v[start + count // 2]) / 2


def refine_onsets(score: Notes, predicted_s: np.ndarray, peaks: dict,
                  log_pitch: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Move each score onset group (chord) onto the recording's onset peaks.

    Parameters
    ----------
    score : Notes
    predicted_s : np.ndarray [shape=(len(score),)]
        The path's time of each note, seconds.
    peaks : dict
        Onset peaks per pitch (:func:`features.novelty_peaks`).
    log_pitch : np.ndarray [shape=(88, n_frames)], optional
        The recording's log pitch energies: candidates are weighted by
        :func:`rise_weights` (without: by their peaks alone).

    Returns
    -------
    onset_s, refined : np.ndarray [shape=(len(score),)]
        A chord's notes share one time.  Chords that found no peak, or
        whose refined times would still not keep score order (across a chord
        without one; the longest increasing run is kept), and the
        :func:`shifted_runs` (with ``log_pitch``), are searched
        between their refined neighbours by :func:`rise_search` (with
        ``log_pitch``); those still without one are interpolated between
        their refined neighbours.  With ``log_pitch``, a refined chord of
        two or more pitches then moves to the median of its
        :func:`pitch_onsets` (each moved to its :func:`nearest_peaks`), a
        refined chord of one pitch to its pitch's onset when that is at
        least ``LONE_PITCH_SHIFT_S`` away.
    """
    keys, group = np.unique(np.round(score.onset_s, 4), return_inverse=True)
    t_path = group_medians(group, predicted_s)
    t_found = chord_times(group, score.pitch, t_path, peak_table(peaks), log_pitch)
    ok = np.flatnonzero(np.isfinite(t_found))
    refined = np.zeros(len(keys), dtype=bool)
    if len(ok) >= 2:
        keep = ok[longest_increasing(t_found[ok])]
        refined[keep] = True
        if log_pitch is not None:
            refined &= ~shifted_runs(group, score.pitch, t_path, t_found, refined, log_pitch)
            more = rise_search(group, score.pitch, t_path, t_found, refined, log_pitch)
            t_found = np.where(np.isfinite(more), more, t_found)
            refined |= np.isfinite(more)
            keep = np.flatnonzero(refined)
        # Between refined chords, move the others by the path's shape.
        offset = np.interp(keys, keys[keep], t_found[keep] - t_path[keep])
        t_out = np.where(refined, t_found, t_path + offset)
    else:
        t_out = t_path
    t_out = np.maximum.accumulate(t_out)
    if log_pitch is not None and len(keys):
        pairs, pitch_s = pitch_onsets(group, score.pitch, t_out, log_pitch)
        pitch_s = nearest_peaks(pairs[:, 1], pitch_s, peak_table(peaks, octave=False))
        moved = group_medians(pairs[:, 0], pitch_s)
        # A lone pitch's rise is less exact than its peak: LONE_PITCH_SHIFT_S says why.
        take = ((np.bincount(pairs[:, 0], minlength=len(keys)) >= 2)
                | (np.abs(moved - t_out) >= LONE_PITCH_SHIFT_S))
        t_out = np.maximum.accumulate(np.where(refined & take, moved, t_out))
    return t_out[group], refined[group]


def align_audio(score: Notes, audio: np.ndarray, sample_rate_hz: int,
                features: tuple[Features, int] | None = None,
                reference: Features | None = None) -> AudioAlignment:
    """Align a recording to the score's notes.

    Parameters
    ----------
    score : Notes
        The score's notes, seconds in the score (one per played head onset).
    audio : np.ndarray [shape=(n_samples,)]
        The recording, mono.
    sample_rate_hz : int
    features : (Features, int), optional
        The recording's features and tuning, when already computed (they do
        not depend on the score, so the repeat choice computes them once).
    reference : Features, optional
        The score side as audio features of the score synthesized
        (:func:`reference.reference_features`, padded by ``SCORE_PAD_S``);
        by default the score's note list.
    """
    perf_features, tuning = features or audio_features(audio, sample_rate_hz)
    if reference is None:
        warping = warp_score(score, perf_features, alpha=DTW_ALPHA,
                             threshold_rec=DTW_THRESHOLD_REC)
    else:
        # Two recordings: their log pitch energies (octaves kept) replace chroma in
        # the DTW: more ASAP beats within 50 and 100 ms than chroma (dev seed 7;
        # held out: seeds 0 and 3; the note of issue 15, session 3).
        # Where the score's tempo is far from the recording's, the reference is
        # warped towards it first (:mod:`.tempo`).
        time_map = bounded_time_map(*coarse_path(reference, perf_features))
        if not time_map.identity:
            padded = Notes(score.onset_s + SCORE_PAD_S, score.duration_s, score.pitch,
                           score.velocity)
            reference = warp_reference(reference, padded, time_map)
        # Register onsets beside the chroma onsets: features.REGISTER_SEMITONES says why;
        # the recording's silence placed by its surroundings: dtw.with_silence_row.
        w = warp(reference, perf_features, alpha=REFERENCE_ALPHA,
                 threshold_rec=REFERENCE_THRESHOLD_REC, pitch=True, registers=True,
                 silence=True, step_weights=REFERENCE_STEP_WEIGHTS)
        score_s = w.score_s if time_map.identity else time_map.to_reference(w.score_s)
        warping = Warping(score_s - SCORE_PAD_S, w.performance_s, w.cost, w.null_cost)
    onset_s, refined = refine_onsets(score, warping.to_performance(score.onset_s),
                                     perf_features.onset_peaks, perf_features.log_pitch)
    return AudioAlignment(onset_s, refined, warping, tuning)
