"""MusicXML inputs (``.xml``, ``.musicxml``, ``.mxl``) through our own writer.

music21 reads the score (:func:`parse_musicxml`); :mod:`.music21_to_ly`
writes the LilyPond and records where every note went (:func:`musicxml_to_ly`).
The playback attributes of ``<sound>`` that music21 does not read (da capo,
dal segno, segno, coda, to coda, fine) are read here (:func:`sound_jumps`).
"""
from __future__ import annotations

import codecs
import re
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

from ..errors import InputError
from .music21_to_ly import LyScore, write_ly_file

_JUMPS = ("dacapo", "dalsegno", "segno", "coda", "tocoda", "fine")


def _decode_xml(data: bytes) -> str:
    """XML bytes as text: UTF-16 or UTF-8 by their byte-order mark, else UTF-8.

    Older exports (music21's Monteverdi madrigals) are UTF-16.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = data.decode("utf-16", "replace")
    else:
        text = data.decode("utf-8-sig", "replace")
    # The text is handled (and copied) as UTF-8 from here on; so says its declaration.
    return re.sub(r"""^(\s*<\?xml[^>]*?encoding=)(["'])[^"']*\2""", r'\1"UTF-8"', text,
                  count=1)


def read_musicxml_text(path: Path) -> str:
    """The score XML of a ``.xml``/``.musicxml`` file or a compressed ``.mxl``."""
    if path.suffix.lower() != ".mxl":
        return _decode_xml(path.read_bytes())
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
            return _decode_xml(z.read(root))
    except (zipfile.BadZipFile, StopIteration, KeyError, ET.ParseError) as e:
        raise InputError(f"{path}: not a compressed MusicXML file ({e})") from None


def sound_jumps(text: str) -> list[set]:
    """Per measure of the first part: the jumps its ``<sound>`` elements name.

    music21 reads repeat bar lines and voltas but not the playback attributes
    ``dacapo``, ``dalsegno``, ``segno``, ``coda``, ``tocoda`` and ``fine``.
    """
    try:
        root = ET.fromstring(text.encode("utf-8"))
    except ET.ParseError as e:
        raise InputError(f"not well-formed MusicXML: {e}") from None
    part = next(root.iter("part"), None)
    if part is None:
        return []
    out = []
    for measure in part.iter("measure"):
        found = set()
        for sound in measure.iter("sound"):
            found |= {k for k in _JUMPS if sound.get(k) not in (None, "no")}
        out.append(found)
    return out


def parse_musicxml(text: str):
    """The music21 score of a MusicXML text (a lone part becomes a score)."""
    import music21

    score = music21.converter.parseData(text, format="musicxml")
    if not isinstance(score, music21.stream.Score):
        score = music21.stream.Score([score])
    return score


def musicxml_to_ly(text: str, out_ly: Path, *, title: str = "") -> LyScore:
    """Write the LilyPond of a MusicXML text to ``out_ly``; returns what was written.

    Raises
    ------
    InputError
        The XML is not well-formed, or music21 or the writer cannot take it.
    """
    return write_ly_file(lambda: parse_musicxml(text), out_ly, what="MusicXML", title=title,
                         sounds=sound_jumps(text))
