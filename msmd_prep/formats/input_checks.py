"""The note-for-note check of a converted score against its input.

:mod:`.music21_to_ly` records the line and column of every pitch it writes;
LilyPond's export gives every head the ``file:line:column`` of its note.
:func:`pair_heads` joins the two (no guessing) and checks the pair note for
note: every written note has a head, of its pitch, at its moment, a tie
continuation exactly where the input ties; every head stands for a written
note.  A mismatch names the measure, the staff and the note.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from .music21_to_ly import LyScore, WrittenNote

#: Most mismatches named in ``piece.json``.
MAX_NAMED = 20


@dataclass
class Pairing:
    """Heads joined to written notes.

    Attributes
    ----------
    head_of : dict
        Note index -> the head that prints it.
    checks : dict
        ``input_notes`` (written notes with an onset), ``score_notes``
        (heads with an onset), ``matched``, ``mismatches`` (count),
        ``mismatch`` (the first few, each naming measure, staff and note),
        ``ok``; plus what the input has and the score does not print.
    """

    head_of: dict
    checks: dict


def _location(source: str) -> tuple[int, int] | None:
    parts = source.rsplit(":", 2)
    if len(parts) != 3:
        return None
    try:
        return int(parts[1]), int(parts[2])
    except ValueError:
        return None


def _where(n: WrittenNote) -> str:
    kind = "grace note " if n.grace else ""
    return (f"measure {n.measure_number} (staff {n.staff + 1}, voice {n.voice + 1}, "
            f"at {n.offset} of the bar): {kind}{n.name}")


def _mismatch(n: WrittenNote, h) -> str:
    """What differs between a written note and the head at its source location."""
    if h.pitch != n.pitch:
        return f"is printed as MIDI pitch {h.pitch}, not {n.pitch}"
    if bool(h.grace) != n.grace:
        return "is a grace note in one of input and score only"
    if not n.grace and Fraction(h.moment) != n.moment:
        return f"is printed at moment {h.moment}, not {n.moment}"
    if bool(h.tied) != n.tied:
        return "is " + ("not " if n.tied else "") + "printed as a tie continuation"
    return ""


def pair_heads(heads, score: LyScore) -> Pairing:
    """Join every written note with the head LilyPond printed for it, and check them.

    Parameters
    ----------
    heads : list of NoteHead
        The rendered heads (``source``, ``pitch``, ``moment``, ``tied``, ``grace``).
    score : LyScore
        What the writer wrote.
    """
    by_loc = {}
    for h in heads:
        loc = _location(h.source)
        if loc is not None:
            by_loc.setdefault(loc, []).append(h)
    twins = {}
    for h in heads:
        twins.setdefault((h.staff, Fraction(h.moment), h.pitch, bool(h.grace)), h)
    head_of, problems, used = {}, [], set()
    merged = matched = 0
    for n in score.notes:
        found = by_loc.get((n.line, n.column))
        if not found:
            # Two voices striking one pitch at one moment: LilyPond may draw one head.
            twin = None if n.grace else twins.get((n.staff, n.moment, n.pitch, False))
            if twin is not None and bool(twin.tied) == n.tied:
                head_of[n.index] = twin
                merged += 1
                matched += not n.tied
            elif not n.tied:
                problems.append(f"{_where(n)} has no head")
            continue
        h = next((x for x in found if x.id not in used), found[0])
        used.add(h.id)
        head_of[n.index] = h
        problem = _mismatch(n, h)
        if problem:
            problems.append(f"{_where(n)} {problem}")
        else:
            matched += not n.tied
    overlapping = score.skipped.get("overlapping_notes", 0)
    if overlapping:
        problems.append(f"{overlapping} notes overlap the notes before them in their voice "
                        "and are not printed")
    extra = [h for h in heads if h.id not in used and not h.tied]
    problems += [f"head {h.id} at {h.source} (MIDI pitch {h.pitch}, moment {h.moment}) "
                 "stands for no note of the input" for h in extra]
    n_in = sum(1 for n in score.notes if not n.tied) + overlapping
    checks = {"input_notes": n_in, "score_notes": sum(1 for h in heads if not h.tied),
              "matched": matched, "mismatches": len(problems),
              "mismatch": problems[:MAX_NAMED], "notes_sharing_a_head": merged,
              "ok": not problems and n_in > 0}
    checks |= {f"{k}_not_printed": v for k, v in sorted(score.skipped.items())}
    return Pairing(head_of, checks)
