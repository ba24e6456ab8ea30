"""Alignment of an audio recording to the score's notes.

1. Chroma + DLNCO features of the recording (:func:`features.audio_features`)
   and of the score's own note list (no synthesis), MrMsDTW between them
   (synctoolbox): every score onset gets a performance time off the path.
2. Refinement by the recording's onset peaks: each score note takes the
   strongest onset peak of its pitch (or its octave, where the fundamental is
   weak) within ``REFINE_WINDOW_S`` of the path's time; the notes of one
   score onset (a chord) then share the median of the times found, and a
   chord with no peak keeps the path's time.  Chords stay in score order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dtw import Warping, warp
from .features import Features, Notes, audio_features, note_features

REFINE_WINDOW_S = 0.06


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


def _peak_near(peaks: dict, pitches: tuple[int, ...], t: float, window_s: float) -> float | None:
    best, best_h = None, 0.0
    for p in pitches:
        row = peaks.get(p)
        if row is None or not row.shape[1]:
            continue
        times = row[0] / 1000.0
        lo, hi = np.searchsorted(times, [t - window_s, t + window_s])
        if hi > lo:
            k = lo + int(np.argmax(row[1, lo:hi]))
            if row[1, k] > best_h:
                best, best_h = float(times[k]), float(row[1, k])
    return best


def refine_onsets(score: Notes, predicted_s: np.ndarray, peaks: dict,
                  window_s: float = REFINE_WINDOW_S) -> tuple[np.ndarray, np.ndarray]:
    """Move each score onset group onto the recording's onset peaks.

    Parameters
    ----------
    score : Notes
    predicted_s : np.ndarray [shape=(len(score),)]
        The path's time of each note, seconds.
    peaks : dict
        Onset peaks per pitch (:func:`features.novelty_peaks`).
    window_s : float
        Largest move, seconds.

    Returns
    -------
    onset_s, refined : np.ndarray
    """
    keys, group = np.unique(np.round(score.onset_s, 4), return_inverse=True)
    out = predicted_s.copy()
    refined = np.zeros(len(score), dtype=bool)
    group_t = np.empty(len(keys))
    for g in range(len(keys)):
        members = np.flatnonzero(group == g)
        t0 = float(np.median(predicted_s[members]))
        found = [_peak_near(peaks, (int(score.pitch[i]), int(score.pitch[i]) + 12), t0, window_s)
                 for i in members]
        found = [f for f in found if f is not None]
        group_t[g] = float(np.median(found)) if found else t0
        refined[members] = bool(found)
    # A refined chord may not overtake its neighbours: keep score order.
    group_t = np.maximum.accumulate(group_t)
    out[:] = group_t[group]
    return out, refined


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
    score_features = note_features(score)
    warping = warp(score_features, perf_features)
    onset_s, refined = refine_onsets(score, warping.to_performance(score.onset_s),
                                     perf_features.onset_peaks)
    return AudioAlignment(onset_s, refined, warping, tuning)
