"""Chroma and DLNCO onset features of note lists and of audio.

Both sides of an alignment are turned into the same two feature sequences at
``FEATURE_RATE_FPS`` frames per second (frame ``i`` is at ``i / FEATURE_RATE_FPS``
seconds): quantized chroma (12 x n) and decaying locally adaptive normalized
chroma onset features (DLNCO, 12 x n), by synctoolbox's formulas, and the same
onset features per register (DLNRO, 8 x n: octave bands instead of pitch classes)
(:mod:`.fast_features` computes them with arrays).  Note lists give pitch
energies directly, audio through an STFT pitch filterbank (synctoolbox's
IIR filterbank is kept as the reference), so a score's own note list can be
compared with a recording without synthesizing the score.
"""
from __future__ import annotations

from dataclasses import dataclass

import contextlib
import io

import numpy as np
import scipy.signal

from . import fast_features

FEATURE_RATE_FPS = 50
ONSET_RATE_FPS = 150
CHROMA_WINDOW = 4096
ONSET_WINDOW = 1024
# Frames per STFT block: 256 keeps a block's temporaries (4 MB at 4096 samples) in the
# cache; 4096 took 1.3-1.4 times as long for the same energies (the note of issue 15, session 6).
BLOCK_FRAMES = 256
MIDI_MIN, MIDI_MAX = 21, 108
# Compression of pitch energies relative to the recording's loudest (60 dB range).
LOG_PITCH_GAIN = 1000.0
# Width of the register bands the DLNRO onset features sum pitches over (21-32, 33-44, ...:
# 8 bands).  DLNCO cannot tell an octave run's notes apart, nor the hands' registers; with
# these beside it at the finest MrMsDTW level against a synthesized reference, ASAP beats
# within 100 ms rose on dev seeds 7 (98.26 -> 98.48 %) and 11 (97.01 -> 97.20 %), with
# reverb and noise too, and on the benchmark's parts 0 + 1 of 12 (97.30 -> 97.59 %; within
# 50 ms 94.53 -> 94.95 %); 6-semitone bands did a little worse, and onsets per pitch (88
# rows) lost beats, from the score's notes or from the reference's own onset peaks (the note
# of issue 15, session 7).
REGISTER_SEMITONES = 12


@dataclass(frozen=True)
class Notes:
    """A list of notes, seconds.

    Attributes
    ----------
    onset_s, duration_s : np.ndarray [shape=(n,), dtype=float64]
    pitch, velocity : np.ndarray [shape=(n,), dtype=int64]
        MIDI pitch 0..127 and velocity 1..127.
    """

    onset_s: np.ndarray
    duration_s: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray

    def __len__(self) -> int:
        return len(self.onset_s)

    @property
    def end_s(self) -> float:
        """End of the last sounding note, seconds."""
        return float(np.max(self.onset_s + self.duration_s)) if len(self) else 0.0

    def take(self, index: np.ndarray) -> "Notes":
        """The notes at ``index`` (an index or boolean array)."""
        return Notes(self.onset_s[index], self.duration_s[index], self.pitch[index],
                     self.velocity[index])


@dataclass(frozen=True)
class Features:
    """The feature sequences one side of an alignment is compared by.

    Attributes
    ----------
    chroma : np.ndarray [shape=(12, n_frames)]
        Quantized chroma.
    dlnco : np.ndarray [shape=(12, n_frames)]
        DLNCO onset features.
    onset_peaks : dict of int to np.ndarray [shape=(2, k)]
        Per MIDI pitch the onset peaks: times in ms (row 0) and heights (row 1);
        empty for note lists.
    log_pitch : np.ndarray [shape=(88, n_frames)] or None
        Audio only: log-compressed energy per pitch 21..108 (the energies the
        chroma is folded from), for comparing two recordings with octaves.
    dlnro : np.ndarray [shape=(n_bands, n_frames)] or None
        Register onset features: DLNCO's onsets summed per band of
        ``REGISTER_SEMITONES`` pitches instead of per pitch class, with its
        local normalisation and decay (8 bands).
    """

    chroma: np.ndarray
    dlnco: np.ndarray
    onset_peaks: dict
    log_pitch: np.ndarray | None = None
    dlnro: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return self.chroma.shape[1]


