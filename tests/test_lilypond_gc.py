"""LilyPond without garbage collection, within a heap bound, on real LilyPond runs."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from msmd_prep import lilypond
from msmd_prep.errors import ToolError
from msmd_prep.lilypond import EXPORT_ILY, OUT_OF_HEAP, lilypond_root, run_lilypond


SCORES = Path(__file__).parent / "fixtures" / "scores"
ARGS = [f"-dinclude-settings={EXPORT_ILY}", "-dbackend=cairo", "-dno-point-and-click", "--png",
        "-dresolution=100", "--loglevel=WARNING", "multipage.ly"]
#: A heap LilyPond starts in (about 40 MiB) but the fixture does not fit in
#: without collection (about 70 MiB).
SMALL_HEAP = 48 * 1024**2


def _outputs(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())
            if p.suffix in (".png", ".tsv", ".midi")}


@pytest.fixture
def runs(tmp_path):
    """Two build folders with the multipage fixture."""
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
        shutil.copy(SCORES / "multipage.ly", folder)
    return folders


def test_a_run_that_fills_its_heap_without_collection_is_done_again_with_it(runs, monkeypatch):
    # The first attempt (no collection) fills this heap: the collector says so.
    first = lilypond.gc_attempts()[0] | {"GC_MAXIMUM_HEAP_SIZE": str(SMALL_HEAP)}
    raw = subprocess.run([str(lilypond_root() / "bin" / "lilypond"), *ARGS], cwd=runs[1],
                         env={"PATH": "/usr/bin:/bin", "HOME": str(runs[1])} | first,
                         capture_output=True, text=True)
    assert OUT_OF_HEAP[0] in raw.stderr
    run_lilypond(ARGS, cwd=runs[0], timeout_s=120)
    monkeypatch.setattr(lilypond, "NO_GC_HEAP_BYTES", SMALL_HEAP)
    done = run_lilypond(ARGS, cwd=runs[1], timeout_s=120)
    assert not any(line in done.stderr for line in OUT_OF_HEAP)
    outputs = _outputs(runs[0])
    assert {"multipage-page1.png", "multipage-page2.png", "msmd-export.tsv"} <= set(outputs)
    assert _outputs(runs[1]) == outputs


def test_without_collection_the_outputs_are_the_same_bytes(runs, monkeypatch):
    run_lilypond(ARGS, cwd=runs[0], timeout_s=120)
    # Collection from the first attempt on.
    monkeypatch.setattr(lilypond, "gc_attempts", lambda: [{}])
    run_lilypond(ARGS, cwd=runs[1], timeout_s=120)
    assert _outputs(runs[0]) == _outputs(runs[1])


def test_a_full_heap_on_the_last_attempt_fails_the_run(runs, monkeypatch):
    monkeypatch.setattr(lilypond, "gc_attempts",
                        lambda: [{"GC_DONT_GC": "1", "GC_MAXIMUM_HEAP_SIZE": str(SMALL_HEAP)}])
    with pytest.raises(ToolError, match="out of memory"):
        run_lilypond(ARGS, cwd=runs[0], timeout_s=120)
