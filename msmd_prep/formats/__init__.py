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
- **MusicXML** (``.xml``, ``.musicxml``, ``.mxl``) and **ABC** (``.abc``,
  one tune at a time; :func:`~.abc.abc_tunes` splits a book at its ``X:``
  fields and each tune is one piece): music21 reads the score and our own
  writer (:mod:`.music21_to_ly`) engraves it, recording the line and column
  of every pitch it writes.  LilyPond's export names every head's
  ``file:line:column``, so :func:`~.input_checks.pair_heads` pairs every
  input note with its head by construction and checks pitch, moment and
  ties, naming the measure and the note of any mismatch.  The performance
  is the input's own (:mod:`.score_performance`): repeats, voltas and
  D.C./D.S./coda/fine jumps unfolded (:mod:`.unfold`), its tempo marks and
  its dynamics.

LilyPond's ``musicxml2ly`` and ``abc2ly`` are not used: on real corpora they
write invalid LilyPond, crash, or move notes (``notes/issue12.md`` has the
figures).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..score import Performance
from .abc import abc_to_ly, abc_tune_ids, abc_tunes, read_abc_text
from .input_checks import pair_heads
from .midi import MidiFile, read_midi
from .midi_to_ly import MidiScore, align_midi_heads, midi_to_ly
from .music21_to_ly import LyScore
from .musicxml import musicxml_to_ly, read_musicxml_text
from .score_performance import score_performance

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
    midi : MidiFile or None
        The MIDI file read (MIDI inputs).
    score : MidiScore or None
        Where every MIDI note was written (MIDI inputs).
    written : LyScore or None
        Where every note was written, and the measures, tempo and dynamics
        the performance needs (MusicXML, ABC).
    default_qpm : float
        Quarter notes per minute before the input's first tempo mark.
    """

    source: Path
    format: str
    ly: Path
    tune: str = ""
    midi: MidiFile | None = None
    score: MidiScore | None = None
    written: LyScore | None = None
    default_qpm: float = 60.0

    @property
    def tempo_source(self) -> list[str]:
        """Where the performance's tempo comes from, for ``piece.json``."""
        if self.format == "midi":
            return ["midi"]
        return ["score"] if self.written is not None and self.written.tempi else ["default"]

    def finish(self, heads, performance: Performance):
        """The heads and performance of the piece, and its checks.

        For MIDI the performance becomes the file's own
        (:func:`align_midi_heads`); for MusicXML and ABC the heads are paired
        with the written notes (:func:`pair_heads`) and the performance is
        played from the input (:func:`score_performance`).

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
            pairing = pair_heads(heads, self.written)
            heads, performance, info = score_performance(self.written, pairing, heads,
                                                         default_qpm=self.default_qpm)
            checks = pairing.checks | info
        ok = bool(checks.pop("ok"))
        report = {"input_format": self.format, "checks": checks, "aligned_well": ok}
        if self.tune:
            report["tune"] = self.tune
        return heads, performance, report


def convert_source(source: Path, folder: Path, *, tune: str = "",
                   default_qpm: float = 60.0) -> Conversion:
    """Convert a MIDI, MusicXML or ABC file to LilyPond in ``folder``.

    Parameters
    ----------
    source : Path
        The input; its format is taken from the suffix (:data:`FORMATS`).
    folder : Path
        Where the ``.ly`` file (and the converters' files) go; created.
    tune : str
        For an ABC book, the tune (from :func:`abc_tune_ids`).
    default_qpm : float
        Quarter notes per minute where a MusicXML or ABC input names no tempo.

    Raises
    ------
    InputError
        Unknown format, unreadable input, or an unknown tune.
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
        (folder / f"{stem}.input.xml").write_text(text, encoding="utf-8")
        written = musicxml_to_ly(text, ly, title=source.stem)
        return Conversion(source, fmt, ly, written=written, default_qpm=default_qpm)
    tunes = abc_tunes(read_abc_text(source))
    ids = abc_tune_ids(source)
    if tune not in ids:
        raise InputError(f"{source}: no tune {tune!r} (has {', '.join(ids)})")
    chosen = tunes[ids.index(tune)]
    (folder / f"{stem}.input.abc").write_text(chosen.text, encoding="utf-8")
    written = abc_to_ly(chosen.text, ly, title=chosen.title or source.stem)
    return Conversion(source, fmt, ly, tune=tune, written=written, default_qpm=default_qpm)


def drop_lilypond_outputs(files: list[Path]) -> list[Path]:
    """``files`` without MIDI, MusicXML and ABC files that have a ``.ly`` twin.

    Score collections (Mutopia) put LilyPond's own MIDI output next to the
    source (``foo.ly``, ``foo.mid``); the source is the piece, once.
    """
    sources = {p.with_suffix("") for p in files if p.suffix == ".ly"}
    return [p for p in files if input_format(p) is None or p.with_suffix("") not in sources]
