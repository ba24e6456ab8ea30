"""Render corpora (optionally) and report a render work folder's outcome.

Usage::

    python benchmarks/render_report.py --out /tmp/work [--render CORPUS ...] [--jobs 2]

With ``--render``, every score that :func:`msmd_prep.render.find_scores` finds
in the CORPUS folders is rendered into ``--out`` first (pieces already done
are skipped, so a killed run resumes).  Then every ``piece.json`` of ``--out``
is read and the report printed: pieces aligned well, failed (grouped by
cause) and flagged (with the checks that failed), and the time of the
``midi`` self-check against the render time of the same pieces in the same
run (``midi_check_seconds`` within ``render_seconds``).  Not part of the test
suite; times on a shared machine are contended, the ratio is what counts.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections import Counter
from pathlib import Path

from msmd_prep.render import RenderConfig, find_scores, render_many


def cause_class(error: str) -> str:
    """A failure's cause, shortened to its kind (file names and numbers dropped)."""
    line = re.sub(r"\s+", " ", error)
    line = re.sub(r"convert-ly \(GNU LilyPond\).*?Applying conversion: [0-9., ]*", "", line)
    for key in ("Unbound variable: [^ ]+", "Syntax error", "crashed \\d+ times",
                "time limit", "no printed notes", "lies in no staff system",
                "unknown escaped string: [^ ]+", "not a markup command: [^ ]+",
                "cannot find music object: [^ ]+", "Not smart enough to convert [^ ]+",
                "syntax error, unexpected [^ ]+", "octave marks must precede duration",
                "Wrong type argument[^:]*"):
        m = re.search(key, line)
        if m:
            return m.group(0)
    return line[:100]


def report(out: Path) -> dict:
    """Counts of the pieces of work folder ``out``."""
    pieces = {p.parent.name: json.loads(p.read_text()) for p in sorted(out.glob("*/piece.json"))}
    failed = {k: v for k, v in pieces.items() if v.get("status") != "ok"}
    ok = {k: v for k, v in pieces.items() if v.get("status") == "ok"}
    flagged = {k: v for k, v in ok.items() if not v.get("aligned_well")}
    checked = [v for v in ok.values() if "midi_check_seconds" in v]
    midi_s = sum(v["midi_check_seconds"] for v in checked)
    render_s = sum(v["render_seconds"] for v in checked)
    ratios = [v["midi_check_seconds"] / max(1e-9, v["render_seconds"] - v["midi_check_seconds"])
              for v in checked]
    return {
        "pieces": len(pieces),
        "aligned_well": len(ok) - len(flagged),
        "flagged": {k: sorted(c for c, r in v["checks"].items() if not r["passed"])
                    for k, v in flagged.items()},
        "flag_details": {k: {c: r["detail"][:160] for c, r in v["checks"].items()
                             if not r["passed"]} for k, v in flagged.items()},
        "failed": {k: cause_class(v.get("error", "")) for k, v in failed.items()},
        "crash_fallback": sorted(k for k, v in ok.items() if v.get("crash_fallback")),
        "midi_check_s": round(midi_s, 1),
        "render_s": round(render_s, 1),
        "midi_check_share_of_render": round(midi_s / render_s, 3) if render_s else None,
        "midi_check_added_median": round(statistics.median(ratios), 3) if ratios else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--render", type=Path, nargs="*", default=[])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    if args.render:
        scores = find_scores(args.render)
        t0 = time.perf_counter()
        render_many(scores, args.out, RenderConfig(), jobs=args.jobs, progress=True)
        print(f"rendered {len(scores)} scores in {time.perf_counter() - t0:.0f} s "
              f"at --jobs {args.jobs}")
    r = report(args.out)
    n = r["pieces"]
    print(f"pieces: {n}; aligned well: {r['aligned_well']} ({r['aligned_well'] / max(1, n):.1%}); "
          f"flagged: {len(r['flagged'])}; failed: {len(r['failed'])}")
    print("failures by cause:")
    for cause, count in Counter(r["failed"].values()).most_common():
        print(f"  {count:3d}  {cause}")
    for name, cause in sorted(r["failed"].items()):
        print(f"  FAILED {name}: {cause}")
    print("flags by check:", dict(Counter(c for cs in r["flagged"].values() for c in cs)))
    for name, details in sorted(r["flag_details"].items()):
        print(f"  FLAGGED {name}: {details}")
    print(f"crash fallback used: {r['crash_fallback']}")
    print(f"midi check: {r['midi_check_s']} s of {r['render_s']} s render "
          f"({r['midi_check_share_of_render']} of render time; median piece +"
          f"{r['midi_check_added_median']} over render without it)")


if __name__ == "__main__":
    main()
