"""Self-check of the performance against LilyPond's own MIDI of the same source.

The render stage builds the performance from ``resources/lilypond/msmd.ily``'s export.
This check asks LilyPond itself what it plays: a MIDI-only performance of
the normalized source (``msmd_prep/resources/lilypond/msmd-midi-check.ily``, which shares
no code with the export) with every repeat unfolded, no page laid out.  It
runs inside the export's LilyPond run (``msmd-export-check.ily``, which
writes the same files as the two includes in runs of their own), and in a
MIDI-only LilyPond run of its own where that run fails.  Each
score of the file gives ``msmd-check-N.midi``, and ``msmd-check.tsv`` the
source location of every note LilyPond performed, so each MIDI note is known
with its origin.  The performance must play the same notes: per printed
movement, the same pitches at the same onsets (within one MIDI tick), and
every event's head must have a source that LilyPond plays at that pitch and
onset.

Differences that are documented, and allowed:

* unisons: notes of one pitch starting together are one note on each side
  (LilyPond's MIDI merges them within a staff; the synth strikes the key once);
* notes that no printed head stands for (chord names, ``\\hideNotes`` aside):
  LilyPond plays them, the performance does not;
* tempo: LilyPond's notes are timed at the ticks where it performed them,
  by the movement's exact tempo map; LilyPond's MIDI file rounds tempi down
  to whole quarters per minute, so the tempo maps are compared apart, to
  that precision, and only where the movement's tempo is its own
  (``tempo_source`` ``score``; not ``midi-score`` or ``default``);
* repeats written in one staff only: the performance repeats every staff as
  the page does, LilyPond's ``\\unfoldRepeats`` each voice on its own; such a
  movement is not compared (``skipped``).
"""
from __future__ import annotations

import re
import shutil
from bisect import bisect_left
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import mido

from .checks import Check
from .errors import MsmdPrepError
from .export import Movement, TempoMap
from .lilypond import EXPORT_ILY, run_lilypond
from .score import NoteEvent

#: The include of the check run (beside the export include).
CHECK_ILY = EXPORT_ILY.with_name("msmd-midi-check.ily")
#: The include of one run doing the export and the check.
EXPORT_CHECK_ILY = EXPORT_ILY.with_name("msmd-export-check.ily")
#: What the check writes into the build folder.
CHECK_OUTPUTS = ("msmd-check.tsv", "msmd-check-*.midi")
#: MIDI ticks per whole note in LilyPond's MIDI files (384 per quarter).
TICKS_PER_WHOLE = 1536
#: At most this many differences are named in the check's detail.
DETAIL_ITEMS = 5


@dataclass
class LilyScore:
    """What LilyPond's MIDI run played for one score of the file.

    Attributes
    ----------
    printed : bool
        The score has a layout (the performance plays it).
    notes : list of (int, int, int)
        ``(track, tick, key)`` of every note-on of its MIDI file.
    origins : dict of (int, int) to set of str
        ``(tick, key)`` -> ``file:line:column`` of the notes performed there
        (ticks before LilyPond's shift of a leading grace note).
    midi : mido.MidiFile or None
        The MIDI file, for its tempo map.
    """

    printed: bool
    notes: list[tuple[int, int, int]] = field(default_factory=list)
    origins: dict[tuple[int, int], set[str]] = field(default_factory=dict)
    midi: mido.MidiFile | None = None


def run_check_lilypond(main: Path, build: Path, *, timeout_s: float,
                       sandbox: bool = True) -> dict[int, LilyScore]:
    """Run LilyPond's MIDI-only pass on the normalized ``main`` in ``build``.

    Raises
    ------
    MsmdPrepError
        LilyPond failed (the check then fails, not the piece).
    """
    args = [f"-dinclude-settings={CHECK_ILY}", "--loglevel=ERROR", main.name]
    try:
        run_lilypond(args, cwd=build, timeout_s=timeout_s, sandbox=sandbox,
                     log="lilypond-midi-check.log")
    finally:
        # Fontconfig's cache of the sandboxed run: not an output.
        shutil.rmtree(build / ".cache", ignore_errors=True)
    return read_check_outputs(build)


