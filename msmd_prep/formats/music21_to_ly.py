"""Our own LilyPond writer for scores read with music21 (MusicXML, ABC).

LilyPond's ``musicxml2ly`` and ``abc2ly`` write invalid LilyPond for common
inputs, crash on others, and drop or move notes (hidden ornament notes,
voices, pickups) so that the written score can only be compared with its
input afterwards, by guessing.  This writer controls every note: it records,
for every pitch it writes, the line and column of its token in the ``.ly``
text.  LilyPond's export gives every head the ``file:line:column`` of its
note, so a head and its input note are paired by construction
(:mod:`msmd_prep.formats.score_pairing`), and the moment, staff and measure
of every note are known exactly.

What is written: one ``Staff`` per music21 staff (the staves of one part in a
``PianoStaff`` when music21 groups them with a brace), one LilyPond voice per
voice rank (the n-th voice of every measure), each voice filled with spacer
rests to the length of every measure; notes, chords, rests, ties, grace
notes, tuplets (``\\tuplet``; durations that the written types do not give
exactly are scaled, so every moment is the input's), clefs, keys, meters,
pickups and short measures (``measureLength``), repeat bar lines and volta
brackets (printed only: the performance is unfolded by
:mod:`msmd_prep.formats.unfold`).  Not written: slurs, articulations,
dynamics marks, lyrics, chord symbols, ottava brackets (notes stay at their
pitch), beams (LilyPond beams automatically).  Hidden notes
(``print-object="no"``, such as the spelled-out ornaments of MuseScore
exports) are written as spacer rests: nothing on the page stands for them.
"""
from __future__ import annotations

import re
import traceback
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from ..errors import InputError
from .unfold import MeasureFlags

_TYPES = {"maxima": "\\maxima", "longa": "\\longa", "breve": "\\breve", "whole": "1",
          "half": "2", "quarter": "4", "eighth": "8", "16th": "16", "32nd": "32",
          "64th": "64", "128th": "128", "256th": "256"}
_TYPE_LENGTH = {"maxima": Fraction(8), "longa": Fraction(4), "breve": Fraction(2),
                "whole": Fraction(1), "half": Fraction(1, 2), "quarter": Fraction(1, 4),
                "eighth": Fraction(1, 8), "16th": Fraction(1, 16), "32nd": Fraction(1, 32),
                "64th": Fraction(1, 64), "128th": Fraction(1, 128), "256th": Fraction(1, 256)}
_ALTER = {-2: "eses", -1.5: "eseh", -1: "es", -0.5: "eh", 0: "", 0.5: "ih", 1: "is",
          1.5: "isih", 2: "isis"}
_MAJOR_KEYS_SHARP = ("c", "g", "d", "a", "e", "b", "fis", "cis")
_MAJOR_KEYS_FLAT = ("c", "f", "bes", "ees", "aes", "des", "ges", "ces")
_CLEFS = {("G", 2): "treble", ("G", 1): "french", ("F", 4): "bass", ("F", 3): "varbaritone",
          ("F", 5): "subbass", ("C", 1): "soprano", ("C", 2): "mezzosoprano",
          ("C", 3): "alto", ("C", 4): "tenor", ("C", 5): "baritone"}
_VOICE_CMDS = ("\\voiceOne", "\\voiceTwo", "\\voiceThree", "\\voiceFour")


@dataclass
class WrittenNote:
    """One pitch written into the LilyPond text.

    Attributes
    ----------
    index : int
        Position in :attr:`LyScore.notes`.
    staff : int
        Staff from 0 (top), as LilyPond numbers them.
    voice : int
        Voice rank within the staff, from 0.
    part : int
        The part (instrument) it belongs to; dynamics apply per part.
    measure : int
        Index of its measure, from 0.
    measure_number : str
        The measure's number as the input prints it.
    offset : Fraction
        Start within the measure, whole notes (the principal note's for a grace note).
    moment : Fraction
        Start in the printed score, whole notes.
    length : Fraction
        Sounding length with the notes tied to it, whole notes (0 for a grace note).
    pitch : int
        MIDI pitch as written.
    name : str
        Its name for messages (``F#4``).
    grace : bool
        A grace note.
    grace_rank : int
        For a grace note: how many grace notes of its group follow it, plus 1.
    tied : bool
        A tie continuation: printed, not played.
    line, column : int
        Where its pitch stands in the text (line from 1, column from 0), as
        LilyPond's export names a head's source.
    """

    index: int
    staff: int
    voice: int
    part: int
    measure: int
    measure_number: str
    offset: Fraction
    moment: Fraction
    length: Fraction
    pitch: int
    name: str
    grace: bool = False
    grace_rank: int = 0
    tied: bool = False
    line: int = 0
    column: int = 0


