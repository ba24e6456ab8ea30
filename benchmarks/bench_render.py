"""Time plain LilyPond against ``msmd-prep render`` on the Mutopia corpus.

Usage::

    python benchmarks/bench_render.py [--corpus DIR] [--out /tmp/bench-render]
                                      [--only TEXT] [--dpi 150]

For every score :func:`msmd_prep.render.find_scores` finds:

- *plain*: the wheel's ``lilypond --pdf`` on the ``convert-ly``'d copy (no
  text fixes, no sandbox, no export include), timed alone;
- *msmd-prep*: :func:`msmd_prep.render.render_score` through the python API
  (normalize with fixes, sandboxed LilyPond with the export, PNG pages,
  tables), timed end to end.

Prints seconds per page for both over the scores that both rendered, their
ratio, and the success counts.  Runs one score at a time so that timings are
not disturbed; not part of the test suite.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from pypdf import PdfReader

from msmd_prep.errors import MsmdPrepError
from msmd_prep.lilypond import lilypond_root
from msmd_prep.normalize import normalize_source
from msmd_prep.render import RenderConfig, find_scores, piece_ids, render_score

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "mutopia"


def time_plain(score: Path, work: Path, timeout_s: float) -> tuple[float, int] | None:
    """Seconds and pages of plain ``lilypond --pdf`` on the convert-ly'd copy.

    Returns ``None`` when convert-ly or LilyPond fails.
    """
    shutil.rmtree(work, ignore_errors=True)
    try:
        norm = normalize_source(score, work, upgrade=True, fixes=None)
    except MsmdPrepError:
        return None
    cmd = [str(lilypond_root() / "bin" / "lilypond"), "--pdf", "--loglevel=ERROR",
           norm.main.name]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=work, capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None
    seconds = time.perf_counter() - t0
    pdfs = sorted(work.glob(f"{norm.main.stem}*.pdf"))
    if proc.returncode != 0 or not pdfs:
        return None
    return seconds, sum(len(PdfReader(p).pages) for p in pdfs)


def time_msmd(score: Path, piece_dir: Path, cfg: RenderConfig) -> tuple[float, int] | None:
    """Seconds and pages of :func:`render_score`, from scratch; ``None`` on failure."""
    shutil.rmtree(piece_dir, ignore_errors=True)
    t0 = time.perf_counter()
    try:
        result = render_score(score, piece_dir, cfg)
    except MsmdPrepError:
        return None
    return time.perf_counter() - t0, result.stats["pages"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench-render"))
    ap.add_argument("--only", default="", help="only scores whose path contains this")
    ap.add_argument("--dpi", type=float, default=150.0)
    args = ap.parse_args(argv)
    cfg = RenderConfig(dpi=args.dpi)
    scores = [s for s in find_scores([args.corpus.resolve()]) if args.only in str(s)]
    ids = piece_ids(scores)
    both = {"plain_s": 0.0, "msmd_s": 0.0, "pages": 0}
    n_plain = n_msmd = 0
    print(f"{'plain s':>8} {'msmd s':>8} {'pages':>5}  score")
    for score in scores:
        plain = time_plain(score, args.out / "plain" / ids[score], cfg.timeout_s)
        msmd = time_msmd(score, args.out / "msmd" / ids[score], cfg)
        n_plain += plain is not None
        n_msmd += msmd is not None
        if plain and msmd:
            both["plain_s"] += plain[0]
            both["msmd_s"] += msmd[0]
            both["pages"] += msmd[1]
        fmt = lambda r: f"{r[0]:8.2f}" if r else f"{'FAIL':>8}"  # noqa: E731
        pages = (msmd or plain or (0, 0))[1]
        print(f"{fmt(plain)} {fmt(msmd)} {pages:5d}  {ids[score]}", flush=True)
    pages = max(both["pages"], 1)
    plain_pp, msmd_pp = both["plain_s"] / pages, both["msmd_s"] / pages
    print(f"\nsucceeded: plain lilypond {n_plain}/{len(scores)}, "
          f"msmd-prep render {n_msmd}/{len(scores)}")
    print(f"over the {both['pages']} pages both rendered: plain {plain_pp:.2f} s/page, "
          f"msmd-prep {msmd_pp:.2f} s/page, ratio {msmd_pp / max(plain_pp, 1e-9):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
