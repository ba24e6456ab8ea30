"""MIDI, MusicXML and ABC inputs: converted to LilyPond, then rendered as usual.

The render stage reads LilyPond.  Every other input format is first turned
into a ``.ly`` file in the piece's build folder (:func:`convert_source`);
that file then takes the normal path (normalized copy, LilyPond under the
sandbox), so a converted score gets exactly the outputs of a ``.ly`` score.

- **MIDI** (``.mid``, ``.midi``): :func:`read_midi` reads the notes with
  their own timing, :func:`quantize_midi` snaps them to a sixteenth or
  eighth-triplet grid (chosen per beat), and :func:`midi_to_ly` engraves
  them with our own small writer: one staff per track (a wide polyphonic
  track, i.e. piano, split at middle C into two), overlapping notes in extra
  voices, ties at bar lines, triplets, the pickup as ``\\partial``.  The
  performance of a MIDI input is the MIDI itself: :func:`align_midi_heads`
  pairs every printed head with the MIDI notes it stands for by its exact
  ``(staff, moment, pitch)`` and replaces the rendered performance with the
  original onsets, durations and velocities.
- **MusicXML** (``.xml``, ``.musicxml``, ``.mxl``): LilyPond's
  ``musicxml2ly`` (:func:`musicxml_to_ly`).  Its ``\\pointAndClickOff`` is
  dropped and its commented-out ``\\midi`` block (which holds the tempo) is
  restored.
- **ABC** (``.abc``): LilyPond's ``abc2ly``, one tune at a time
  (:func:`abc_tunes` splits a book at its ``X:`` fields; each tune is one
  piece), with the pickup bar that ``abc2ly`` leaves out added as
  ``\\partial``.

The converters only transform text (they run no code from the input), so
they run outside the sandbox, each with a time limit; LilyPond itself still
runs sandboxed on their output.

Each converted piece is checked against its input (:func:`compare_notes`):
the score's notes after merging ties must equal the input's notes in number
and, one to one, in pitch (and in musical time, where the input gives it).
"""
from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from .errors import InputError, ToolError
from .lilypond import executable
from .performance import NoteEvent, Performance, sort_events

#: Input suffix -> format name.
FORMATS = {".mid": "midi", ".midi": "midi", ".xml": "musicxml", ".musicxml": "musicxml",
           ".mxl": "musicxml", ".abc": "abc"}

_DRUM_CHANNEL = 9
_NAMES_SHARP = ("c", "cis", "d", "dis", "e", "f", "fis", "g", "gis", "a", "bes", "b")
_NAMES_FLAT = ("c", "des", "d", "ees", "e", "f", "ges", "g", "aes", "a", "bes", "b")
_MAJOR_FIFTHS = {"C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5, "F#": 6, "C#": 7, "D#": 9, "G#": 8,
                 "A#": 10, "F": -1,
                 "Bb": -2, "Eb": -3, "Ab": -4, "Db": -5, "Gb": -6, "Cb": -7}


def input_format(path: Path) -> str | None:
    """``"midi"``, ``"musicxml"`` or ``"abc"`` by suffix; ``None`` for LilyPond."""
    return FORMATS.get(Path(path).suffix.lower())


# ---------------------------------------------------------------- checks


@dataclass(frozen=True)
class InputNote:
    """A note as the input file writes it, for the checks.

    Attributes
    ----------
    pitch : int
        MIDI pitch as written.
    moment : Fraction or None
        Musical time in whole notes from the start of the printed score,
        where the input gives it (MusicXML, quantized MIDI); ``None`` else.
    grace : bool
        A grace note (its moment is not compared).
    """

    pitch: int
    moment: Fraction | None = None
    grace: bool = False


