"""ABC inputs (``.abc``) through our own writer, one tune at a time.

:func:`abc_tunes` splits a book at its ``X:`` fields (each tune is one
piece); music21 reads a tune (:func:`parse_abc`) and :mod:`.music21_to_ly`
writes it (:func:`abc_to_ly`), as for MusicXML: pickups, repeats and first
and second endings, tuplets, grace notes, ties, chords and ``Q:`` tempi
with every note's place recorded.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .music21_to_ly import LyScore, write_ly_file


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


def parse_abc(text: str):
    """The music21 score of one ABC tune (the first, if the text holds several)."""
    import music21

    parsed = music21.converter.parseData(text, format="abc")
    if isinstance(parsed, music21.stream.Opus):
        scores = list(parsed.scores)
        if not scores:
            raise InputError("the ABC text holds no tune")
        parsed = scores[0]
    if not isinstance(parsed, music21.stream.Score):
        parsed = music21.stream.Score([parsed])
    return parsed


def abc_to_ly(text: str, out_ly: Path, *, title: str = "") -> LyScore:
    """Write the LilyPond of one ABC tune to ``out_ly``; returns what was written.

    Raises
    ------
    InputError
        music21 or the writer cannot take the tune.
    """
    return write_ly_file(lambda: parse_abc(text), out_ly, what="ABC tune", title=title)


def read_abc_text(path: Path) -> str:
    """The text of an ABC file: UTF-8, else Latin-1 (older collections)."""
    data = path.read_bytes()
    if not data.strip():
        raise InputError(f"{path}: empty file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")
