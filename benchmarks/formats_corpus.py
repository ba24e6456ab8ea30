"""Render a corpus of MIDI, MusicXML or ABC files and report the checks.

    python benchmarks/formats_corpus.py ../shared/corpus/nottingham/melody \
        --out /tmp/formats-melody [--limit N] [--jobs 2] [--no-sandbox]

Prints the number of pieces, how many rendered, how many passed the checks
(``aligned_well`` in ``piece.json``), every failure with its cause, and the
time per piece (median, mean, max).  A rerun reuses finished pieces.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from msmd_prep.render import RenderConfig, find_scores, render_many


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="work folder (outside the repo)")
    ap.add_argument("--limit", type=int, default=0, help="first N inputs only")
    ap.add_argument("--dpi", type=float, default=150.0)
    ap.add_argument("--no-sandbox", action="store_true")
    ap.add_argument("--jobs", type=int, default=1, help="pieces in N processes")
    args = ap.parse_args(argv)

    scores = find_scores(args.folders)
    if args.limit:
        scores = scores[:args.limit]
    t0 = time.perf_counter()
    results = render_many(scores, args.out, RenderConfig(dpi=args.dpi,
                                                         sandbox=not args.no_sandbox),
                          jobs=args.jobs)
    wall = time.perf_counter() - t0

    failed, misaligned, seconds = [], [], []
    for r in results:
        if r.error:
            failed.append((r.piece_dir.name, r.error.splitlines()[0][:200]))
            continue
        info = json.loads((r.piece_dir / "piece.json").read_text())
        seconds.append(info.get("render_seconds", 0.0))
        if not info.get("aligned_well", False):
            checks = {k: v for k, v in info.get("checks", {}).items() if v}
            misaligned.append((r.piece_dir.name, checks))
            for line in info.get("input_checks", {}).get("mismatch", [])[:3]:
                misaligned.append((r.piece_dir.name, line))
    n = len(results)
    good = n - len(failed) - len(misaligned)
    print(f"inputs: {', '.join(map(str, args.folders))}")
    print(f"pieces: {n}  rendered: {n - len(failed)}  checks passed: {good} "
          f"({100 * good / max(n, 1):.1f} %)")
    for name, cause in failed:
        print(f"  FAILED {name}: {cause}")
    for name, checks in misaligned:
        print(f"  CHECKS {name}: {checks}")
    if seconds:
        print(f"render seconds per piece: median {statistics.median(seconds):.2f}, "
              f"mean {statistics.mean(seconds):.2f}, max {max(seconds):.2f} "
              f"(pieces rendered in this run or before); wall {wall:.0f} s")
    return 0 if good >= 0.95 * n else 1


if __name__ == "__main__":
    sys.exit(main())