def compare_notes(heads, expected: list[InputNote]) -> dict:
    """Check the score's notes against the input's.

    The score's notes are its printed heads without tie continuations.  They
    are paired with the input's notes by ``(moment, pitch)`` where the input
    has moments (grace notes by pitch alone), else, for inputs without
    moments, in playing order: heads sorted by moment, then pitch, against
    the input notes in the given order.

    Parameters
    ----------
    heads : list of NoteHead
        The rendered heads (``tied`` and ``grace``, ``moment``, ``pitch`` used).
    expected : list of InputNote
        The input's notes after merging ties.

    Returns
    -------
    dict
        ``input_notes``, ``score_notes``, ``matched`` (pairs with equal
        pitch, and equal moment where known), ``pitch_mismatches``
        (``max(input, score) - matched``) and ``ok``.
    """
    score = [h for h in heads if not h.tied]
    if expected and all(n.moment is not None or n.grace for n in expected):
        want = Counter((n.moment, n.pitch) for n in expected if not n.grace)
        want_grace = Counter(n.pitch for n in expected if n.grace)
        have = Counter((Fraction(h.moment), h.pitch) for h in score if not h.grace)
        have_grace = Counter(h.pitch for h in score if h.grace)
        matched = sum((want & have).values()) + sum((want_grace & have_grace).values())
    else:
        ordered = sorted(score, key=lambda h: (Fraction(h.moment), h.pitch))
        matched = sum(1 for h, n in zip(ordered, expected) if h.pitch == n.pitch)
    n_in, n_score = len(expected), len(score)
    return {"input_notes": n_in, "score_notes": n_score, "matched": matched,
            "pitch_mismatches": max(n_in, n_score) - matched,
            "ok": n_in == n_score == matched and n_in > 0}


# ------------------------------------------------------------------ MIDI


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
    import mido

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
    seconds = _tick_seconds(tempo_events, tpb)
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


def _tick_seconds(tempo_events: list[tuple[int, int]], tpb: int):
    """Ticks -> seconds under ``(tick, microseconds per quarter)`` changes."""
    ticks, starts, rates = [0], [0.0], [500000]
    for tick, us in tempo_events:
        if tick == ticks[-1]:
            rates[-1] = us
            continue
        starts.append(starts[-1] + (tick - ticks[-1]) * rates[-1] / tpb / 1e6)
        ticks.append(tick)
        rates.append(us)

    def seconds(tick: int) -> float:
        i = bisect_right(ticks, tick) - 1
        return starts[i] + (tick - ticks[i]) * rates[i] / tpb / 1e6
    return seconds


@dataclass(frozen=True)
class QuantizedNote:
    """A MIDI note placed in the score.

    Attributes
    ----------
    index : int
        Index of the note in :attr:`MidiFile.notes`.
    start, end : Fraction
        Quantized start and end, whole notes from the file's tick 0.
    pitch : int
        MIDI pitch.
    staff : int
        Staff of the score it is printed on, from 0 (top).
    """

    index: int
    start: Fraction
    end: Fraction
    pitch: int
    staff: int = 0


def quantize_midi(midi: MidiFile, *, triplets: bool = True) -> list[QuantizedNote]:
    """Snap note starts and ends to a grid chosen per quarter-note beat.

    Each beat takes the grid, sixteenths or eighth triplets, that moves the
    note starts and ends inside it least (triplets only when strictly
    better).  A note shorter than one grid step after snapping gets one
    step.  Staves are assigned later (:func:`assign_staves`).

    Parameters
    ----------
    midi : MidiFile
        The notes to quantize.
    triplets : bool
        Allow the eighth-triplet grid.
    """
    whole = 4 * midi.ticks_per_beat
    beat = Fraction(1, 4)
    points: dict[int, list[Fraction]] = {}
    for n in midi.notes:
        for t in (n.start_tick, n.end_tick):
            w = Fraction(t, whole)
            points.setdefault(int(w / beat), []).append(w)
    grid: dict[int, Fraction] = {}
    for unit, ws in points.items():
        straight = sum(abs(w - _snap(w, Fraction(1, 16))) for w in ws)
        triplet = sum(abs(w - _snap(w, Fraction(1, 12))) for w in ws)
        grid[unit] = Fraction(1, 12) if triplets and triplet < straight else Fraction(1, 16)

    def snap(tick: int) -> tuple[Fraction, Fraction]:
        w = Fraction(tick, whole)
        step = grid.get(int(w / beat), Fraction(1, 16))
        return _snap(w, step), step

    out = []
    for i, n in enumerate(midi.notes):
        start, step = snap(n.start_tick)
        end, _ = snap(n.end_tick)
        out.append(QuantizedNote(i, start, max(end, start + step), n.pitch))
    return out


def _snap(w: Fraction, step: Fraction) -> Fraction:
    return round(w / step) * step


