"""Self-checks of a rendered piece: is every pair it will give trustworthy?

The alignment is exact by construction, so these checks look for what
construction cannot promise: a head box on blank paper (a transparent or
moved grob), heads that sound together but stand apart on the page, and a
performance whose notes do not match the heads.  Each check returns a
:class:`Check`; a piece is ``aligned_well`` when all of them pass.
"""
from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from dataclasses import asdict, dataclass
from fractions import Fraction

import numpy as np

from .pages import ink_fraction
from .score import NoteHead, Performance

#: Later than every moment: bisects past all onsets at one tick.
INF_MOMENT = Fraction(10**18)
#: A head box with less dark area than this is taken as blank paper.
MIN_INK_FRACTION = 0.2
#: Heads that sound together may stand this many head widths apart (seconds
#: in chords are set beside each other, voices shift by a head width).
COLUMN_TOLERANCE_HEADS = 2.5


@dataclass(frozen=True)
class Check:
    """One self-check: its name, whether it passed, and the numbers behind it."""

    name: str
    passed: bool
    checked: int
    failed: int
    detail: str = ""


def check_ink(heads: list[NoteHead], pages: dict[int, np.ndarray],
              min_fraction: float = MIN_INK_FRACTION) -> Check:
    """Every head box covers ink on its page image.

    Parameters
    ----------
    heads : list of NoteHead
    pages : dict of int to np.ndarray [shape=(height, width), dtype=uint8]
        Page number -> grayscale page image.
    """
    bad = [h.id for h in heads
           if ink_fraction(pages[h.page], (h.x0, h.y0, h.x1, h.y1)) < min_fraction]
    return Check("ink", not bad, len(heads), len(bad), " ".join(bad[:10]))


def check_columns(heads: list[NoteHead],
                  plays: dict[str, tuple[Fraction, ...]] | None = None,
                  tolerance_heads: float = COLUMN_TOLERANCE_HEADS) -> Check:
    """Heads of one system that share an onset stand in one column.

    Grace notes are left out: they share no column with anything.  So are
    heads first played before their printed moment (``plays``, as for
    :func:`check_moments`): the second note of a two-note tremolo is printed
    half the tremolo after the first and first sounds one stroke after it,
    where other heads stand (Verdi's La Traviata No. 18).
    """
    plays = plays or {}
    groups: dict[tuple[int, float], list[NoteHead]] = defaultdict(list)
    for h in heads:
        if not h.grace and h.onsets_s and plays.get(h.id, (h.moment,))[0] == h.moment:
            groups[(h.system, round(h.onsets_s[0], 6))].append(h)
    bad = []
    for (system, onset), group in groups.items():
        centres = [(h.x0 + h.x1) / 2 for h in group]
        width = float(np.median([h.x1 - h.x0 for h in group]))
        if max(centres) - min(centres) > tolerance_heads * width:
            bad.append(f"system {system} at {onset:g} s")
    return Check("columns", not bad, len(groups), len(bad), "; ".join(bad[:5]))