@dataclass
class LyScore:
    """A score written as LilyPond, with everything the performance needs.

    Attributes
    ----------
    ly : str
        The LilyPond text.
    notes : list of WrittenNote
        Every written pitch.
    lengths : list of Fraction
        Every measure's length, whole notes.
    numbers : list of str
        Every measure's printed number.
    flags : list of MeasureFlags
        What every measure says about the playing order.
    tempi : list of (int, Fraction, float)
        ``(measure, offset, quarter notes per minute)`` of every tempo mark.
    dynamics : list of (int, int, Fraction, int)
        ``(part, measure, offset, velocity)`` of every dynamics mark.
    skipped : dict
        Counts of what the input has and the score does not print
        (``hidden_notes``, ``unpitched_notes``).
    """

    ly: str
    notes: list[WrittenNote]
    lengths: list[Fraction]
    numbers: list[str]
    flags: list[MeasureFlags]
    tempi: list[tuple[int, Fraction, float]] = field(default_factory=list)
    dynamics: list[tuple[int, int, Fraction, int]] = field(default_factory=list)
    skipped: dict = field(default_factory=dict)

    def measure_starts(self) -> list[Fraction]:
        """Printed moment of every measure's start, whole notes."""
        out, t = [], Fraction(0)
        for length in self.lengths:
            out.append(t)
            t += length
        return out


def _frac(ql) -> Fraction:
    """A music21 quarter length (float or Fraction) as whole notes."""
    return Fraction(ql).limit_denominator(1 << 16) / 4


def pitch_ly(p) -> str:
    """LilyPond's absolute name of a music21 pitch (``c'`` is middle C)."""
    alter = p.accidental.alter if p.accidental is not None else 0
    octave = p.implicitOctave - 3
    return (p.step.lower() + _ALTER.get(alter, "")
            + ("'" * octave if octave > 0 else "," * -octave))


def pitch_name(p) -> str:
    return p.nameWithOctave.replace("-", "b")


def _ly_string(text: str) -> str:
    """A LilyPond string on one line (a line break would shift every recorded line)."""
    text = re.sub(r"\s+", " ", text).strip()
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _moment_ly(w: Fraction) -> str:
    return f"#(ly:make-moment {w.numerator}/{w.denominator})"


def _rest_durations(length: Fraction) -> list[str]:
    """A rest or spacer of ``length`` whole notes as LilyPond durations."""
    if length <= 0:
        return []
    for t, v in _TYPE_LENGTH.items():
        for dots in range(3):
            if v * (2 - Fraction(1, 2 ** dots)) == length and t in _TYPES:
                return [_TYPES[t] + "." * dots]
    return [f"1*{length.numerator}/{length.denominator}"]


def _spacer_durations(length: Fraction) -> list[str]:
    """``length`` as few plain durations (longest first), any rest as a scaled one."""
    out = []
    for t in ("whole", "half", "quarter", "eighth", "16th", "32nd", "64th", "128th"):
        v = _TYPE_LENGTH[t]
        while length >= v:
            out.append(_TYPES[t])
            length -= v
    if length > 0:
        out.append(f"128*{length * 128}" if (length * 128).denominator == 1
                   else f"1*{length.numerator}/{length.denominator}")
    return out


def _duration_ly(d, scale: Fraction, actual: Fraction) -> str:
    """The written duration of a note of ``actual`` whole notes and music21 duration
    ``d`` inside a tuplet of ``scale``.

    The written type and dots are kept where they give ``actual`` exactly;
    the rest is a LilyPond scaling factor (``4*2/3``), so the moment is exact.
    """
    base = _TYPES.get(d.type)
    if base is None:
        return _rest_durations(actual)[0] if scale == 1 else _rest_durations(actual / scale)[0]
    written = _TYPE_LENGTH[d.type] * (2 - Fraction(1, 2 ** d.dots))
    text = base + "." * d.dots
    factor = actual / (written * scale)
    if factor != 1:
        text += f"*{factor.numerator}/{factor.denominator}" if factor.denominator != 1 \
            else f"*{factor.numerator}"
    return text


