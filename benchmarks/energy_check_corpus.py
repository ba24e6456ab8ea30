"""How well the ``energy`` self-check separates right alignments from wrong ones.

Run on a work folder made by ``msmd-prep dataset CORPUS --out DIR --keep-audio``
(for example the Mutopia corpus with several SoundFonts).  For every aligned
performance it runs :func:`msmd_prep.checks.check_onset_energy` on the true
onsets and on wrong ones (pitches a tritone off, pitches shuffled among the
onsets, times 0.2 s and 0.5 s late, onset times reversed) and prints how many
performances pass, per case and spectrogram preset.  A good check passes
every true alignment and fails the wrong ones.

    python benchmarks/energy_check_corpus.py DIR/work [--preset msmd default]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile

from msmd_prep.align import read_alignment_csv
from msmd_prep.checks import check_onset_energy, pitch_bands
from msmd_prep.spectrogram import (PRESETS, fft_frequencies, last_frame_before, log_spectrogram,
                                   time_to_frames)


def cases(pitches: np.ndarray, times: np.ndarray, rng: np.random.Generator) -> dict:
    return {"true": (pitches, times), "tritone": (pitches + 6, times),
            "shuffled pitches": (rng.permutation(pitches), times),
            "0.2 s late": (pitches, times + 0.2), "0.5 s late": (pitches, times + 0.5),
            "times reversed": (pitches, times[::-1].copy())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("--preset", nargs="+", default=["msmd"])
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    for name in args.preset:
        cfg = PRESETS[name]
        fb = cfg.filterbank()
        ff = fft_frequencies(sample_rate_hz=cfg.sample_rate_hz,
                             frame_size_samples=cfg.frame_size_samples)
        passed: dict[str, list[bool]] = {}
        worst = []
        for meta in sorted(args.work.glob("*/performances/*/alignment.json")):
            perf = meta.parent
            rows = read_alignment_csv(perf / "alignment.csv")
            if not rows:
                continue
            npy = perf / f"spec-{name}.npy"
            if npy.is_file():
                spec = np.load(npy)
            else:
                audio, _ = soundfile.read(perf / "audio.flac", dtype="float32")
                spec = log_spectrogram(audio, cfg)
            pitches = np.array([r.pitch for r in rows])
            times = np.array([r.onset_s for r in rows])
            for case, (p, t) in cases(pitches, times, rng).items():
                check = check_onset_energy(pitch_bands(p, fb, ff),
                                           time_to_frames(t, frame_rate_fps=cfg.frame_rate_fps),
                                           last_frame_before(t, cfg), spec)
                passed.setdefault(case, []).append(check.passed)
                if case == "true":
                    worst.append((1 - check.failed / max(check.checked, 1),
                                  f"{perf.parent.parent.name}/{perf.name}"))
        print(f"preset {name}: performances passing the check")
        for case, results in passed.items():
            print(f"  {case:18s} {sum(results):4d} of {len(results)}")
        print("  lowest shares of attacks (true onsets):",
              json.dumps([(round(s, 3), p) for s, p in sorted(worst)[:4]]))


if __name__ == "__main__":
    main()
