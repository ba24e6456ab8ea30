"""Multi-resolution DTW between a score's features and a performance's, by synctoolbox.

The result is a warping path in seconds, strictly monotonic, from which any
score time maps to a performance time by linear interpolation, and the
path's normalised cost, which decides the repeat choice and the confidence.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .features import FEATURE_RATE_FPS, Features, Notes, note_features, require_synctoolbox

# synctoolbox's recommended weights for chroma + DLNCO (its audio-score tutorials).
STEP_WEIGHTS = np.array([1.5, 1.5, 2.0])
# synctoolbox's default bound on the area between two path points of the coarser
# level; its tutorials' 10**6 is more accurate on ASAP and makes the DTW 5-7x
# slower (midi_align and audio_align use 10**6).
THRESHOLD_REC = 10 ** 4
# synctoolbox's default weight of chroma against onsets at the finest level.
ALPHA = 0.5
# A recording's silence row (:func:`with_silence_row`): its height, and the norm of the log
# pitch energies (log(1 + 1000 e / max e) per pitch, :func:`features.log_pitch`) below which
# a frame counts as silent, fully at 0, linearly less up to this norm (a sounding frame's
# norm is 3-20).  ASAP beats beyond 100 ms in six slow, free performances (Scherzos 31 and
# 39, Sonata 3 Largo, Ballade 4, K. 475): 283 -> 262; heights 0.01 / 0.3 / 1: 264 / 265 / 272;
# the benchmark's parts 0 + 1 of 12 within 100 ms 97.61 -> 97.71 %, with the rise search
# 97.72 -> 97.76 %; dev seeds 7 and 11 -3 and +1 beats (the note of issue 15, session 8).
SILENCE_LEVEL = 0.1
SILENCE_NORM = 1.0
# Silence put before and after the score, so that the silence a recording
# starts and ends with has score silence to align to (DTW paths start at (0, 0)).
SCORE_PAD_S = 1.0


@dataclass(frozen=True)
class Warping:
    """A warping path between score time and performance time.

    Attributes
    ----------
    score_s, performance_s : np.ndarray [shape=(n,), dtype=float64]
        Matching times, seconds, both strictly increasing.
    cost : float
        Mean chroma cosine distance along the path (0 identical ... 1 orthogonal).
    null_cost : float
        The same mean over random pairs of frames: what an alignment of
        unrelated music costs.
    """

    score_s: np.ndarray
    performance_s: np.ndarray
    cost: float
    null_cost: float

    @property
    def normalised_cost(self) -> float:
        """``cost / null_cost``: about 1 for unrelated music, near 0 for a good match."""
        return self.cost / self.null_cost if self.null_cost > 0 else 1.0

    def to_performance(self, score_s: np.ndarray) -> np.ndarray:
        """Performance times of ``score_s`` (seconds), linear along the path."""
        return np.interp(score_s, self.score_s, self.performance_s)

    def to_score(self, performance_s: np.ndarray) -> np.ndarray:
        """Score times of ``performance_s`` (seconds), linear along the path."""
        return np.interp(performance_s, self.performance_s, self.score_s)


def _unit(chroma: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(chroma, axis=0, keepdims=True)
    out = chroma / np.maximum(norm, 1e-9)
    out[:, norm[0] < 1e-9] = 1.0 / np.sqrt(12)
    return out


def with_silence_row(log_pitch: np.ndarray, level: float = SILENCE_LEVEL,
                     norm: float = SILENCE_NORM) -> np.ndarray:
    """``log_pitch`` (d x n) with one row more, ``level * max(0, 1 - |frame| / norm)``.

    A recording's silent frame (no pitch energies: a note released before the
    score's written end, a pause) becomes, once synctoolbox normalises it, the
    row's unit vector instead of the uniform one; the other side gets a zero
    row, so the silent frame is orthogonal to every frame of it and costs the
    same against each (cosine distance 1).  As a uniform vector, it matched
    the other side's brief near-silences (a note's release before a rest)
    better than anything sounding, and the path put the recording's silence
    there, before the chord that it follows, moving that chord by the
    silence's length (1-1.5 s, ASAP Scherzo 39).  Sounding frames (norm above
    ``norm``) are unchanged.
    """
    silent = level * np.clip(1 - np.linalg.norm(log_pitch, axis=0, keepdims=True) / norm, 0, 1)
    return np.vstack([log_pitch, silent])


def path_costs(score: Features, performance: Features, path: np.ndarray) -> tuple[float, float]:
    """Mean cosine distance of chroma along ``path`` (2 x n frames) and over random pairs.

    Frames silent on both sides are left out of the path mean (silence
    matches silence and says nothing about the piece).  The random pairs are
    drawn with a fixed seed, so the value is reproducible.
    """
    a, b = _unit(score.chroma), _unit(performance.chroma)
    i, j = np.asarray(path, dtype=np.int64)
    sounding = (score.chroma[:, i].sum(axis=0) > 0) | (performance.chroma[:, j].sum(axis=0) > 0)
    i, j = i[sounding], j[sounding]
    if not len(i):
        return 1.0, 1.0
    cost = float(np.mean(1.0 - np.sum(a[:, i] * b[:, j], axis=0)))
    rng = np.random.default_rng(0)
    ri = rng.choice(i, size=4096)
    rj = rng.choice(j, size=4096)
    null = float(np.mean(1.0 - np.sum(a[:, ri] * b[:, rj], axis=0)))
    return cost, null


def warp(score: Features, performance: Features, *, threshold_rec: int = THRESHOLD_REC,
         alpha: float = ALPHA, pitch: bool = False, registers: bool = False,
         silence: bool = False, step_weights: np.ndarray = STEP_WEIGHTS) -> Warping:
    """Align two feature sequences with chroma + DLNCO (+ DLNRO) MrMsDTW.

    Parameters
    ----------
    score, performance : Features
        At ``FEATURE_RATE_FPS``; the score is sequence 1 of synctoolbox.
    threshold_rec : int
        synctoolbox's bound on the cells between two anchors of a coarser
        level's path (larger: fewer anchors forced on the fine path, slower).
    alpha : float
        Weight of the chroma cost at the finest level; ``1 - alpha`` is the
        DLNCO onset cost's.
    pitch : bool
        Compare the sides' log pitch energies (88 bands, octaves kept; both
        must be audio features) instead of their chroma at every level; the
        cost is the chroma's either way.
    registers : bool
        Compare the sides' DLNRO register onsets beside their DLNCO at the
        finest level (one Euclidean distance over both; both sides need ``dlnro``).
    silence : bool
        With ``pitch``: the performance's silent frames cost the same against
        every score frame (:func:`with_silence_row`), at every level.
    step_weights : np.ndarray [shape=(3,)]
        Weights of the steps (1, 0), (0, 1), (1, 1): the larger the first
        two against the third, the more the path keeps to the diagonal.
    """
    require_synctoolbox()
    import sklearn
    from synctoolbox.dtw.mrmsdtw import sync_via_mrmsdtw
    from synctoolbox.dtw.utils import make_path_strictly_monotonic

    # synctoolbox computes each block's DLNCO distances with sklearn, whose
    # argument checks took a third of the DTW's time; the features are finite.
    onset1, onset2 = ((np.vstack([score.dlnco, score.dlnro]),
                       np.vstack([performance.dlnco, performance.dlnro])) if registers
                      else (score.dlnco, performance.dlnco))
    chroma1 = score.log_pitch if pitch else score.chroma
    chroma2 = performance.log_pitch if pitch else performance.chroma
    if pitch and silence:
        chroma1 = np.vstack([chroma1, np.zeros((1, chroma1.shape[1]))])
        chroma2 = with_silence_row(chroma2)
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        path = sync_via_mrmsdtw(f_chroma1=chroma1,
                                f_onset1=onset1,
                                f_chroma2=chroma2,
                                f_onset2=onset2,
                                input_feature_rate=FEATURE_RATE_FPS, step_weights=step_weights,
                                threshold_rec=threshold_rec, alpha=alpha, verbose=False)
    cost, null = path_costs(score, performance, path)
    path = make_path_strictly_monotonic(path).astype(np.float64)
    return Warping(path[0] / FEATURE_RATE_FPS, path[1] / FEATURE_RATE_FPS, cost, null)


def warp_score(score: Notes, performance: Features, pad_s: float = SCORE_PAD_S,
               **options) -> Warping:
    """Warp a score's note list onto a performance's features.

    The score is given ``pad_s`` seconds of silence at both ends for the DTW;
    the path is returned in the score's own time (the padding may map to
    negative times or past the end).  ``options`` go to :func:`warp`.
    """
    padded = Notes(score.onset_s + pad_s, score.duration_s, score.pitch, score.velocity)
    n_frames = int(np.ceil((score.end_s + 2 * pad_s) * FEATURE_RATE_FPS)) + 1
    w = warp(note_features(padded, n_frames), performance, **options)
    return Warping(w.score_s - pad_s, w.performance_s, w.cost, w.null_cost)
