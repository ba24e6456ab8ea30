"""Read what LilyPond exported: note heads, played notes and tempi.

``msmd_prep/resources/lilypond/msmd.ily`` writes ``msmd-export.tsv`` while LilyPond engraves the
score.  This module parses it into plain records and turns the played notes
into a :class:`~msmd_prep.performance.Performance` in seconds.  All musical
times are exact :class:`fractions.Fraction` numbers of whole notes.
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field, replace
from fractions import Fraction

from .errors import InputError
from .score import NoteEvent, Performance, sort_events

#: LilyPond's own MIDI tempo where a score names none: quarter = 60.
LILYPOND_DEFAULT_WPM = Fraction(15)
#: LilyPond's MIDI plays grace time at 9/40 of its written length
#: (``moment_to_real`` in lily/audio-item.cc): a grace note starts
#: ``9/40`` of its grace offset before its main note.
GRACE_SCALE = Fraction(9, 40)


def played_moment(main: Fraction, grace: Fraction) -> Fraction:
    """The moment (whole notes) at which LilyPond's MIDI plays ``(main, grace)``."""
    return main + GRACE_SCALE * grace


@dataclass(frozen=True)
class HeadRecord:
    """A printed note head as LilyPond engraved it (``H`` record)."""

    id: int
    staff: int
    voice: int
    pitch: int
    moment: Fraction
    grace: Fraction
    source: str


@dataclass(frozen=True)
class PlayedNote:
    """A note of the unfolded performance (``E`` record), in whole notes."""

    score: int
    id: int
    pitch: int
    moment: Fraction
    grace: Fraction
    duration: Fraction
    context: int
    velocity: int
    tied: bool
    wait: bool = False
    continues: bool | None = None
    performed: Fraction | None = None

    @property
    def sounding(self) -> Fraction:
        """Its length in LilyPond's MIDI (articulations applied), whole notes."""
        return self.duration if self.performed is None else self.performed


@dataclass
class Export:
    """Everything one LilyPond run exported."""

    heads: dict[int, HeadRecord] = field(default_factory=dict)
    head_systems: dict[int, str] = field(default_factory=dict)
    scores: dict[int, bool] = field(default_factory=dict)
    tempi: dict[int, list[tuple[Fraction, Fraction]]] = field(default_factory=dict)
    notes: list[PlayedNote] = field(default_factory=list)
    boxes: list[tuple[int, str, float, float, float, float]] = field(default_factory=list)
    folded_notes: list[PlayedNote] = field(default_factory=list)
    folded_tempi: dict[int, list[tuple[Fraction, Fraction]]] = field(default_factory=dict)
    repeats: dict[int, dict[int, "Repeat"]] = field(default_factory=dict)


@dataclass
class Repeat:
    """A volta or segno repeat at its printed time (whole notes).

    Attributes
    ----------
    start, end : Fraction
        Its span in the printed score, alternatives included.
    count : int
        Passes.
    parts : list of (Fraction, Fraction, frozenset of int)
        Spans played only on the passes named (alternatives, ``\\volta``).
    """

    start: Fraction
    end: Fraction
    count: int
    parts: list[tuple[Fraction, Fraction, frozenset[int]]] = field(default_factory=list)

    def key(self) -> tuple:
        """What makes two voices' repeats the same repeat."""
        return (self.start, self.end, self.count, tuple(sorted(self.parts, key=str)))