def require_synctoolbox() -> None:
    """Fail with a clear message when the ``performances`` extra is not installed."""
    import importlib.util

    from ..errors import ConfigError

    for module in ("synctoolbox", "pandas"):
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"aligning real performances needs {module}: "
                              "pip install 'msmd-prep[performances]' (make install does)")


def _frames(duration_s: float) -> int:
    return int(np.ceil(duration_s * FEATURE_RATE_FPS)) + 1


def _chroma(f_pitch: np.ndarray, n_frames: int) -> np.ndarray:
    out = np.zeros((12, n_frames))
    chroma = fast_features.quantize_chroma(fast_features.pitch_to_chroma(f_pitch))
    m = min(n_frames, chroma.shape[1])
    out[:, :m] = chroma[:, :m]
    return out


def _dlnco(peaks: dict, n_frames: int) -> np.ndarray:
    return fast_features.dlnco_of_chroma_onsets(
        fast_features.chroma_onsets_of_peaks(peaks, n_frames, FEATURE_RATE_FPS), FEATURE_RATE_FPS)


def _dlnro(peaks: dict, n_frames: int) -> np.ndarray:
    return fast_features.dlnco_of_chroma_onsets(
        fast_features.register_onsets_of_peaks(peaks, n_frames, FEATURE_RATE_FPS,
                                               REGISTER_SEMITONES), FEATURE_RATE_FPS)


def note_features(notes: Notes, n_frames: int | None = None) -> Features:
    """Features of a note list (a score or a MIDI performance).

    Parameters
    ----------
    notes : Notes
        At least one note between MIDI pitch 21 and 108.
    n_frames : int, optional
        Length of the sequences; by default up to the end of the last note.
    """
    keep = (notes.pitch >= MIDI_MIN) & (notes.pitch <= MIDI_MAX)
    n = notes.take(keep)
    n_frames = n_frames or _frames(notes.end_s)
    duration = np.maximum(n.duration_s, 1e-3)
    f_pitch = fast_features.note_pitch_features(n.onset_s, duration, n.pitch, n.velocity,
                                                FEATURE_RATE_FPS)
    peaks = fast_features.note_peaks(n.onset_s, n.pitch, n.velocity)
    return Features(_chroma(f_pitch, n_frames), _dlnco(peaks, n_frames), {},
                    dlnro=_dlnro(peaks, n_frames))


def iir_audio_features(audio: np.ndarray, sample_rate_hz: int) -> tuple[Features, int]:
    """Features of mono audio by synctoolbox's IIR filterbank, and the tuning offset (cents).

    The reference implementation; about 5 times faster than real time here,
    too slow for hours of audio (``benchmarks/bench_performed.py --features``).

    Parameters
    ----------
    audio : np.ndarray [shape=(n_samples,)]
        Mono audio, full scale +-1 (22.05 kHz is what synctoolbox's filterbank expects).
    sample_rate_hz : int
    """
    from synctoolbox.feature.dlnco import pitch_onset_features_to_DLNCO
    from synctoolbox.feature.pitch import audio_to_pitch_features
    from synctoolbox.feature.pitch_onset import audio_to_pitch_onset_features
    from synctoolbox.feature.utils import estimate_tuning

    audio = np.asarray(audio, dtype=np.float64)
    tuning = int(estimate_tuning(audio, sample_rate_hz))
    # synctoolbox prints a dot per pitch band.
    with contextlib.redirect_stdout(io.StringIO()):
        f_pitch = audio_to_pitch_features(f_audio=audio, Fs=sample_rate_hz,
                                          tuning_offset=tuning, feature_rate=FEATURE_RATE_FPS)
        f_peaks = audio_to_pitch_onset_features(f_audio=audio, Fs=sample_rate_hz,
                                                tuning_offset=tuning)
    n_frames = f_pitch.shape[1]
    dlnco = pitch_onset_features_to_DLNCO(f_peaks=f_peaks, feature_rate=FEATURE_RATE_FPS,
                                          feature_sequence_length=n_frames)
    # synctoolbox keeps a trailing axis on its peak arrays (2, k, 1): flatten to (2, k).
    peaks = {p: np.asarray(v, dtype=np.float64).reshape(2, -1) for p, v in f_peaks.items()}
    return Features(_chroma(f_pitch, n_frames), dlnco, peaks, log_pitch(f_pitch),
                    _dlnro(peaks, n_frames)), tuning


