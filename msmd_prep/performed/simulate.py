"""Performances with a known truth, made from a score's notes: for tests and benchmarks.

A human-like MIDI performance (tempo curve, chord asynchrony, velocity
changes, left-out notes) and a degraded recording (reverb and noise), each
seeded by a ``numpy.random.Generator``, so that an alignment can be checked
against the exact onset every note was given.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.signal

from .features import Notes


@dataclass(frozen=True)
class Humanized:
    """A performance made from score notes, with the truth kept.

    Attributes
    ----------
    notes : Notes
        The performed notes, sorted by onset.
    source : np.ndarray [shape=(len(notes),), dtype=int64]
        Index of the score note each performed note plays.
    left_out : np.ndarray [dtype=int64]
        Indices of the score notes that were not played.
    """

    notes: Notes
    source: np.ndarray
    left_out: np.ndarray


def tempo_curve(end_s: float, rng: np.random.Generator, *, rubato: float = 0.2,
                period_s: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random tempo: matching score and performance times, both increasing.

    The local speed is ``base * (1 + rubato * sin(2 pi t / period + phase))``
    with ``base`` random in [0.9, 1.1]; performance time is its integral.
    Map a score time with ``np.interp(t, score_s, performance_s)``.

    Returns
    -------
    score_s, performance_s : np.ndarray [shape=(2001,)]
        From 0 to ``end_s + 1`` seconds of score time.
    """
    phase = rng.uniform(0, 2 * np.pi)
    base = rng.uniform(0.9, 1.1)
    grid = np.linspace(0, end_s + 1.0, 2001)
    speed = base * (1 + rubato * np.sin(2 * np.pi * grid / period_s + phase))
    elapsed = np.concatenate([[0.0], np.cumsum(np.diff(grid) / speed[1:])])
    return grid, elapsed


def humanize(score: Notes, rng: np.random.Generator, *, rubato: float = 0.2,
             asynchrony_s: float = 0.03, velocity_change: int = 25, leave_out: int = 1,
             lead_in_s: float = 0.5) -> Humanized:
    """Play ``score`` like a person: tempo curve, chord asynchrony, velocities, left-out notes.

    Parameters
    ----------
    score : Notes
    rng : numpy.random.Generator
    rubato : float
        Largest relative tempo change (0.2: +-20 %).
    asynchrony_s : float
        Each note of a chord starts up to this much before or after the chord's time.
    velocity_change : int
        Velocities change by up to this much (kept in 1..127).
    leave_out : int
        Score notes that are not played (never the first or the last).
    lead_in_s : float
        Silence before the first note, seconds.
    """
    grid, elapsed = tempo_curve(score.end_s, rng, rubato=rubato)
    warped = np.interp(score.onset_s, grid, elapsed) + lead_in_s
    ends = np.interp(score.onset_s + score.duration_s, grid, elapsed) + lead_in_s
    duration = np.maximum(ends - warped, 0.05)
    onset = warped + rng.uniform(-asynchrony_s, asynchrony_s, len(score))
    onset = np.maximum(onset, 0.0)
    velocity = np.clip(score.velocity + rng.integers(-velocity_change, velocity_change + 1,
                                                      len(score)), 1, 127)
    inner = np.arange(1, len(score) - 1)
    left_out = np.sort(rng.choice(inner, size=min(leave_out, len(inner)), replace=False))
    played = np.setdiff1d(np.arange(len(score)), left_out)
    order = played[np.argsort(onset[played], kind="stable")]
    notes = Notes(onset[order], duration[order], score.pitch[order], velocity[order])
    return Humanized(notes, order, left_out)


def reverb_and_noise(audio: np.ndarray, sample_rate_hz: int, rng: np.random.Generator, *,
                     rt60_s: float = 1.2, wet: float = 0.5, snr_db: float = 20.0) -> np.ndarray:
    """A room and a noisy microphone: convolution with a decaying-noise impulse response plus noise.

    Parameters
    ----------
    audio : np.ndarray [shape=(n,)]
        Mono audio.
    rt60_s : float
        Reverberation time (60 dB decay), seconds.
    wet : float
        Level of the reverberant part relative to the direct sound (RMS).
    snr_db : float
        Signal-to-noise ratio of the added white noise, dB.

    Returns
    -------
    out : np.ndarray [shape=(n,), dtype=float32]
        Peak normalized to 0.9.
    """
    n_ir = int(rt60_s * sample_rate_hz)
    t = np.arange(n_ir) / sample_rate_hz
    ir = rng.standard_normal(n_ir) * 10 ** (-3 * t / rt60_s)
    ir[0] = 0.0
    tail = scipy.signal.fftconvolve(audio, ir)[: len(audio)]
    rms = lambda x: float(np.sqrt(np.mean(x ** 2))) or 1.0
    mix = audio + wet * tail * rms(audio) / rms(tail)
    noise = rng.standard_normal(len(mix)) * rms(mix) * 10 ** (-snr_db / 20)
    out = mix + noise
    return (0.9 * out / max(float(np.max(np.abs(out))), 1e-9)).astype(np.float32)
