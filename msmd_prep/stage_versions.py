"""The code version of every stage, recorded in every manifest it writes.

A stage's outputs are current only when its manifest names the version
below; a rerun redoes the outputs of an older version, and, because each
stage's inputs include its predecessor's manifest, everything after it.

One constant per stage, bumped by hand with every change of what the stage
writes (not with refactoring, comments or speed-ups, which keep outputs
byte-identical).  A hash of the stage's modules was the alternative; it
would redo a corpus after every edit that moves code, and miss behaviour
that lives in shared modules or in external tools.  The modules each
version covers:

- ``render``: render, normalize, fixes, export, formats/, pages, checks (the
  render checks), confine, lilypond/msmd.ily (also hashed by content);
- ``synth``: synth, soundfonts;
- ``spectrogram``: spectrogram;
- ``align``: align, unroll, checks (the energy check);
- ``perform``: performed/ (real performances aligned to their scores);
- ``pack``: packing/ (recorded in ``index.json``; pack always rebuilds).
"""
from __future__ import annotations

STAGE_VERSIONS: dict[str, int] = {
    "render": 3,       # 2: undrawn head ids in piece.json; stage versions;
                       # 3: moments/columns checks exact about tremolos, unplaced_heads
    "synth": 3,        # 2: stage versions; 3: rendered at 22.05 kHz (no resampling)
    "spectrogram": 2,  # 2: stage versions
    "align": 2,        # 2: energy as attacks; spectrogram and pages among the inputs
    "perform": 17,     # 2: recordings against a synthesized reference (log pitch energies,
                       #    DLNCO from the note list), MrMsDTW threshold_rec 10^6;
                       # 3: MIDI: left-out notes paired between their paired neighbours;
                       # 4: recordings: reference warped where its tempo is > 1.5x off the
                       #    recording's, step weights 1.3/1.3/2 against it
                       # 5: recordings: chords' onset peaks chosen together (score order,
                       #    10 ms apart); tuning offset as strided sums (silence: 0)
                       # 6: MIDI: first-pass pairs kept beyond the refinement's window
                       # 7: recordings: wider onset search where chords are sparse
                       # 8: recordings: reference played at 16 kHz (3000-sample frames),
                       #    threshold_rec 3*10^5 against it
                       # 9: recordings: onset peaks weighted by the rise of their chord's
                       #    pitch energies
                       # 10: recordings: register onsets (DLNRO, octave bands) beside DLNCO
                       #     against the synthesized reference
                       # 11: recordings: chords without an onset peak searched between their
                       #     refined neighbours where their pitch energies rise
                       # 12: recordings: the recording's silent frames orthogonal to the
                       #     reference (a silence row beside its log pitch energies)
                       # 13: recordings: the rise search keeps clear of its neighbours' attacks
                       # 14: recordings: the rise search's prior at most 0.5 s wide
                       # 15: recordings: the rise search's least rise 0.05 (was 0.2)
                       # 16: recordings: runs of repeated chords with an onset that does not
                       #     rise searched again by their rise
                       # 17: recordings: a chord at the median of its pitches' own rises (a lone
                       #     pitch only when a rise's span from its peak)
    "pack": 7,         # 2: only complete and current outputs; hash splits;
                       # 3: compressed piece files and shards, excerpts at pixel boundaries;
                       # 4: sheet rescale by whole-score steps (sheet_scale_steps);
                       # 5: score-following shards compressed like snippet shards;
                       # 6: a small corpus's empty splits get a piece each;
                       # 7: shard sheets in LZ4HC level 5 (was 9)
}


def stage_version(stage: str) -> int:
    """The current code version of ``stage`` (read at call time, so tests may bump it)."""
    return STAGE_VERSIONS[stage]
