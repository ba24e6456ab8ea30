"""Alignment of an audio recording to the score's notes.

1. Chroma + DLNCO features of the recording (:func:`features.audio_features`)
   and of the score's own note list (no synthesis), MrMsDTW between them
   (synctoolbox): every score onset gets a performance time off the path.
2. Refinement by the recording's onset peaks: each score onset (a chord)
   moves to the onset peak near the path's time that the most of its
   pitches support (:func:`chord_time`); chords that found none, or would
   break score order, follow their neighbours.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dtw import Warping, warp_score
from .features import Features, Notes, audio_features
from .midi_align import longest_increasing

SEARCH_WINDOW_S = 0.15
PRIOR_WIDTH_S = 0.06
CHORD_SPREAD_S = 0.03


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


def _pitch_peaks(peaks: dict, pitch: int) -> tuple[np.ndarray, np.ndarray]:
    """Onset peak times (s) and heights of a pitch and its octave, sorted by time."""
    rows = [peaks[p] for p in (pitch, pitch + 12) if p in peaks and peaks[p].shape[1]]
    if not rows:
        return np.zeros(0), np.zeros(0)
    both = np.concatenate(rows, axis=1)
    order = np.argsort(both[0])
    return both[0, order] / 1000.0, both[1, order]


def chord_time(pitches: np.ndarray, t0: float, peaks: dict, *,
               window_s: float = SEARCH_WINDOW_S, prior_s: float = PRIOR_WIDTH_S,
               spread_s: float = CHORD_SPREAD_S) -> float | None:
    """The onset of a chord near ``t0`` in a recording's onset peaks, or ``None``.

    Every peak of a chord pitch (or its octave) within ``window_s`` of ``t0``
    is a candidate; its support is the sum over the chord's pitches of their
    strongest peak within ``spread_s`` of it, weighted by a Gaussian of width
    ``prior_s`` around ``t0`` (the path's time).  The best candidate wins.
    """
    per_pitch = [_pitch_peaks(peaks, int(p)) for p in np.unique(pitches)]
    cands = np.concatenate([t[(t >= t0 - window_s) & (t <= t0 + window_s)]
                            for t, _ in per_pitch]) if per_pitch else np.zeros(0)
    if not len(cands):
        return None
    support = np.zeros(len(cands))
    for times, heights in per_pitch:
        if not len(times):
            continue
        lo = np.searchsorted(times, cands - spread_s)
        hi = np.searchsorted(times, cands + spread_s)
        for k, (a, b) in enumerate(zip(lo, hi)):
            if b > a:
                support[k] += heights[a:b].max()
    score = support * np.exp(-0.5 * ((cands - t0) / prior_s) ** 2)
    return float(cands[int(np.argmax(score))])


def refine_onsets(score: Notes, predicted_s: np.ndarray, peaks: dict) -> tuple[np.ndarray, np.ndarray]:
    """Move each score onset group (chord) onto the recording's onset peaks.

    Parameters
    ----------
    score : Notes
    predicted_s : np.ndarray [shape=(len(score),)]
        The path's time of each note, seconds.
    peaks : dict
        Onset peaks per pitch (:func:`features.novelty_peaks`).

    Returns
    -------
    onset_s, refined : np.ndarray [shape=(len(score),)]
        A chord's notes share one time.  Chords whose refined times would
        not keep score order (the longest increasing run is kept), or that
        found no peak, are interpolated between their refined neighbours.
    """
    keys, group = np.unique(np.round(score.onset_s, 4), return_inverse=True)
    t_path = np.array([np.median(predicted_s[group == g]) for g in range(len(keys))])
    t_found = np.full(len(keys), np.nan)
    for g in range(len(keys)):
        t = chord_time(score.pitch[group == g], float(t_path[g]), peaks)
        if t is not None:
            t_found[g] = t
    ok = np.flatnonzero(np.isfinite(t_found))
    refined = np.zeros(len(keys), dtype=bool)
    if len(ok) >= 2:
        keep = ok[longest_increasing(t_found[ok])]
        refined[keep] = True
        # Between refined chords, move the others by the path's shape.
        offset = np.interp(keys, keys[keep], t_found[keep] - t_path[keep])
        t_out = np.where(refined, t_found, t_path + offset)
    else:
        t_out = t_path
    t_out = np.maximum.accumulate(t_out)
    return t_out[group], refined[group]


def align_audio(score: Notes, audio: np.ndarray, sample_rate_hz: int,
                features: tuple[Features, int] | None = None) -> AudioAlignment:
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
    """
    perf_features, tuning = features or audio_features(audio, sample_rate_hz)
    warping = warp_score(score, perf_features)
    onset_s, refined = refine_onsets(score, warping.to_performance(score.onset_s),
                                     perf_features.onset_peaks)
    return AudioAlignment(onset_s, refined, warping, tuning)
