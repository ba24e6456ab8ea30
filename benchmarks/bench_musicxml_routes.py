"""Seconds per page of the MusicXML routes against plain ``lilypond`` on the same files.

    python benchmarks/bench_musicxml_routes.py ../shared/corpus/asap --limit 6 \
        --out /tmp/routes

For each MusicXML file (``--limit`` of them, spread over the sorted list):

- route ``musicxml2ly``: LilyPond's converter (timed), then plain ``lilypond
  --pdf`` on its output (timed);
- route ``music21``: music21 reads the file and our writer writes the
  ``.ly`` (timed, in process), then plain ``lilypond --pdf`` on it (timed);
- the whole render stage on the ``music21`` route (``render_score``: writer,
  LilyPond with the export include and PNGs in the sandbox, pairing, checks).

Prints seconds per page of each step, summed over the files each route got
through, and the ratios to plain ``lilypond`` measured in the same run.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

from msmd_prep.formats.musicxml import musicxml_to_ly, read_musicxml_text
from msmd_prep.lilypond import executable
from msmd_prep.render import RenderConfig, render_score


def _pages(pdf: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page(?!s)", pdf.read_bytes()))


def _plain_lilypond(ly: Path, timeout_s: float) -> tuple[float, int]:
    """Seconds of ``lilypond --pdf`` on ``ly`` and the pages it wrote (0: failed)."""
    t0 = time.perf_counter()
    proc = subprocess.run([str(executable("lilypond")), "--pdf", "--loglevel=ERROR", ly.name],
                          cwd=ly.parent, capture_output=True, timeout=timeout_s)
    seconds = time.perf_counter() - t0
    pdf = ly.with_suffix(".pdf")
    return seconds, _pages(pdf) if proc.returncode == 0 and pdf.is_file() else 0


def _musicxml2ly(xml: Path, out: Path, timeout_s: float) -> float | None:
    t0 = time.perf_counter()
    proc = subprocess.run([str(executable("musicxml2ly")), "--absolute", "-o", str(out), str(xml)],
                          capture_output=True, timeout=timeout_s)
    return time.perf_counter() - t0 if proc.returncode == 0 and out.is_file() else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="work folder (outside the repo)")
    ap.add_argument("--limit", type=int, default=6)
    ap.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args(argv)

    files = sorted(p for f in args.folders for p in f.rglob("*") if p.suffix in (".musicxml", ".xml"))
    step = max(1, len(files) // max(args.limit, 1))
    files = files[::step][:args.limit]
    import music21  # noqa: F401 -- imported once before timing, as a run of many pieces does

    totals = {k: 0.0 for k in ("m2l_conv", "m2l_ly", "m21_conv", "m21_ly", "render")}
    pages = {"m2l": 0, "m21": 0}
    for i, xml in enumerate(files):
        work = args.out / f"{i:03d}"
        work.mkdir(parents=True, exist_ok=True)
        a, b = work / "a.ly", work / "b.ly"
        conv = _musicxml2ly(xml, a, args.timeout)
        a_s, a_pages = _plain_lilypond(a, args.timeout) if conv is not None else (0.0, 0)
        t0 = time.perf_counter()
        musicxml_to_ly(read_musicxml_text(xml), b, title=xml.stem)
        b_conv = time.perf_counter() - t0
        b_s, b_pages = _plain_lilypond(b, args.timeout)
        t0 = time.perf_counter()
        result = render_score(xml, work / "piece", RenderConfig(dpi=150))
        r_s = time.perf_counter() - t0
        print(f"{xml}: musicxml2ly {'failed' if conv is None else f'{conv:.1f} s'}, lilypond "
              f"{a_s:.1f} s, {a_pages} pages | music21 {b_conv:.1f} s, lilypond {b_s:.1f} s, "
              f"{b_pages} pages, render {r_s:.1f} s ({result.stats.get('pages', 0)} pages)")
        if a_pages:
            totals["m2l_conv"] += conv
            totals["m2l_ly"] += a_s
            pages["m2l"] += a_pages
        if b_pages:
            totals["m21_conv"] += b_conv
            totals["m21_ly"] += b_s
            totals["render"] += r_s
            pages["m21"] += b_pages
    print("\nseconds per page (machine shared with other jobs: compare ratios, not absolutes)")
    if pages["m2l"]:
        conv, ly = totals["m2l_conv"] / pages["m2l"], totals["m2l_ly"] / pages["m2l"]
        print(f"  musicxml2ly route ({pages['m2l']} pages): convert {conv:.2f}, plain lilypond "
              f"{ly:.2f}, convert / lilypond {conv / ly:.2f}")
    if pages["m21"]:
        conv, ly = totals["m21_conv"] / pages["m21"], totals["m21_ly"] / pages["m21"]
        render = totals["render"] / pages["m21"]
        print(f"  music21 route ({pages['m21']} pages): convert {conv:.2f}, plain lilypond "
              f"{ly:.2f}, convert / lilypond {conv / ly:.2f}; whole render stage {render:.2f}, "
              f"render / plain lilypond {render / ly:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
