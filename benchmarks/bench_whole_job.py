"""The whole job against the raw tools doing the same work, both in 2 processes.

Usage::

    python benchmarks/bench_whole_job.py [--corpus DIR] [--every 4] [--jobs 2]
        [--tempo 0.8 1.0 1.2] [--soundfont timgm6mb fluidr3_gm musescore_general]
        [--out /tmp/bench-whole-job] [--side both|ours|raw]

The scores are :func:`msmd_prep.render.find_scores` of ``--corpus`` (default
``../shared/corpus/mutopia``), every ``--every``-th of them (1: all), the
same subset for both sides.

* **ours**: ``msmd-prep dataset SCORES --out OUT --tempo ... --soundfont ...
  --jobs N`` from scratch (OUT removed first): render, synth, spectrogram,
  align and pack.
* **raw tools**: per score, in ``--jobs`` threads that each run one score's
  chain of programs at a time: the score's folder copied to a temporary
  folder (multi-file pieces include their neighbours), ``convert-ly -e`` on
  the score, ``lilypond --png -dresolution=DPI``, and for every tempo and
  SoundFont ``fluidsynth -ni -F out.wav -r 22050 -g 0.2`` on the MIDI file
  LilyPond wrote, its tempo scaled with mido (for 1.0 the file as written).
  Scores whose LilyPond run fails or writes no MIDI have no synthesis;
  each is listed with the reason (LilyPond's exit code and last error line,
  or "no MIDI file": the score has no ``\\midi`` block, which our render adds).

Both are timed in the same run, ours first, then the raw tools: wall
seconds, the CPU seconds of the child processes (ours leaves out LilyPond,
whose CPU under bubblewrap does not reach ``getrusage``), the busy
core-seconds of the whole machine (``/proc/stat``: everything, LilyPond
included, and anything else running), the load average before each; then ``ours / raw`` (goal of issue 14: <= 0.7) and our time per stage
(summed over pieces, so over both workers; pack is its own wall time).
``--side ours`` or ``--side raw`` times one side only (two shorter runs
where one run of both would be too long for a quiet window).
Not part of the test suite.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mido

from msmd_prep.lilypond import executable
from msmd_prep.render import find_scores
from msmd_prep.soundfonts import load_manifest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "mutopia"


def children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes of this process."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def busy_core_seconds() -> float:
    """Core-seconds the whole machine has been busy since boot (``/proc/stat``).

    Counts what ``getrusage`` misses: the CPU of LilyPond run under bubblewrap
    does not reach ``RUSAGE_CHILDREN`` (one render of a Beethoven sonata
    movement: 0.7 child CPU s in the sandbox, 6.5 without).  Includes every
    other process of the machine.
    """
    fields = [float(x) for x in open("/proc/stat").readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def scaled_midi(src: Path, dst: Path, tempo_factor: float) -> None:
    """``src`` played ``tempo_factor`` times as fast (every tempo message scaled)."""
    mid = mido.MidiFile(src)
    for track in mid.tracks:
        for i, msg in enumerate(track):
            if msg.type == "set_tempo":
                track[i] = msg.copy(tempo=max(1, round(msg.tempo / tempo_factor)))
    if not any(m.type == "set_tempo" for t in mid.tracks for m in t):
        # Without a tempo message MIDI plays at 120 quarter notes per minute.
        mid.tracks[0].insert(0, mido.MetaMessage("set_tempo",
                                                 tempo=round(500000 / tempo_factor)))
    mid.save(dst)


def raw_chain(score: Path, *, tempos: list[float], soundfonts: list[Path], dpi: int,
              timeout_s: float) -> tuple[int, int, str]:
    """convert-ly, lilypond --png and fluidsynth -F for one score.

    Returns (pages, wav files, why no audio: "" when there is some).
    """
    with tempfile.TemporaryDirectory(prefix="raw-") as tmp:
        work = Path(tmp) / score.parent.name
        shutil.copytree(score.parent, work)
        ly = work / score.name
        subprocess.run([str(executable("convert-ly")), "-e", ly.name], cwd=work,
                       capture_output=True, timeout=timeout_s)
        proc = subprocess.run([str(executable("lilypond")), "--png", f"-dresolution={dpi}",
                               "--loglevel=ERROR", ly.name], cwd=work, capture_output=True,
                              timeout=timeout_s)
        pages = len(list(work.glob(f"{ly.stem}*.png")))
        midis = sorted(work.glob(f"{ly.stem}*.mid")) + sorted(work.glob(f"{ly.stem}*.midi"))
        if proc.returncode != 0:
            errors = [ln for ln in proc.stderr.decode(errors="replace").splitlines()
                      if "error" in ln.lower()]
            return pages, 0, f"lilypond exit {proc.returncode}: {(errors or [''])[-1][:120]}"
        if not midis:
            return pages, 0, "no MIDI file"
        wavs = 0
        for tempo in tempos:
            midi = midis[0]
            if tempo != 1.0:
                midi = work / f"tempo-{tempo}.mid"
                scaled_midi(midis[0], midi, tempo)
            for k, sf in enumerate(soundfonts):
                wav = work / f"out-{tempo}-{k}.wav"
                subprocess.run(["fluidsynth", "-ni", "-F", str(wav), "-r", "22050", "-g", "0.2",
                                str(sf), str(midi)], capture_output=True, timeout=timeout_s)
                wavs += wav.is_file()
        return pages, wavs, "" if wavs else "fluidsynth wrote no file"


def run_ours(scores: list[Path], args: argparse.Namespace) -> tuple[float, float, str]:
    """``msmd-prep dataset`` from scratch: (wall s, CPU s of the children, its stdout)."""
    shutil.rmtree(args.out, ignore_errors=True)
    cmd = [sys.executable, "-m", "msmd_prep.cli", "dataset", *map(str, scores),
           "--out", str(args.out), "--tempo", *map(str, args.tempo),
           "--soundfont", *args.soundfont, "--jobs", str(args.jobs), "--dpi", str(args.dpi)]
    load, cpu, t = os.getloadavg()[0], children_cpu(), time.perf_counter()
    busy = busy_core_seconds()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    ours, ours_cpu = time.perf_counter() - t, children_cpu() - cpu
    busy = busy_core_seconds() - busy
    summary = [ln for ln in proc.stdout.splitlines() if not ln.startswith("FAILED")]
    failed = [ln for ln in proc.stdout.splitlines() if ln.startswith("FAILED")]
    print(f"ours: {ours:.1f} s wall, {ours_cpu:.1f} CPU s of children, {busy:.1f} busy "
          f"core-s of the machine of {os.cpu_count()} cores (load before {load:.2f}, "
          f"after {os.getloadavg()[0]:.2f}), exit {proc.returncode}, {len(failed)} failures",
          flush=True)
    for line in summary[-8:]:
        print(f"  {line}")
    for line in failed:
        print(f"  {line[:160]}")
    return ours, ours_cpu, proc.stdout


def run_raw(scores: list[Path], soundfonts: list[Path], args: argparse.Namespace,
            ) -> tuple[float, float]:
    """The raw tools' chain per score in ``--jobs`` threads: (wall s, CPU s of the children)."""
    load, cpu, t = os.getloadavg()[0], children_cpu(), time.perf_counter()
    busy = busy_core_seconds()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        made = list(pool.map(lambda s: raw_chain(s, tempos=args.tempo, soundfonts=soundfonts,
                                                 dpi=args.dpi, timeout_s=args.timeout),
                             scores))
    raw, raw_cpu = time.perf_counter() - t, children_cpu() - cpu
    busy = busy_core_seconds() - busy
    print(f"raw tools: {raw:.1f} s wall, {raw_cpu:.1f} CPU s of children, {busy:.1f} busy "
          f"core-s of the machine (load before {load:.2f}, "
          f"after {os.getloadavg()[0]:.2f}), {sum(p for p, _, _ in made)} pages, "
          f"{sum(w for _, w, _ in made)} wav files, "
          f"{sum(1 for _, w, _ in made if w == 0)} scores without audio", flush=True)
    for score, (_, _, why) in zip(scores, made):
        if why:
            print(f"  no audio: {score}: {why}")
    return raw, raw_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--every", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--tempo", type=float, nargs="+", default=[0.8, 1.0, 1.2])
    parser.add_argument("--soundfont", nargs="+",
                        default=["timgm6mb", "fluidr3_gm", "musescore_general"])
    parser.add_argument("--dpi", type=int, default=150)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-whole-job"))
    parser.add_argument("--side", choices=["both", "ours", "raw"], default="both")
    args = parser.parse_args()
    if not args.corpus.is_dir():
        sys.exit(f"no corpus folder {args.corpus} (give --corpus)")
    scores = find_scores([args.corpus])[::args.every]
    manifest = load_manifest()
    soundfonts = [manifest[name].locate() for name in args.soundfont]
    if None in soundfonts:
        sys.exit(f"SoundFont not installed: {args.soundfont[soundfonts.index(None)]}")
    print(f"{len(scores)} scores (every {args.every}th of {args.corpus}), tempos {args.tempo}, "
          f"SoundFonts {args.soundfont}, {args.jobs} processes", flush=True)

    ours = ours_cpu = raw = raw_cpu = 0.0
    stdout = ""
    if args.side in ("both", "ours"):
        ours, ours_cpu, stdout = run_ours(scores, args)
    if args.side in ("both", "raw"):
        raw, raw_cpu = run_raw(scores, soundfonts, args)
    if args.side == "both":
        print(f"ours / raw: {ours / raw:.2f} wall, {ours_cpu / raw_cpu:.2f} CPU "
              f"(goal <= 0.7 wall)")
    stages = re.search(r"time per stage\s+(.*)", stdout)
    if stages:
        print(f"our stages: {stages.group(1)}")


if __name__ == "__main__":
    main()