@dataclass
class _Event:
    """One item of a voice in time order (built from music21 elements)."""

    offset: Fraction  # within the measure
    length: Fraction
    kind: str  # "note", "rest", "space", "clef"
    element: object = None
    pitches: list = field(default_factory=list)  # music21 pitches (note, chord)
    ties: list = field(default_factory=list)  # tie type per pitch or None
    grace: bool = False
    text: str = ""


def _key_ly(ks) -> str:
    sharps = max(-7, min(7, ks.sharps))
    tonic = _MAJOR_KEYS_SHARP[sharps] if sharps >= 0 else _MAJOR_KEYS_FLAT[-sharps]
    return f"\\key {tonic} \\major"


def _clef_ly(c) -> str | None:
    from music21 import clef as m21clef

    if isinstance(c, m21clef.PercussionClef):
        return "\\clef percussion"
    if isinstance(c, m21clef.TabClef):
        return None
    name = _CLEFS.get((c.sign, c.line))
    if name is None:
        return None
    octave = getattr(c, "octaveChange", 0) or 0
    if octave:
        name = f'"{name}{"_" if octave < 0 else "^"}{8 if abs(octave) == 1 else 15}"'
    return f"\\clef {name}"


def _voices_of(measure) -> list[list]:
    """The voices of a music21 measure in rank order, each a list of elements."""
    direct = [el for el in measure.getElementsByClass(("GeneralNote",))]
    voices = list(measure.voices)

    def rank(v):
        try:
            return (0, int(v.id))
        except (TypeError, ValueError):
            return (1, str(v.id))
    out = [direct] if direct else []
    out += [list(v.getElementsByClass(("GeneralNote",))) for v in sorted(voices, key=rank)]
    return out


def _is_hidden(el) -> bool:
    style = el.style if el.hasStyleInformation else None
    return bool(style is not None and style.hideObjectOnPrint)


def _events(elements, length: Fraction, skipped: dict) -> list[_Event]:
    """A voice's elements as events, gaps and hidden notes as spacers, to ``length``."""
    from music21 import harmony, note

    out: list[_Event] = []
    t = Fraction(0)
    for el in elements:
        if isinstance(el, harmony.Harmony):
            continue
        at = _frac(el.offset)
        d = _frac(el.quarterLength)
        grace = el.duration.isGrace
        if at > t:
            out.append(_Event(t, at - t, "space"))
            t = at
        if at < t and not grace:
            prev = next((x for x in reversed(out) if x.length > 0), None)
            if prev is not None and prev.offset < at:
                # Rounded tuplet durations (14 notes of 69/480 in a half note):
                # the offsets are the input's time line, the previous note ends here.
                prev.length = at - prev.offset
                t = at
        if at < t and not grace:
            # Overlap within one voice (inconsistent input): keep the time line.
            if at + d <= t:
                if not el.isRest:
                    skipped["overlapping_notes"] = (skipped.get("overlapping_notes", 0)
                                                    + len(el.pitches))
                continue
            d, at = at + d - t, t
        if isinstance(el, note.Unpitched) or (isinstance(el, note.NotRest)
                                              and not el.pitches):
            skipped["unpitched_notes"] = skipped.get("unpitched_notes", 0) + 1
            if not grace:
                out.append(_Event(at, d, "space"))
                t = at + d
            continue
        if el.isRest:
            kind = "space" if _is_hidden(el) else "rest"
            if d > 0:
                out.append(_Event(at, d, kind, el))
                t = at + d
            continue
        if _is_hidden(el):
            skipped["hidden_notes"] = skipped.get("hidden_notes", 0) + len(el.pitches)
            if not grace:
                out.append(_Event(at, d, "space"))
                t = at + d
            continue
        if el.isChord:
            sub = sorted(el.notes, key=lambda n: n.pitch.ps)
            pitches = [n.pitch for n in sub]
            ties = [n.tie.type if n.tie is not None else (el.tie.type if el.tie else None)
                    for n in sub]
        else:
            pitches, ties = [el.pitch], [el.tie.type if el.tie is not None else None]
        out.append(_Event(at, Fraction(0) if grace else d, "note", el, pitches, ties, grace))
        if not grace:
            t = at + d
    if t < length:
        out.append(_Event(t, length - t, "space"))
    return out


