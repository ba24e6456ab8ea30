"""Benchmark: msmd-prep's synth stage against the fluidsynth command line.

Both play the same three-minute piano performance with the same SoundFont:

* raw tool: ``fluidsynth -ni -F out.wav SF MID``, one process per file, as a
  batch script would run it (it loads the SoundFont every time);
* msmd-prep: :func:`msmd_prep.synth.synthesize_performance`, the whole
  per-performance path (read ``performance.csv``, render, resample, write
  FLAC, onsets and ``performance.json``), "batch" on a synth that is already
  loaded, as the stage runs, and "cold", loading the SoundFont first.

The fluidsynth CLI also runs its reverb and chorus, which msmd-prep turns
off; it writes 44.1 kHz stereo WAV where msmd-prep writes 22.05 kHz mono FLAC.

Prints median wall times of a few runs and the ratio msmd-prep / fluidsynth
(below 1: msmd-prep is faster).  Run: ``python benchmarks/bench_synth.py``.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from msmd_prep.score import (NoteEvent, Performance, sort_events, write_performance_csv,
                                   write_performance_midi)
from msmd_prep.soundfonts import load_manifest, resolve_soundfont
from msmd_prep.synth import SynthConfig, Synthesizer, synthesize_performance
from timing import interleaved_medians

DURATION_S = 180.0
RUNS = 3


def piano_piece(duration_s: float, seed: int = 0) -> Performance:
    """A melody in eighths over a left hand of three-note chords, 120 bpm."""
    rng = np.random.default_rng(seed)
    events = []
    beat_s = 0.5
    for i in range(int(duration_s / beat_s * 2)):
        t = i * beat_s / 2
        events.append(NoteEvent(t, beat_s / 2, int(rng.integers(60, 84)),
                                int(rng.integers(50, 100)), f"m{i}"))
        if i % 4 == 0:
            root = int(rng.integers(36, 52))
            for k, step in enumerate((0, 4, 7)):
                events.append(NoteEvent(t, 2 * beat_s, root + step, 60, f"c{i}_{k}"))
    return Performance(sort_events(events))


def main() -> None:
    names = [n for n, e in load_manifest().items() if e.locate() is not None]
    perf = piano_piece(DURATION_S)
    print(f"performance: {len(perf.events)} notes, {perf.duration_s:.0f} s; median of {RUNS} runs")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        piece = tmp / "piece"
        piece.mkdir()
        write_performance_csv(perf, piece / "performance.csv")
        write_performance_midi(perf, piece / "performance.mid")
        (piece / "piece.json").write_text(json.dumps({"status": "ok"}))
        for name in names:
            sf = resolve_soundfont(name)
            cmd = ["fluidsynth", "-ni", "-F", str(tmp / "out.wav"), str(sf.path),
                   str(piece / "performance.mid")]

            def raw() -> None:
                subprocess.run(cmd, check=True, capture_output=True)

            def ours(synth: Synthesizer) -> None:
                shutil.rmtree(piece / "performances", ignore_errors=True)
                synthesize_performance(synth, piece, 1.0)

            def cold() -> None:
                with Synthesizer(sf, SynthConfig()) as synth:
                    ours(synth)

            # Cold first: a loaded synth would keep the samples in FluidSynth's cache.
            t_cold = interleaved_medians({"raw": raw, "ours": cold}, RUNS)
            with Synthesizer(sf, SynthConfig()) as loaded:
                t_batch = interleaved_medians({"raw": raw, "ours": lambda: ours(loaded)}, RUNS)
            for label, t in (("batch", t_batch), ("cold", t_cold)):
                print(f"{name:18s} {label:5s} fluidsynth CLI {t['raw']:6.2f} s | msmd-prep "
                      f"{t['ours']:6.2f} s | ratio {t['ours'] / t['raw']:.2f}")


if __name__ == "__main__":
    main()
