"""Where the cores of ``msmd-prep dataset`` sit idle: a timeline per worker.

Usage::

    python benchmarks/bench_timeline.py SCORES... --out DIR [--jobs 2]
        [--tempo 0.8 1.0 1.2] [--soundfont timgm6mb fluidr3_gm musescore_general]
        [--corpus DIR --every 2]

Runs :func:`msmd_prep.dataset.build_dataset` in this process (``DIR/run``
removed first) with the stage functions wrapped so that every call logs its
process, piece, start and end (``time.monotonic``, the same clock in every
process on Linux) and the CPU seconds of the process and of its children
spent in it (LilyPond's CPU under bubblewrap is not among the children's:
render's CPU is its Python part only).  A thread samples ``/proc/stat`` every 0.5 s for the
machine's busy cores.  Writes ``DIR/timeline.jsonl`` (one event a line) and
``DIR/timeline.png`` (one row per process, one bar per stage call; below,
the busy cores), and prints per process its busy and idle seconds between
the first start and the last end, and the machine's idle core-seconds per
phase (pieces, gap, pack).  Not part of the test suite; not a timing figure
of its own (the wrappers cost microseconds per call).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import threading
import time
from pathlib import Path

import msmd_prep.dataset as dataset
import msmd_prep.packing.core as core
import msmd_prep.synth_spectrogram as direct
from msmd_prep.packing.snippets import PackConfig
from msmd_prep.render import RenderConfig, find_scores
from msmd_prep.synth import SynthConfig

LOG: Path | None = None


def _cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _log(event: dict) -> None:
    assert LOG is not None
    with open(LOG, "a") as f:  # one short line per write: appends of processes do not mix
        f.write(json.dumps(event) + "\n")


def _logged(stage: str, piece: str, func, *args, nested: bool = False,
            **kwargs):  # type: ignore[no-untyped-def]
    cpu0, t0 = _cpu(), time.monotonic()
    try:
        return func(*args, **kwargs)
    finally:
        t1, cpu1 = time.monotonic(), _cpu()
        _log({"pid": os.getpid(), "stage": stage, "piece": piece, "t0": t0, "t1": t1,
              "cpu": cpu1[0] - cpu0[0], "child_cpu": cpu1[1] - cpu0[1], "nested": nested})


# Module-level wrappers (workers get the functions they run by pickle, i.e. by name).
_ORIG = {"render": dataset.render_job, "synth": dataset.synthesize_performance,
         "spectrogram": dataset.spectrogram_performance, "align": dataset.align_piece,
         "synth+spec": dataset.synthesize_spectrograms, "spec-write": direct.write_spectrogram,
         "pack-read": core.read_piece, "pack-piece": core.pack_one, "pack": dataset.pack_workdir}


def _render_job(job, *a, **k):  # type: ignore[no-untyped-def]
    return _logged("render", job.piece_dir.name, _ORIG["render"], job, *a, **k)


def _synth(synth, piece, *a, **k):  # type: ignore[no-untyped-def]
    return _logged("synth", Path(piece).name, _ORIG["synth"], synth, piece, *a, **k)


def _synth_spec(synth, piece, *a, **k):  # type: ignore[no-untyped-def]
    return _logged("synth", Path(piece).name, _ORIG["synth+spec"], synth, piece, *a, **k)


def _spec_write(perf_dir, *a, **k):  # type: ignore[no-untyped-def]
    return _logged("spectrogram", Path(perf_dir).parent.parent.name, _ORIG["spec-write"],
                   perf_dir, *a, nested=True, **k)


def _spec(perf, *a, **k):  # type: ignore[no-untyped-def]
    return _logged("spectrogram", Path(perf).parent.parent.name, _ORIG["spectrogram"], perf,
                   *a, **k)


def _align(piece, *a, **k):  # type: ignore[no-untyped-def]
    return _logged("align", Path(piece).name, _ORIG["align"], piece, *a, **k)


def _read_piece(read, *a, **k):  # type: ignore[no-untyped-def]
    return _logged("pack-read", "", _ORIG["pack-read"], read, *a, **k)


def _pack_one(job, *a, **k):  # type: ignore[no-untyped-def]
    return _logged("pack-piece", job.name, _ORIG["pack-piece"], job, *a, **k)


def _pack(*a, **k):  # type: ignore[no-untyped-def]
    return _logged("pack", "", _ORIG["pack"], *a, **k)


def _sample_cpu(stop: threading.Event, out: list) -> None:
    """(monotonic time, busy cores since the last sample) every 0.5 s from /proc/stat."""
    def read() -> tuple[float, float]:
        fields = [float(x) for x in open("/proc/stat").readline().split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)
    ncpu = os.cpu_count() or 1
    busy0, total0 = read()
    while not stop.wait(0.5):
        busy, total = read()
        if total > total0:
            out.append((time.monotonic(), ncpu * (busy - busy0) / (total - total0)))
        busy0, total0 = busy, total


def plot(events: list[dict], samples: list, t_start: float, path: Path) -> None:
    """One row per process with a bar per stage call; the busy cores below."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"render": "tab:blue", "synth": "tab:orange", "spectrogram": "tab:green",
               "align": "tab:red", "pack-read": "tab:gray", "pack-piece": "tab:purple",
               "pack": "khaki"}
    pids = sorted({e["pid"] for e in events}, key=lambda p: min(e["t0"] for e in events
                                                                 if e["pid"] == p))
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(16, 2 + 0.6 * len(pids)), sharex=True,
                                  gridspec_kw={"height_ratios": [max(2, len(pids)), 2]})
    # Longest first, so that a call inside another (a spectrogram inside its synth) shows.
    events = sorted(events, key=lambda e: e["t0"] - e["t1"])
    for row, pid in enumerate(pids):
        for e in events:
            if e["pid"] == pid:
                ax.barh(row, e["t1"] - e["t0"], left=e["t0"] - t_start, height=0.8,
                        color=colours[e["stage"]], edgecolor="black", linewidth=0.2)
    ax.set_yticks(range(len(pids)), [str(p) for p in pids])
    ax.set_ylabel("process")
    ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()],
              labels=list(colours), ncol=len(colours), loc="upper center", fontsize=8,
              bbox_to_anchor=(0.5, 1.15))
    if samples:
        ax2.plot([t - t_start for t, _ in samples], [b for _, b in samples], lw=0.8)
    ax2.set_ylim(0, (os.cpu_count() or 1) + 0.2)
    ax2.set_ylabel("busy cores")
    ax2.set_xlabel("seconds since start")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def idle_report(events: list[dict], samples: list, t_start: float, t_end: float) -> None:
    """Busy and idle seconds per process, and the machine's idle core-seconds per phase."""
    ncpu = os.cpu_count() or 1
    pieces = [e for e in events if not e.get("nested")
              and e["stage"] in ("render", "synth", "spectrogram", "align")]
    pack = [e for e in events if e["stage"] == "pack"]
    for pid in sorted({e["pid"] for e in pieces}):
        mine = sorted((e for e in pieces if e["pid"] == pid), key=lambda e: e["t0"])
        busy = sum(e["t1"] - e["t0"] for e in mine)
        cpu = sum(e["cpu"] + e["child_cpu"] for e in mine)
        print(f"worker {pid}: first start {mine[0]['t0'] - t_start:.1f} s, last end "
              f"{mine[-1]['t1'] - t_start:.1f} s, in stages {busy:.1f} s, CPU {cpu:.1f} s")
    phases = [("start-up", t_start, min(e["t0"] for e in pieces)),
              ("pieces", min(e["t0"] for e in pieces), max(e["t1"] for e in pieces))]
    if pack:
        phases += [("gap before pack", phases[-1][2], pack[0]["t0"]),
                   ("pack", pack[0]["t0"], pack[0]["t1"]), ("end", pack[0]["t1"], t_end)]
    else:
        phases += [("end", phases[-1][2], t_end)]
    for name, a, b in phases:
        busy = sum(v * 0.5 for t, v in samples if a < t <= b)
        print(f"{name:16s} {b - a:7.1f} s wall, {busy:7.1f} busy core-s, "
              f"{ncpu * (b - a) - busy:7.1f} idle core-s")
    stage_cpu: dict[str, list[float]] = {}
    for e in events:
        s = stage_cpu.setdefault(e["stage"] + (" (in synth)" if e.get("nested") else ""),
                                 [0.0, 0.0])
        s[0] += e["t1"] - e["t0"]
        s[1] += e["cpu"] + e["child_cpu"]
    for stage, (wall, cpu) in stage_cpu.items():
        print(f"  {stage:12s} {wall:7.1f} s in calls, {cpu:7.1f} CPU s")