def write_score(score, *, title: str = "", sounds: list[set] | None = None) -> LyScore:
    """Write a music21 score as LilyPond, recording where every pitch went.

    Parameters
    ----------
    score : music21.stream.Score
        The score as music21 reads it (parts or part-staves of measures).
    title : str
        Title where the score's metadata names none.
    sounds : list of set, optional
        Per measure of the first part, the jumps its ``<sound>`` elements
        name (``dacapo``, ``dalsegno``, ``segno``, ``coda``, ``tocoda``,
        ``fine``), which music21 does not read.

    Raises
    ------
    InputError
        The score has no measures.
    """
    from music21 import stream

    if _transposing(score):
        # Printed at concert pitch: the heads and the performance then agree,
        # and the performance sounds as the composer wrote it.
        score = score.toSoundingPitch(inPlace=False)
    # music21 reads some short ABC tunes as a part of notes without measures.
    staves = [p if p.getElementsByClass(stream.Measure) else p.makeMeasures()
              for p in score.parts]
    measures = [list(p.getElementsByClass(stream.Measure)) for p in staves]
    n_measures = max((len(m) for m in measures), default=0)
    if not staves or n_measures == 0:
        raise InputError("the score has no measures")
    parts = _part_of_staff(score, staves)
    skipped: dict = {}
    lengths = []
    for i in range(n_measures):
        ends = [_measure_end(ms[i]) for ms in measures if i < len(ms)]
        length = max(ends, default=Fraction(0))
        if length == 0:
            ts = next((ms[i].timeSignature for ms in measures if i < len(ms)
                       and ms[i].timeSignature is not None), None)
            length = _frac(ts.barDuration.quarterLength) if ts else Fraction(1)
        lengths.append(length)
    first = measures[0]
    numbers = [str(first[i].number) + (first[i].numberSuffix or "") if i < len(first)
               else str(i + 1) for i in range(n_measures)]
    sounds = sounds or []
    flags = [_measure_flags(first[i], sounds[i] if i < len(sounds) else set())
             if i < len(first) else MeasureFlags() for i in range(n_measures)]
    flags = _add_voltas(score, first, flags)

    lines = ['\\version "2.24.0"']
    md = score.metadata
    head_title = (md.title or md.movementName or title) if md is not None else title
    composer = md.composer if md is not None and md.composer else ""
    header = f"\\header {{ title = {_ly_string(head_title or '')}"
    if composer:
        header += f" composer = {_ly_string(composer)}"
    lines.append(header + " tagline = ##f }")
    meters = _meters(first, lengths)
    lines.append(f"global = {{ {_global_ly(first, lengths, flags, _dense(measures))} }}")
    lines.append("\\score {")
    lines.append("  <<")
    ottavas = _ottavas(score)
    notes: list[WrittenNote] = []
    group_open = None
    for s, staff in enumerate(staves):
        group = parts[s]
        grouped = sum(1 for g in parts if g == group) > 1
        if grouped and group_open != group:
            if group_open is not None:
                lines.append("    >>")
            lines.append("    \\new PianoStaff <<")
            group_open = group
        elif not grouped and group_open is not None:
            lines.append("    >>")
            group_open = None
        _write_staff(lines, notes, s, group, measures[s], lengths, meters, numbers, skipped,
                     ottavas)
    if group_open is not None:
        lines.append("    >>")
    lines.append("  >>")
    lines.append("  \\layout { }")
    lines.append("}")
    tempi, dyn = _marks(measures, parts)
    return LyScore("\n".join(lines) + "\n", notes, lengths, numbers, flags, tempi, dyn,
                   skipped)


def _transposing(score) -> bool:
    """Some part is written for a transposing instrument (clarinet in B flat, horn in F)."""
    if getattr(score, "atSoundingPitch", False) is True:
        return False
    for p in score.parts:
        inst = p.getInstrument(returnDefault=False)
        if inst is not None and inst.transposition is not None \
                and inst.transposition.semitones != 0:
            return True
    return False


def write_ly_file(read, out_ly: Path, *, what: str, title: str = "",
                  sounds: list[set] | None = None) -> LyScore:
    """Read a score with ``read()`` (music21) and write its LilyPond to ``out_ly``.

    music21 and this writer meet inputs that no test has seen, and music21
    raises many kinds of exceptions from inside its own objects; any of them
    ends this piece only, as an :class:`InputError` naming ``what`` and the
    exception, with the traceback kept beside ``out_ly`` (``.error.txt``).
    """
    try:
        written = write_score(read(), title=title, sounds=sounds)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 -- see the docstring
        log = out_ly.with_suffix(".error.txt")
        log.write_text(traceback.format_exc(), encoding="utf-8")
        raise InputError(f"{what} cannot be read or written: {type(e).__name__}: {e} "
                         f"(traceback in {log.name})") from None
    out_ly.write_text(written.ly, encoding="utf-8")
    return written