def assign_staves(midi: MidiFile, notes: list[QuantizedNote]) -> tuple[list[QuantizedNote],
                                                                       list[str]]:
    """Put every note on a staff; returns the notes and each staff's clef.

    Each (track, channel) part gets one staff, treble or bass by its mean
    pitch; a polyphonic part that reaches below G3 and above G4 (piano
    music) is split at middle C into a treble and a bass staff.  Staves are
    ordered from high to low.
    """
    parts: dict[tuple[int, int], list[QuantizedNote]] = {}
    for q in notes:
        m = midi.notes[q.index]
        parts.setdefault((m.track, m.channel), []).append(q)
    staves: list[tuple[float, str, list[QuantizedNote]]] = []
    for qs in parts.values():
        pitches = [q.pitch for q in qs]
        if _polyphonic(qs) and min(pitches) < 55 and max(pitches) > 67:
            staves.append((72.0, "treble", [q for q in qs if q.pitch >= 60]))
            staves.append((48.0, "bass", [q for q in qs if q.pitch < 60]))
        else:
            mean = sum(pitches) / len(pitches)
            staves.append((mean, "treble" if mean >= 57 else "bass", qs))
    staves = [s for s in staves if s[2]]
    staves.sort(key=lambda s: -s[0])
    placed = [replace(q, staff=i) for i, (_, _, qs) in enumerate(staves) for q in qs]
    return sorted(placed, key=lambda q: q.index), [clef for _, clef, _ in staves]


def _polyphonic(notes: list[QuantizedNote]) -> bool:
    ends: Fraction | None = None
    for q in sorted(notes, key=lambda q: q.start):
        if ends is not None and q.start < ends:
            return True
        ends = q.end if ends is None else max(ends, q.end)
    return False


@dataclass(frozen=True)
class MidiScore:
    """A MIDI file engraved: the LilyPond text and where each note went.

    Attributes
    ----------
    ly : str
        The LilyPond source.
    placed : list of QuantizedNote
        Every MIDI note's staff, quantized start and pitch.
    shift : Fraction
        Score moment 0 is this time of the file (whole notes): the start of
        the first note, so that a pickup is printed as ``\\partial``.
    """

    ly: str
    placed: list[QuantizedNote]
    shift: Fraction

    def moment(self, q: QuantizedNote) -> Fraction:
        """The moment of ``q``'s head in the printed score, whole notes."""
        return q.start - self.shift


def midi_to_ly(midi: MidiFile, *, title: str = "", triplets: bool = True) -> MidiScore:
    """Engrave a MIDI file as LilyPond text.

    Notes are quantized (:func:`quantize_midi`) and put on staves
    (:func:`assign_staves`).  Within a staff, notes with the same start and
    end form a chord; a note that overlaps another (of a different start or
    end) goes into a further voice; notes of equal staff, start and pitch are
    printed once.  In a staff of one voice a note that overlaps the next by
    less than half its length is cut at the next start (legato playing).
    Meters, keys and tempi come from the file (4/4, C major and quarter =
    120 where it names none); the title is the first track name, else
    ``title``.  If the first note starts inside the first bar,
    the bar is printed as a pickup.
    """
    placed, clefs = assign_staves(midi, quantize_midi(midi, triplets=triplets))
    whole = 4 * midi.ticks_per_beat
    shift = min(q.start for q in placed)
    meters = _changes([(Fraction(t, whole), (n, d)) for t, n, d in midi.time_signatures],
                      (4, 4))
    keys = _changes([(Fraction(t, whole), k) for t, k in midi.keys], "C")
    bars = _bar_lines(meters, max(q.end for q in placed))
    tempi = [(Fraction(t, whole), q) for t, q in midi.tempi]
    flats = _key_fifths(max((k for k in keys if k[0] <= shift), key=lambda k: k[0])[1]) < 0
    staves = []
    for staff, clef in enumerate(clefs):
        mine = [q for q in placed if q.staff == staff]
        voices = _voices(mine)
        staves.append((clef, [_voice_ly(v, bars, shift, index=i, n_voices=len(voices),
                                        flats=flats) for i, v in enumerate(voices)]))
    glob = _global_ly(meters, keys, bars, shift, max(q.end for q in placed))
    tempo = _tempo_ly(tempi, shift)
    header = _ly_string(midi.title or title)
    lines = ['\\version "2.24.0"', f"\\header {{ title = {header} tagline = ##f }}",
             f"global = {{ {glob} }}", f"tempi = {{ {tempo} }}"]
    staff_texts = []
    for i, (clef, voices) in enumerate(staves):
        extra = " \\tempi" if i == 0 else ""
        music = f"\\new Voice {{ {voices[0]} }}" if len(voices) == 1 else " ".join(voices)
        staff_texts.append(f"  \\new Staff << \\clef {clef} \\global{extra} {music} >>")
    group = "\\new PianoStaff" if len(staves) == 2 and clefs == ["treble", "bass"] else ""
    lines.append("\\score {\n" + (f"{group} <<\n" if len(staves) > 1 else "") +
                 "\n".join(staff_texts) + ("\n>>" if len(staves) > 1 else "") +
                 "\n  \\layout { }\n}")
    return MidiScore("\n".join(lines) + "\n", placed, shift)


