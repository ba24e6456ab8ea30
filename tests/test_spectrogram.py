"""Log-filterbank spectrograms: filterbank size, framing, frame convention, determinism."""
from __future__ import annotations

import math
from dataclasses import asdict
from fractions import Fraction

import numpy as np
import pytest

from msmd_prep.errors import ConfigError
from msmd_prep.spectrogram import (PRESETS, SpectrogramConfig, frame_positions, load_preset,
                                   log_frequencies, log_spectrogram, n_frames, time_to_frames)

SR = 22050


def sine(freq_hz: float, duration_s: float = 1.0) -> np.ndarray:
    t = np.arange(int(duration_s * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


@pytest.mark.parametrize("config, bins", [
    (PRESETS["default"], 136),
    (PRESETS["msmd"], 92),
    # The "80 Hz - 8 kHz" of the papers gives 132 with this construction.
    (SpectrogramConfig(fmin_hz=80.0), 132),
])
def test_bin_counts(config, bins):
    assert config.n_bins == bins
    assert log_spectrogram(sine(440.0), config).shape[0] == bins


def test_filters_are_unit_area_and_ascending():
    fb = PRESETS["default"].filterbank()
    np.testing.assert_allclose(fb.sum(axis=0), 1.0, rtol=1e-5)
    peaks = fb.argmax(axis=0)
    assert np.all(np.diff(peaks) > 0)


def test_log_frequencies_follow_the_tuning():
    freqs = log_frequencies(12, 100.0, 1000.0)
    assert freqs[0] >= 100.0 and freqs[-1] <= 1000.0
    assert 440.0 in freqs
    np.testing.assert_allclose(np.diff(np.log2(freqs)), 1 / 12)


@pytest.mark.parametrize("preset", ["default", "msmd"])
@pytest.mark.parametrize("freq_hz", [65.0, 110.0, 440.0, 1000.0, 2500.0, 5000.0])
def test_sine_peaks_in_a_band_containing_its_frequency(preset, freq_hz):
    cfg = PRESETS[preset]
    spec = log_spectrogram(sine(freq_hz), cfg)
    peak_band = int(spec[:, 5:-5].mean(axis=1).argmax())
    nearest_bin = round(freq_hz * cfg.frame_size_samples / SR)
    assert cfg.filterbank()[nearest_bin, peak_band] > 0


@pytest.mark.parametrize("preset", ["default", "msmd"])
@pytest.mark.parametrize("n_samples", [1, 705, 706, 1102, 1103, 22050, 22051, 3 * 60 * SR + 17])
def test_frame_count_against_duration(preset, n_samples):
    cfg = PRESETS[preset]
    expected = math.ceil(Fraction(n_samples) / SR * Fraction(cfg.frame_rate_fps))
    assert n_frames(n_samples, sample_rate_hz=SR, frame_rate_fps=cfg.frame_rate_fps) == expected
    audio = np.zeros(n_samples, dtype=np.float32)
    assert log_spectrogram(audio, cfg).shape[1] == expected


def test_fractional_hop_does_not_drift():
    count = 1_000_001
    pos = frame_positions(count, sample_rate_hz=SR, frame_rate_fps=31.25)
    assert pos[1] == 706 and pos[2] == 1411 and pos[3] == 2117
    # Every 5 frames are exactly 3528 samples, however far.
    assert np.all(pos[::5] == 3528 * np.arange(len(pos[::5])))
    exact = [math.floor(Fraction(i) * Fraction(3528, 5) + Fraction(1, 2)) for i in (7, 999_999)]
    assert [pos[7], pos[999_999]] == exact
    # The msmd hop of 1102.5 samples: halves round up.
    msmd = frame_positions(4, sample_rate_hz=SR, frame_rate_fps=20.0)
    assert list(msmd) == [0, 1103, 2205, 3308]


@pytest.mark.parametrize("fps", [31.25, 20.0])
def test_onset_frame_convention(fps):
    assert time_to_frames(0.0, frame_rate_fps=fps) == 0
    for k in (1, 7, 1000, 12345):
        assert time_to_frames(k / fps, frame_rate_fps=fps) == k
        assert time_to_frames(k / fps + 1e-4, frame_rate_fps=fps) == k + 1
        assert time_to_frames(k / fps - 1e-4, frame_rate_fps=fps) == k
    np.testing.assert_array_equal(time_to_frames(np.array([0.01, 0.05]), frame_rate_fps=20.0),
                                  [1, 1])


def test_onset_frame_is_the_first_frame_starting_at_or_after_the_onset():
    cfg = PRESETS["default"]
    onset_s = 1.0
    audio = np.zeros(2 * SR, dtype=np.float32)
    start = round(onset_s * SR)
    audio[start:] = sine(1000.0, 1.0)[: len(audio) - start]
    spec = log_spectrogram(audio, cfg)
    k = int(time_to_frames(onset_s, frame_rate_fps=cfg.frame_rate_fps))
    first_start = frame_positions(k + 1, sample_rate_hz=SR, frame_rate_fps=cfg.frame_rate_fps)
    assert first_start[k - 1] < start <= first_start[k]
    # Frame k lies wholly after the onset; frames ending before it are silent.
    window_frames = cfg.frame_size_samples * cfg.frame_rate_fps / SR
    assert spec[:, k].max() > 0.5 * spec.max()
    assert spec[:, : k - math.ceil(window_frames)].max() == 0


def test_center_origin_shifts_frames_by_half_a_window():
    audio = np.zeros(SR, dtype=np.float32)
    audio[10_000] = 1.0
    start = log_spectrogram(audio, PRESETS["default"])
    center = log_spectrogram(audio, SpectrogramConfig(frame_origin="center"))
    assert start.shape == center.shape
    lit_start = np.nonzero(start.max(axis=0))[0]
    lit_center = np.nonzero(center.max(axis=0))[0]
    assert lit_center.mean() == pytest.approx(lit_start.mean() + 1024 / 705.6, abs=1)


def test_spectrograms_are_identical_across_runs():
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(10 * SR)).astype(np.float32)
    for cfg in PRESETS.values():
        first = log_spectrogram(audio, cfg)
        assert first.dtype == np.float32
        assert np.array_equal(first, log_spectrogram(audio.copy(), cfg))


def test_log_choice():
    audio = sine(440.0)
    log10 = log_spectrogram(audio, PRESETS["default"])
    ln = log_spectrogram(audio, SpectrogramConfig(log="ln"))
    np.testing.assert_allclose(ln, log10 * np.log(10), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kwargs", [
    {"frame_size_samples": 2047}, {"frame_rate_fps": 0.0}, {"frame_rate_fps": math.pi},
    {"fmin_hz": 9000.0}, {"fmax_hz": 12000.0}, {"frame_origin": "end"}, {"log": "log2"},
    {"bands_per_octave": 0},
])
def test_config_is_validated(kwargs):
    with pytest.raises(ConfigError):
        SpectrogramConfig(**kwargs)