def pitch_filterbank(n_fft: int, sample_rate_hz: int, tuning_cents: float = 0.0) -> np.ndarray:
    """Triangular filters on the log-frequency axis, one per MIDI pitch 21..108.

    Filter ``p`` rises from pitch ``p - 1`` to 1 at ``p`` and falls to 0 at
    ``p + 1`` (in semitones, shifted by ``tuning_cents``); where no FFT bin
    falls inside (low pitches), the nearest bin takes the whole weight.

    Returns
    -------
    fb : np.ndarray [shape=(128, n_fft // 2 + 1)]
        Rows outside 21..108 are zero.
    """
    freqs = np.arange(n_fft // 2 + 1) * sample_rate_hz / n_fft
    with np.errstate(divide="ignore"):
        bin_pitch = 69 + 12 * np.log2(freqs / 440.0) - tuning_cents / 100
    fb = np.zeros((128, len(freqs)))
    for p in range(MIDI_MIN, MIDI_MAX + 1):
        w = np.clip(1 - np.abs(bin_pitch - p), 0, None)
        if not w.any():
            w[np.argmin(np.abs(bin_pitch - p))] = 1.0
        fb[p] = w
    return fb


def _band_energies(audio: np.ndarray, hop: int, n_fft: int, fb: np.ndarray) -> np.ndarray:
    """Energy per pitch band of centred Hann frames at samples ``k * hop``; (128, n) float32.

    Frame ``k`` covers samples ``k * hop - n_fft // 2 ...`` (zeros outside the
    audio).  Frames are transformed blockwise, so an hour of audio needs little memory.
    """
    import scipy.fft

    n = int(np.ceil(len(audio) / hop))
    pad = np.concatenate([np.zeros(n_fft // 2, np.float32), audio,
                          np.zeros(n_fft, np.float32)])
    frames = np.lib.stride_tricks.sliding_window_view(pad, n_fft)[::hop][:n]
    window = np.hanning(n_fft).astype(np.float32)
    used = np.flatnonzero(fb.any(axis=0))
    lo, hi = used[0], used[-1] + 1
    fb_used = np.ascontiguousarray(fb[:, lo:hi].T.astype(np.float32))
    out = np.empty((n, 128), dtype=np.float32)
    for b in range(0, n, BLOCK_FRAMES):
        spec = scipy.fft.rfft(frames[b:b + BLOCK_FRAMES] * window, axis=1, overwrite_x=True)
        # Squares of the interleaved real and imaginary parts: one temporary, not three.
        sq = np.ascontiguousarray(spec[:, lo:hi]).view(np.float32) ** 2
        out[b:b + BLOCK_FRAMES] = (sq[:, 0::2] + sq[:, 1::2]) @ fb_used
    return out.T


def _hop(sample_rate_hz: int, fps: int) -> int:
    if sample_rate_hz % fps:
        raise ValueError(f"{sample_rate_hz} Hz is not a whole number of samples per frame "
                         f"at {fps} fps")
    return sample_rate_hz // fps


def onset_novelty(audio: np.ndarray, sample_rate_hz: int,
                  tuning_cents: float = 0.0) -> np.ndarray:
    """Per pitch the rise of log band energy at ``ONSET_RATE_FPS``; (128, n), >= 0.

    Column ``k`` is the rise from frame ``k - 1`` to frame ``k`` and stands
    for time ``(k - 0.5) / ONSET_RATE_FPS`` seconds.
    """
    fb = pitch_filterbank(ONSET_WINDOW, sample_rate_hz, tuning_cents)
    energy = _band_energies(audio, _hop(sample_rate_hz, ONSET_RATE_FPS), ONSET_WINDOW, fb)
    log_e = np.log1p(1000.0 * energy / max(float(energy.max()), 1e-12))
    nov = np.zeros_like(log_e)
    nov[:, 1:] = np.maximum(np.diff(log_e, axis=1), 0)
    return nov


def novelty_peaks(novelty: np.ndarray, rel_threshold: float = 0.1) -> dict:
    """Onset peaks per pitch, in synctoolbox's form: ``{pitch: [[ms...], [height...]]}``.

    A peak is a local maximum of a pitch's novelty at least ``rel_threshold``
    times the largest novelty of all pitches; its time is refined by a
    parabola through the peak and its neighbours.
    """
    floor = rel_threshold * float(novelty.max()) if novelty.size else 0.0
    peaks = {}
    for p in range(MIDI_MIN, MIDI_MAX + 1):
        row = novelty[p]
        k, props = scipy.signal.find_peaks(row, height=max(floor, 1e-9))
        if not len(k):
            peaks[p] = np.zeros((2, 0))
            continue
        left = row[np.maximum(k - 1, 0)]
        right = row[np.minimum(k + 1, len(row) - 1)]
        denom = left - 2 * row[k] + right
        shift = np.where(denom < 0, 0.5 * (left - right) / np.where(denom < 0, denom, 1), 0)
        t_ms = (k + shift - 0.5) * 1000.0 / ONSET_RATE_FPS
        peaks[p] = np.array([t_ms, props["peak_heights"]])
    return peaks


def log_pitch(f_pitch: np.ndarray) -> np.ndarray:
    """``log(1 + 1000 e / max e)`` of pitch energies ``f_pitch`` (128 x n), rows 21..108; (88, n)."""
    e = f_pitch[MIDI_MIN:MIDI_MAX + 1]
    return np.log1p(LOG_PITCH_GAIN * e / max(float(e.max()), 1e-12)) if e.size else e


def _estimate_tuning(audio: np.ndarray, sample_rate_hz: int) -> int:
    """synctoolbox's ``estimate_tuning`` of the first 30 s (its defaults), cents."""
    from libfmp.c3 import compute_freq_distribution

    from .fast_features import tuning_of_distribution

    with np.errstate(divide="ignore", invalid="ignore"):
        v, _ = compute_freq_distribution(audio[: 30 * sample_rate_hz].astype(np.float64),
                                         sample_rate_hz, 16384, 100, True, True, 101)
    return tuning_of_distribution(v) if np.isfinite(v).all() else 0  # silence has no tuning


def audio_features(audio: np.ndarray, sample_rate_hz: int,
                   tuning_cents: int | None = None) -> tuple[Features, int]:
    """Features of mono audio from an STFT pitch filterbank, and the tuning offset (cents).

    Pitch energies come from 4096-sample Hann frames at 50 fps, onset peaks
    from 1024-sample frames at 150 fps; chroma quantization and DLNCO are
    synctoolbox's, as for note lists (DLNRO the same per register).  This replaces synctoolbox's IIR
    filterbank (:func:`iir_audio_features`) for speed: an hour of audio in
    seconds instead of minutes, at the same alignment accuracy (measured in
    ``benchmarks/bench_performed.py``).

    Parameters
    ----------
    audio : np.ndarray [shape=(n_samples,)]
        Mono audio, full scale +-1.
    sample_rate_hz : int
    tuning_cents : int, optional
        The tuning offset when known (a synthesized reference: 0); by
        default estimated by synctoolbox from the first 30 s.
    """
    audio = np.asarray(audio, dtype=np.float32)
    tuning = _estimate_tuning(audio, sample_rate_hz) if tuning_cents is None else tuning_cents
    f_pitch = pitch_energies(audio, sample_rate_hz, tuning)
    n_frames = f_pitch.shape[1]
    peaks = novelty_peaks(onset_novelty(audio, sample_rate_hz, tuning))
    return Features(_chroma(f_pitch, n_frames), _dlnco(peaks, n_frames), peaks,
                    log_pitch(f_pitch), _dlnro(peaks, n_frames)), tuning


def pitch_energies(audio: np.ndarray, sample_rate_hz: int, tuning_cents: float,
                   n_fft: int = CHROMA_WINDOW) -> np.ndarray:
    """Energy per MIDI pitch band of ``n_fft``-sample Hann frames at 50 fps; (128, n) float64."""
    fb = pitch_filterbank(n_fft, sample_rate_hz, tuning_cents)
    return _band_energies(np.asarray(audio, dtype=np.float32),
                          _hop(sample_rate_hz, FEATURE_RATE_FPS), n_fft,
                          fb).astype(np.float64)


def chroma_of(f_pitch: np.ndarray) -> np.ndarray:
    """Quantized chroma (12, n) of pitch energies ``f_pitch`` (128, n)."""
    return _chroma(f_pitch, f_pitch.shape[1])
