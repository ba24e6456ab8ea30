"""Synth straight into spectrograms: the same files as synth, spectrogram and removing the audio."""
from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile

import msmd_prep.synth as synth_module
from msmd_prep.errors import InputError
from msmd_prep.score import NoteEvent, Performance, write_performance_csv
from msmd_prep.soundfonts import resolve_soundfont
from msmd_prep.spectrogram import PRESETS, spectrogram_performance
from msmd_prep.synth import (Synthesizer, flac_bytes, flac_decoded, performance_id,
                             synthesize_performance)
from msmd_prep.synth_spectrogram import synthesize_spectrograms

SR = 22050
PRESETS_USED = {"msmd": PRESETS["msmd"], "default": PRESETS["default"]}


@pytest.fixture(scope="module")
def synth():
    with Synthesizer(resolve_soundfont("timgm6mb")) as s:
        yield s


def performance() -> Performance:
    """A melody over loud chords."""
    events = [NoteEvent(0.2 + 0.3 * i, 0.5, 60 + (5 * i) % 19, 40 + (13 * i) % 87, f"h{i}")
              for i in range(12)]
    events += [NoteEvent(0.2 + 0.9 * j, 0.8, p, 127, f"c{j}_{p}")
               for j in range(4) for p in (36, 43, 48)]
    return Performance(tuple(sorted(events, key=lambda e: e.onset_s)))


def piece(root: Path) -> Path:
    root.mkdir(parents=True)
    write_performance_csv(performance(), root / "performance.csv")
    (root / "piece.json").write_text(json.dumps({"status": "ok"}))
    return root


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_flac_decoded_is_what_the_flac_file_reads_back_as(synth):
    audio = synth.render(performance()).audio
    assert np.abs(audio).max() > 0.05
    # Every rounding case: halves of a 16-bit step of both signs, and the range's ends.
    ties = (np.arange(-32768, 32768) + 0.5) / 32768
    edges = [-1.0, -0.99999, 0.99999, 1.0 - 2.0 ** -24, 0.0]
    for samples in (audio, np.concatenate([ties, edges]).astype(np.float32)):
        decoded, _ = soundfile.read(io.BytesIO(flac_bytes(samples, SR)), dtype="float32")
        assert flac_decoded(samples, SR).dtype == np.float32
        assert np.array_equal(flac_decoded(samples, SR), decoded)


def test_flac_decoded_falls_back_to_the_round_trip(monkeypatch, synth):
    audio = synth.render(performance()).audio
    expected = flac_decoded(audio, SR)
    monkeypatch.setattr(synth_module, "_pcm16_is_flac", lambda: False)
    assert np.array_equal(flac_decoded(audio, SR), expected)


def test_same_files_as_synth_then_spectrogram_without_audio(tmp_path, synth):
    two_step, direct = piece(tmp_path / "a" / "p"), piece(tmp_path / "b" / "p")
    for factor in (0.8, 1.0):
        perf_id = performance_id(synth.soundfont.name, factor)
        assert synthesize_performance(synth, two_step, factor)
        assert spectrogram_performance(two_step / "performances" / perf_id, PRESETS_USED,
                                       keep_audio=False) == (2, 0)
        assert synthesize_spectrograms(synth, direct, factor, PRESETS_USED)
        made = files(direct / "performances" / perf_id)
        assert made == files(two_step / "performances" / perf_id)
        assert "audio.flac" not in made and {"spec-msmd.npy", "spec-default.json"} <= set(made)
        assert json.loads(made["performance.json"])["audio_removed"] is True


def test_reruns_skip_and_a_killed_performance_is_played_again(tmp_path, synth):
    p = piece(tmp_path / "p")
    perf_dir = p / "performances" / performance_id(synth.soundfont.name, 1.2)
    assert synthesize_spectrograms(synth, p, 1.2, PRESETS_USED)
    done = files(perf_dir)
    # Up to date for both paths.
    assert not synthesize_spectrograms(synth, p, 1.2, PRESETS_USED)
    assert not synthesize_performance(synth, p, 1.2)
    assert spectrogram_performance(perf_dir, PRESETS_USED, keep_audio=False) == (0, 2)
    # Killed before its manifest: played again, to the same bytes.
    (perf_dir / "performance.json").unlink()
    (perf_dir / "spec-msmd.npy").write_bytes(b"half")
    assert synthesize_spectrograms(synth, p, 1.2, PRESETS_USED)
    assert files(perf_dir) == done
    # An audio file an earlier --keep-audio run left goes with its old manifest.
    (perf_dir / "performance.json").unlink()
    assert synthesize_performance(synth, p, 1.2)
    (perf_dir / "performance.json").unlink()
    assert synthesize_spectrograms(synth, p, 1.2, PRESETS_USED)
    assert files(perf_dir) == done


def test_a_preset_at_another_rate_is_an_input_error(tmp_path, synth):
    p = piece(tmp_path / "p")
    other = {"msmd": replace(PRESETS["msmd"], sample_rate_hz=44100)}
    with pytest.raises(InputError, match="needs 44100 Hz"):
        synthesize_spectrograms(synth, p, 1.0, other)
    assert not (p / "performances" / performance_id(synth.soundfont.name, 1.0)
                / "performance.json").exists()
