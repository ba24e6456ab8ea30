"""MIDI inputs engraved: quantized, written as LilyPond, and paired back.

:func:`quantize_midi` snaps the notes of a :class:`~msmd_prep.formats.midi.MidiFile`
to a sixteenth or eighth-triplet grid (chosen per beat), and :func:`midi_to_ly`
engraves them with our own small writer: one staff per track (a wide
polyphonic track, i.e. piano, split at middle C into two), overlapping notes
in extra voices, ties at bar lines, triplets, the pickup as ``\\partial``.
The performance of a MIDI input is the MIDI itself: :func:`align_midi_heads`
pairs every printed head with the MIDI notes it stands for by its exact
``(staff, moment, pitch)`` and replaces the rendered performance with the
original onsets, durations and velocities.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from fractions import Fraction

from ..errors import InputError
from ..score import NoteEvent, Performance, sort_events
from .spelling import MAJOR_FIFTHS
from .midi import MidiFile, MidiNote

_NAMES_SHARP = ("c", "cis", "d", "dis", "e", "f", "fis", "g", "gis", "a", "bes", "b")
_NAMES_FLAT = ("c", "des", "d", "ees", "e", "f", "ges", "g", "aes", "a", "bes", "b")


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
    return MAJOR_FIFTHS.get(key[:-1] if minor else key, 0) - (3 if minor else 0)


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
            by_key.setdefault((h.staff, h.moment, h.pitch), []).append(h)
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