def parse_export(text: str) -> Export:
    """Parse the text of ``msmd-export.tsv``.

    Raises
    ------
    InputError
        A line is not a record of the documented form.
    """
    ex = Export()
    for number, line in enumerate(text.splitlines(), 1):
        f = line.split("\t")
        try:
            kind = f[0]
            if kind == "H":
                hid = int(f[1])
                ex.heads[hid] = HeadRecord(hid, int(f[2]), int(f[3]), int(f[4]), Fraction(f[5]),
                                           Fraction(f[6]), f"{f[7]}:{f[8]}:{f[9]}")
            elif kind == "S":
                ex.head_systems[int(f[1])] = f[2]
            elif kind == "C":
                ex.scores[int(f[1])] = f[2] == "1"
            elif kind in ("T", "U"):
                # A tempo set at a grace time step takes effect where LilyPond's
                # MIDI plays that step.
                at = played_moment(Fraction(f[2]), Fraction(f[4]) if len(f) > 4 else Fraction(0))
                (ex.tempi if kind == "T" else ex.folded_tempi).setdefault(int(f[1]), []).append(
                    (at, Fraction(f[3])))
            elif kind == "B":
                link = f[2].removeprefix("msmd:")
                ex.boxes.append((int(f[1]), link, float(f[3]), float(f[4]), float(f[5]),
                                 float(f[6])))
            elif kind in ("E", "F"):
                if f[9] not in ("0", "1", "2"):
                    raise ValueError(f[9])
                note = PlayedNote(int(f[1]), int(f[2]), int(f[3]), Fraction(f[4]),
                                  Fraction(f[5]), Fraction(f[6]), int(f[7]), int(f[8]),
                                  f[9] != "0", f[9] == "2",
                                  f[10] == "1" if len(f) > 10 else None,
                                  Fraction(f[11]) if len(f) > 11 else None)
                (ex.notes if kind == "E" else ex.folded_notes).append(note)
            elif kind == "R":
                ex.repeats.setdefault(int(f[1]), {})[int(f[2])] = Repeat(
                    Fraction(f[3]), Fraction(f[4]), int(f[5]))
            elif kind == "V":
                numbers = frozenset(int(n) for n in f[5].split(",") if n)
                ex.repeats[int(f[1])][int(f[2])].parts.append(
                    (Fraction(f[3]), Fraction(f[4]), numbers))
            else:
                raise ValueError(kind)
        except (IndexError, ValueError) as e:
            raise InputError(f"msmd-export.tsv line {number}: bad record {line!r}") from e
    return ex


class TempoMap:
    """Musical time (whole notes) to seconds under piecewise constant tempi.

    Parameters
    ----------
    changes : list of (Fraction, Fraction)
        ``(moment, wholes_per_minute)`` pairs; a tempo holds from its moment on.
    """

    def __init__(self, changes: list[tuple[Fraction, Fraction]]) -> None:
        changes = sorted(changes)
        if not changes or changes[0][0] > 0:
            changes.insert(0, (Fraction(0), changes[0][1] if changes else LILYPOND_DEFAULT_WPM))
        self.moments = [m for m, _ in changes]
        self.wpm = [w for _, w in changes]
        self.start_s = [Fraction(0)]
        for i in range(1, len(changes)):
            span = self.moments[i] - self.moments[i - 1]
            self.start_s.append(self.start_s[-1] + span * 60 / self.wpm[i - 1])

    def tempo_at(self, moment: Fraction) -> Fraction:
        """Wholes per minute in force at ``moment``."""
        return self.wpm[max(0, bisect_right(self.moments, moment) - 1)]

    def seconds(self, moment: Fraction) -> Fraction:
        """Seconds from the start of the score to ``moment`` (whole notes)."""
        i = max(0, bisect_right(self.moments, moment) - 1)
        return self.start_s[i] + (moment - self.moments[i]) * 60 / self.wpm[i]


def score_tempo(ex: Export, score: int, changes: list[tuple[Fraction, Fraction]],
                default_wpm: Fraction) -> tuple[TempoMap, str]:
    """The tempo map of printed score ``score`` with tempo ``changes``, and where it came from.

    A printed score whose only tempo is LilyPond's default (quarter = 60 from
    the start) takes the tempo of a MIDI-only score of the same file, as
    Mutopia files often put ``\\tempo`` in a separate ``\\midi`` score, else
    ``default_wpm``.  The MIDI-only score is the one that plays this score's
    music (see :func:`midi_score_offset`), from the moment where it does: a
    MIDI score holding all movements one after the other gives each printed
    movement the tempi of its own stretch.
    """
    if any(w != LILYPOND_DEFAULT_WPM for _, w in changes):
        return TempoMap(changes), "score"
    candidates = [other for other, printed in sorted(ex.scores.items())
                  if not printed and ex.tempi.get(other)
                  and any(w != LILYPOND_DEFAULT_WPM for _, w in ex.tempi[other])]
    for other in candidates:
        offset = midi_score_offset(ex, score, other)
        if offset is not None:
            return TempoMap(shift_tempi(ex.tempi[other], offset)), "midi-score"
    if candidates:
        # No MIDI score plays this music: the first one, as the file's tempo.
        return TempoMap(ex.tempi[candidates[0]]), "midi-score"
    return TempoMap([(Fraction(0), default_wpm)]), "default"