def read_check_outputs(build: Path) -> dict[int, LilyScore]:
    """What a run with :data:`CHECK_ILY` or :data:`EXPORT_CHECK_ILY` wrote in ``build``."""
    scores = parse_check_tsv((build / "msmd-check.tsv").read_text())
    for index, score in scores.items():
        path = build / f"msmd-check-{index}.midi"
        if path.is_file():
            score.midi = mido.MidiFile(str(path))
            score.notes = midi_note_ons(score.midi)
    return scores


def parse_check_tsv(text: str) -> dict[int, LilyScore]:
    """The ``C`` and ``N`` records of ``msmd-check.tsv``."""
    scores: dict[int, LilyScore] = {}
    for line in text.splitlines():
        f = line.split("\t")
        if f[0] == "C":
            scores[int(f[1])] = LilyScore(f[2] == "1")
        elif f[0] == "N":
            tick = int(played_ticks(Fraction(f[6]), Fraction(f[7])))
            scores[int(f[1])].origins.setdefault((tick, int(f[5])), set()).add(
                f"{f[2]}:{f[3]}:{f[4]}")
    return scores


def played_ticks(main: Fraction, grace: Fraction) -> int:
    """LilyPond's MIDI tick of moment ``(main, grace)``: grace time at 9/40,
    truncated toward zero (``moment_to_ticks``)."""
    return int((main + Fraction(9, 40) * grace) * TICKS_PER_WHOLE)


def midi_note_ons(midi: mido.MidiFile) -> list[tuple[int, int, int]]:
    """``(track, tick, key)`` of every note-on of every track, in file order."""
    notes = []
    for index, track in enumerate(midi.tracks):
        now = 0
        for msg in track:
            now += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                notes.append((index, now, msg.note))
    return notes


#: A MIDI note is the performed note of its key nearest to where its track's
#: drift puts it, within this many ticks (a 32nd note).
SNAP_TICKS = 48


def performed_ticks(notes: list[tuple[int, int, int]], origins: dict[tuple[int, int], set[str]],
                    shift: int) -> tuple[list[tuple[int, int]], int]:
    """The tick at which LilyPond performed each MIDI note: ``(tick, key)``, and
    how many notes its file places elsewhere.

    LilyPond's MIDI writer cannot go back in time within a track: an event
    due before the one it just wrote (a grace note's note-on after another
    voice's note-off) is written late, and every later event of that track
    keeps the lag ("Going back in MIDI time").  So each note-on is paired
    with the performed note of its key (``N`` records, exact ticks) nearest
    to its tick less the track's current lag, and takes that tick; the lag
    starts at ``shift`` (LilyPond's shift of a leading grace note to tick 0).
    """
    by_key: dict[int, list[int]] = {}
    for (tick, key), sources in origins.items():
        by_key.setdefault(key, []).extend([tick] * len(sources))
    for ticks in by_key.values():
        ticks.sort()
    lag: dict[int, int] = {}
    out, moved = [], 0
    for track, tick, key in notes:
        predicted = tick - lag.get(track, shift)
        ticks = by_key.get(key, [])
        i = bisect_left(ticks, predicted)
        near = [j for j in (i - 1, i) if 0 <= j < len(ticks)
                and abs(ticks[j] - predicted) <= SNAP_TICKS]
        if near:
            # Each performed note is written once: it is taken.
            best = ticks.pop(min(near, key=lambda j: abs(ticks[j] - predicted)))
            lag[track] = tick - best
            moved += tick - best != shift
            out.append((best, key))
        else:
            out.append((predicted, key))
    return out, moved


def midi_tempi(midi: mido.MidiFile) -> list[tuple[int, int]]:
    """``(tick, quarters per minute)`` of every tempo of ``midi``, rounded as LilyPond
    wrote it (whole quarters per minute, in whole microseconds per quarter)."""
    changes = []
    for track in midi.tracks:
        now = 0
        for msg in track:
            now += msg.time
            if msg.type == "set_tempo":
                changes.append((now, round(60e6 / msg.tempo)))
    return sorted(changes)


