"""ABC inputs (``.abc``): LilyPond's ``abc2ly``, one tune at a time.

:func:`abc_tunes` splits a book at its ``X:`` fields (each tune is one
piece); :func:`abc_to_ly` converts one tune and adds the pickup bar that
``abc2ly`` leaves out as ``\\partial``; :func:`abc_notes` reads the notes
for the input check.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..errors import InputError
from ..lilypond import executable, run_converter
from .input_checks import InputNote
from .spelling import MAJOR_FIFTHS, STEPS


@dataclass(frozen=True)
class AbcTune:
    """One tune of an ABC file.

    Attributes
    ----------
    number : str
        Its ``X:`` reference number.
    title : str
        Its first ``T:`` field.
    text : str
        The file header (before the first ``X:``) and the tune's lines.
    """

    number: str
    title: str
    text: str


def abc_tunes(text: str) -> list[AbcTune]:
    """Split an ABC file into its tunes at the ``X:`` fields, in file order.

    A file without ``X:`` is one tune (number ``"1"``).
    """
    lines = text.splitlines()
    starts = [i for i, ln in enumerate(lines) if re.match(r"X:", ln)]
    if not starts:
        return [AbcTune("1", _abc_field(lines, "T"), text)]
    header = lines[:starts[0]]
    tunes = []
    for a, b in zip(starts, [*starts[1:], len(lines)]):
        body = lines[a:b]
        number = body[0][2:].strip() or str(len(tunes) + 1)
        tunes.append(AbcTune(number, _abc_field(body, "T"), "\n".join(header + body) + "\n"))
    return tunes


def _abc_field(lines: list[str], name: str) -> str:
    return next((ln[2:].strip() for ln in lines if ln.startswith(f"{name}:")), "")


def abc_tune_ids(path: Path) -> list[str]:
    """The tune selectors of an ABC file for :func:`convert_source`.

    One tune gives ``[""]`` (the file is one piece); a book gives
    ``tune-<X>`` per tune, made unique by order where ``X:`` repeats.
    """
    try:
        tunes = abc_tunes(read_abc_text(path))
    except (OSError, InputError):
        return [""]  # render reports the error for the file
    if len(tunes) <= 1:
        return [""]
    ids, seen = [], Counter()
    for t in tunes:
        name = re.sub(r"[^A-Za-z0-9]+", "_", t.number) or "x"
        seen[name] += 1
        ids.append(f"tune-{name}" if seen[name] == 1 else f"tune-{name}-{seen[name]}")
    return ids


_ABC_SHARP_ORDER = "FCGDAEB"
_ABC_MODES = {"": 0, "maj": 0, "ion": 0, "m": -3, "min": -3, "aeo": -3, "mix": -1,
              "dor": -2, "phr": -4, "lyd": 1, "loc": -5}
_ABC_NOTE = re.compile(r"(\^\^|\^|__|_|=)?([A-Ga-g])([,']*)(\d*/*\d*)(-?)")


def _abc_key(value: str) -> dict[str, int]:
    """Key signature of a ``K:`` value: letter -> semitone alteration."""
    m = re.match(r"\s*([A-G])([#b]?)\s*([A-Za-z]*)", value)
    if not m or value.strip().lower().startswith(("none", "hp")):
        return {}
    fifths = MAJOR_FIFTHS.get(m.group(1) + m.group(2), 0)
    fifths += _ABC_MODES.get(m.group(3).lower()[:3], 0)
    if fifths > 0:
        return {c: 1 for c in _ABC_SHARP_ORDER[:fifths]}
    return {c: -1 for c in _ABC_SHARP_ORDER[::-1][:-fifths]}


def abc_notes(text: str) -> list[InputNote]:
    """The notes of one ABC tune in written order, ties merged.

    Understands key signatures (``K:``, also inline), accidentals that hold to
    the bar line, octave marks, chords ``[CEG]``, ties ``-`` and grace notes
    ``{g}``; skips header fields, lyrics, comments, chord symbols and
    decorations.  Chord notes are listed low to high.  Moments are not
    computed (``None``): :func:`compare_notes` then pairs in order.
    """
    key: dict[str, int] = {}
    out: list[InputNote] = []
    tied: set[int] = set()
    in_body = False
    for line in text.splitlines():
        line = line.split("%", 1)[0]
        fm = re.match(r"([A-Za-z]):(.*)", line)
        if fm:
            if fm.group(1) == "K":
                key = _abc_key(fm.group(2))
                in_body = True
            continue
        if not in_body:
            continue
        line = re.sub(r'"[^"]*"|![^!]*!|\+[^+]*\+', " ", line)
        bar: dict[tuple[str, int], int] = {}
        i, grace, chord = 0, False, None
        while i < len(line):
            c = line[i]
            if c == "[" and re.match(r"\[[A-Za-z]:", line[i:]):
                j = line.find("]", i)
                j = len(line) if j < 0 else j
                if line[i + 1] == "K":
                    key = _abc_key(line[i + 3:j])
                i = j + 1
                continue
            if c == "|" or c == ":":
                bar = {}
            elif c == "{":
                grace = True
            elif c == "}":
                grace = False
            elif c == "[":
                chord = []
            elif c == "]" and chord is not None:
                tie_all = line[i + 1:i + 2] == "-"
                out += _abc_emit(sorted(chord, key=lambda x: x[0]), tied, tie_all)
                chord = None
            m = _ABC_NOTE.match(line, i)
            if m and (i == 0 or not line[i - 1].isalpha() or line[i - 1] in "ABCDEFGabcdefg"):
                acc, letter, marks = m.group(1), m.group(2), m.group(3)
                octave = 5 if letter.islower() else 4
                octave += marks.count("'") - marks.count(",")
                up = letter.upper()
                if acc:
                    bar[(up, octave)] = {"^^": 2, "^": 1, "__": -2, "_": -1, "=": 0}[acc]
                alter = bar.get((up, octave), key.get(up, 0))
                pitch = 12 * (octave + 1) + STEPS[up] + alter
                note = (pitch, grace, m.group(5) == "-")
                if chord is not None:
                    chord.append(note)
                else:
                    out += _abc_emit([note], tied, False)
                i = m.end()
                continue
            i += 1
    return out


def _abc_emit(notes, tied: set[int], tie_all: bool) -> list[InputNote]:
    """Notes of one chord or note, less those that continue a tie."""
    out = []
    new_ties = set()
    for pitch, grace, tie in notes:
        if grace:
            out.append(InputNote(pitch, None, True))
            continue
        if pitch not in tied:
            out.append(InputNote(pitch))
        if tie or tie_all:
            new_ties.add(pitch)
    if not all(g for _, g, _ in notes):
        tied.clear()
        tied.update(new_ties)
    return out


def abc_to_ly(text: str, out_ly: Path, *, timeout_s: float = 120.0) -> None:
    """Convert one ABC tune to LilyPond with ``abc2ly``, ready for render.

    ``abc2ly`` writes no pickup bar; where the tune's first bar is shorter
    than its meter, ``\\partial`` is added after the first ``\\key`` of every
    voice (else the bar lines of the whole tune would be shifted).
    """
    src = out_ly.with_suffix(".abc")
    src.write_text(text, encoding="utf-8")
    run_converter("abc2ly", [str(executable("abc2ly")), "-o", str(out_ly), str(src)],
                   timeout_s, cwd=out_ly.parent)
    ly = out_ly.read_text(encoding="utf-8", errors="replace")
    pickup = abc_pickup(text)
    if pickup:
        ly = re.sub(r"(= \{.*?\\key \w+ \\\w+)", lambda m: f"{m.group(1)} \\partial 1*{pickup}",
                    ly, flags=re.S)
    out_ly.write_text(ly, encoding="utf-8")


def abc_pickup(text: str) -> Fraction | None:
    """Length of the pickup bar of an ABC tune (whole notes), if it has one.

    Sums the note and rest lengths before the first bar line of the body
    (``L:`` unit, default 1/8; tuplets and broken rhythm change no total of a
    group, so they are read as written where they close in the bar).
    Returns ``None`` when the first bar is full or cannot be read.
    """
    meter, unit, body = None, None, []
    in_body = False
    for line in text.splitlines():
        line = line.split("%", 1)[0]
        fm = re.match(r"([A-Za-z]):(.*)", line)
        if fm:
            name, value = fm.group(1), fm.group(2).strip()
            if name == "M" and not in_body:
                meter = {"C": Fraction(1), "C|": Fraction(1)}.get(value)
                if meter is None and re.fullmatch(r"\d+/\d+", value):
                    meter = Fraction(value)
            elif name == "L" and not in_body and re.fullmatch(r"\d+/\d+", value):
                unit = Fraction(value)
            elif name == "K":
                in_body = True
            continue
        if in_body:
            body.append(line)
    if not meter:
        return None
    unit = unit or (Fraction(1, 16) if meter < Fraction(3, 4) else Fraction(1, 8))
    first = " ".join(body).lstrip(" |:")
    first = re.sub(r'"[^"]*"|![^!]*!|\+[^+]*\+|\{[^}]*\}|\[[A-Za-z]:[^\]]*\]', " ", first)
    cut = re.search(r"\||::|:\|", first)
    if not cut:
        return None
    first = first[:cut.start()]
    if re.search(r"\(\d|[<>\[]", first):
        return None  # tuplets, broken rhythm or chords: leave the bar alone
    total = Fraction(0)
    for m in re.finditer(r"(?:\^\^|\^|__|_|=)?[A-Ga-gzx][,']*(\d*)(/*)(\d*)", first):
        num = int(m.group(1)) if m.group(1) else 1
        slashes = len(m.group(2))
        den = int(m.group(3)) if m.group(3) else (2 ** slashes if slashes else 1)
        total += unit * num / den
    return total if 0 < total < meter else None


def read_abc_text(path: Path) -> str:
    """The text of an ABC file: UTF-8, else Latin-1 (older collections)."""
    data = path.read_bytes()
    if not data.strip():
        raise InputError(f"{path}: empty file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")