def shift_tempi(changes: list[tuple[Fraction, Fraction]], offset: Fraction,
                ) -> list[tuple[Fraction, Fraction]]:
    """Tempo ``changes`` seen from moment ``offset`` on, as a map from moment 0."""
    tempo = TempoMap(changes)
    return [(Fraction(0), tempo.tempo_at(offset))] + [
        (m - offset, w) for m, w in sorted(changes) if m > offset]


#: Notes of a printed score that must recur in a MIDI-only score to pair them.
SIGNATURE_NOTES = 24


def midi_score_offset(ex: Export, printed: int, midi: int) -> Fraction | None:
    """Where MIDI-only score ``midi`` plays the music of printed score ``printed``.

    Both are compared as LilyPond unfolded them (``E`` records): the first
    :data:`SIGNATURE_NOTES` onsets of the printed score, as (moment from its
    first note, pitch), must all sound in the MIDI score from some offset.
    Returns the moment of the MIDI score where the printed score's moment 0
    falls, the earliest such; ``None`` when the MIDI score does not play it.
    """
    def onsets(score: int) -> list[tuple[Fraction, int]]:
        return sorted({(n.moment, n.pitch) for n in ex.notes
                       if n.score == score and n.grace == 0})

    mine = onsets(printed)[:SIGNATURE_NOTES]
    theirs = onsets(midi)
    if not mine or not theirs:
        return None
    heard = set(theirs)
    first, pitch = mine[0]
    for moment, p in theirs:
        if p == pitch and all((m - first + moment, q) in heard for m, q in mine):
            return moment - first
    return None


def playback(repeats: list[Repeat], end: Fraction) -> list[tuple[Fraction, Fraction]] | None:
    """The printed score's spans ``[start, end)`` in playing order, joined where
    one follows on from the other.

    The repeats are the score's, whichever voice wrote them: a repeat that
    only one staff spells out is played by every staff, as the printed
    repeat signs say.  Returns ``None`` when the voices' repeats overlap
    without nesting or disagree on one span (no score-wide reading).
    """
    unique = {r.key(): r for r in repeats}
    spans = sorted(unique.values(), key=lambda r: (r.start, -r.end))
    for a, b in zip(spans, spans[1:]):
        if (a.start, a.end) == (b.start, b.end) or a.start < b.start < a.end < b.end:
            return None

    def expand(lo: Fraction, hi: Fraction, within: list[Repeat]) -> list[tuple[Fraction, Fraction]]:
        out, pos = [], lo
        for r in within:
            if r.start < pos or r.end > hi:
                continue
            if pos < r.start:
                out.append((pos, r.start))
            inner = [q for q in within if q is not r and r.start <= q.start and q.end <= r.end]
            for n in range(1, r.count + 1):
                cut = sorted((a, b) for a, b, numbers in r.parts if n not in numbers)
                here = r.start
                for a, b in cut + [(r.end, r.end)]:
                    if here < a:
                        out += expand(here, a, inner)
                    here = max(here, b)
            pos = r.end
        if pos < hi:
            out.append((pos, hi))
        return out

    merged: list[tuple[Fraction, Fraction]] = []
    for lo, hi in expand(Fraction(0), end, spans):
        if merged and merged[-1][1] == lo:
            merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def unfold_printed(notes: list[PlayedNote], tempi: list[tuple[Fraction, Fraction]],
                   segments: list[tuple[Fraction, Fraction]],
                   ) -> tuple[list[PlayedNote], list[tuple[Fraction, Fraction]]]:
    """Notes and tempo changes of the printed time, played along ``segments``.

    A note sounds once in every segment that holds its onset, shifted to
    where that segment is played; a tempo holds in every pass of its span.
    """
    tempo = TempoMap(tempi) if tempi else None
    played, changes = [], []
    at = Fraction(0)
    for lo, hi in segments:
        played += [replace(n, moment=n.moment - lo + at) for n in notes if lo <= n.moment < hi]
        if tempo is not None:
            for m, w in [(at, tempo.tempo_at(lo))] + [(m - lo + at, w) for m, w in tempi
                                                       if lo < m < hi]:
                if not changes or changes[-1][1] != w:
                    changes.append((m, w))
        at += hi - lo
    return played, changes


