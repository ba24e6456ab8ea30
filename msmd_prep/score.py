"""The score's tables: printed note heads, staff systems and performances.

These are the domain objects every stage reads and writes (``noteheads.csv``,
``systems.csv``, ``performance.csv``), kept apart from the stages that make
them so that reading a table needs no renderer.

- :class:`NoteHead`: a printed head, its box in page pixels and its onsets.
  Its ``moment`` (musical time) is a :class:`fractions.Fraction` of whole notes.
- :class:`System`: a staff system and its box in page pixels.
- :class:`NoteEvent` / :class:`Performance`: the note events in playing
  order.  Times are seconds at tempo factor 1.0; a tempo factor is a speed
  factor, so at factor ``f`` every time is divided by ``f``.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import pretty_midi

from .errors import ConfigError, InputError

NOTEHEAD_COLUMNS = ("notehead_id", "page", "x0", "y0", "x1", "y1", "system", "staff", "voice",
                    "pitch", "grace", "tied", "onsets_s", "moment", "source")
SYSTEM_COLUMNS = ("system", "page", "x0", "y0", "x1", "y1", "n_staves")
PERFORMANCE_COLUMNS = ("onset_s", "duration_s", "pitch", "velocity", "notehead_id")


@dataclass(frozen=True)
class NoteHead:
    """A printed note head with its box and the times it sounds.

    Attributes
    ----------
    id : str
        ``h<N>``, unique within the piece; performance events name it.
    page : int
        Page number, from 1.
    x0, y0, x1, y1 : float
        Box in page pixels (origin top left).
    system : int
        Staff system index in reading order, from 0.
    staff, voice : int
        Staff and voice numbers within the movement, in order of appearance.
    pitch : int
        MIDI pitch (as sounding in the score's own key; ottava not applied
        to the pitch, since it only changes the printing).
    grace : bool
        The head is a grace note.
    tied : bool
        A tie continuation: it sounds on, with no onset of its own.
    onsets_s : tuple of float
        Onsets at tempo factor 1.0 in seconds, one per time it is played.
    moment : Fraction
        Musical time of the head in the printed score, whole notes (a grace
        note's is its main note's moment plus its negative grace offset).
    source : str
        ``file:line:column`` of the note in the normalized source.
    """

    id: str
    page: int
    x0: float
    y0: float
    x1: float
    y1: float
    system: int
    staff: int
    voice: int
    pitch: int
    grace: bool
    tied: bool
    onsets_s: tuple[float, ...]
    moment: Fraction
    source: str

    def __post_init__(self) -> None:
        # A moment given as text ("3/4", as in noteheads.csv) is kept exact.
        object.__setattr__(self, "moment", Fraction(self.moment))


@dataclass(frozen=True)
class System:
    """A staff system: its page and the box around its staves, pixels."""

    index: int
    page: int
    x0: float
    y0: float
    x1: float
    y1: float
    n_staves: int


def write_heads_csv(heads: list[NoteHead], path: Path) -> None:
    """Write ``noteheads.csv`` (columns :data:`NOTEHEAD_COLUMNS`; moments as ``3/4``)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(NOTEHEAD_COLUMNS)
        for h in heads:
            w.writerow([h.id, h.page, f"{h.x0:.2f}", f"{h.y0:.2f}", f"{h.x1:.2f}", f"{h.y1:.2f}",
                        h.system, h.staff, h.voice, h.pitch, int(h.grace), int(h.tied),
                        " ".join(f"{t:.6f}" for t in h.onsets_s), h.moment, h.source])


def read_heads_csv(path: Path) -> list[NoteHead]:
    """Read ``noteheads.csv`` back into :class:`NoteHead` objects."""
    with open(path, newline="") as f:
        return [NoteHead(r["notehead_id"], int(r["page"]), float(r["x0"]), float(r["y0"]),
                         float(r["x1"]), float(r["y1"]), int(r["system"]), int(r["staff"]),
                         int(r["voice"]), int(r["pitch"]), r["grace"] == "1", r["tied"] == "1",
                         tuple(float(t) for t in r["onsets_s"].split()), Fraction(r["moment"]),
                         r["source"]) for r in csv.DictReader(f)]


