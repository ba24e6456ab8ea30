"""The note-for-note check of a converted score against its input.

Each converted piece is checked against its input (:func:`compare_notes`):
the score's notes after merging ties must equal the input's notes in number
and, one to one, in pitch (and in musical time, where the input gives it).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from fractions import Fraction


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
        have = Counter((h.moment, h.pitch) for h in score if not h.grace)
        have_grace = Counter(h.pitch for h in score if h.grace)
        matched = sum((want & have).values()) + sum((want_grace & have_grace).values())
    else:
        ordered = sorted(score, key=lambda h: (h.moment, h.pitch))
        matched = sum(1 for h, n in zip(ordered, expected) if h.pitch == n.pitch)
    n_in, n_score = len(expected), len(score)
    return {"input_notes": n_in, "score_notes": n_score, "matched": matched,
            "pitch_mismatches": max(n_in, n_score) - matched,
            "ok": n_in == n_score == matched and n_in > 0}
