"""Synth straight into spectrograms, for runs that do not keep the audio.

``msmd-prep dataset`` without ``--keep-audio`` used to write every
performance's FLAC file, read it back for its spectrogram and delete it:
about 0.45 CPU s per 400 s of audio for the encode and the decode, a fifth
of the synth and spectrogram stages.  Here the spectrogram is computed from
the samples the FLAC file would have decoded to
(:func:`msmd_prep.synth.flac_decoded`), so every file left in the
performance folder has the same bytes as after
:func:`msmd_prep.synth.synthesize_performance` followed by
:func:`msmd_prep.spectrogram.spectrogram_performance` with
``keep_audio=False``, and no audio file is written.

``performance.json`` is written last.  A run killed before it leaves a
performance that the next run plays again, whichever path it takes.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .errors import InputError
from .spectrogram import SpectrogramConfig, spectrogram_input_hash, write_spectrogram
from .synth import (AUDIO_NAME, ONSETS_NAME, PERFORMANCE_JSON, Synthesizer, flac_decoded,
                    play_performance, write_onsets_csv)
from .workdir import write_json_atomic


def synthesize_spectrograms(synth: Synthesizer, piece: Path, tempo_factor: float,
                            presets: Mapping[str, SpectrogramConfig]) -> bool:
    """Play one performance of ``piece`` and write its spectrograms, without its audio.

    Does nothing when the synthesis is up to date (its spectrograms are then
    :func:`msmd_prep.spectrogram.spectrogram_performance`'s business).

    Returns
    -------
    done : bool
        ``True`` if it was played, ``False`` if it was up to date.

    Raises
    ------
    InputError
        ``performance.csv`` is unusable, the audio would clip, or a preset
        wants another sample rate.
    """
    played = play_performance(synth, piece, tempo_factor)
    if played is None:
        return False
    out, rendering = played.out, played.rendering
    for name, cfg in presets.items():
        if cfg.sample_rate_hz != rendering.sample_rate_hz:
            raise InputError(f"{out}: the synth makes {rendering.sample_rate_hz} Hz, preset "
                             f"{name!r} needs {cfg.sample_rate_hz} Hz")
    out.mkdir(parents=True, exist_ok=True)
    # The old manifest goes before its data is replaced; the new one comes last.
    (out / PERFORMANCE_JSON).unlink(missing_ok=True)
    (out / AUDIO_NAME).unlink(missing_ok=True)
    write_onsets_csv(rendering.onsets, out / ONSETS_NAME)
    audio = flac_decoded(rendering.audio, rendering.sample_rate_hz)
    input_hash = spectrogram_input_hash(played.manifest)
    for name, cfg in presets.items():
        write_spectrogram(out, name, cfg, audio, input_hash=input_hash)
    write_json_atomic(out / PERFORMANCE_JSON, played.manifest | {"audio_removed": True})
    return True
