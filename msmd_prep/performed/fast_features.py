"""Array versions of synctoolbox's feature functions that loop in Python.

synctoolbox 1.4 computes a note list's pitch features by iterating pandas
rows, quantizes chroma column by column and builds DLNCO features with
loops per frame and per peak: together about a third of the time of
aligning a recording (cProfile on a 95 s ASAP performance).  The functions here
compute the same arrays with numpy (and libfmp's tuning similarity, which
builds one comb template per cent, with a strided sum: 0.2 s per recording
whatever its length); ``tests/test_performed.py`` checks them
against synctoolbox's own functions on a real note list and a real
recording's onset peaks (equal up to float rounding, the quantized chroma
exactly).  The formulas are synctoolbox's (``csv_tools.df_to_pitch_features``,
``chroma.quantize_chroma``, ``dlnco.pitch_onset_features_to_DLNCO``,
libfmp's ``c3.tuning_similarity``);
the defaults are theirs.
"""
from __future__ import annotations

import numpy as np
import scipy.ndimage

MIDI_MIN, MIDI_MAX = 21, 108
# synctoolbox's df_to_pitch_onset_features divides velocities by this
# (its ``peak_height_scale_factor``), so that they are near audio peak heights.
PEAK_HEIGHT_SCALE = 1e6
QUANT_STEPS = np.array([40, 20, 10, 5]) / 100
QUANT_WEIGHTS = np.array([1, 1, 1, 1]) / 4
DLNCO_COEFS = np.sqrt(1 / np.arange(1, 11))


def note_pitch_features(onset_s: np.ndarray, duration_s: np.ndarray, pitch: np.ndarray,
                        velocity: np.ndarray, feature_rate: float) -> np.ndarray:
    """Pitch energies of notes, as ``synctoolbox.feature.csv_tools.df_to_pitch_features``.

    Frame ``w`` (1-based in synctoolbox) spans ``[(w - 2) * step, w * step]``
    ms; a note adds ``velocity`` times the share of that span it covers.

    Parameters
    ----------
    onset_s, duration_s : np.ndarray [shape=(n,)]
        Seconds; pitches 21..108.
    pitch, velocity : np.ndarray [shape=(n,)]
    feature_rate : float
        Frames per second.

    Returns
    -------
    f_pitch : np.ndarray [shape=(128, ceil(end_ms / step))]
    """
    step_ms = 1 / feature_rate * 1000
    start_ms = 1000 * np.asarray(onset_s, dtype=np.float64)
    end_ms = 1000 * (np.asarray(onset_s, dtype=np.float64) + np.asarray(duration_s, np.float64))
    duration = float(np.max(np.asarray(onset_s) + np.asarray(duration_s))) if len(onset_s) else 0.0
    n = int(np.ceil(duration * 1000 / step_ms))
    f_pitch = np.zeros((128, n), dtype=np.float64)
    if not len(start_ms):
        return f_pitch
    first = np.floor(start_ms / step_ms).astype(np.int64) + 1
    last = np.minimum(np.minimum(np.floor(end_ms / step_ms) + 1, n) + 1, n).astype(np.int64)
    count = np.maximum(last - first + 1, 0)
    note = np.repeat(np.arange(len(first)), count)
    win = first[note] + (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count))
    right = win * step_ms
    left = right - 2 * step_ms
    contribution = (np.minimum(end_ms[note], right) - np.maximum(start_ms[note], left)) / (
        2 * step_ms)
    # np.add.at adds in array order (note by note, as synctoolbox's loop does).
    np.add.at(f_pitch, (np.asarray(pitch)[note], win - 1),
              np.asarray(velocity, dtype=np.float64)[note] * contribution)
    return f_pitch


def pitch_to_chroma(f_pitch: np.ndarray) -> np.ndarray:
    """Rows 21..108 of ``f_pitch`` (128 x n) summed per pitch class; (12, n)."""
    f_chroma = np.zeros((12, f_pitch.shape[1]))
    for p in range(MIDI_MIN, MIDI_MAX + 1):
        f_chroma[p % 12] += f_pitch[p]
    return f_chroma


def quantize_chroma(f_chroma: np.ndarray, norm_thresh: float = 0.001) -> np.ndarray:
    """``synctoolbox.feature.chroma.quantize_chroma``: l1-normalized, then 4-step quantized.

    Columns with no entry above ``norm_thresh`` become zero.
    """
    # Per column sum over a contiguous row of 12, as synctoolbox's np.sum(f[:, k]).
    columns = np.ascontiguousarray(f_chroma.T)
    total = np.sum(columns, axis=1)
    keep = np.any(columns > norm_thresh, axis=1)
    distr = np.zeros_like(columns)
    distr[keep] = columns[keep] / total[keep, None]
    out = np.zeros_like(columns)
    for step, weight in zip(QUANT_STEPS, QUANT_WEIGHTS):
        out += (distr > step) * weight
    return out.T


def matlab_round(x: np.ndarray) -> np.ndarray:
    """Halves away from zero for x >= 0, as synctoolbox's ``__matlab_round`` (int64)."""
    fl = np.floor(x)
    return np.where(x - fl < 0.5, fl, np.ceil(x)).astype(np.int64)