def tempo_differences(tempo: TempoMap, lily: list[tuple[int, int]], shift: int) -> list[str]:
    """Where the movement's tempo map and LilyPond's MIDI tempi disagree.

    Both sides as LilyPond's MIDI writes tempi: quarters per minute truncated
    to whole numbers, at whole ticks; repeated values are one change.  A tick
    may differ by one (truncation).
    """
    def collapse(changes: list[tuple[int, int]]) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for tick, qpm in changes:
            if out and out[-1][0] == tick:
                out[-1] = (tick, qpm)
            elif not out or out[-1][1] != qpm:
                out.append((tick, qpm))
        return out

    mine = collapse([(int(m * TICKS_PER_WHOLE), int(w * 4))
                     for m, w in zip(tempo.moments, tempo.wpm)])
    theirs = collapse([(max(0, t - shift), q) for t, q in lily] or [(0, 60)])
    if mine and theirs and mine[0][0] <= 0 and theirs[0][0] <= 0:
        mine[0], theirs[0] = (0, mine[0][1]), (0, theirs[0][1])
    diffs = []
    for k in range(max(len(mine), len(theirs))):
        a = mine[k] if k < len(mine) else None
        b = theirs[k] if k < len(theirs) else None
        if a is None or b is None or abs(a[0] - b[0]) > 1 or abs(a[1] - b[1]) > 1:
            diffs.append(f"tempo {a[1] if a else '-'} at tick {a[0] if a else '-'} vs "
                         f"LilyPond's {b[1] if b else '-'} at tick {b[0] if b else '-'}")
    return diffs


@dataclass
class MovementResult:
    """The comparison of one printed movement."""

    score: int
    compared: int = 0
    only_lilypond: list[str] = field(default_factory=list)
    only_performance: list[str] = field(default_factory=list)
    wrong_source: list[str] = field(default_factory=list)
    unprinted: int = 0
    unisons: int = 0
    lagged: int = 0
    tempo_differences: list[str] = field(default_factory=list)
    skipped: str = ""

    @property
    def failed(self) -> int:
        return (len(self.only_lilypond) + len(self.only_performance) + len(self.wrong_source)
                + len(self.tempo_differences))


def compare_movement(movement: Movement, events: list[NoteEvent], lily: LilyScore,
                     head_sources: dict[str, str], printed_sources: set[str],
                     ) -> MovementResult:
    """Compare one movement's events with LilyPond's MIDI of its score.

    Parameters
    ----------
    movement : Movement
        Where the movement sounds and its tempo.
    events : list of NoteEvent
        The performance's events of this movement (absolute seconds).
    lily : LilyScore
        LilyPond's MIDI run of its score.
    head_sources : dict of str to str
        Head id -> source location, for every head LilyPond engraved (drawn
        or hidden).
    printed_sources : set of str
        Source locations of all those heads.
    """
    result = MovementResult(movement.score)
    if lily.midi is None:
        result.skipped = "LilyPond wrote no MIDI file"
        return result
    # LilyPond shifts a performance that starts with grace notes to tick 0.
    shift = -min([0, *(t for t, _ in lily.origins)])
    if movement.tempo_source == "score":
        result.tempo_differences = tempo_differences(movement.tempo, midi_tempi(lily.midi), shift)

    def lily_time(tick: int) -> float:
        """Seconds of performed tick ``tick`` (before the shift), by the movement's
        exact tempo map (LilyPond's MIDI file rounds tempi to whole quarters per
        minute; :func:`tempo_differences` compares the maps to that precision)."""
        return movement.start_s + float(movement.tempo.seconds(Fraction(tick, TICKS_PER_WHOLE)))

    performed, result.lagged = performed_ticks(lily.notes, lily.origins, shift)
    theirs: dict[int, list[tuple[float, float, int]]] = {}
    for tick, key in sorted(set(performed)):
        origins = lily.origins.get((tick, key), set())
        if origins and not origins & printed_sources:
            result.unprinted += 1
            continue
        at = lily_time(tick)
        # One tick: LilyPond truncates ticks.
        slack = lily_time(tick + 1) - at
        theirs.setdefault(key, []).append((at, slack, tick))
    result.unisons = len(performed) - len(set(performed))
    mine: dict[int, list[NoteEvent]] = {}
    for e in sorted(events, key=lambda e: e.onset_s):
        same = mine.setdefault(e.pitch, [])
        if same and abs(same[-1].onset_s - e.onset_s) < 1e-6:
            result.unisons += 1
            if e.notehead_id in head_sources and same[-1].notehead_id not in head_sources:
                same[-1] = e
            continue
        same.append(e)
    for key in sorted(set(theirs) | set(mine)):
        lil, our = theirs.get(key, []), mine.get(key, [])
        i = j = 0
        while i < len(lil) or j < len(our):
            if i < len(lil) and j < len(our) and abs(lil[i][0] - our[j].onset_s) <= lil[i][1] + 1e-6:
                result.compared += 1
                source = head_sources.get(our[j].notehead_id)
                origins = lily.origins.get((lil[i][2], key), set())
                if source is not None and source not in origins:
                    result.wrong_source.append(
                        f"{our[j].notehead_id} ({source}) at {our[j].onset_s:.3f} s pitch {key}")
                i += 1
                j += 1
            elif j >= len(our) or (i < len(lil) and lil[i][0] < our[j].onset_s):
                result.only_lilypond.append(f"pitch {key} at {lil[i][0]:.3f} s")
                i += 1
            else:
                result.only_performance.append(
                    f"{our[j].notehead_id} pitch {key} at {our[j].onset_s:.3f} s")
                j += 1
    return result