def _part_of_staff(score, staves) -> list[int]:
    """Index of the part of every staff: the staves of a brace group (a piano part) are one.

    Bracket groups (the strings of an orchestra) stay separate parts: their
    dynamics are their own.
    """
    group_of = {}
    for g, sg in enumerate(score.getElementsByClass("StaffGroup")):
        if sg.symbol == "brace":
            for p in sg.getSpannedElements():
                group_of.setdefault(id(p), f"g{g}")
    out, names = [], {}
    for i, p in enumerate(staves):
        key = group_of.get(id(p), f"s{i}")
        out.append(names.setdefault(key, len(names)))
    return out


def _measure_end(measure) -> Fraction:
    end = Fraction(0)
    for v in _voices_of(measure):
        for el in v:
            end = max(end, _frac(el.offset) + _frac(el.quarterLength))
    return end


def _measure_flags(m, sounds: set) -> MeasureFlags:
    from music21 import bar, repeat

    lb, rb = m.leftBarline, m.rightBarline
    start = isinstance(lb, bar.Repeat) and lb.direction == "start"
    end = 0
    if isinstance(rb, bar.Repeat) and rb.direction == "end":
        end = int(rb.times) if rb.times else 2
    marks = list(m.recurse().getElementsByClass(repeat.RepeatExpression))
    kinds = {type(x).__name__ for x in marks}
    return MeasureFlags(
        repeat_start=start, repeat_end=end,
        segno="Segno" in kinds or "segno" in sounds,
        coda="Coda" in kinds or "coda" in sounds,
        to_coda="tocoda" in sounds,
        da_capo=bool(kinds & {"DaCapo", "DaCapoAlFine", "DaCapoAlCoda"}) or "dacapo" in sounds,
        dal_segno=bool(kinds & {"DalSegno", "DalSegnoAlFine", "DalSegnoAlCoda"})
        or "dalsegno" in sounds,
        fine="Fine" in kinds or "fine" in sounds)


def _add_voltas(score, first, flags: list[MeasureFlags]) -> list[MeasureFlags]:
    from dataclasses import replace as dc_replace

    from music21 import spanner

    index = {id(m): i for i, m in enumerate(first)}
    out = list(flags)
    for rb in score.recurse().getElementsByClass(spanner.RepeatBracket):
        nums = frozenset(int(x) for x in rb.numberRange if int(x) > 0) \
            if rb.number else frozenset()
        if not nums:
            continue
        for m in rb.getSpannedElements():
            i = index.get(id(m))
            if i is not None:
                out[i] = dc_replace(out[i], volta=out[i].volta | nums)
    return out


#: A measure with more notes than this in one voice may be broken across lines.
DENSE_MEASURE_NOTES = 40


def _dense(measures) -> set[int]:
    """Measures (indices) with more than :data:`DENSE_MEASURE_NOTES` notes in a voice."""
    out = set()
    for ms in measures:
        for i, m in enumerate(ms):
            if any(len(v) > DENSE_MEASURE_NOTES for v in _voices_of(m)):
                out.add(i)
    return out


def _meters(first, lengths: list[Fraction]) -> list[Fraction]:
    """The length of a full measure under the meter in force at every measure."""
    out, meter = [], None
    for i, length in enumerate(lengths):
        ts = first[i].timeSignature if i < len(first) else None
        if ts is not None:
            meter = _frac(ts.barDuration.quarterLength)
        out.append(meter if meter is not None else length)
    return out