def test_presets_from_yaml(tmp_path):
    path = tmp_path / "fast.yaml"
    path.write_text("frame_rate_fps: 25\nbands_per_octave: 12\n")
    name, cfg = load_preset(str(path))
    assert name == "fast" and cfg.frame_rate_fps == 25 and cfg.bands_per_octave == 12
    path.write_text("hop: 3\n")
    with pytest.raises(ConfigError, match="unknown spectrogram parameters"):
        load_preset(str(path))
    with pytest.raises(ConfigError, match="unknown spectrogram preset"):
        load_preset("nosuch")


def test_the_shared_filterbank_is_the_one_built_from_scratch_and_cannot_be_changed():
    from msmd_prep.spectrogram import _shared_filterbank, logarithmic_filterbank

    _shared_filterbank.cache_clear()
    audio = sine(440.0) + sine(1234.0)
    first = log_spectrogram(audio, PRESETS["msmd"])      # builds the msmd filters
    for cfg in (PRESETS["default"], PRESETS["msmd"], SpectrogramConfig(fmin_hz=80.0)):
        fresh = logarithmic_filterbank(
            sample_rate_hz=cfg.sample_rate_hz, frame_size_samples=cfg.frame_size_samples,
            bands_per_octave=cfg.bands_per_octave, fmin_hz=cfg.fmin_hz, fmax_hz=cfg.fmax_hz,
            fref_hz=cfg.fref_hz)
        shared = cfg.filterbank()
        assert shared.dtype == fresh.dtype and shared.tobytes() == fresh.tobytes()
        assert SpectrogramConfig.from_mapping(asdict(cfg)).filterbank() is shared
        with pytest.raises(ValueError):
            shared[0, 0] = 1.0
    assert PRESETS["msmd"].filterbank().shape[1] == 92
    assert PRESETS["default"].filterbank().shape[1] == 136
    assert log_spectrogram(audio, PRESETS["msmd"]).tobytes() == first.tobytes()
