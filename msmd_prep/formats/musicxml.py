"""MusicXML inputs (``.xml``, ``.musicxml``, ``.mxl``): LilyPond's ``musicxml2ly``.

:func:`musicxml_to_ly` converts; its ``\\pointAndClickOff`` is dropped and its
commented-out ``\\midi`` block (which holds the tempo) is restored.
:func:`musicxml_notes` reads the notes for the input check.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zipfile
from fractions import Fraction
from pathlib import Path

from ..errors import InputError
from ..lilypond import executable, run_converter
from .input_checks import InputNote
from .spelling import STEPS


def read_musicxml_text(path: Path) -> str:
    """The score XML of a ``.xml``/``.musicxml`` file or a compressed ``.mxl``."""
    if path.suffix.lower() != ".mxl":
        return path.read_bytes().decode("utf-8", "replace")
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            root = None
            if "META-INF/container.xml" in names:
                c = ET.fromstring(z.read("META-INF/container.xml"))
                rf = c.find(".//{*}rootfile")
                root = rf.get("full-path") if rf is not None else None
            if root is None:
                root = next(n for n in names if n.endswith(".xml") and "/" not in n)
            return z.read(root).decode("utf-8", "replace")
    except (zipfile.BadZipFile, StopIteration, KeyError, ET.ParseError) as e:
        raise InputError(f"{path}: not a compressed MusicXML file ({e})") from None


def musicxml_notes(text: str) -> list[InputNote]:
    """The notes of a partwise MusicXML score, ties merged, with their moments.

    Every part starts at moment 0; within a measure ``<backup>`` and
    ``<forward>`` move the position and a ``<chord/>`` note shares the
    previous note's start; a measure is as long as the furthest position
    reached in it (so a pickup measure is short).  Rests, unpitched notes and
    tie continuations (a ``<tie type="stop"/>``) are left out.

    Raises
    ------
    InputError
        The text is not partwise MusicXML.
    """
    try:
        root = ET.fromstring(text.encode("utf-8"))
    except ET.ParseError as e:
        raise InputError(f"not well-formed MusicXML: {e}") from None
    if root.tag.split("}")[-1] != "score-partwise":
        raise InputError(f"only partwise MusicXML is read, not <{root.tag}>")
    out = []
    for part in root.iter("part"):
        divisions, start = Fraction(1), Fraction(0)
        for measure in part.iter("measure"):
            pos, far, last = Fraction(0), Fraction(0), Fraction(0)
            for el in measure:
                tag = el.tag
                if tag == "attributes" and el.findtext("divisions"):
                    divisions = Fraction(el.findtext("divisions").strip())
                elif tag in ("backup", "forward"):
                    d = Fraction(el.findtext("duration", "0").strip()) / divisions / 4
                    pos += d if tag == "forward" else -d
                elif tag == "note":
                    grace = el.find("grace") is not None
                    d = Fraction(el.findtext("duration", "0").strip()) / divisions / 4
                    at = last if el.find("chord") is not None else pos
                    pitch = el.find("pitch")
                    tie_stop = any(t.get("type") == "stop" for t in el.findall("tie"))
                    if pitch is not None and not tie_stop:
                        midi = (12 * (int(pitch.findtext("octave")) + 1)
                                + STEPS[pitch.findtext("step").strip()]
                                + round(float(pitch.findtext("alter") or 0)))
                        out.append(InputNote(midi, None if grace else start + at, grace))
                    if not grace and el.find("chord") is None:
                        last = pos
                        pos += d
                far = max(far, pos)
            start += far
    return out


def musicxml_to_ly(path: Path, out_ly: Path, *, timeout_s: float = 120.0) -> None:
    """Convert MusicXML to LilyPond with ``musicxml2ly``, ready for render.

    ``\\pointAndClickOff`` is removed and the commented-out ``\\midi`` block
    that ``musicxml2ly`` writes is restored (it carries the score's tempo).
    """
    cmd = [str(executable("musicxml2ly")), "--absolute", "-o", str(out_ly)]
    if path.suffix.lower() == ".mxl":
        cmd.append("--compressed")
    run_converter("musicxml2ly", [*cmd, str(path)], timeout_s, cwd=out_ly.parent)
    text = out_ly.read_text(encoding="utf-8", errors="replace")
    text = re.sub(r"^\s*\\pointAndClickOff\s*$", "", text, flags=re.M)
    text = re.sub(r"^(\s*)%+\s*(\\midi\s*\{.*\})\s*$", r"\1\2", text, flags=re.M)
    out_ly.write_text(text, encoding="utf-8")
