"""The symbolic performance of a piece: note events in playing order.

A performance is what the synth stage plays and what the align stage pairs
with note heads.  Times are seconds at tempo factor 1.0; a tempo factor is a
speed factor, so at factor ``f`` every time is divided by ``f``.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path

import pretty_midi

from .errors import ConfigError, InputError

PERFORMANCE_COLUMNS = ("onset_s", "duration_s", "pitch", "velocity", "notehead_id")


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