def _global_ly(first, lengths: list[Fraction], flags: list[MeasureFlags],
               dense: set[int]) -> str:
    """Meters, keys, measure lengths, repeat bars and voltas, as spacer music.

    The repeat commands of one bar line (the end of one measure, the start
    of the next) are set at once: a second ``\\set`` at one moment would
    replace the first.
    """
    n = len(lengths)
    at: list[list[str]] = [[] for _ in range(n + 1)]  # commands at each bar line
    for i, f in enumerate(flags):
        prev = flags[i - 1].volta if i else frozenset()
        if f.repeat_start:
            at[i].append("start-repeat")
        if f.volta and f.volta != prev:
            if prev:
                at[i].append("(volta #f)")
            label = ", ".join(str(v) for v in sorted(f.volta)) + "."
            at[i].append(f'(volta "{label}")')
        if f.repeat_end:
            at[i + 1].insert(0, "end-repeat")
        nxt = flags[i + 1].volta if i + 1 < n else frozenset()
        if f.volta and not nxt:
            at[i + 1].append("(volta #f)")
    out = []
    meter = None
    for i, length in enumerate(lengths):
        m = first[i] if i < len(first) else None
        ts = m.timeSignature if m is not None else None
        if ts is not None:
            meter = _frac(ts.barDuration.quarterLength)
            out.append(f"\\time {ts.numerator}/{ts.denominator}")
        if m is not None and m.keySignature is not None and m.keySignature.sharps is not None:
            out.append(_key_ly(m.keySignature))
        if meter is None:
            meter = length
        if at[i]:
            out.append(f"\\set Score.repeatCommands = #'({' '.join(at[i])})")
        if length != meter:
            if i == 0:
                out.append(f"\\partial {_rest_durations(length)[0]}")
            else:
                out.append(f"\\set Timing.measureLength = {_moment_ly(length)}")
        if i in dense:
            # A cadenza of many notes in one bar: let LilyPond break the line inside it.
            beats = [Fraction(1, 4)] * int(length / Fraction(1, 4))
            rest = length - sum(beats, Fraction(0))
            spacers = [f"s{_rest_durations(b)[0]}" for b in beats + ([rest] if rest else [])]
            out.append("\\set Score.forbidBreakBetweenBarLines = ##f "
                       + " \\allowBreak ".join(spacers)
                       + " \\set Score.forbidBreakBetweenBarLines = ##t")
        else:
            out.append("s" + _rest_durations(length)[0])
        if length != meter and i > 0:
            out.append(f"\\set Timing.measureLength = {_moment_ly(meter)}")
    if at[n]:
        out.append(f"\\set Score.repeatCommands = #'({' '.join(at[n])})")
    return " ".join(out)