def _ly_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _changes(items, default):
    """Sorted ``(time, value)`` with one value per time (the last wins)."""
    out: dict[Fraction, object] = {}
    for t, v in sorted(items, key=lambda x: x[0]):
        out[t] = v
    if Fraction(0) not in out:
        out[Fraction(0)] = default
    return sorted(out.items())


def _bar_lines(meters, end: Fraction) -> list[Fraction]:
    """Bar line times from 0 up to past ``end`` under the meter changes."""
    bars, t, i = [], Fraction(0), 0
    while t <= end:
        bars.append(t)
        while i + 1 < len(meters) and meters[i + 1][0] <= t:
            i += 1
        n, d = meters[i][1]
        length = Fraction(n, d)
        nxt = meters[i + 1][0] if i + 1 < len(meters) else None
        t = min(t + length, nxt) if nxt is not None and nxt > t else t + length
    bars.append(t)
    return bars


def _voices(notes: list[QuantizedNote]) -> list[list[tuple[Fraction, Fraction, list[int]]]]:
    """Chords ``(start, end, pitches)`` of one staff, split into voices."""
    groups: dict[tuple[Fraction, Fraction], set[int]] = {}
    for q in notes:
        groups.setdefault((q.start, q.end), set()).add(q.pitch)
    # One pitch at one start is printed once, in its longest chord.
    seen: set[tuple[Fraction, int]] = set()
    chords = []
    for (start, end), pitches in sorted(groups.items(), key=lambda g: (g[0][0], -g[0][1])):
        keep = sorted(p for p in pitches if (start, p) not in seen)
        seen.update((start, p) for p in keep)
        if keep:
            chords.append([start, end, keep])
    chords.sort(key=lambda c: (c[0], -max(c[2])))
    if len({c[0] for c in chords}) == len(chords):
        # A single line: cut short overlaps (legato playing) instead of a voice.
        for a, b in zip(chords, chords[1:]):
            if a[1] > b[0] and (a[1] - b[0]) * 2 < a[1] - a[0]:
                a[1] = b[0]
    voices: list[list] = []
    for c in chords:
        for v in voices:
            if v[-1][1] <= c[0]:
                v.append(c)
                break
        else:
            voices.append([c])
    return [[(s, e, p) for s, e, p in v] for v in voices]


_VOICE_CMDS = ("\\voiceOne", "\\voiceTwo", "\\voiceThree", "\\voiceFour")
_BEAT = Fraction(1, 4)


def _voice_ly(chords, bars: list[Fraction], shift: Fraction, *, index: int, n_voices: int,
              flats: bool) -> str:
    """One voice: chords and rests from ``shift`` on, split at bar lines.

    Pieces inside eighth-triplet beats are written under ``\\tuplet 3/2 4``
    (LilyPond brackets each beat), with written lengths 3/2 of the played.
    """
    items = []
    t = shift
    for start, end, pitches in chords:
        if start > t:
            items.append((t, start, None))
        items.append((start, end, pitches))
        t = end
    rest = "r" if index == 0 else "s"
    tokens: list[tuple[bool, str]] = []
    for start, end, pitches in items:
        pieces = _split(start, end, bars)
        for k, (a, b) in enumerate(pieces):
            tie = "~" if pitches and k < len(pieces) - 1 else ""
            tokens.append(_timed(a, b, pitches, rest=rest, tie=tie, flats=flats))
    parts, run = [], []
    for tuplet, text in [*tokens, (False, "")]:
        if tuplet:
            run.append(text)
            continue
        if run:
            parts.append("\\tuplet 3/2 4 { " + " ".join(run) + " }")
            run = []
        if text:
            parts.append(text)
    body = " ".join(parts)
    if n_voices == 1:
        return body
    return f"\\new Voice {{ {_VOICE_CMDS[min(index, 3)]} {body} }}"


def _binary(t: Fraction) -> bool:
    return t.denominator & (t.denominator - 1) == 0