def main() -> None:
    global LOG
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scores", nargs="*", type=Path)
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--tempo", type=float, nargs="+", default=[0.8, 1.0, 1.2])
    parser.add_argument("--soundfont", nargs="+",
                        default=["timgm6mb", "fluidr3_gm", "musescore_general"])
    parser.add_argument("--dpi", type=int, default=150)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    scores = list(args.scores)
    if args.corpus:
        scores += find_scores([args.corpus])[::args.every]
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(args.out / "run", ignore_errors=True)
    LOG = args.out / "timeline.jsonl"
    LOG.unlink(missing_ok=True)
    dataset.render_job, dataset.synthesize_performance = _render_job, _synth
    dataset.spectrogram_performance, dataset.align_piece = _spec, _align
    dataset.synthesize_spectrograms, direct.write_spectrogram = _synth_spec, _spec_write
    core.read_piece, core.pack_one, dataset.pack_workdir = _read_piece, _pack_one, _pack

    samples: list = []
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_cpu, args=(stop, samples), daemon=True)
    load, t_start = os.getloadavg()[0], time.monotonic()
    sampler.start()
    result = dataset.build_dataset(
        scores, args.out / "run", render_config=RenderConfig(dpi=args.dpi),
        tempo_factors=args.tempo, soundfonts=args.soundfont, synth_config=SynthConfig(),
        pack_config=PackConfig(), jobs=args.jobs)
    t_end = time.monotonic()
    stop.set()
    sampler.join()
    print(f"{len(scores)} scores, {t_end - t_start:.1f} s wall (load before {load:.2f}, "
          f"after {os.getloadavg()[0]:.2f}), {len(result.failures)} failures")
    print("stages: " + ", ".join(f"{s} {v:.1f} s" for s, v in result.seconds.items()))
    events = [json.loads(line) for line in LOG.read_text().splitlines()]
    json.dump({"t_start": t_start, "t_end": t_end, "samples": samples},
              open(args.out / "cpu_samples.json", "w"))
    idle_report(events, samples, t_start, t_end)
    plot(events, samples, t_start, args.out / "timeline.png")
    print(f"timeline: {args.out / 'timeline.png'}")


if __name__ == "__main__":
    main()
