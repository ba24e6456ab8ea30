"""The whole pipeline on a real corpus at 1 and 2 jobs: wall time, speed-up, stages, checks.

Usage::

    python benchmarks/bench_corpus.py [--corpus DIR] [--out-root /tmp/bench-corpus]
                                      [--jobs 1 2] [--tempo 1.0] [--soundfont timgm6mb]
                                      [--preset msmd] [--startup-runs 5] [--no-startup]

For every ``--jobs`` value, :func:`msmd_prep.dataset.build_dataset` (what
``msmd-prep dataset`` runs) builds the corpus from scratch into
``OUT_ROOT/jobs-N`` (removed first, so nothing is skipped as up to date).
Prints per run: wall time, the load average before and after and the CPU
seconds other processes used meanwhile (the timings mean little if
something else was running), the time per stage
(:attr:`DatasetResult.seconds`: summed over pieces, hence over both workers
at 2 jobs; pack is its own wall time), pieces ok / flagged / failed, every
flagged piece with the numbers of its failed checks, and every failure with
its stage and cause.  Then the speed-up of the last ``--jobs`` value over
the first (goal of issue 6: >= 1.8x at 2 jobs) and its bound when pack
runs in one process.

Unless ``--no-startup``, it also times what every score pays before any
music is engraved, to judge whether batching scores per LilyPond process
would pay: ``lilypond --version``, a one-note score through plain LilyPond,
the same through the sandbox with the export include and the render
stage's options, ``convert-ly`` on a one-note file, and the whole render
stage (:func:`msmd_prep.render.render_score`) of the one-note score.

A piece counts as a success when it went through every stage and all its
self-checks passed (``aligned_well`` in ``piece.json`` and in every
``alignment.json``).  Not part of the test suite.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from msmd_prep.dataset import build_dataset
from msmd_prep.lilypond import EXPORT_ILY, executable, lilypond_root, run_lilypond
from msmd_prep.packing.snippets import PackConfig
from msmd_prep.render import RenderConfig, find_scores, render_score
from msmd_prep.synth import SynthConfig
from msmd_prep.workdir import performance_dirs, read_json

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "mutopia"
STAGES = ("render", "synth", "spectrogram", "align", "pack")
ONE_NOTE = '\\version "2.24.0"\n{ c\'4 }\n'


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class OtherLoad:
    """CPU seconds used by processes outside this one's tree while it runs.

    Samples every process once a second (psutil): a process that is neither
    this one nor a descendant counts with the CPU it used since it was first
    seen (or since it started, when it started during the run).  Processes of
    others that live less than a second are missed, so this is a lower bound.
    """

    def __init__(self, interval_s: float = 1.0) -> None:
        import threading

        self.interval_s = interval_s
        self.seconds = float("nan")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "OtherLoad":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            import psutil
        except ImportError:
            return
        me, start = os.getpid(), time.time()
        first: dict[tuple[int, float], float] = {}
        last: dict[tuple[int, float], float] = {}
        while True:
            procs = {}
            for p in psutil.process_iter(["pid", "ppid", "create_time", "cpu_times"]):
                procs[p.info["pid"]] = p.info
            for pid, info in procs.items():
                anc, seen = pid, 0
                while anc and anc != me and anc in procs and seen < 64:
                    anc, seen = procs[anc]["ppid"], seen + 1
                if anc == me or info["cpu_times"] is None:
                    continue
                key = (pid, info["create_time"])
                cpu = info["cpu_times"].user + info["cpu_times"].system
                first.setdefault(key, 0.0 if info["create_time"] >= start else cpu)
                last[key] = cpu
            self.seconds = sum(last[k] - first[k] for k in last)
            if self._stop.wait(self.interval_s):
                return


def failed_check_numbers(piece: Path) -> list[str]:
    """Every failed self-check of a piece, with its numbers: ``where: name failed/checked (detail)``."""
    out = []
    sources = [("render", piece / "piece.json")] + [
        (d.name, d / "alignment.json") for d in performance_dirs(piece)]
    for where, path in sources:
        info = read_json(path) or {}
        for name, c in info.get("checks", {}).items():
            if not c.get("passed", True):
                detail = f" ({c['detail']})" if c.get("detail") else ""
                out.append(f"{where}: {name} {c.get('failed')}/{c.get('checked')}{detail}")
    return out


def run_once(scores: list[Path], out: Path, args: argparse.Namespace, jobs: int) -> dict:
    """Build the dataset from scratch into ``out``; return timings and outcomes."""
    shutil.rmtree(out, ignore_errors=True)
    load_before = loadavg()
    t0 = time.perf_counter()
    with OtherLoad() as others:
        result = build_dataset(scores, out, render_config=RenderConfig(),
                               tempo_factors=args.tempo, soundfonts=args.soundfont,
                               synth_config=SynthConfig(),
                               pack_config=PackConfig(preset=args.preset),
                               jobs=jobs, progress=args.progress)
    wall = time.perf_counter() - t0
    flagged = result.pack.flagged if result.pack else {}
    ok = [r for r in result.reports if not r.error]
    return {
        "jobs": jobs, "wall_s": wall, "load_before": load_before, "load_after": loadavg(),
        "others_cpu_s": others.seconds,
        "seconds": dict(result.seconds), "pieces": len(result.reports),
        "ok": len(ok) - len([r for r in ok if Path(r.piece).name in flagged]),
        "flagged": {name: failed_check_numbers(result.work / name) for name in flagged},
        "failures": result.failures,
        "render_s": {Path(r.piece).name: r.seconds.get("render", 0.0) for r in result.reports},
        "samples": dict(result.pack.counts) if result.pack else {},
    }


def print_run(r: dict) -> None:
    total = sum(r["seconds"].get(s, 0.0) for s in STAGES)
    print(f"\n== jobs {r['jobs']}: wall {r['wall_s']:.1f} s  "
          f"(load average 1/5/15 min before: {r['load_before']}; after: {r['load_after']})")
    print(f"   pieces {r['pieces']}: {r['ok']} ok (all stages, aligned_well), "
          f"{len(r['flagged'])} flagged, {len(r['failures'])} failed; samples {r['samples']}")
    print(f"   {r['ok'] / max(r['pieces'], 1):.1%} of scores ok")
    busy = r["others_cpu_s"] > 0.05 * r["wall_s"]
    print(f"   other processes used {r['others_cpu_s']:.1f} CPU-s during the run"
          + (" (busy machine: timings inflated)" if busy else ""))
    map_wall = r["wall_s"] - r["seconds"].get("pack", 0.0)
    piece_s = total - r["seconds"].get("pack", 0.0)
    print(f"   pieces phase {map_wall:.1f} s wall for {piece_s:.1f} s of piece work "
          f"({piece_s / map_wall:.2f} workers busy on average); pack {r['seconds'].get('pack', 0):.1f} s "
          "(one process)")
    sum_note = " (summed over workers)" if r["jobs"] > 1 else ""
    print(f"   time per stage{sum_note}:")
    for s in STAGES:
        if s in r["seconds"]:
            sec = r["seconds"][s]
            print(f"     {s:<12} {sec:8.1f} s  {sec / total:6.1%}")
    print(f"     {'total':<12} {total:8.1f} s")
    for name, checks in sorted(r["flagged"].items()):
        print(f"   FLAGGED {name}: " + "; ".join(checks))
    for path, stage, cause in r["failures"]:
        print(f"   FAILED {path} [{stage}]: {cause.splitlines()[0] if cause else ''}")


def _median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def startup_costs(runs: int) -> dict[str, float]:
    """Median seconds of what every score pays before any music is engraved."""
    lily = str(lilypond_root() / "bin" / "lilypond")
    render_args = [f"-dinclude-settings={EXPORT_ILY}", "-dbackend=cairo",
                   "-dno-point-and-click", "--pdf", "--png", "-dresolution=150",
                   "--loglevel=WARNING", "one.ly"]
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        tmp = Path(tmp)
        (tmp / "one.ly").write_text(ONE_NOTE)
        costs = {
            "lilypond --version": _median_time(
                lambda: subprocess.run([lily, "--version"], capture_output=True, check=True),
                runs),
            "lilypond one note, --pdf, no sandbox/export": _median_time(
                lambda: subprocess.run([lily, "--pdf", "--loglevel=ERROR", "one.ly"], cwd=tmp,
                                       capture_output=True, check=True), runs),
            "lilypond one note, sandbox + export, --pdf --png": _median_time(
                lambda: run_lilypond(render_args, cwd=tmp, timeout_s=120), runs),
            "convert-ly one note": _median_time(
                lambda: subprocess.run([str(executable("convert-ly")), "one.ly"], cwd=tmp,
                                       capture_output=True, check=True), runs),
        }

        def render_one() -> None:
            shutil.rmtree(tmp / "piece", ignore_errors=True)
            render_score(tmp / "one.ly", tmp / "piece", RenderConfig())

        costs["render stage, one note (all of it)"] = _median_time(render_one, runs)
    return costs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, nargs="+", default=[DEFAULT_CORPUS])
    ap.add_argument("--out-root", type=Path, default=Path("/tmp/bench-corpus"))
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--tempo", type=float, nargs="+", default=[1.0])
    ap.add_argument("--soundfont", nargs="+", default=["timgm6mb"])
    ap.add_argument("--preset", default="msmd")
    ap.add_argument("--startup-runs", type=int, default=5)
    ap.add_argument("--no-startup", action="store_true", help="skip the LilyPond start-up timing")
    ap.add_argument("--progress", action="store_true", help="progress bars on stderr")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)

    scores = find_scores(list(args.corpus))
    print(f"corpus: {' '.join(map(str, args.corpus))}: {len(scores)} scores; "
          f"tempo {args.tempo}, soundfont {args.soundfont}, preset {args.preset}; "
          f"{os.cpu_count()} CPUs")
    runs = []
    for jobs in args.jobs:
        runs.append(run_once(scores, args.out_root / f"jobs-{jobs}", args, jobs))
        print_run(runs[-1])
    if len(runs) > 1:
        base = runs[0]
        for r in runs[1:]:
            print(f"\nspeed-up jobs {base['jobs']} -> {r['jobs']}: "
                  f"{base['wall_s']:.1f} s / {r['wall_s']:.1f} s = "
                  f"{base['wall_s'] / r['wall_s']:.2f}x")
            pack = base["seconds"].get("pack", 0.0)
            bound = base["wall_s"] / ((base["wall_s"] - pack) / r["jobs"] + pack)
            print(f"  (bound with pack in one process, perfect balance otherwise: {bound:.2f}x)")
    figures: dict = {"runs": runs}
    if not args.no_startup:
        costs = startup_costs(args.startup_runs)
        print(f"\nper-score start-up (median of {args.startup_runs}; load {loadavg()}):")
        for what, sec in costs.items():
            print(f"  {what:<50} {sec:7.3f} s")
        render_s = sorted(runs[0]["render_s"].values())
        fixed = costs["render stage, one note (all of it)"]
        if render_s:
            print(f"  render stage per score in the jobs-{runs[0]['jobs']} run: median "
                  f"{statistics.median(render_s):.2f} s, min {render_s[0]:.2f} s, total "
                  f"{sum(render_s):.1f} s; one-note fixed cost x {len(render_s)} scores = "
                  f"{fixed * len(render_s):.1f} s ({fixed * len(render_s) / sum(render_s):.0%} "
                  f"of render, {fixed * len(render_s) / runs[0]['wall_s']:.0%} of the wall time)")
        figures["startup_s"] = costs
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