def check_moments(heads: list[NoteHead],
                  plays: dict[str, tuple[Fraction, ...]] | None = None,
                  held: dict[str, list[float]] | None = None,
                  tolerance_s: float = 1e-3) -> Check:
    """Heads printed at one moment of one system sound together, pass for pass.

    The converse of :func:`check_columns`.  Every pass of the performance
    through a moment of the score plays all of that moment's heads at once;
    a repeat written out in one staff only (Mutopia's Burgmuller Op. 100
    Nos. 2 and 9 repeat the right hand alone) unfolds one staff and not the
    other, and the staves drift apart by the repeated bars.

    ``plays`` gives, per head id, the printed moments at which one pass
    plays the head (:func:`msmd_prep.export.printed_plays`): one for most
    heads, one per stroke of a tremolo or percent repeat, whose strokes
    sound across later printed moments (``\\repeat tremolo 12 { <af df,>32
    df32 }`` prints its ``df32`` as a dotted quarter 3/8 after the chord, and
    plays it first a 32nd after it).  A head belongs to the moment of its
    first stroke and sounds, on every pass, exactly as often as it has
    strokes, before its voice's next head outside its own repeat sounds and
    before the next pass.  Without ``plays`` every head is played once per
    pass at its printed moment.  ``held`` gives, per head id, the times
    (seconds) at which a pass plays it as a tie continuation: such a pass
    counts as played (a repeat's first note, tied into from the second
    alternative only: Bach's English Suite 2, prelude).  Grace notes and heads
    that never sound (tie continuations) are left out; a moment with one head
    checks nothing.
    Only for performances made from the score: a MIDI input keeps its own
    timing, where heads quantized to one moment may sound apart (Nottingham
    ``jigs168``: 83 ms).
    """
    def tick(t: float) -> int:
        return round(t / tolerance_s)

    plays = plays or {}
    held = held or {}

    def strokes(h: NoteHead) -> tuple[Fraction, ...]:
        return plays.get(h.id) or (h.moment,)

    # Per voice, its onsets in time order with the first and last stroke of their head.
    later: dict[tuple[int, int], list[tuple[int, Fraction, Fraction]]] = defaultdict(list)
    groups: dict[tuple[int, Fraction], list[NoteHead]] = defaultdict(list)
    for h in heads:
        if not h.grace and h.onsets_s:
            groups[(h.system, strokes(h)[0])].append(h)
            later[(h.staff, h.voice)] += [(tick(t), strokes(h)[0], strokes(h)[-1])
                                          for t in h.onsets_s]
    for onsets in later.values():
        onsets.sort()

    def voice_next(h: NoteHead, r: int) -> float:
        """When the voice of ``h`` next sounds a head outside ``h``'s repeat after ``r``."""
        first, last = strokes(h)[0], strokes(h)[-1]
        onsets = later[(h.staff, h.voice)]
        for i in range(bisect_right(onsets, (r, INF_MOMENT)), len(onsets)):
            t, g_first, g_last = onsets[i]
            if g_first > last or g_last < first:
                return t
        return float("inf")

    bad = []
    checked = 0
    for (system, moment), group in groups.items():
        if len(group) < 2:
            continue
        checked += 1
        ok = True
        starts = None
        for h in group:
            ts = sorted({tick(t) for t in (*h.onsets_s, *held.get(h.id, ()))})
            k = len(strokes(h))
            # Each pass plays the head's strokes, from the pass's first on.
            passes = [ts[i:i + k] for i in range(0, len(ts), k)]
            own = [p[0] for p in passes]
            ok = (starts is None or own == starts) and len(passes[-1]) == k and all(
                p[-1] < min(voice_next(h, p[0]), nxt)
                for p, nxt in zip(passes, own[1:] + [float("inf")]))
            starts = own
            if not ok:
                break
        if not ok:
            bad.append(f"system {system} moment {moment}: "
                       + ", ".join(f"{h.id} at {' '.join(f'{t:g}' for t in h.onsets_s[:3])} s"
                                   for h in group[:2]))
    return Check("moments", not bad, checked, len(bad), "; ".join(bad[:3]))


def check_performance(heads: list[NoteHead], performance: Performance) -> Check:
    """The performance plays exactly the onsets the heads list, pitch for pitch."""
    pitch = {h.id: h.pitch for h in heads}
    expected = sorted((h.id, round(t, 6)) for h in heads for t in h.onsets_s)
    drawn = [e for e in performance.events if e.notehead_id in pitch]
    played = sorted((e.notehead_id, round(e.onset_s, 6)) for e in drawn)
    wrong_pitch = sum(1 for e in drawn if pitch[e.notehead_id] != e.pitch)
    missing = len(set(expected) ^ set(played))
    failed = missing + wrong_pitch
    return Check("performance", failed == 0, len(expected), failed,
                 f"{missing} onsets differ, {wrong_pitch} pitches differ" if failed else "")


def summarize(checks: list[Check]) -> dict:
    """``piece.json`` form: ``{"aligned_well": bool, "checks": {name: {...}}}``."""
    return {"aligned_well": all(c.passed for c in checks),
            "checks": {c.name: {k: v for k, v in asdict(c).items() if k != "name"}
                       for c in checks}}


#: An onset is an attack at its pitch when, at one of its first harmonics, a
#: frame from the first that hears it to two after the onset frame rises
#: above the quietest of the three frames before it that hear nothing of it,
#: by this share of the spectrogram's 99th percentile.  A rise, not a level:
#: a soft note high above loud bass is as much an attack as a loud one
#: (FluidR3's piano is 5-16 dB quieter from C5 up; a level against the
#: piece's loudest part flagged 4 of 49 Mutopia pieces whose audio was right).
MIN_ONSET_RISE = 0.1
#: Share of onsets that must be attacks (chords mask some harmonics).
MIN_ONSETS_WITH_ENERGY = 0.9
#: Frames after the onset frame in which the attack may peak.
AFTER_ONSET_FRAMES = 2
#: Frames before the onset, all hearing nothing of it, whose quietest is the floor.
FLOOR_FRAMES = 3
HARMONICS = (1, 2, 3)


