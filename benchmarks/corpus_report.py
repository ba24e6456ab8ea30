"""Render the Mutopia development corpus and print a table of results.

Usage::

    python benchmarks/corpus_report.py [--corpus DIR] [--out /tmp/corpus-work]
                                       [--jobs 2] [--no-fixes] [--markdown]

Every score that :func:`msmd_prep.render.find_scores` finds is rendered with
the python API (one process per job); a piece (a Mutopia folder, a ``-lys``
folder counting once) succeeds when all of its scores render.  Failures are
printed with the first line of their cause.  Not part of the test suite.
"""
from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from msmd_prep.errors import MsmdPrepError
from msmd_prep.render import RenderConfig, find_scores, piece_ids, render_score

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "mutopia"


def piece_of(score: Path, corpus: Path) -> str:
    """The Mutopia piece a score belongs to: its folder, ``-lys`` folded in."""
    folder = score.parent
    if folder.name.endswith("-lys"):
        folder = folder.parent
    return str(folder.relative_to(corpus))


def render_one(job: tuple[Path, Path, RenderConfig]) -> tuple[str, dict, float]:
    """Render one score; return its path, stats or error, and seconds."""
    score, piece_dir, cfg = job
    t0 = time.perf_counter()
    try:
        result = render_score(score, piece_dir, cfg)
        return str(score), {"ok": True, **result.stats}, time.perf_counter() - t0
    except MsmdPrepError as e:
        return str(score), {"ok": False, "error": str(e)}, time.perf_counter() - t0


def first_line(text: str, width: int = 110) -> str:
    """The first non-empty line of ``text``, cut to ``width`` characters."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= width else line[: width - 3] + "..."


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--out", type=Path, default=Path("/tmp/corpus-work"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-fixes", action="store_true", help="render without msmd_prep.fixes")
    ap.add_argument("--dpi", type=float, default=100.0)
    ap.add_argument("--only", default="", help="render only scores whose path contains this")
    args = ap.parse_args(argv)
    cfg = RenderConfig(dpi=args.dpi, fixes=not args.no_fixes)
    corpus = args.corpus.resolve()
    scores = [s for s in find_scores([corpus]) if args.only in str(s)]
    ids = piece_ids(scores)
    jobs = [(s, args.out / ids[s], cfg) for s in scores]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = dict((path, (stats, secs)) for path, stats, secs in pool.map(render_one, jobs))
    pieces: dict[str, bool] = {}
    print(f"{'status':6} {'secs':>6} {'pages':>5} {'heads':>6} {'events':>6} {'dur_s':>7}  score")
    for s in scores:
        stats, secs = results[str(s)]
        rel = s.relative_to(corpus)
        pieces[piece_of(s, corpus)] = pieces.get(piece_of(s, corpus), True) and stats["ok"]
        if stats["ok"]:
            print(f"{'ok':6} {secs:6.1f} {stats['pages']:5d} {stats['noteheads']:6d} "
                  f"{stats['events']:6d} {stats['duration_s']:7.1f}  {rel}")
        else:
            print(f"{'FAIL':6} {secs:6.1f} {'':5} {'':6} {'':6} {'':7}  {rel}\n"
                  f"{'':30}{first_line(stats['error'])}")
    n_ok = sum(r[0]["ok"] for r in results.values())
    p_ok = sum(pieces.values())
    print(f"\nscores: {n_ok}/{len(scores)} ok; pieces: {p_ok}/{len(pieces)} ok "
          f"({100 * p_ok / max(len(pieces), 1):.1f} %)")
    return 0 if p_ok == len(pieces) else 1


if __name__ == "__main__":
    sys.exit(main())