class _Text:
    """The lines of the output with the column of the next character."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        self.cur = ""

    def put(self, s: str) -> int:
        """Append ``s``; return its column."""
        col = len(self.cur)
        self.cur += s
        return col

    def newline(self, indent: str = "        ") -> None:
        self.lines.append(self.cur.rstrip())
        self.cur = indent

    @property
    def line(self) -> int:
        return len(self.lines) + 1


def _write_staff(lines: list[str], notes: list[WrittenNote], s: int, part: int, measures,
                 lengths: list[Fraction], meters: list[Fraction], numbers: list[str],
                 skipped: dict, ottavas: tuple[dict, set]) -> None:
    """Write one staff: every voice rank as one LilyPond voice over all measures."""
    per_measure = []
    for i, length in enumerate(lengths):
        m = measures[i] if i < len(measures) else None
        voices = [_events(v, length, skipped) for v in _voices_of(m)] if m is not None else []
        if m is not None:
            _add_clefs(m, voices)
        per_measure.append(voices)
    n_voices = max(1, max(len(v) for v in per_measure))
    starts = []
    t = Fraction(0)
    for length in lengths:
        starts.append(t)
        t += length
    lines.append(f"    \\new Staff = \"staff{s}\" << \\global")
    for rank in range(n_voices):
        text = _Text(lines)
        text.cur = f"      \\new Voice = \"v{s}_{rank}\" {{ "
        flat = []
        for i, voices in enumerate(per_measure):
            evs = voices[rank] if rank < len(voices) else [_Event(Fraction(0), lengths[i],
                                                                  "space")]
            flat.append((i, len(voices), evs))
        _write_voice(text, notes, s, rank, part, flat, lengths, meters, starts, numbers,
                     n_voices, ottavas)
        text.put("}")
        text.newline()
    lines.append("    >>")


def _add_clefs(m, voices: list[list[_Event]]) -> None:
    """Clef changes of measure ``m`` into its first voice, before the event at their offset."""
    from music21 import clef as m21clef

    if not voices:
        return
    for c in m.getElementsByClass(m21clef.Clef):
        text = _clef_ly(c)
        if text is None:
            continue
        at = _frac(c.offset)
        evs = voices[0]
        k = next((j for j, e in enumerate(evs) if e.offset >= at), len(evs))
        evs.insert(k, _Event(at, Fraction(0), "clef", text=text))


def _write_voice(text: _Text, notes: list[WrittenNote], s: int, rank: int, part: int, flat,
                 lengths, meters, starts, numbers, n_voices: int,
                 ottavas: tuple[dict, set]) -> None:
    """The events of one voice rank over the whole piece, with ties and tuplets."""
    # Next sounding event after each one, for deciding which ties LilyPond will draw.
    seq = [(i, e) for i, _, evs in flat for e in evs]
    audible = [k for k, (_, e) in enumerate(seq) if e.kind in ("note", "rest", "space")]
    next_of = {}
    for a, b in zip(audible, audible[1:]):
        next_of[a] = b
    continued: dict[int, set[int]] = {}  # seq index -> pitches a tie reaches
    open_notes: dict[int, WrittenNote] = {}  # pitch -> the note whose tie is open
    voice_cmd = None
    tuplet_scale = Fraction(1)
    k = 0
    last_measure = -1
    while k < len(seq):
        i, e = seq[k]
        if i != last_measure:
            if last_measure >= 0:
                text.put(f"% {numbers[last_measure]}")
            text.newline()
            last_measure = i
            n_here = next(nv for j, nv, _ in flat if j == i)
            want = (_VOICE_CMDS[min(rank, 3)] if n_here > 1 or n_voices > 1 and rank > 0
                    else "\\oneVoice") if n_voices > 1 else None
            if want and want != voice_cmd:
                text.put(want + " ")
                voice_cmd = want
        if e.kind == "clef":
            text.put(e.text + " ")
            k += 1
            continue
        # A grace group goes where its principal note's tuplet puts it.
        lead = k
        while seq[lead][1].grace and lead + 1 < len(seq) and seq[lead + 1][0] == i:
            lead += 1
        tup = _tuplet_of(seq[lead][1])
        if tuplet_scale != 1 and (tup is None or tup[0] != tuplet_scale or tup[1] == "start"):
            text.put("} ")
            tuplet_scale = Fraction(1)
        if tup is not None and tuplet_scale == 1:
            r = 1 / tup[0]
            text.put(f"\\tuplet {r.numerator}/{r.denominator} {{ ")
            tuplet_scale = tup[0]
        if e.kind in ("rest", "space"):
            letter = "r" if e.kind == "rest" else "s"
            length = e.length / tuplet_scale
            if e.kind == "rest" and e.element is not None and tuplet_scale == 1 and \
                    e.length == lengths[i] == meters[i] and e.offset == 0 and i > 0:
                text.put("R" + _rest_durations(length)[0] + " ")
            elif e.kind == "rest" and e.element is not None:
                text.put("r" + _duration_ly(e.element.duration, tuplet_scale, e.length) + " ")
            else:
                durs = _rest_durations(length)
                if durs[0].startswith("1*") and letter == "r":
                    durs = _spacer_durations(length)
                text.put(" ".join(letter + d for d in durs) + " ")
            open_notes.clear()
            k += 1
        else:
            shift = next((ottavas[0][id(seq[j][1].element)] for j in range(k, lead + 1)
                          if id(seq[j][1].element) in ottavas[0]), None)
            if shift is not None:
                text.put(f"\\ottava #{shift} ")
            k = _write_notes(text, notes, seq, k, next_of, continued, open_notes, s, rank,
                             part, starts, numbers, tuplet_scale)
            if id(seq[k - 1][1].element) in ottavas[1]:
                text.put("\\ottava #0 ")
        last = _tuplet_of(seq[k - 1][1])
        if last is not None and last[1] == "stop" and tuplet_scale != 1:
            text.put("} ")
            tuplet_scale = Fraction(1)
    if tuplet_scale != 1:
        text.put("} ")


_OTTAVA_SHIFTS = {"8va": 1, "8vb": -1, "15ma": 2, "15mb": -2, "22da": 3, "22db": -3}


def _ottavas(score) -> tuple[dict, set]:
    """Octave-shift brackets: ``id`` of each first element -> shift, ids of last elements.

    Printing only: the notes keep their (sounding) pitch, and LilyPond's
    export does not apply an ottava to a head's pitch.
    """
    from music21 import spanner

    first, last = {}, set()
    for o in score.recurse().getElementsByClass(spanner.Ottava):
        shift = _OTTAVA_SHIFTS.get(o.type)
        els = [e for e in o.getSpannedElements() if not _is_hidden(e)]
        if shift is None or not els or getattr(o, "transposing", False):
            continue
        first[id(els[0])] = shift
        last.add(id(els[-1]))
    return first, last


def _tuplet_of(e: _Event):
    """``(scale, type)`` of an event's outer tuplet, or ``None``."""
    if e.element is None or e.grace:
        return None
    tuplets = e.element.duration.tuplets
    if not tuplets:
        return None
    t = tuplets[0]
    scale = Fraction(t.tupletMultiplier()).limit_denominator(1000)
    return None if scale == 1 else (scale, t.type)  # a 1:1 "tuplet" changes nothing