@dataclass
class PerformanceResult:
    """The performance of the printed scores and how every head is played.

    Attributes
    ----------
    performance : Performance
        Note events at tempo factor 1.0, ties merged.
    onsets : dict of int to list of float
        Head id -> onset times in seconds (one per time the head sounds).
    tie_continuations : set of int
        Heads that are only ever tie continuations.
    tempo_source : list of str
        Per printed score: ``score``, ``midi-score`` or ``default``.
    unprinted_notes : int
        Played notes with no printed head (chord names, MIDI-only scores).
    merged_heads : int
        Heads whose notes a merged twin plays (see :func:`merged_head_aliases`).
    repeat_mode : list of str
        Per printed score: ``printed`` (repeats as the printed score shows
        them, for every staff) or ``per-voice`` (each voice its own repeats,
        where the voices' repeats admit no score-wide reading).
    held : dict of int to list of float
        Head id -> the times (seconds) at which it is played as a tie
        continuation, with no onset (a repeat's first note tied into from
        one alternative only).
    """

    performance: Performance
    onsets: dict[int, list[float]]
    tie_continuations: set[int]
    tempo_source: list[str]
    unprinted_notes: int
    merged_heads: int = 0
    repeat_mode: list[str] = field(default_factory=list)
    movements: list["Movement"] = field(default_factory=list)
    held: dict[int, list[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Movement:
    """Where one printed score sounds in the performance.

    Attributes
    ----------
    score : int
        The score's index in the file (``C`` records), MIDI-only ones counted.
    start_s : float
        Seconds from the start of the performance to the score's moment 0.
    end_s : float
        Seconds from the start of the performance to the end of its last note.
    tempo : TempoMap
        Its tempo map, played moments (:func:`played_moment`) to seconds from its moment 0.
    tempo_source, repeat_mode : str
        As in :class:`PerformanceResult`.
    repeats_as_written : bool
        Every voice plays its own repeats as the score's do: playing the page's
        repeats for every staff gives what each voice unfolded alone gives
        (false where a repeat is written in one staff only).
    """

    score: int
    start_s: float
    end_s: float
    tempo: "TempoMap"
    tempo_source: str
    repeat_mode: str
    repeats_as_written: bool = True


def merged_head_aliases(ex: Export, drawn: set[int]) -> dict[int, int]:
    """Heads LilyPond merged into another one: undrawn id -> drawn id.

    Where two voices strike the same pitch at the same time, LilyPond may
    print one head for both (a note collision merge).  The undrawn head's
    notes are then played by the printed head: same movement (layout), staff,
    moment and pitch.  Undrawn heads with no such twin (hidden notes) are left
    out.
    """
    def key(i: int) -> tuple:
        h = ex.heads[i]
        layout = ex.head_systems.get(i, "").partition(":")[0]
        return (layout, h.staff, h.moment, h.grace, h.pitch)

    printed = {}
    for i in sorted(drawn & set(ex.heads)):
        printed.setdefault(key(i), i)
    aliases = {}
    for i in ex.heads:
        if i not in drawn and key(i) in printed:
            aliases[i] = printed[key(i)]
    return aliases


def printed_plays(ex: Export, aliases: dict[int, int]) -> dict[int, tuple[Fraction, ...]]:
    """Per head id, the printed moments (whole notes) at which one pass plays it.

    From the ``F`` records, which unfold tremolo and percent repeats in
    printed time: one moment for most heads, one per stroke of a tremolo or
    a percent repeat.  Undrawn heads count as their drawn twin (``aliases``).
    """
    plays: dict[int, set[Fraction]] = {}
    for n in ex.folded_notes:
        plays.setdefault(aliases.get(n.id, n.id), set()).add(n.moment + n.grace)
    return {i: tuple(sorted(ms)) for i, ms in plays.items()}


def build_performance(ex: Export, *, default_qpm: float = 60.0, gap_s: float = 1.0,
                      aliases: dict[int, int] | None = None) -> PerformanceResult:
    """Turn the exported played notes into a performance in seconds.

    Printed scores are played one after the other, ``gap_s`` seconds apart.
    A tie continuation (see :func:`merge_ties`) lengthens the note it
    continues and has no onset of its own.  Grace notes are timed as in
    LilyPond's MIDI: grace time is played at :data:`GRACE_SCALE` of its
    written length, just before the main note.

    Parameters
    ----------
    ex : Export
        The parsed export.
    default_qpm : float
        Quarter notes per minute for scores that name no tempo.
    gap_s : float
        Silence between two printed scores of one file, seconds.
    aliases : dict of int to int, optional
        Heads whose notes another head plays (:func:`merged_head_aliases`);
        two notes of one head at one onset become one, the longer.
    """
    aliases = aliases or {}
    default_wpm = Fraction(default_qpm).limit_denominator(10**6) / 4
    printed = [s for s, p in sorted(ex.scores.items()) if p]
    events: list[NoteEvent] = []
    event_at: dict[tuple[int, float], int] = {}
    onsets: dict[int, list[float]] = {}
    held: dict[int, list[float]] = {}
    played_ids: set[int] = set()
    sources = []
    unprinted = 0
    offset = Fraction(0)
    modes = []
    movements: list[Movement] = []
    for score in printed:
        notes, changes, mode, as_written = _score_notes(ex, score)
        modes.append(mode)
        tempo, source = score_tempo(ex, score, changes, default_wpm)
        sources.append(source)
        unprinted += sum(1 for n in notes if n.id not in ex.heads)
        notes = [n for n in notes if n.id in ex.heads]
        merged = merge_ties(notes)
        started = {id(n) for n, _ in merged}
        for note in notes:
            if id(note) not in started:
                held.setdefault(aliases.get(note.id, note.id), []).append(
                    float(offset + _onset_seconds(tempo, note)))
        end = Fraction(0)
        for note, stop in merged:
            start_s = _onset_seconds(tempo, note)
            stop_s = tempo.seconds(stop)
            end = max(end, stop_s)
            onset = float(offset + start_s)
            head = aliases.get(note.id, note.id)
            event = NoteEvent(onset, float(stop_s - start_s), note.pitch, note.velocity,
                              f"h{head}")
            if (head, onset) in event_at:
                i = event_at[(head, onset)]
                events[i] = max(events[i], event, key=lambda e: e.duration_s)
                continue
            event_at[(head, onset)] = len(events)
            events.append(event)
            onsets.setdefault(head, []).append(onset)
        played_ids.update(aliases.get(n.id, n.id) for n in notes)
        if notes:
            movements.append(Movement(score, float(offset), float(offset + end), tempo, source,
                                      mode, as_written))
            offset += end + Fraction(gap_s).limit_denominator(10**6)
    # A grace note before the first beat would sound before time zero.
    lead = -min((e.onset_s for e in events), default=0.0)
    if lead > 0:
        events = [replace(e, onset_s=e.onset_s + lead) for e in events]
        onsets = {i: [t + lead for t in ts] for i, ts in onsets.items()}
        held = {i: [t + lead for t in ts] for i, ts in held.items()}
        movements = [replace(m, start_s=m.start_s + lead, end_s=m.end_s + lead)
                     for m in movements]
    ties = played_ids - set(onsets)
    return PerformanceResult(Performance(sort_events(events)), onsets, ties, sources, unprinted,
                             len(aliases), modes, movements, held)


def _score_notes(ex: Export, score: int,
                 ) -> tuple[list[PlayedNote], list[tuple[Fraction, Fraction]], str, bool]:
    """The played notes and tempo changes of one score, its repeat mode, and
    whether its voices' own repeats play as the page's (see :class:`Movement`).

    Where the page's repeats, played by every staff, give the notes that
    each voice's own unfolding gives, those notes and tempi are taken as
    LilyPond unfolded them (``E`` and ``T`` records): a tempo mark before a
    repeat is then not played again on its second pass, as in LilyPond's MIDI.
    """
    own = [n for n in ex.notes if n.score == score]
    folded = [n for n in ex.folded_notes if n.score == score]
    end = max([n.moment + n.duration for n in folded]
              + [r.end for r in ex.repeats.get(score, {}).values()], default=Fraction(0))
    segments = playback(list(ex.repeats.get(score, {}).values()), end)
    if segments is None or not folded:
        return own, ex.tempi.get(score, []), "per-voice", True
    notes, changes = unfold_printed(folded, ex.folded_tempi.get(score, []), segments)

    def played(ns: list[PlayedNote]) -> list[tuple]:
        # Grace notes left out: one at a repeat's first moment may stand
        # before the repeat or in it, which printed time cannot tell.
        return sorted((n.moment, n.id) for n in ns if n.id in ex.heads and n.grace == 0)

    if played(notes) == played(own):
        return own, ex.tempi.get(score, []), "printed", True
    return notes, changes, "printed", False


def _onset_seconds(tempo: TempoMap, note: PlayedNote) -> Fraction:
    return tempo.seconds(played_moment(note.moment, note.grace))


def merge_ties(notes: list[PlayedNote]) -> list[tuple[PlayedNote, Fraction]]:
    """Merge tied notes as LilyPond's MIDI does (``Tie_performer``).

    Per voice (context) and pitch, a tied note waits for the next note of
    its pitch: that note continues its sound and has no onset of its own.
    Where the export says which notes continue a tie (``continues``, worked
    out inside LilyPond with its time steps), that decides.  Otherwise the
    rule is approximated: the tie lapses once the tied note has sounded its
    length (``c4~ r4 c4`` strikes twice), unless ``tieWaitForNote`` was set
    (``c8~ e~ g~ <c e g>2`` holds the broken chord).  Grace notes tie as any
    note: ``\\grace c16~ c4`` strikes once.

    Returns
    -------
    list of (PlayedNote, Fraction)
        The notes that start a sound, with the played moment its sound stops
        (:func:`played_moment`, whole notes), in time order.
    """
    ends: list[Fraction] = []
    starts: list[PlayedNote] = []
    # (context, pitch) -> [(sound index, end as (main, grace), wait)], oldest first
    pending: dict[tuple[int, int], list[tuple[int, tuple[Fraction, Fraction], bool]]] = {}
    order = sorted(range(len(notes)), key=lambda i: (notes[i].moment, notes[i].grace, i))
    step: tuple[Fraction, Fraction] | None = None
    tied_now: list[tuple[tuple[int, int], tuple[int, tuple[Fraction, Fraction], bool]]] = []

    def close_step(now: tuple[Fraction, Fraction]) -> None:
        for key in list(pending):
            pending[key] = [p for p in pending[key] if p[2] or p[1] > now]
            if not pending[key]:
                del pending[key]
        for key, entry in tied_now:
            pending.setdefault(key, []).append(entry)
        tied_now.clear()

    for i in order:
        note = notes[i]
        now = (note.moment, note.grace)
        if step is not None and now != step:
            close_step(step)
        step = now
        key = (note.context, note.pitch)
        if note.grace != 0:
            end = (note.moment, min(Fraction(0), note.grace + note.sounding))
        else:
            end = (note.moment + note.sounding, Fraction(0))
        waiting = pending.get(key)
        if note.continues is None:
            continues = bool(waiting) and (waiting[0][2] or now <= waiting[0][1])
        else:
            continues = bool(note.continues and waiting)
            if not note.continues:
                pending.pop(key, None)
        if continues:
            index = waiting.pop(0)[0]
            if not waiting:
                del pending[key]
            ends[index] = max(ends[index], played_moment(*end))
        else:
            starts.append(note)
            ends.append(played_moment(*end))
            index = len(starts) - 1
        if note.tied:
            tied_now.append((key, (index, end, note.wait)))
    return list(zip(starts, ends))
