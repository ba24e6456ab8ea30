"""Benchmark: real performances aligned to their scores, over ASAP (../shared/corpus/asap).

Every ASAP performance (a human Disklavier MIDI file) is aligned to its
``midi_score.mid`` as msmd-prep aligns a performance to a rendered score, and
the alignment is compared with ASAP's beat annotations: at every annotated
beat of the score (when score and performance have as many beats), the
aligned performance time is the median of the aligned onsets of the score
notes at that beat, or, between onsets, interpolated along the aligned
onsets; its error is the distance to the annotated performance beat.

Conditions (``--conditions``):

* ``midi``: the MIDI performance, note matching (:mod:`msmd_prep.performed.midi_align`);
* ``audio``: the MIDI performance played by FluidSynth with ``--soundfont``
  (not the reference ``timgm6mb``), aligned as a recording
  (:mod:`msmd_prep.performed.audio_align`) to the score side ``--reference``
  names: the score played by that SoundFont (:mod:`msmd_prep.performed.reference`;
  by default the perform stage's, ``timgm6mb``; its rendering is counted as
  alignment time) or ``notes``, the score's note list;
* ``noisy``: the same audio with reverb (RT60 1.2 s) and white noise (20 dB SNR);
* ``audio-iir``: ``audio`` with synctoolbox's own IIR filterbank features (slow; a few pieces);
* ``parangonar``: parangonar's DualDTWNoteMatcher on the MIDI performance
  (partitura is imported with pyfluidsynth hidden: it downloads a SoundFont at
  import time otherwise, which fails offline).

Prints per performance and per condition: median absolute error, share of
beats within 50 and 100 ms, and alignment time (features + DTW + matching;
wall and CPU seconds) against the audio duration, and the load average at
the end.  Writes a JSON of all rows to ``--out``.

Run: ``python benchmarks/bench_performed.py --limit 40 --conditions midi audio noisy``

The whole corpus (518 performances, about 30 h of audio) in parts, each a
separate run, then one table over all of them::

    python benchmarks/bench_performed.py --part 0/6 --conditions audio --out part0.json
    ...
    python benchmarks/bench_performed.py --combine part*.json
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pretty_midi

from msmd_prep.score import NoteEvent, Performance, sort_events
from msmd_prep.performed.audio_align import align_audio
from msmd_prep.performed.features import Notes, iir_audio_features
from msmd_prep.performed.midi_align import match_notes, monotone_map
from msmd_prep.performed.perform import REFERENCE
from msmd_prep.performed.reference import reference_features, reference_synth
from msmd_prep.performed.simulate import reverb_and_noise
from msmd_prep.soundfonts import resolve_soundfont
from msmd_prep.synth import SynthConfig, Synthesizer

ASAP = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus" / "asap"


def load_notes(path: Path) -> Notes:
    """All non-drum notes of a MIDI file, sorted by onset then pitch."""
    pm = pretty_midi.PrettyMIDI(str(path))
    rows = sorted((n.start, n.end - n.start, n.pitch, n.velocity)
                  for inst in pm.instruments if not inst.is_drum for n in inst.notes)
    a = np.array(rows, dtype=np.float64)
    return Notes(a[:, 0], a[:, 1], a[:, 2].astype(np.int64), a[:, 3].astype(np.int64))


def beats(path: Path) -> np.ndarray:
    """Beat times (s) of an ASAP annotation file."""
    return np.array([float(line.split("\t")[0]) for line in open(path) if line.strip()])


def beat_errors(score: Notes, aligned_s: np.ndarray, score_beats: np.ndarray,
                perf_beats: np.ndarray, tolerance_s: float = 1e-3) -> np.ndarray:
    """|aligned - annotated| at every beat, seconds (see the module docstring).

    At a beat where aligned score notes start (within ``tolerance_s``), the
    median of their aligned onsets; elsewhere linear interpolation along the
    aligned onsets (median per score onset, longest increasing run).  The
    same rule for every condition.  Reading the alignment's own warping path
    between the onsets instead (shifted through them, as the refinement
    moves chords without a peak), or a monotone cubic through the onsets,
    put fewer beats without an onset within 100 ms, for MIDI and audio
    alike (ASAP dev seeds 7 and 11; the note of issue 15, session 6): inside
    a held note the path has nothing to follow.
    """
    ok = np.isfinite(aligned_s)
    s_a, p_a = monotone_map(score.onset_s[ok], aligned_s[ok])
    est = np.interp(score_beats, s_a, p_a)
    onsets, times = score.onset_s[ok], aligned_s[ok]
    order = np.argsort(onsets)
    onsets, times = onsets[order], times[order]
    lo = np.searchsorted(onsets, score_beats - tolerance_s)
    hi = np.searchsorted(onsets, score_beats + tolerance_s)
    for k in np.flatnonzero(hi > lo):
        est[k] = np.median(times[lo[k]:hi[k]])
    return np.abs(est - perf_beats)


def render(notes: Notes, synth: Synthesizer) -> np.ndarray:
    events = sort_events([NoteEvent(float(o), float(max(d, 0.01)), int(p), int(v), f"n{i}")
                          for i, (o, d, p, v) in enumerate(zip(notes.onset_s, notes.duration_s,
                                                                 notes.pitch, notes.velocity))])
    return synth.render(Performance(events)).audio


def parangonar_match(score: Notes, perf: Notes) -> np.ndarray:
    import importlib
    hidden = sys.modules.get("fluidsynth")
    sys.modules["fluidsynth"] = None  # partitura then skips its SoundFont download
    try:
        parangonar = importlib.import_module("parangonar")
    finally:
        if hidden is None:
            del sys.modules["fluidsynth"]
        else:
            sys.modules["fluidsynth"] = hidden
    s_arr = np.zeros(len(score), dtype=[("onset_beat", "f4"), ("duration_beat", "f4"),
                                         ("onset_quarter", "f4"), ("duration_quarter", "f4"),
                                         ("onset_div", "i4"), ("duration_div", "i4"),
                                         ("pitch", "i4"), ("voice", "i4"), ("id", "U256"),
                                         ("divs_pq", "i4"), ("is_grace", "b")])
    s_arr["onset_beat"] = s_arr["onset_quarter"] = score.onset_s * 2
    s_arr["duration_beat"] = s_arr["duration_quarter"] = score.duration_s * 2
    s_arr["onset_div"] = np.rint(score.onset_s * 2 * 480)
    s_arr["duration_div"] = np.rint(score.duration_s * 2 * 480)
    s_arr["pitch"], s_arr["voice"], s_arr["divs_pq"] = score.pitch, 1, 480
    s_arr["id"] = [f"s{i}" for i in range(len(score))]
    p_arr = np.zeros(len(perf), dtype=[("onset_sec", "f4"), ("duration_sec", "f4"),
                                        ("onset_tick", "i4"), ("duration_tick", "i4"),
                                        ("pitch", "i4"), ("velocity", "i4"), ("track", "i4"),
                                        ("channel", "i4"), ("id", "U256")])
    p_arr["onset_sec"], p_arr["duration_sec"] = perf.onset_s, perf.duration_s
    p_arr["onset_tick"] = np.rint(perf.onset_s * 960)
    p_arr["duration_tick"] = np.rint(perf.duration_s * 960)
    p_arr["pitch"], p_arr["velocity"] = perf.pitch, perf.velocity
    p_arr["id"] = [f"p{i}" for i in range(len(perf))]
    matches = parangonar.DualDTWNoteMatcher()(s_arr, p_arr)
    out = np.full(len(score), np.nan)
    for m in matches:
        if m["label"] == "match":
            out[int(m["score_id"][1:])] = perf.onset_s[int(m["performance_id"][1:])]
    return out


def warm_up(synth: Synthesizer, reference: str) -> float:
    """Align 10 s of a scale once, so that imports and numba's cache loading are not
    counted against the first performance; returns the seconds this took."""
    t0 = time.perf_counter()
    onset = np.arange(20) * 0.5
    notes = Notes(onset, np.full(20, 0.45), 60 + np.arange(20) % 12, np.full(20, 80))
    ref = None if reference == "notes" else reference_features(notes, reference_synth(reference))
    align_audio(notes, render(notes, synth), 22050, reference=ref)
    match_notes(notes, notes)
    return time.perf_counter() - t0


def summary(errors: list[np.ndarray]) -> dict:
    e = np.concatenate(errors) if errors else np.zeros(0)
    return {"beats": int(len(e)), "median_ms": float(np.median(e) * 1000) if len(e) else None,
            "within_50ms": float(np.mean(e < 0.05)) if len(e) else None,
            "within_100ms": float(np.mean(e < 0.1)) if len(e) else None}


def print_table(errors: dict[str, list[np.ndarray]], seconds: dict[str, float],
                cpu: dict[str, float], audio_s: dict[str, float]) -> dict:
    """Print one line per condition over all its beats; return the table."""
    print(f"{'condition':12s} {'beats':>7s} {'median ms':>10s} {'<50 ms':>8s} {'<100 ms':>8s} "
          f"{'align s':>8s} {'CPU s':>8s} {'audio s':>8s} {'x real time':>11s} {'x (CPU)':>8s}")
    table = {}
    for cond in errors:
        s = summary(errors[cond])
        table[cond] = s | {"seconds": seconds[cond], "cpu_seconds": cpu[cond],
                           "audio_s": audio_s[cond]}
        speed = audio_s[cond] / seconds[cond] if audio_s[cond] else float("nan")
        speed_cpu = audio_s[cond] / cpu[cond] if audio_s[cond] else float("nan")
        print(f"{cond:12s} {s['beats']:7d} {s['median_ms'] or 0:10.1f} "
              f"{(s['within_50ms'] or 0)*100:7.2f}% {(s['within_100ms'] or 0)*100:7.2f}% "
              f"{seconds[cond]:8.1f} {cpu[cond]:8.1f} {audio_s[cond]:8.1f} {speed:11.1f} "
              f"{speed_cpu:8.1f}")
    return table


def combine(paths: list[Path]) -> None:
    """The table over the rows of several ``--out`` files (the parts of one run)."""
    errors: dict[str, list[np.ndarray]] = {}
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}
    audio_s: dict[str, float] = {}
    seen: set[tuple[str, str]] = set()
    skipped: set[str] = set()
    for path in paths:
        part = json.loads(path.read_text())
        skipped.update(part["skipped"])
        for row in part["rows"]:
            key = (row["condition"], row["performance"])
            if key in seen:
                raise SystemExit(f"{path}: {key[1]} ({key[0]}) is in two parts")
            seen.add(key)
            cond = row["condition"]
            errors.setdefault(cond, []).append(np.asarray(row["errors_s"]))
            seconds[cond] = seconds.get(cond, 0.0) + row["seconds"]
            cpu[cond] = cpu.get(cond, 0.0) + row["cpu_seconds"]
            audio_s[cond] = audio_s.get(cond, 0.0) + row.get("audio_s", 0.0)
    performances = {p for _, p in seen}
    print(f"{len(paths)} parts: {len(performances)} performances compared, "
          f"{len(skipped)} skipped (score and performance differ in beat count)")
    print_table(errors, seconds, cpu, audio_s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--asap", type=Path, default=ASAP)
    ap.add_argument("--limit", type=int, default=0, help="performances, drawn with --seed (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--conditions", nargs="+", default=["midi", "audio", "noisy"])
    ap.add_argument("--soundfont", default="musescore_general")
    ap.add_argument("--reference", default=REFERENCE,
                    help="score side of recordings: a SoundFont that plays the score, or 'notes'")
    ap.add_argument("--part", default="0/1",
                    help="K/N: only every N-th performance of the drawn order, from the K-th")
    ap.add_argument("--combine", type=Path, nargs="+",
                    help="print the table over these --out files and exit")
    ap.add_argument("--out", type=Path, default=Path("bench_performed.json"))
    args = ap.parse_args()
    if args.combine:
        combine(args.combine)
        return
    k_part, n_parts = (int(v) for v in args.part.split("/"))
    if not 0 <= k_part < n_parts:
        raise SystemExit(f"--part {args.part}: K must be in 0..N-1")
    rows = list(csv.DictReader(open(args.asap / "metadata.csv")))
    order = np.random.default_rng(args.seed).permutation(len(rows))
    if args.limit:
        order = order[: args.limit]
    order = order[k_part::n_parts]
    synth = None
    if {"audio", "noisy", "audio-iir"} & set(args.conditions):
        synth = Synthesizer(resolve_soundfont(args.soundfont), SynthConfig())
    startup_s = warm_up(synth, args.reference) if synth is not None else 0.0
    errors: dict[str, list[np.ndarray]] = {c: [] for c in args.conditions}
    seconds = {c: 0.0 for c in args.conditions}
    cpu = {c: 0.0 for c in args.conditions}
    audio_s = {c: 0.0 for c in args.conditions}
    results, skipped = [], []
    for k in order:
        r = rows[int(k)]
        sb = beats(args.asap / r["midi_score_annotations"])
        pb = beats(args.asap / r["performance_annotations"])
        if len(sb) != len(pb):
            skipped.append(r["midi_performance"])
            continue
        score = load_notes(args.asap / r["midi_score"])
        perf = load_notes(args.asap / r["midi_performance"])
        audio = None
        for cond in args.conditions:
            t0, c0 = time.perf_counter(), time.process_time()
            extra_s = 0.0
            if cond == "midi":
                m = match_notes(score, perf)
                aligned = np.where(m.partner >= 0, perf.onset_s[np.maximum(m.partner, 0)], np.nan)
                extra = {"left_out": m.n_left_out, "extra": m.n_extra,
                         "cost": m.warping.normalised_cost}
            elif cond == "parangonar":
                aligned = parangonar_match(score, perf)
                extra = {"left_out": int(np.isnan(aligned).sum())}
            else:
                if audio is None:
                    audio = render(perf, synth)
                x = audio
                if cond == "noisy":
                    x = reverb_and_noise(audio, 22050, np.random.default_rng(int(k)))
                t0, c0 = time.perf_counter(), time.process_time()
                feats = iir_audio_features(x, 22050) if cond == "audio-iir" else None
                ref = (None if args.reference == "notes" else
                       reference_features(score, reference_synth(args.reference)))
                res = align_audio(score, x, 22050, feats, ref)
                aligned = res.onset_s
                extra = {"cost": res.warping.normalised_cost, "refined": float(res.refined.mean())}
                audio_s[cond] += len(x) / 22050
                extra_s = len(x) / 22050
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            seconds[cond] += dt
            cpu[cond] += dc
            e = beat_errors(score, aligned, sb, pb)
            errors[cond].append(e)
            row = {"performance": r["midi_performance"], "condition": cond, "notes": len(score),
                   "seconds": dt, "cpu_seconds": dc, "audio_s": extra_s, **summary([e]), **extra}
            print(f"{cond:10s} {r['midi_performance']:55s} med {row['median_ms']:6.1f} ms  "
                  f"<50 {row['within_50ms']*100:5.1f} %  <100 {row['within_100ms']*100:5.1f} %  "
                  f"{dt:5.1f} s ({dc:5.1f} CPU)  {json.dumps(extra)}", flush=True)
            results.append(row | {"errors_s": e.tolist()})
    print(f"\nperformances: {len(order) - len(skipped)} compared, {len(skipped)} skipped "
          "(score and performance differ in beat count)")
    table = print_table(errors, seconds, cpu, audio_s)
    print(f"start-up (imports, numba cache; not counted above): {startup_s:.1f} s")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                    "table": table, "startup_s": startup_s,
                                    "load_average": os.getloadavg(), "skipped": skipped,
                                    "rows": results},
                                   indent=1))


if __name__ == "__main__":
    main()