def pitch_bands(pitches: np.ndarray, filterbank: np.ndarray,
                fft_frequencies_hz: np.ndarray) -> np.ndarray:
    """The band of each harmonic of each pitch, -1 where it is out of range.

    Parameters
    ----------
    pitches : np.ndarray [shape=(n,)]
        MIDI pitches.
    filterbank : np.ndarray [shape=(n_fft_bins, n_bands)]
    fft_frequencies_hz : np.ndarray [shape=(n_fft_bins,)]

    Returns
    -------
    np.ndarray [shape=(n, len(HARMONICS)), dtype=int]
    """
    f0 = 440.0 * 2.0 ** ((np.asarray(pitches, float) - 69) / 12)
    freqs = f0[:, None] * np.array(HARMONICS)[None, :]
    bins = np.abs(fft_frequencies_hz[None, None, :] - freqs[..., None]).argmin(axis=-1)
    weights = filterbank[bins]
    return np.where(weights.max(axis=-1) > 0, weights.argmax(axis=-1), -1)


def check_onset_energy(bands: np.ndarray, frames: np.ndarray, silent_before: np.ndarray,
                       spec: np.ndarray, *, min_rise: float = MIN_ONSET_RISE,
                       min_share: float = MIN_ONSETS_WITH_ENERGY) -> Check:
    """Every onset is an attack at its pitch in the spectrogram.

    At one of the onset's harmonic bands, the largest value from frame
    ``silent_before + 1`` (the first whose window hears the onset) to two
    frames after the onset frame must exceed the smallest of the frames
    ``silent_before - 2 .. silent_before`` by ``min_rise`` times the
    spectrogram's 99th percentile; frames before the audio are silence (0).
    Levels are relative, so the gain does not matter, and a rise, so that
    soft notes under loud ones count.

    Parameters
    ----------
    bands : np.ndarray [shape=(n, n_harmonics)]
        Bands of each onset's harmonics (:func:`pitch_bands`), -1 out of range.
    frames : np.ndarray [shape=(n,)]
        Onset frames.
    silent_before : np.ndarray [shape=(n,)]
        Per onset the last frame whose window ends before it (may be < 0);
        see :func:`msmd_prep.spectrogram.last_frame_before`.
    spec : np.ndarray [shape=(n_bands, n_frames)]
        The performance's spectrogram (log-compressed magnitudes, >= 0).
    """
    ref = float(np.percentile(spec, 99)) if spec.size else 0.0
    in_range = (bands >= 0).any(axis=1)
    bands, frames = bands[in_range], np.asarray(frames)[in_range]
    silent_before = np.asarray(silent_before)[in_range]
    if not len(frames) or ref <= 0:
        return Check("energy", ref > 0 or not len(frames), int(len(frames)), 0)
    lead = max(int(-(silent_before - FLOOR_FRAMES).min()) + 1, 0)
    padded = np.concatenate([np.zeros((spec.shape[0], lead), spec.dtype), spec], axis=1)
    last = padded.shape[1] - 1
    h = np.maximum(bands, 0)[:, :, None]
    present = bands[:, :, None] >= 0

    def window(first: np.ndarray, width: int, valid: np.ndarray) -> np.ndarray:
        """Values at the harmonic bands over ``first + 0 .. width - 1``: (n, h, width)."""
        cols = np.clip(first[:, None] + lead + np.arange(width)[None, :], 0, last)
        values = padded[h, cols[:, None, :]]
        return values, present & valid[:, None, :]

    floor, ok = window(silent_before - FLOOR_FRAMES + 1, FLOOR_FRAMES,
                       np.ones((len(frames), FLOOR_FRAMES), bool))
    floor = np.where(ok, floor, np.inf).min(axis=2)
    span = frames + AFTER_ONSET_FRAMES - silent_before
    width = int(span.max())
    attack, ok = window(silent_before + 1, width, np.arange(width)[None, :] < span[:, None])
    attack = np.where(ok, attack, -np.inf).max(axis=2)
    quiet = ~(attack - floor >= min_rise * ref).any(axis=1)
    share = 1.0 - quiet.mean()
    return Check("energy", bool(share >= min_share), len(frames), int(quiet.sum()),
                 f"{share:.1%} of onsets are attacks at their pitch")
