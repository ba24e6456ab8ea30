"""Reading standard MIDI files: notes with their own timing, meters, keys, tempi.

:func:`read_midi` pairs note-ons with note-offs itself (first in, first out
per track, channel and pitch) and leaves the tick-to-seconds conversion to
pretty_midi, over the file's tempo map.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import mido
import pretty_midi

from ..errors import InputError

_DRUM_CHANNEL = 9


@dataclass(frozen=True)
class MidiNote:
    """A note of a MIDI file, times as the file plays them.

    Attributes
    ----------
    onset_s, offset_s : float
        Start and end in seconds under the file's own tempo map.
    pitch, velocity : int
        MIDI pitch and note-on velocity.
    track, channel : int
        Where the note is in the file.
    start_tick, end_tick : int
        Start and end in MIDI ticks.
    """

    onset_s: float
    offset_s: float
    pitch: int
    velocity: int
    track: int
    channel: int
    start_tick: int
    end_tick: int


@dataclass
class MidiFile:
    """The notes and the meta events of a MIDI file that the score needs.

    Attributes
    ----------
    notes : list of MidiNote
        Pitched notes (not channel 10 drums), by start tick, then pitch.
    ticks_per_beat : int
        Ticks per quarter note.
    tempi : list of (int, float)
        ``(tick, quarter notes per minute)`` changes, the first at tick 0.
    time_signatures : list of (int, int, int)
        ``(tick, numerator, denominator)``; the last one at a tick wins.
    keys : list of (int, str)
        ``(tick, key)`` in mido's names (``"G"``, ``"Em"``, ``"Bb"``).
    title : str
        The first track name, if any.
    drum_notes : int
        Notes on the drum channel, which are not engraved.
    """

    notes: list[MidiNote]
    ticks_per_beat: int
    tempi: list[tuple[int, float]] = field(default_factory=list)
    time_signatures: list[tuple[int, int, int]] = field(default_factory=list)
    keys: list[tuple[int, str]] = field(default_factory=list)
    title: str = ""
    drum_notes: int = 0


def read_midi(path: Path) -> MidiFile:
    """Read a standard MIDI file's notes, tempo map, meters and keys.

    Note-on/off pairs are matched first in, first out per track, channel and
    pitch; a note still sounding at the end of its track ends there.  Times
    in seconds follow the file's tempo map (``set_tempo`` in any track).

    Raises
    ------
    InputError
        The file is not a MIDI file, uses SMPTE time, or has no pitched notes.
    """
    try:
        mf = mido.MidiFile(str(path))
    except (OSError, ValueError, EOFError, KeyError, IndexError) as e:
        raise InputError(f"{path}: not a readable MIDI file ({e})") from None
    tpb = mf.ticks_per_beat
    if not tpb or tpb <= 0:
        raise InputError(f"{path}: SMPTE-timed MIDI files are not supported")
    tempo_events, raw, metas, title, drums = [], [], [], "", 0
    for ti, track in enumerate(mf.tracks):
        tick, sounding, last = 0, {}, 0
        for msg in track:
            tick += msg.time
            last = tick
            if msg.type == "set_tempo":
                tempo_events.append((tick, msg.tempo))
            elif msg.type in ("time_signature", "key_signature"):
                metas.append((tick, msg))
            elif msg.type == "track_name" and not title and msg.name.strip():
                title = msg.name.strip()
            elif msg.type in ("note_on", "note_off"):
                key = (msg.channel, msg.note)
                if msg.type == "note_on" and msg.velocity > 0:
                    sounding.setdefault(key, []).append((tick, msg.velocity))
                elif sounding.get(key):
                    start, vel = sounding[key].pop(0)
                    raw.append((start, tick, msg.note, vel, ti, msg.channel))
        for (ch, note), starts in sounding.items():
            raw += [(start, max(last, start), note, vel, ti, ch) for start, vel in starts]
    tempo_events.sort(key=lambda t: t[0])
    last_tick = max((end for _, end, *_ in raw), default=0)
    seconds = _tick_seconds(tempo_events, tpb, last_tick, path)
    notes = []
    for start, end, pitch, vel, ti, ch in sorted(raw):
        if ch == _DRUM_CHANNEL:
            drums += 1
            continue
        notes.append(MidiNote(seconds(start), seconds(end), pitch, vel, ti, ch, start, end))
    if not notes:
        raise InputError(f"{path}: the MIDI file has no pitched notes")
    tempi = [(t, 60e6 / us) for t, us in tempo_events]
    if not tempi or tempi[0][0] > 0:
        tempi.insert(0, (0, 120.0))
    metas.sort(key=lambda m: m[0])
    times = [(t, m.numerator, m.denominator) for t, m in metas if m.type == "time_signature"]
    keys = [(t, m.key) for t, m in metas if m.type == "key_signature"]
    return MidiFile(notes, tpb, tempi, times, keys, title, drums)




def _tick_seconds(tempo_events: list[tuple[int, int]], tpb: int, last_tick: int, path: Path):
    """Ticks 0..``last_tick`` -> seconds under ``(tick, microseconds per quarter)`` changes.

    The changes may come from any track (files put them in the first, but
    not all do), so they are gathered into one tempo track for pretty_midi;
    a tempo holds from its tick on, the last one at a tick wins, 120
    quarters per minute before the first.
    """
    track, at = mido.MidiTrack(), 0
    for tick, us in tempo_events:
        track.append(mido.MetaMessage("set_tempo", tempo=us, time=tick - at))
        at = tick
    track.append(mido.MetaMessage("end_of_track", time=max(0, last_tick - at)))
    try:
        # pretty_midi tabulates every tick up to the last event at once.
        pm = pretty_midi.PrettyMIDI(mido_object=mido.MidiFile(ticks_per_beat=tpb, tracks=[track]))
    except ValueError as e:
        raise InputError(f"{path}: {e}") from None

    def seconds(tick: int) -> float:
        return float(pm.tick_to_time(tick))
    return seconds
