"""Benchmark: msmd-prep's spectrogram against librosa.stft with the same filterbank.

Both compute the default 136-bin log-filterbank spectrogram of three minutes
of 22.05 kHz audio:

* baseline: ``librosa.stft`` (Hann window of 2048, integer hop 706,
  ``center=False``), magnitude, the same filterbank matrix, ``log10(1 + x)``;
* msmd-prep: :func:`msmd_prep.spectrogram.log_spectrogram` with the exact
  fractional hop of 705.6 samples (filterbank built inside the call).

Prints median wall times and the ratio msmd-prep / librosa (below 1:
msmd-prep is faster).  Run: ``python benchmarks/bench_spectrogram.py``
(needs librosa, in the ``dev`` extra).
"""
from __future__ import annotations


import librosa
import numpy as np

from msmd_prep.spectrogram import PRESETS, log_spectrogram
from timing import interleaved_medians

SR = 22050
DURATION_S = 180.0
RUNS = 7


def main() -> None:
    cfg = PRESETS["default"]
    audio = (0.1 * np.random.default_rng(0).standard_normal(int(DURATION_S * SR))).astype(
        np.float32)
    # librosa keeps the Nyquist bin, which the filterbank does not use.
    fb = np.vstack([cfg.filterbank(), np.zeros((1, cfg.n_bins), np.float32)])

    def baseline() -> np.ndarray:
        mag = np.abs(librosa.stft(audio, n_fft=2048, hop_length=706, window="hann",
                                  center=False))
        return np.log10(1 + fb.T @ mag)

    def ours() -> np.ndarray:
        return log_spectrogram(audio, cfg)

    t = interleaved_medians({"librosa": baseline, "ours": ours}, RUNS)
    t_lib, t_ours = t["librosa"], t["ours"]
    print(f"{DURATION_S:.0f} s of audio, {cfg.n_bins} bins, median of {RUNS} runs")
    print(f"librosa.stft + filterbank {t_lib * 1000:7.1f} ms ({baseline().shape[1]} frames)")
    print(f"msmd-prep log_spectrogram {t_ours * 1000:7.1f} ms ({ours().shape[1]} frames)")
    print(f"ratio msmd-prep / librosa: {t_ours / t_lib:.2f}")


if __name__ == "__main__":
    main()