def check_midi(movements: list[Movement], events: tuple[NoteEvent, ...] | list[NoteEvent],
               lily: dict[int, LilyScore], head_sources: dict[str, str]) -> tuple[Check, dict]:
    """The ``midi`` check of a piece and its numbers for ``piece.json``.

    Events are given to the movement whose span holds their onset (a grace
    note before a movement's first beat to that movement).
    """
    printed_sources = set(head_sources.values())
    starts = [m.start_s for m in movements]
    per_movement: dict[int, list[NoteEvent]] = {i: [] for i in range(len(movements))}
    for e in events:
        i = 0
        for k in range(1, len(movements)):
            if e.onset_s >= (movements[k - 1].end_s + starts[k]) / 2:
                i = k
        per_movement[i].append(e)
    results = []
    for i, movement in enumerate(movements):
        score = lily.get(movement.score)
        if score is None:
            results.append(MovementResult(movement.score, skipped="LilyPond played no such score"))
        elif not movement.repeats_as_written:
            results.append(MovementResult(movement.score,
                                          skipped="repeats written in one staff only"))
        else:
            results.append(compare_movement(movement, per_movement[i], score, head_sources,
                                            printed_sources))
    failed = sum(r.failed for r in results)
    compared = sum(r.compared for r in results)
    problems = [f"score {r.score}: {what} {item}" for r in results
                for what, items in (("only LilyPond plays", r.only_lilypond),
                                    ("only the performance plays", r.only_performance),
                                    ("LilyPond plays another source:", r.wrong_source),
                                    ("", r.tempo_differences))
                for item in items]
    numbers = {
        "compared": compared,
        "only_lilypond": sum(len(r.only_lilypond) for r in results),
        "only_performance": sum(len(r.only_performance) for r in results),
        "wrong_source": sum(len(r.wrong_source) for r in results),
        "tempo_differences": sum(len(r.tempo_differences) for r in results),
        "unprinted_lilypond_notes": sum(r.unprinted for r in results),
        "unisons": sum(r.unisons for r in results),
        "lilypond_midi_lagged_notes": sum(r.lagged for r in results),
        "skipped": {str(r.score): r.skipped for r in results if r.skipped},
    }
    return Check("midi", failed == 0, compared, failed, "; ".join(problems[:DETAIL_ITEMS])), numbers


def remove_check_outputs(build: Path) -> None:
    """Remove what a failed run may have left of the check's files in ``build``."""
    for pattern in CHECK_OUTPUTS:
        for path in build.glob(pattern):
            path.unlink()


def midi_self_check(main: Path, build: Path, movements: list[Movement],
                    events: tuple[NoteEvent, ...], head_sources: dict[str, str], *,
                    timeout_s: float, sandbox: bool = True,
                    in_export_run: bool = False) -> tuple[Check, dict]:
    """Run LilyPond's MIDI pass and compare; a failed run fails the check.

    ``in_export_run``: the export's run (:data:`EXPORT_CHECK_ILY`) wrote the
    check's files already; LilyPond is not run again.
    """
    try:
        lily = (read_check_outputs(build) if in_export_run else
                run_check_lilypond(main, build, timeout_s=timeout_s, sandbox=sandbox))
    except (MsmdPrepError, OSError, ValueError, EOFError) as e:
        cause = re.sub(r"\s+", " ", str(e))[:300]
        return Check("midi", False, 0, 1, f"LilyPond's MIDI run failed: {cause}"), {}
    return check_midi(movements, events, lily, head_sources)