def write_systems_csv(systems: list[System], path: Path) -> None:
    """Write ``systems.csv`` (columns :data:`SYSTEM_COLUMNS`)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(SYSTEM_COLUMNS)
        for s in systems:
            w.writerow([s.index, s.page, f"{s.x0:.2f}", f"{s.y0:.2f}", f"{s.x1:.2f}",
                        f"{s.y1:.2f}", s.n_staves])


def read_systems_csv(path: Path) -> list[System]:
    """Read ``systems.csv`` back into :class:`System` objects."""
    with open(path, newline="") as f:
        return [System(int(r["system"]), int(r["page"]), float(r["x0"]), float(r["y0"]),
                       float(r["x1"]), float(r["y1"]), int(r["n_staves"]))
                for r in csv.DictReader(f)]


@dataclass(frozen=True)
class NoteEvent:
    """One sounding note.

    Attributes
    ----------
    onset_s : float
        Onset in seconds from the start of the performance.
    duration_s : float
        Sounding duration in seconds (ties already merged), > 0.
    pitch : int
        MIDI pitch, 0..127.
    velocity : int
        MIDI velocity, 1..127.
    notehead_id : str
        Id of the note head this event sounds (see ``noteheads.csv``).
    """

    onset_s: float
    duration_s: float
    pitch: int
    velocity: int
    notehead_id: str

    def __post_init__(self) -> None:
        if not 0 <= self.pitch <= 127:
            raise InputError(f"MIDI pitch {self.pitch} out of range 0..127")
        if not 1 <= self.velocity <= 127:
            raise InputError(f"MIDI velocity {self.velocity} out of range 1..127")
        if self.duration_s <= 0:
            raise InputError(f"note duration {self.duration_s} s is not positive")


@dataclass(frozen=True)
class Performance:
    """Note events sorted by onset (then pitch).

    Attributes
    ----------
    events : tuple of NoteEvent
        The notes in playing order.
    tempo_factor : float
        Speed factor relative to the score's tempo (1.2 is 20 % faster).
    """

    events: tuple[NoteEvent, ...]
    tempo_factor: float = 1.0

    @property
    def duration_s(self) -> float:
        """End of the last sounding note, in seconds."""
        return max((e.onset_s + e.duration_s for e in self.events), default=0.0)

    def at_tempo(self, factor: float) -> "Performance":
        """Return this performance played ``factor`` times as fast.

        Parameters
        ----------
        factor : float > 0
            Speed factor relative to tempo factor 1.0 (not to ``self``).
        """
        if not factor > 0:
            raise ConfigError(f"tempo factor must be > 0, got {factor!r}")
        scale = self.tempo_factor / factor
        return Performance(
            tuple(replace(e, onset_s=e.onset_s * scale, duration_s=e.duration_s * scale)
                  for e in self.events),
            tempo_factor=factor,
        )


def sort_events(events: list[NoteEvent]) -> tuple[NoteEvent, ...]:
    """Playing order: by onset, then pitch, then note-head id."""
    return tuple(sorted(events, key=lambda e: (e.onset_s, e.pitch, e.notehead_id)))


def write_performance_csv(perf: Performance, path: Path) -> None:
    """Write ``perf`` as CSV with the columns :data:`PERFORMANCE_COLUMNS`."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(PERFORMANCE_COLUMNS)
        for e in perf.events:
            w.writerow([f"{e.onset_s:.6f}", f"{e.duration_s:.6f}", e.pitch, e.velocity,
                        e.notehead_id])


def read_performance_csv(path: Path, tempo_factor: float = 1.0) -> Performance:
    """Read a performance written by :func:`write_performance_csv`."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    events = [NoteEvent(float(r["onset_s"]), float(r["duration_s"]), int(r["pitch"]),
                        int(r["velocity"]), r["notehead_id"]) for r in rows]
    return Performance(sort_events(events), tempo_factor)


def to_pretty_midi(perf: Performance, program: int = 0) -> pretty_midi.PrettyMIDI:
    """The performance as a one-track MIDI object (piano unless ``program``)."""
    pm = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120.0)
    inst = pretty_midi.Instrument(program=program, name="performance")
    inst.notes = [pretty_midi.Note(velocity=e.velocity, pitch=e.pitch, start=e.onset_s,
                                   end=e.onset_s + e.duration_s) for e in perf.events]
    pm.instruments.append(inst)
    return pm


def write_performance_midi(perf: Performance, path: Path) -> None:
    """Write ``perf`` as a standard MIDI file (tempo 120, times exact to 1/1920 s)."""
    to_pretty_midi(perf).write(str(path))