def _write_notes(text: _Text, notes, seq, k, next_of, continued, open_notes, s, rank, part,
                 starts, numbers, tuplet_scale) -> int:
    """Write a group of grace notes and its principal note or chord; return the next index."""
    group = [k]
    while seq[group[-1]][1].grace and group[-1] + 1 < len(seq) and \
            seq[group[-1] + 1][1].kind == "note" and seq[group[-1] + 1][0] == seq[k][0]:
        group.append(group[-1] + 1)
    graces = [g for g in group if seq[g][1].grace]
    if graces:
        slashed = getattr(seq[graces[0]][1].element.duration, "slash", False)
        text.put(("\\slashedGrace " if slashed else "\\grace ")
                 + ("{ " if len(graces) > 1 else ""))
    for pos, g in enumerate(group):
        i, e = seq[g]
        if not e.grace and graces and pos == len(graces):
            if len(graces) > 1:
                text.put("} ")
        chord = len(e.pitches) > 1
        if chord:
            text.put("<")
        nxt = next_of.get(g)
        next_pitches = set()
        if nxt is not None and seq[nxt][1].kind == "note" and not e.grace:
            ne = seq[nxt][1]
            next_pitches = {p.midi for p, t in zip(ne.pitches, ne.ties)
                            if t in ("stop", "continue")}
        reached = continued.get(g, set())
        new_open = {}
        single_tie = False
        for p, tie in zip(e.pitches, e.ties):
            col = text.put(pitch_ly(p))
            tied_in = p.midi in reached and not e.grace
            wn = WrittenNote(len(notes), s, rank, part, i, numbers[i], e.offset,
                             starts[i] + e.offset, Fraction(0) if e.grace else e.length,
                             p.midi, pitch_name(p), grace=e.grace,
                             grace_rank=(len(graces) - pos) if e.grace else 0,
                             tied=tied_in, line=text.line, column=col)
            notes.append(wn)
            if tied_in and p.midi in open_notes:
                open_notes[p.midi].length += e.length
                head = open_notes[p.midi]
            else:
                head = wn
            if tie in ("start", "continue") and p.midi in next_pitches:
                if chord:
                    text.put("~")
                else:
                    single_tie = True
                new_open[p.midi] = head
                continued.setdefault(nxt, set()).add(p.midi)
            if chord:
                text.put(" ")
        if not e.grace:
            open_notes.clear()
            open_notes.update(new_open)
        if chord:
            text.cur = text.cur.rstrip(" ")
            text.put(">")
        text.put(_duration_ly(e.element.duration, tuplet_scale, e.length)
                 if not e.grace else _grace_duration(e.element.duration))
        text.put("~ " if single_tie else " ")
    if graces and len(group) == len(graces) and len(graces) > 1:
        text.put("} ")
    return group[-1] + 1


def _grace_duration(d) -> str:
    base = _TYPES.get(d.type, "8")
    return base + "." * (d.dots if d.type in _TYPES else 0)


def _marks(measures, parts) -> tuple[list, list]:
    """Tempo marks (first staff) and dynamics (every staff, by part) of the score."""
    from music21 import dynamics, tempo

    tempi = []
    for i, m in enumerate(measures[0]):
        for mm in m.recurse().getElementsByClass(tempo.MetronomeMark):
            qpm = mm.getQuarterBPM()
            if qpm and qpm > 0:
                tempi.append((i, _frac(mm.getOffsetInHierarchy(m)), float(qpm)))
    dyn = []
    for s, ms in enumerate(measures):
        for i, m in enumerate(ms):
            for d in m.recurse().getElementsByClass(dynamics.Dynamic):
                scalar = d.volumeScalar
                if scalar is None:
                    continue
                dyn.append((parts[s], i, _frac(d.getOffsetInHierarchy(m)),
                            max(1, min(127, round(127 * scalar)))))
    return sorted(tempi), sorted(set(dyn))
