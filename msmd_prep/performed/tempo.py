"""The synthesized reference brought near the recording's tempo where the score's is far from it.

A score's written tempo can be far from a performance's (ASAP's Ballade 4
score plays its coda five times slower than pianists do).  There MrMsDTW's
path has to take several horizontal (or vertical) steps per diagonal one,
and it stalls: it holds one frame of one side for seconds, then catches up.
So a coarse first pass (log pitch energies at ``COARSE_FPS``, no onsets)
measures the local tempo ratio between reference and recording every
``KNOT_S`` seconds of the recording, and the reference's features are
resampled in time (its onset features recomputed from the score's notes at
their new times) so that no stretch's ratio lies beyond ``BOUND``; stretches
within it are left as they are (warping those too lost accuracy on ASAP:
the note of issue 15, session 4).  The fine alignment then runs on the
warped reference, and its path is mapped back to score time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .features import FEATURE_RATE_FPS, Features, Notes, note_features

# Rate of the coarse pass and the smoothing window its features are averaged over (frames
# at FEATURE_RATE_FPS; 21 is what MrMsDTW's own 10 fps level uses).
COARSE_DOWNSAMPLE = 5
COARSE_SMOOTH = 21
# synctoolbox's default anchor bound: the coarse pass needs no more (10**5 and 10**6 gave
# the same time maps on ASAP, at more time).
COARSE_THRESHOLD_REC = 10 ** 4
# Local tempo ratios are measured over this much of the recording (seconds).
KNOT_S = 5.0
# Reference-to-recording tempo ratios beyond [1 / BOUND, BOUND] are brought to the bound.
BOUND = 1.5


@dataclass(frozen=True)
class TimeMap:
    """A piecewise linear, strictly increasing map between reference time and warped time.

    Attributes
    ----------
    reference_s, warped_s : np.ndarray [shape=(n_knots,)]
        Matching times, seconds, both strictly increasing from 0.
    """

    reference_s: np.ndarray
    warped_s: np.ndarray

    @property
    def identity(self) -> bool:
        return bool(np.allclose(self.reference_s, self.warped_s))

    def to_warped(self, reference_s: np.ndarray) -> np.ndarray:
        return np.interp(reference_s, self.reference_s, self.warped_s)

    def to_reference(self, warped_s: np.ndarray) -> np.ndarray:
        return np.interp(warped_s, self.warped_s, self.reference_s)


def coarse_path(reference: Features, performance: Features,
                threshold_rec: int = COARSE_THRESHOLD_REC) -> tuple[np.ndarray, np.ndarray]:
    """MrMsDTW of the two sides' log pitch energies at ``FEATURE_RATE_FPS / COARSE_DOWNSAMPLE``.

    Returns
    -------
    reference_s, performance_s : np.ndarray [shape=(n,)]
        The path, seconds, both strictly increasing.
    """
    from synctoolbox.dtw.mrmsdtw import sync_via_mrmsdtw
    from synctoolbox.dtw.utils import make_path_strictly_monotonic
    from synctoolbox.feature.utils import smooth_downsample_feature

    from .dtw import STEP_WEIGHTS

    sides = [smooth_downsample_feature(f.log_pitch, input_feature_rate=FEATURE_RATE_FPS,
                                       win_len_smooth=COARSE_SMOOTH,
                                       downsamp_smooth=COARSE_DOWNSAMPLE)
             for f in (reference, performance)]
    rate = sides[0][1]
    # MrMsDTW's own coarser levels (1 and 2 fps) above this one.
    path = sync_via_mrmsdtw(f_chroma1=sides[0][0], f_chroma2=sides[1][0], input_feature_rate=rate,
                            step_weights=STEP_WEIGHTS, threshold_rec=threshold_rec,
                            win_len_smooth=np.array([41, 21, 1]),
                            downsamp_smooth=np.array([10, 5, 1]), verbose=False)
    path = make_path_strictly_monotonic(path).astype(np.float64)
    return path[0] / rate, path[1] / rate


def bounded_time_map(reference_s: np.ndarray, performance_s: np.ndarray,
                     knot_s: float = KNOT_S, bound: float = BOUND) -> TimeMap:
    """The warp that brings every stretch's tempo ratio (recording / reference) within the bound.

    Parameters
    ----------
    reference_s, performance_s : np.ndarray [shape=(n,)]
        A path between reference and recording (seconds, increasing, from 0).
    knot_s : float
        Length of the stretches, seconds of the recording.

    bound : float
        Ratios within ``[1 / bound, bound]`` are left alone.

    Returns
    -------
    TimeMap
        From reference time to warped time: a stretch whose ratio is within
        the bound keeps its length; one beyond it is scaled to the bound's ratio.
    """
    t = np.append(np.arange(0.0, performance_s[-1], knot_s), performance_s[-1])
    u = np.interp(t, performance_s, reference_s)
    keep = np.concatenate([[True], np.diff(u) > 1e-9]) & np.concatenate([[True], np.diff(t) > 1e-9])
    u, t = u[keep], t[keep]
    ratio = np.diff(t) / np.diff(u)
    scale = ratio / np.clip(ratio, 1.0 / bound, bound)
    return TimeMap(u, np.concatenate([[0.0], np.cumsum(np.diff(u) * scale)]))


def _resample(x: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Columns of ``x`` (d, n) at fractional frame positions, linear."""
    frames = np.clip(frames, 0, x.shape[1] - 1)
    i = np.floor(frames).astype(np.int64)
    j = np.minimum(i + 1, x.shape[1] - 1)
    a = frames - i
    return x[:, i] * (1 - a) + x[:, j] * a


def warp_reference(reference: Features, notes: Notes, time_map: TimeMap) -> Features:
    """The reference's features on the warped time axis.

    Parameters
    ----------
    reference : Features
        Audio features of the reference (with ``log_pitch``), frame ``i`` at
        ``i / FEATURE_RATE_FPS`` seconds of reference time.
    notes : Notes
        The reference's notes, seconds of reference time: their DLNCO and
        DLNRO onset features are computed anew at the warped times.
    time_map : TimeMap
    """
    n = int(np.ceil(time_map.to_warped(np.array([(reference.n_frames - 1) / FEATURE_RATE_FPS]))[0]
                    * FEATURE_RATE_FPS)) + 1
    frames = time_map.to_reference(np.arange(n) / FEATURE_RATE_FPS) * FEATURE_RATE_FPS
    onset = time_map.to_warped(notes.onset_s)
    offset = time_map.to_warped(notes.onset_s + notes.duration_s)
    moved = Notes(onset, np.maximum(offset - onset, 1e-3), notes.pitch, notes.velocity)
    onsets = note_features(moved, n)
    return Features(_resample(reference.chroma, frames), onsets.dlnco, {},
                    _resample(reference.log_pitch, frames), onsets.dlnro)
