"""Untrusted scores read only their own folder tree (issue 11)."""
from __future__ import annotations

from pathlib import Path

import pytest

from msmd_prep.render import RenderConfig, render_many

SECRET = "msmd-secret-4711"


def _outside_and_score(tmp_path: Path, include: str) -> Path:
    """``tmp_path/outside.ly`` (music with a secret); a score two folders down includes ``include``."""
    (tmp_path / "outside.ly").write_text(f"% {SECRET}\n{{ c'4 d' e' f' }}\n")
    folder = tmp_path / "corpus" / "piece"
    folder.mkdir(parents=True)
    score = folder / "hostile.ly"
    score.write_text(f'\\version "2.24.0"\n\\include "{include}"\n{{ g\'4 }}\n')
    return score


@pytest.mark.parametrize("include", ["/etc/hostname", "../../outside.ly"])
def test_include_outside_the_score_folder_fails_naming_it(tmp_path, include):
    score = _outside_and_score(tmp_path, include)
    [result] = render_many([score], tmp_path / "out", RenderConfig(timeout_s=60))
    assert result.error, "the piece must fail"
    assert f'\\include "{include}"' in result.error and "outside" in result.error
    assert SECRET not in result.error
    assert not (tmp_path / "out" / "hostile" / "noteheads.csv").exists()
    assert not list((tmp_path / "out").rglob("*outside*"))
    assert not list((tmp_path / "out").rglob("*hostname*"))


def test_includes_inside_the_tree_still_work(tmp_path):
    """A main file including ``parts/a.ily``, which includes ``../defs.ily`` (Mutopia's -lys)."""
    root = tmp_path / "piece-lys"
    (root / "parts").mkdir(parents=True)
    (root / "defs.ily").write_text("melody = { c'4 d' e' f' }\n")
    (root / "parts" / "a.ily").write_text('\\include "../defs.ily"\n')
    (root / "piece.ly").write_text('\\version "2.24.0"\n\\include "parts/a.ily"\n'
                                   '\\include "english.ly"\n\\score { \\melody \\layout { } }\n')
    [result] = render_many([root / "piece.ly"], tmp_path / "out", RenderConfig(timeout_s=60))
    assert not result.error, result.error
    assert result.stats["noteheads"] == 4


def test_symlink_out_of_the_tree_fails(tmp_path):
    score = _outside_and_score(tmp_path, "inner.ly")
    (score.parent / "inner.ly").symlink_to(tmp_path / "outside.ly")
    [result] = render_many([score], tmp_path / "out", RenderConfig(timeout_s=60))
    assert '\\include "inner.ly"' in result.error and "outside" in result.error


def test_abc_that_injects_an_include_fails_naming_it(tmp_path):
    """abc2ly copies ``%%LY voices`` lines into its LilyPond output verbatim."""
    (tmp_path / "outside.ly").write_text(f"% {SECRET}\n{{ c'4 }}\n")
    src = tmp_path / "corpus"
    src.mkdir()
    (src / "tune.abc").write_text(
        f'X:1\nT:t\nM:4/4\nL:1/4\nK:C\n%%LY voices \\include "{tmp_path / "outside.ly"}"\n'
        "CDEF|]\n")
    (src / "book.abc").write_text("X:1\nT:b\nM:4/4\nL:1/4\n%%abc-include ../outside.abh\nK:C\n"
                                  "CDEF|]\n")
    results = render_many(sorted(src.glob("*.abc")), tmp_path / "out",
                          RenderConfig(timeout_s=60))
    by_name = {r.source.name: r for r in results}
    tune = by_name["tune.abc"]
    # Through abc2ly the injected include fails the piece naming it; through the music21
    # writer the comment is dropped.  Either way outside.ly is never read.
    if tune.error:
        assert f'\\include "{tmp_path / "outside.ly"}"' in tune.error
    else:
        assert tune.stats["noteheads"] == 4
    assert "abc-include '../outside.abh'" in by_name["book.abc"].error
    assert all(SECRET not in r.error for r in results)
    assert not [p for p in (tmp_path / "out").rglob("*")
                if p.is_file() and SECRET.encode() in p.read_bytes()]


def test_musicxml_with_an_external_entity_fails_naming_it(tmp_path):
    score = tmp_path / "entity.musicxml"
    score.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE score-partwise [<!ENTITY secret SYSTEM "file:///etc/hostname">]>\n'
        '<score-partwise version="3.1"><part-list><score-part id="P1"><part-name>&secret;'
        '</part-name></score-part></part-list><part id="P1"><measure number="1"><attributes>'
        '<divisions>1</divisions></attributes><note><pitch><step>C</step><octave>4</octave>'
        '</pitch><duration>4</duration><type>whole</type></note></measure></part>'
        '</score-partwise>\n')
    [result] = render_many([score], tmp_path / "out", RenderConfig(timeout_s=60))
    assert "file:///etc/hostname" in result.error and "another file" in result.error