def onsets_of_peaks(peaks: dict, n_frames: int, feature_rate: float, row_of_pitch: np.ndarray,
                    n_rows: int, gamma: float = 10000.0) -> np.ndarray:
    """Onsets (n_frames x n_rows) of per-pitch onset peaks, pitch ``p``'s in row ``row_of_pitch[p]``.

    synctoolbox's DLNCO step 1 (each peak adds ``log(1 + gamma * height)`` at its
    frame) with the rows of the caller's choice: pitch classes, or registers.

    Parameters
    ----------
    peaks : dict of int to np.ndarray [shape=(2, k)]
        Per MIDI pitch, times in ms (row 0) and heights (row 1).
    row_of_pitch : np.ndarray [shape=(128,), dtype=int64]
    """
    f_co = np.zeros((n_frames, n_rows))
    for p in range(MIDI_MIN, MIDI_MAX + 1):
        if p not in peaks:
            continue
        t = np.asarray(peaks[p][0, :] / 1000).reshape(-1)
        v = np.asarray(np.log(peaks[p][1, :] * gamma + 1)).reshape(-1)
        np.add.at(f_co, (matlab_round(t * feature_rate), row_of_pitch[p]), v)
    return f_co


def register_rows(semitones: int) -> tuple[np.ndarray, int]:
    """Each MIDI pitch's register band (pitches 21 .. 20 + semitones are band 0, and so on)
    and the number of bands over 21..108."""
    rows = np.clip((np.arange(128) - MIDI_MIN) // semitones, 0, None)
    return rows, int(rows[MIDI_MAX]) + 1


def chroma_onsets_of_peaks(peaks: dict, n_frames: int, feature_rate: float,
                           gamma: float = 10000.0) -> np.ndarray:
    """Chroma onsets (n_frames x 12) of per-pitch onset peaks, as synctoolbox's DLNCO step 1.

    Parameters
    ----------
    peaks : dict of int to np.ndarray [shape=(2, k)]
        Per MIDI pitch, times in ms (row 0) and heights (row 1).
    """
    return onsets_of_peaks(peaks, n_frames, feature_rate, np.arange(128) % 12, 12, gamma)


def register_onsets_of_peaks(peaks: dict, n_frames: int, feature_rate: float, semitones: int,
                             gamma: float = 10000.0) -> np.ndarray:
    """Register onsets (n_frames x n_bands) of per-pitch onset peaks: DLNCO step 1 with
    the peaks summed per band of ``semitones`` pitches (:func:`register_rows`), not per pitch class."""
    rows, n_rows = register_rows(semitones)
    return onsets_of_peaks(peaks, n_frames, feature_rate, rows, n_rows, gamma)


def note_peaks(onset_s: np.ndarray, pitch: np.ndarray, velocity: np.ndarray) -> dict:
    """Notes as onset peaks, as synctoolbox's ``df_to_pitch_onset_features``: per pitch
    21..108 the onsets (ms) and heights ``velocity / 1e6``."""
    keep = (pitch >= MIDI_MIN) & (pitch <= MIDI_MAX)
    order = np.lexsort((onset_s[keep], pitch[keep]))
    p = pitch[keep][order]
    return {int(q): np.array([1000 * onset_s[keep][order][p == q],
                              velocity[keep][order][p == q] / PEAK_HEIGHT_SCALE])
            for q in np.unique(p)}


def dlnco_of_chroma_onsets(f_co: np.ndarray, feature_rate: float = 50,
                           maxfilter_s: float = 0.8, maxfilter_thresh: float = 0.1,
                           coefs: np.ndarray = DLNCO_COEFS) -> np.ndarray:
    """DLNCO features (d x n) of chroma onsets (n x d, d = 12), as synctoolbox's DLNCO steps 2-4;
    register onsets (d bands) the same way.

    Onsets are divided by their norm's running maximum over
    ``maxfilter_s`` (at least ``maxfilter_thresh``), then each decays by
    ``coefs`` over the following frames (the maximum of the decayed copies).
    """
    n = len(f_co)
    f_n = np.sqrt(np.einsum("ij,ij->i", f_co, f_co))
    length = int(maxfilter_s * feature_rate)
    length -= length % 2
    f_ln = scipy.ndimage.maximum_filter1d(f_n, size=length + 1, mode="constant", cval=0.0)
    f_lnco = f_co / np.maximum(f_ln, maxfilter_thresh)[:, None]
    out = np.zeros_like(f_lnco)
    for k, c in enumerate(coefs):
        if k < n:
            np.maximum(out[k:], c * f_lnco[: n - k], out=out[k:])
    return out.T


def tuning_of_distribution(v: np.ndarray) -> int:
    """The tuning offset (cents, -50 .. 49) of a frequency distribution on a 1-cent axis.

    As ``libfmp.c3.tuning_similarity``'s ``theta_max``: the offset whose comb
    of peaks every 100 cents collects the most of ``v`` (the first of equals).
    The sums run in another order, so near-ties (a flat distribution, such as
    noise's) may fall the other way.

    Parameters
    ----------
    v : np.ndarray [shape=(n_cents,)]
        libfmp's ``compute_freq_distribution``, cent 0 at C1.
    """
    theta = np.arange(-50, 50)
    sim = np.array([v[t % 100::100].sum() for t in theta])
    return int(theta[np.argmax(sim)])
