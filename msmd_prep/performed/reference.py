"""A synthesized reference: the score played deadpan by FluidSynth, as the score side of a recording's alignment.

The score's own note list has no timbre: its pitch energies are the notes
alone, while a recording's carry the instrument's overtones and decays.
Played by FluidSynth and put through the same pitch filterbank as the
recording (:func:`features.audio_features`), the score side has them too.

The reference is played at 16 kHz, not the recordings' 22.05 kHz: the pitch
bands end at 4.4 kHz, and what FluidSynth folds below 4.4 kHz at 16 kHz
lies above 11.6 kHz, where a 22.05 kHz rendering has nothing either.  Its
frames are 3000 samples (188 ms, about the recordings' 4096 at 22.05 kHz).
That took about a third less time to play and a half less to analyse; ASAP
beats within 100 ms: +1 to +6 per seed and condition on dev seeds 7 and 11,
-2 to +7 on the held-out seeds 0 and 3 (the note of issue 15, session 6).
"""
from __future__ import annotations

import functools

import numpy as np
import scipy.fft

from ..score import NoteEvent, Performance, sort_events
from ..synth import Synthesizer, SynthConfig
from .dtw import SCORE_PAD_S
from .features import (CHROMA_WINDOW, Features, Notes, chroma_of, log_pitch, note_features,
                       pitch_energies)

# Shortest note the reference plays, seconds (FluidSynth needs a note-off after the note-on).
MIN_DURATION_S = 0.01
# Sample rate the reference is played and analysed at, Hz.
REFERENCE_RATE_HZ = 16000


@functools.cache
def reference_synth(soundfont: str) -> Synthesizer:
    """The synthesizer that plays references with ``soundfont`` (a manifest name or a path),
    at ``REFERENCE_RATE_HZ``.

    Loaded once per process and kept (as the dataset job keeps its synthesizers).
    """
    from ..soundfonts import resolve_soundfont

    rate = REFERENCE_RATE_HZ
    return Synthesizer(resolve_soundfont(soundfont),
                       SynthConfig(sample_rate_hz=rate, synth_rate_hz=rate))


def frame_samples(sample_rate_hz: int) -> int:
    """Pitch-energy frame length at a rate: the recordings' ``CHROMA_WINDOW`` at 22.05 kHz
    in time, rounded up to a fast FFT length (16 kHz: 3000)."""
    return scipy.fft.next_fast_len(round(CHROMA_WINDOW * sample_rate_hz / 22050), real=True)


def reference_audio(score: Notes, synth: Synthesizer, pad_s: float = SCORE_PAD_S) -> np.ndarray:
    """The score played by ``synth``, ``pad_s`` seconds of silence before it and at least after it.

    Returns
    -------
    audio : np.ndarray [shape=(n_samples,), dtype=float32]
        Mono, at ``synth.config.sample_rate_hz``; sample ``k`` is score time
        ``k / rate - pad_s``.
    """
    events = sort_events([NoteEvent(float(o + pad_s), float(max(d, MIN_DURATION_S)), int(p),
                                    int(v), f"r{i}")
                          for i, (o, d, p, v) in enumerate(zip(score.onset_s, score.duration_s,
                                                                 score.pitch, score.velocity))])
    rate = synth.config.sample_rate_hz
    audio = synth.render(Performance(events)).audio
    n = int(np.ceil((score.end_s + 2 * pad_s) * rate))
    return np.pad(audio, (0, max(n - len(audio), 0)))


def reference_features(score: Notes, synth: Synthesizer,
                       pad_s: float = SCORE_PAD_S) -> Features:
    """Features of :func:`reference_audio` (frame ``i`` is score time ``i / fps - pad_s``).

    Chroma and log pitch energies come from the reference's audio (tuning 0:
    FluidSynth plays at A = 440 Hz); its DLNCO and DLNRO onset features from the
    score's note list, whose onsets are the reference's own (which saves
    the onset analysis of the reference, a third of its features' time, at
    the same accuracy on ASAP: the note of issue 15, session 3).  No onset
    peaks: the refinement looks for onsets in the recording only.
    """
    rate = synth.config.sample_rate_hz
    f_pitch = pitch_energies(reference_audio(score, synth, pad_s), rate, 0, frame_samples(rate))
    n_frames = f_pitch.shape[1]
    padded = Notes(score.onset_s + pad_s, score.duration_s, score.pitch, score.velocity)
    onsets = note_features(padded, n_frames)
    return Features(chroma_of(f_pitch), onsets.dlnco, {}, log_pitch(f_pitch), onsets.dlnro)
