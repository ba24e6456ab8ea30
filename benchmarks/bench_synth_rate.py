"""Synthesis at 22.05 kHz directly against 44.1 kHz and resampling: speed, spectrograms, onsets.

For each SoundFont found, the same performances are rendered twice with
:class:`msmd_prep.synth.Synthesizer`:

* ``44.1k``: ``SynthConfig(synth_rate_hz=44100)`` (FluidSynth at 44.1 kHz,
  the mono mix resampled to 22.05 kHz by ``scipy.signal.resample_poly``);
* ``22.05k``: ``SynthConfig(synth_rate_hz=22050)`` (FluidSynth at the
  output rate, no resampling).

Printed per SoundFont:

* render time of a three-minute piano texture (median of a few interleaved
  runs) and the ratio 22.05k / 44.1k;
* how far the two spectrograms (presets ``msmd`` and ``default``) are apart:
  the mean and the 99.9th percentile of ``|S_22 - S_44|`` over all bins and
  frames, against the mean level of ``S_44`` (the aliasing that rendering at
  the lower rate lets in lands above ``sample_rate - fmax`` only if the
  SoundFont's samples carry content there);
* onsets: one-note performances at random times; the recorded onset
  against the requested time (in blocks of FluidSynth's 64-sample grid at
  that rate), the audible start (first sample above -60 dB of the note's
  peak) against the recorded onset, and the audible start at 22.05 kHz
  against the one at 44.1 kHz.

Run: ``python benchmarks/bench_synth_rate.py``.  Timings on a shared machine
are noisy; the ratio is measured within one run.
"""
from __future__ import annotations

import numpy as np

from msmd_prep.score import NoteEvent, Performance, sort_events
from msmd_prep.soundfonts import load_manifest, resolve_soundfont
from msmd_prep.spectrogram import PRESETS, log_spectrogram
from msmd_prep.synth import BLOCK_SAMPLES, SynthConfig, Synthesizer
from timing import interleaved_medians

RATES = (44100, 22050)
DURATION_S = 180.0
RUNS = 3


def piano_piece(duration_s: float, seed: int = 0) -> Performance:
    """A melody in eighths over three-note chords, 120 bpm (as bench_synth)."""
    rng = np.random.default_rng(seed)
    events = []
    for i in range(int(duration_s * 4)):
        t = i * 0.25
        events.append(NoteEvent(t, 0.25, int(rng.integers(60, 84)), int(rng.integers(50, 100)),
                                f"m{i}"))
        if i % 4 == 0:
            root = int(rng.integers(36, 52))
            for k, step in enumerate((0, 4, 7)):
                events.append(NoteEvent(t, 1.0, root + step, 60, f"c{i}_{k}"))
    return Performance(sort_events(events))


def single_notes(n: int, seed: int = 1) -> list[Performance]:
    """``n`` one-note performances, each note at a random time in [0.2, 0.21) s."""
    rng = np.random.default_rng(seed)
    return [Performance((NoteEvent(0.2 + float(rng.uniform(0, 0.01)), 0.3,
                                   int(rng.integers(40, 90)), 90, f"n{i}"),))
            for i in range(n)]


def onset_errors(synth: Synthesizer, notes: list[Performance]) -> tuple[np.ndarray, np.ndarray]:
    """Per note: audible start - recorded onset, and recorded - requested onset, seconds.

    The audible start is the first sample of the (silent before the note)
    audio above -60 dB of the note's peak.
    """
    audible, placed = [], []
    for perf in notes:
        r = synth.render(perf)
        a = np.abs(r.audio)
        start = int(np.nonzero(a > a.max() * 1e-3)[0][0]) / r.sample_rate_hz
        audible.append(start - r.onsets[0][1])
        placed.append(r.onsets[0][1] - perf.events[0].onset_s)
    return np.array(audible), np.array(placed)


def main() -> None:
    names = [n for n, e in load_manifest().items() if e.locate() is not None]
    texture, notes = piano_piece(DURATION_S), single_notes(40)
    print(f"texture {len(texture.events)} notes, {texture.duration_s:.0f} s; "
          f"{len(notes)} single notes; median of {RUNS} interleaved runs")
    for name in names:
        sf = resolve_soundfont(name)
        synths = {r: Synthesizer(sf, SynthConfig(synth_rate_hz=r)) for r in RATES}
        try:
            times = interleaved_medians(
                {r: (lambda s=s: s.render(texture)) for r, s in synths.items()}, RUNS)
            renders = {r: s.render(texture).audio for r, s in synths.items()}
            n = min(len(a) for a in renders.values())
            line = [f"{name:18s} render 44.1k {times[44100]:5.2f} s, 22.05k "
                    f"{times[22050]:5.2f} s, ratio {times[22050] / times[44100]:.2f}"]
            for preset in ("msmd", "default"):
                s44, s22 = (log_spectrogram(renders[r][:n], PRESETS[preset]) for r in RATES)
                diff = np.abs(s22 - s44)
                line.append(f"{preset}: |dS| mean {diff.mean():.4f} p99.9 "
                            f"{np.quantile(diff, 0.999):.4f} (mean S {s44.mean():.3f})")
            print("; ".join(line))
            audible = {}
            for r, s in synths.items():
                audible[r], placed = onset_errors(s, notes)
                block_ms = BLOCK_SAMPLES / r * 1e3
                print(f"{'':18s} {r / 1000:5.2f} kHz: recorded - requested onset |max| "
                      f"{np.abs(placed).max() * 1e3:.2f} ms ({np.abs(placed).max() * 1e3 / block_ms:.2f} "
                      f"blocks of {block_ms:.2f} ms); audible - recorded {audible[r].min() * 1e3:+.2f} .. "
                      f"{audible[r].max() * 1e3:+.2f} ms")
            gap = (audible[22050] - audible[44100]) * 1e3
            print(f"{'':18s} audible start 22.05k - 44.1k per note: {gap.min():+.2f} .. "
                  f"{gap.max():+.2f} ms")
        finally:
            for s in synths.values():
                s.close()


if __name__ == "__main__":
    main()
