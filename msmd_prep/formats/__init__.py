"""MIDI, MusicXML and ABC inputs: converted to LilyPond, then rendered as usual.

The render stage reads LilyPond.  Every other input format is first turned
into a ``.ly`` file in the piece's build folder (:func:`convert_source`);
that file then takes the normal path (normalized copy, LilyPond under the
sandbox), so a converted score gets exactly the outputs of a ``.ly`` score.

- **MIDI** (``.mid``, ``.midi``): :func:`~.midi.read_midi` reads the notes with
  their own timing, :func:`~.midi_to_ly.quantize_midi` snaps them to a sixteenth or
  eighth-triplet grid (chosen per beat), and :func:`~.midi_to_ly.midi_to_ly` engraves
  them with our own small writer: one staff per track (a wide polyphonic
  track, i.e. piano, split at middle C into two), overlapping notes in extra
  voices, ties at bar lines, triplets, the pickup as ``\\partial``.  The
  performance of a MIDI input is the MIDI itself: :func:`~.midi_to_ly.align_midi_heads`
  pairs every printed head with the MIDI notes it stands for by its exact
  ``(staff, moment, pitch)`` and replaces the rendered performance with the
  original onsets, durations and velocities.
- **MusicXML** (``.xml``, ``.musicxml``, ``.mxl``): LilyPond's
  ``musicxml2ly`` (:mod:`.musicxml`).  Its ``\\pointAndClickOff`` is
  dropped and its commented-out ``\\midi`` block (which holds the tempo) is
  restored.
- **ABC** (``.abc``): LilyPond's ``abc2ly``, one tune at a time
  (:mod:`.abc`; :func:`~.abc.abc_tunes` splits a book at its ``X:`` fields; each tune is one
  piece), with the pickup bar that ``abc2ly`` leaves out added as
  ``\\partial``.

The converters only transform text (they run no code from the input), so
they run outside the sandbox, each with a time limit; LilyPond itself still
runs sandboxed on their output.

Each converted piece is checked against its input (:mod:`.input_checks`):
the score's notes after merging ties must equal the input's notes in number
and, one to one, in pitch (and in musical time, where the input gives it).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..score import Performance
from .abc import abc_notes, abc_to_ly, abc_tune_ids, abc_tunes, read_abc_text
from .input_checks import InputNote, compare_notes
from .midi import MidiFile, read_midi
from .midi_to_ly import MidiScore, align_midi_heads, midi_to_ly
from .musicxml import musicxml_notes, musicxml_to_ly, read_musicxml_text

#: Input suffix -> format name.
FORMATS = {".mid": "midi", ".midi": "midi", ".xml": "musicxml", ".musicxml": "musicxml",
           ".mxl": "musicxml", ".abc": "abc"}


def input_format(path: Path) -> str | None:
    """``"midi"``, ``"musicxml"`` or ``"abc"`` by suffix; ``None`` for LilyPond."""
    return FORMATS.get(Path(path).suffix.lower())


@dataclass
class Conversion:
    """A non-LilyPond input converted to a ``.ly`` file.

    Attributes
    ----------
    source : Path
        The input file.
    format : str
        ``midi``, ``musicxml`` or ``abc``.
    ly : Path
        The converted LilyPond file.
    tune : str
        The ABC tune selector (``tune-3``), else empty.
    expected : list of InputNote
        The input's notes for the checks (MusicXML, ABC).
    midi : MidiFile or None
        The MIDI file read (MIDI inputs).
    score : MidiScore or None
        Where every MIDI note was written (MIDI inputs).
    """

    source: Path
    format: str
    ly: Path
    tune: str = ""
    expected: list[InputNote] = field(default_factory=list)
    midi: MidiFile | None = None
    score: MidiScore | None = None

    def finish(self, heads, performance: Performance):
        """The heads and performance of the piece, and its checks.

        For MIDI the performance becomes the file's own
        (:func:`align_midi_heads`); for the other formats it stays LilyPond's
        and the heads are checked against the input (:func:`compare_notes`).

        Returns
        -------
        heads : list of NoteHead
        performance : Performance
        report : dict
            ``input_format``, ``checks`` and ``aligned_well`` for ``piece.json``.
        """
        if self.midi is not None and self.score is not None:
            al = align_midi_heads(heads, self.midi.notes, self.score.placed, self.score.shift)
            heads, performance, checks = al.heads, al.performance, al.checks
            checks["drum_notes_not_engraved"] = self.midi.drum_notes
        else:
            checks = compare_notes(heads, self.expected)
        ok = bool(checks.pop("ok"))
        report = {"input_format": self.format, "checks": checks, "aligned_well": ok}
        if self.tune:
            report["tune"] = self.tune
        return heads, performance, report


def convert_source(source: Path, folder: Path, *, tune: str = "",
                   timeout_s: float = 120.0) -> Conversion:
    """Convert a MIDI, MusicXML or ABC file to LilyPond in ``folder``.

    Parameters
    ----------
    source : Path
        The input; its format is taken from the suffix (:data:`FORMATS`).
    folder : Path
        Where the ``.ly`` file (and the converters' files) go; created.
    tune : str
        For an ABC book, the tune (from :func:`abc_tune_ids`).
    timeout_s : float
        Time limit of one converter run, seconds.

    Raises
    ------
    InputError
        Unknown format, unreadable input, or an unknown tune.
    ToolError
        A converter failed or hit its time limit.
    """
    fmt = input_format(source)
    if fmt is None:
        raise InputError(f"{source}: not a MIDI, MusicXML or ABC file")
    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", source.stem) or "score"
    ly = folder / f"{stem}.ly"
    if fmt == "midi":
        midi = read_midi(source)
        score = midi_to_ly(midi, title=source.stem)
        ly.write_text(score.ly, encoding="utf-8")
        return Conversion(source, fmt, ly, midi=midi, score=score)
    if fmt == "musicxml":
        text = read_musicxml_text(source)
        xml_copy = folder / f"{stem}.input.xml"
        xml_copy.write_text(text, encoding="utf-8")
        musicxml_to_ly(xml_copy, ly, timeout_s=timeout_s)
        return Conversion(source, fmt, ly, expected=musicxml_notes(text))
    tunes = abc_tunes(read_abc_text(source))
    ids = abc_tune_ids(source)
    if tune not in ids:
        raise InputError(f"{source}: no tune {tune!r} (has {', '.join(ids)})")
    chosen = tunes[ids.index(tune)]
    abc_to_ly(chosen.text, ly, timeout_s=timeout_s)
    return Conversion(source, fmt, ly, tune=tune, expected=abc_notes(chosen.text))


def drop_lilypond_outputs(files: list[Path]) -> list[Path]:
    """``files`` without MIDI, MusicXML and ABC files that have a ``.ly`` twin.

    Score collections (Mutopia) put LilyPond's own MIDI output next to the
    source (``foo.ly``, ``foo.mid``); the source is the piece, once.
    """
    sources = {p.with_suffix("") for p in files if p.suffix == ".ly"}
    return [p for p in files if input_format(p) is None or p.with_suffix("") not in sources]
