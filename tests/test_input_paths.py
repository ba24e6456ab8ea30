"""The CLI as the README shows it, with relative and unusual paths; failed pieces keep build/.

Relative ``--out``, a space and non-ASCII letters in a file name, ``./x`` and
``../x`` scores, a compressed ``.mxl``: each must render and pass its checks.
Real LilyPond, no mocks.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

from click.testing import CliRunner

from msmd_prep.cli import main

MUSICXML = """<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1"><part-list><score-part id="P1"><part-name>V</part-name>
</score-part></part-list><part id="P1"><measure number="1"><attributes><divisions>2</divisions>
<time><beats>2</beats><beat-type>4</beat-type></time><clef><sign>G</sign><line>2</line></clef>
</attributes>
<note><pitch><step>C</step><octave>5</octave></pitch><duration>2</duration><type>quarter</type></note>
<note><pitch><step>E</step><octave>5</octave></pitch><duration>2</duration><type>quarter</type></note>
</measure></part></score-partwise>
"""
ABC = "X:1\nT:Up\nM:2/4\nL:1/8\nK:D\nd2 f2|a4|]\n"


def _pieces(out: Path) -> dict[str, dict]:
    return {p.name: json.loads((p / "piece.json").read_text())
            for p in out.iterdir() if (p / "piece.json").is_file()}


def test_relative_out_unusual_names_and_mxl(tmp_path, monkeypatch):
    scores = tmp_path / "my scores"
    scores.mkdir()
    (scores / "Ünïcode tune.musicxml").write_text(MUSICXML, encoding="utf-8")
    (tmp_path / "up.abc").write_text(ABC)
    with zipfile.ZipFile(scores / "packed.mxl", "w") as z:
        z.writestr("META-INF/container.xml",
                   '<container><rootfiles><rootfile full-path="s.xml"/></rootfiles></container>')
        z.writestr("s.xml", MUSICXML)
    monkeypatch.chdir(scores)
    result = CliRunner().invoke(main, ["render", "./Ünïcode tune.musicxml", "../up.abc",
                                       "packed.mxl", "--out", "d1"])
    assert result.exit_code == 0, result.output
    pieces = _pieces(scores / "d1")
    assert len(pieces) == 3
    for name, info in pieces.items():
        assert info["status"] == "ok" and info["aligned_well"], (name, info)
        assert info["input_checks"]["matched"] == (3 if info["input_format"] == "abc" else 2)
    assert any(info["source"].endswith("my scores/Ünïcode tune.musicxml") for info in pieces.values())


def test_failed_pieces_keep_their_build_and_name_it(tmp_path, monkeypatch):
    (tmp_path / "broken.musicxml").write_text("<score-partwise><part id='P1'><measure>")
    (tmp_path / "bad.ly").write_text('\\version "2.24.0"\n{ c4 d4 \\nonsense }\n')
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["render", "broken.musicxml", "bad.ly", "--out", "w"])
    assert result.exit_code == 1
    pieces = _pieces(tmp_path / "w")
    for name, info in pieces.items():
        assert info["status"] == "failed"
        build = tmp_path / "w" / name / "build"
        assert build.is_dir() and str(build.resolve()) in str(
            (Path(info["error"].split("(build files kept in ")[1].split(")")[0])).resolve())
    xml_build = tmp_path / "w" / "broken" / "build"
    assert (xml_build / "converted" / "broken.input.xml").is_file()
    assert "lilypond.log" in {p.name for p in (tmp_path / "w" / "bad" / "build").iterdir()}
    assert "nonsense" in (tmp_path / "w" / "bad" / "build" / "lilypond.log").read_text()
    assert "build files kept in" in result.output


def test_dataset_from_musicxml_and_abc_with_relative_out(tmp_path, monkeypatch):
    """``msmd-prep dataset song.musicxml --out d1``, as the README writes it."""
    (tmp_path / "song.musicxml").write_text(MUSICXML)
    (tmp_path / "tunes.abc").write_text(ABC)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["dataset", "song.musicxml", "tunes.abc", "--out", "d1",
                                       "--tempo", "1.0"])
    assert result.exit_code == 0, result.output
    assert "2 ok, 0 flagged, 0 failed" in result.output
    assert (tmp_path / "d1" / "dataset" / "index.json").is_file()