def _split(start: Fraction, end: Fraction, bars: list[Fraction]) -> list[tuple[Fraction, Fraction]]:
    """``[start, end)`` cut at bar lines and where it enters or leaves a triplet beat."""
    cuts = {b for b in bars if start < b < end}
    if not _binary(start):
        cuts.add((start // _BEAT + 1) * _BEAT)
    if not _binary(end):
        cuts.add(end // _BEAT * _BEAT)
    points = [start, *sorted(c for c in cuts if start < c < end), end]
    return list(zip(points, points[1:]))


def _timed(a: Fraction, b: Fraction, pitches, *, rest: str, tie: str,
           flats: bool) -> tuple[bool, str]:
    """A chord, note or rest from ``a`` to ``b`` as tied written durations.

    Returns whether it lies in a triplet beat, and its text (the written
    lengths then being 3/2 of the played ones).
    """
    tuplet = not (_binary(a) and _binary(b))
    written = (b - a) * Fraction(3, 2) if tuplet else b - a
    durs = _durations(written)
    if pitches is None:
        return tuplet, " ".join(f"{rest}{d}" for d in durs)
    names = [_pitch(p, flats=flats) for p in pitches]
    chord = names[0] if len(names) == 1 else "<" + " ".join(names) + ">"
    return tuplet, "~ ".join(f"{chord}{d}" for d in durs) + tie


_DURATIONS = sorted(((Fraction(1, 2 ** k) * (2 - Fraction(1, 2 ** dots)),
                      f"{2 ** k}{'.' * dots}")
                     for k in range(0, 8) for dots in range(0, 3) if k + dots < 8),
                    key=lambda d: -d[0])


def _durations(length: Fraction) -> list[str]:
    """``length`` (whole notes) as LilyPond durations, longest first."""
    out = []
    while length > 0:
        for value, text in _DURATIONS:
            if value <= length:
                out.append(text)
                length -= value
                break
        else:
            raise InputError(f"cannot write a duration of {length} whole notes")
    return out


def _pitch(p: int, *, flats: bool) -> str:
    """LilyPond's absolute name of MIDI pitch ``p`` (``c'`` is 60)."""
    names = _NAMES_FLAT if flats else _NAMES_SHARP
    octave = p // 12 - 4
    return names[p % 12] + ("'" * octave if octave > 0 else "," * -octave)


def _key_fifths(key: str) -> int:
    """Sharps (> 0) or flats (< 0) of a key in mido's names (``"Em"``)."""
    minor = key.endswith("m")
    return _MAJOR_FIFTHS.get(key[:-1] if minor else key, 0) - (3 if minor else 0)


def _key_ly(key: str) -> str:
    minor = key.endswith("m")
    tonic = key[:-1] if minor else key
    name = tonic[0].lower() + {"#": "is", "b": "es"}.get(tonic[1:2], "")
    return f"\\key {name} \\{'minor' if minor else 'major'}"


def _global_ly(meters, keys, bars, shift: Fraction, end: Fraction) -> str:
    """Meters, keys and the pickup, with spacer rests between the changes."""
    events: dict[Fraction, list[str]] = {}
    for t, (n, d) in meters:
        events.setdefault(max(t, shift), []).append(f"\\time {n}/{d}")
    for t, k in keys:
        events.setdefault(max(t, shift), []).append(_key_ly(k))
    first_bar = next((b for b in bars if b > shift), None)
    if shift not in bars and first_bar is not None:
        events.setdefault(shift, []).append(f"\\partial 1*{first_bar - shift}")
    times = sorted(t for t in events if t <= end)
    out = []
    for t, u in zip(times, [*times[1:], end]):
        out += events[t]
        if u > t:
            out.append(f"s1*{u - t}")
    return " ".join(out)


def _tempo_ly(tempi, shift: Fraction) -> str:
    out, t = [], shift
    for when, qpm in tempi:
        when = max(when, shift)
        if when > t:
            out.append(f"s1*{when - t}")
            t = when
        out.append(f"\\tempo 4 = {max(1, round(qpm))}")
    return " ".join(out)


# ----------------------------------------------------- MIDI performance


@dataclass
class MidiAlignment:
    """The rendered heads with the MIDI file's own performance.

    Attributes
    ----------
    heads : list of NoteHead
        The heads, ``onsets_s`` replaced by the onsets of their MIDI notes.
    performance : Performance
        One event per MIDI note, original onset, duration and velocity,
        naming the head that stands for it.
    checks : dict
        ``input_notes``, ``score_notes``, ``matched`` (MIDI notes with a
        head), ``unmatched_notes``, ``unmatched_heads`` (heads with an onset
        in the score and no MIDI note), ``pitch_mismatches``,
        ``duplicate_notes`` (MIDI notes sharing a head with another) and ``ok``.
    """

    heads: list
    performance: Performance
    checks: dict


def align_midi_heads(heads, midi_notes: list[MidiNote], placed: list[QuantizedNote],
                     shift: Fraction) -> MidiAlignment:
    """Pair printed heads with the MIDI notes they stand for; no guessing.

    A MIDI note was written at ``(staff, quantized start - shift, pitch)``
    (:class:`MidiScore`); the export gives every head its staff, exact
    moment and pitch, so the head of a note is the non-continuation head at
    that key.  Notes of equal key (doubled in the file) share one head.

    Parameters
    ----------
    heads : list of NoteHead
        The rendered heads.
    midi_notes : list of MidiNote
        The file's notes (:attr:`MidiFile.notes`).
    placed : list of QuantizedNote
        Where each note was written (``index`` into ``midi_notes``).
    shift : Fraction
        Score moment 0 in the file's time, whole notes.
    """
    by_key: dict[tuple[int, Fraction, int], list] = {}
    for h in heads:
        if not h.tied and not h.grace:
            by_key.setdefault((h.staff, Fraction(h.moment), h.pitch), []).append(h)
    onsets: dict[str, list[float]] = {}
    events, unmatched = [], 0
    used: Counter = Counter()
    for q in placed:
        found = by_key.get((q.staff, q.start - shift, q.pitch))
        if not found:
            unmatched += 1
            continue
        head = found[0]
        m = midi_notes[q.index]
        used[head.id] += 1
        onsets.setdefault(head.id, []).append(m.onset_s)
        events.append(NoteEvent(m.onset_s, max(m.offset_s - m.onset_s, 1e-3), m.pitch,
                                max(1, min(127, m.velocity)), head.id))
    new_heads = [replace(h, onsets_s=tuple(sorted(set(onsets.get(h.id, ())))))
                 if not h.tied else h for h in heads]
    score_notes = sum(1 for h in heads if not h.tied)
    unmatched_heads = sum(1 for h in heads if not h.tied and h.id not in used)
    n = len(placed)
    matched = n - unmatched
    checks = {"input_notes": n, "score_notes": score_notes, "matched": matched,
              "unmatched_notes": unmatched, "unmatched_heads": unmatched_heads,
              "pitch_mismatches": unmatched + unmatched_heads,
              "duplicate_notes": sum(c - 1 for c in used.values()),
              "ok": unmatched == 0 and unmatched_heads == 0 and n > 0}
    return MidiAlignment(new_heads, Performance(sort_events(events)), checks)


# -------------------------------------------------------------- MusicXML


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


_STEPS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


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
                                + _STEPS[pitch.findtext("step").strip()]
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
    _run_converter("musicxml2ly", [*cmd, str(path)], timeout_s, cwd=out_ly.parent)
    text = out_ly.read_text(encoding="utf-8", errors="replace")
    text = re.sub(r"^\s*\\pointAndClickOff\s*$", "", text, flags=re.M)
    text = re.sub(r"^(\s*)%+\s*(\\midi\s*\{.*\})\s*$", r"\1\2", text, flags=re.M)
    out_ly.write_text(text, encoding="utf-8")


def _run_converter(tool: str, cmd: list[str], timeout_s: float, *, cwd: Path) -> None:
    """Run a text converter (no sandbox: it runs no code from its input)."""
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise ToolError(tool, cmd, None, "",
                        cause=f"{tool} hit the time limit of {timeout_s:g} s") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ToolError(tool, cmd, proc.returncode, "\n".join(err[-8:]))


# ------------------------------------------------------------------- ABC


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
        tunes = abc_tunes(_read_text(path))
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
    fifths = _MAJOR_FIFTHS.get(m.group(1) + m.group(2), 0)
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
                pitch = 12 * (octave + 1) + _STEPS[up] + alter
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
    _run_converter("abc2ly", [str(executable("abc2ly")), "-o", str(out_ly), str(src)],
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


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if not data.strip():
        raise InputError(f"{path}: empty file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# ------------------------------------------------------- conversion entry


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
    tunes = abc_tunes(_read_text(source))
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
