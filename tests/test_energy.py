"""The ``energy`` self-check flags wrong onsets, not soft ones (issue 11).

The fixture reproduces the false positives of Mutopia pieces with FluidR3's
piano: a soft fast melody from C6 up over loud bass octaves.  FluidR3 plays
its upper register 5-16 dB quieter, so against the piece's loudest part the
melody looked silent; its attacks are plain in the spectrogram.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from msmd_prep.align import read_alignment_csv
from msmd_prep.checks import check_onset_energy, pitch_bands
from msmd_prep.dataset import build_dataset
from msmd_prep.packing.snippets import PackConfig
from msmd_prep.render import RenderConfig
from msmd_prep.soundfonts import load_manifest
from msmd_prep.spectrogram import (PRESETS, fft_frequencies, last_frame_before,
                                   time_to_frames)
from msmd_prep.synth import SynthConfig

SOFT_HIGH = r"""\version "2.24.0"
\header { tagline = ##f }
\score {
  \new PianoStaff <<
    \new Staff \relative c''' { \clef treble \tempo 4 = 132 \p
      \repeat unfold 4 { c16 d e f g f e d c d e f g a b c } }
    \new Staff \relative c, { \clef bass \ff
      \repeat unfold 4 { <c c'>4 <g' g'> <c, c'> <g' g'> } }
  >>
  \layout { }
}
"""


def _soundfonts() -> list[str]:
    return ["timgm6mb"] + [n for n in ("fluidr3_gm", "musescore_general")
                           if load_manifest()[n].locate() is not None]


@pytest.fixture(scope="module")
def soft_high(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("soft-high")
    (out / "soft_high.ly").write_text(SOFT_HIGH)
    result = build_dataset([out / "soft_high.ly"], out, render_config=RenderConfig(dpi=100),
                           tempo_factors=[1.0, 1.2], soundfonts=_soundfonts(),
                           synth_config=SynthConfig(), keep_audio=False,
                           pack_config=PackConfig(include_flagged=True))
    assert not result.failures, result.failures
    return out / "work" / "soft_high"


@pytest.mark.parametrize("soundfont", ["timgm6mb", "fluidr3_gm", "musescore_general"])
@pytest.mark.parametrize("tempo", ["1.00", "1.20"])
def test_soft_high_notes_over_loud_bass_pass(soft_high, soundfont, tempo):
    if soundfont not in _soundfonts():
        pytest.skip(f"{soundfont} is not installed (make soundfonts)")
    info = json.loads((soft_high / "performances" / f"{soundfont}_t{tempo}" /
                       "alignment.json").read_text())
    assert info["checks"]["energy"]["passed"], info["checks"]["energy"]


def _check(perf_dir: Path, *, shift_s: float = 0.0, transpose: int = 0, shuffle: bool = False):
    cfg = PRESETS["msmd"]
    rows = read_alignment_csv(perf_dir / "alignment.csv")
    pitches = np.array([r.pitch for r in rows]) + transpose
    if shuffle:
        pitches = np.random.default_rng(0).permutation(pitches)
    times = np.array([r.onset_s for r in rows]) + shift_s
    bands = pitch_bands(pitches, cfg.filterbank(),
                        fft_frequencies(sample_rate_hz=cfg.sample_rate_hz,
                                        frame_size_samples=cfg.frame_size_samples))
    return check_onset_energy(bands, time_to_frames(times, frame_rate_fps=cfg.frame_rate_fps),
                              last_frame_before(times, cfg),
                              np.load(perf_dir / "spec-msmd.npy"))


@pytest.mark.parametrize("soundfont", ["timgm6mb", "fluidr3_gm"])
@pytest.mark.parametrize("wrong", [{"shift_s": 0.2}, {"shift_s": -0.3}, {"transpose": 6},
                                   {"shuffle": True}])
def test_onsets_at_wrong_times_or_pitches_fail(soft_high, soundfont, wrong):
    if soundfont not in _soundfonts():
        pytest.skip(f"{soundfont} is not installed (make soundfonts)")
    perf_dir = soft_high / "performances" / f"{soundfont}_t1.00"
    assert _check(perf_dir).passed
    assert not _check(perf_dir, **wrong).passed


def test_last_frame_before_hears_nothing_of_the_onset():
    cfg = PRESETS["default"]
    window_s = cfg.frame_size_samples / cfg.sample_rate_hz
    for t in (0.0, 0.05, 0.1, 0.5, 1.234, 10.0):
        k = int(last_frame_before(t, cfg))
        assert k / cfg.frame_rate_fps + window_s <= t + 1e-9
        assert (k + 1) / cfg.frame_rate_fps + window_s > t
