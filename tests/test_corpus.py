"""Optional test on real Mutopia scores from ``../shared/corpus``.

Marked ``corpus`` and skipped when the corpus folder is absent.  Renders a
small sample that covers repeats with voltas, grace notes, a multi-file
``-lys`` piece that needs :mod:`msmd_prep.fixes`, and a tempo taken from a
separate ``\\midi`` score; then checks that every head box covers ink and
that the onsets are sorted and plausible.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from msmd_prep.pages import ink_fraction, load_gray
from msmd_prep.render import RenderConfig, find_scores, render_score
from msmd_prep.score import read_heads_csv, read_performance_csv

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "mutopia"

#: Mutopia folders of the sample, with what each one exercises.
SAMPLE = {
    "BeethovenLv/WoO82/menuett_WoO82": "repeats and voltas, tie continuations",
    "Anonymous/lesgraces": "grace notes",
    "ChopinFF/O28/Chop-28-4a": "-lys folder, removed auto-beam and \\context syntax",
    "CzernyC/Op_821/Czerny_Op_821_No_015": "tempo from a separate \\midi score",
}

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(not CORPUS.is_dir(), reason=f"no corpus at {CORPUS}"),
]


@pytest.fixture(scope="module")
def pieces(tmp_path_factory) -> dict[str, Path]:
    """The sample rendered at 100 dpi: Mutopia folder -> piece folder."""
    out = tmp_path_factory.mktemp("corpus")
    cfg = RenderConfig(dpi=100)
    done = {}
    for folder in SAMPLE:
        scores = find_scores([CORPUS / folder])
        assert len(scores) == 1, scores
        done[folder] = render_score(scores[0], out / Path(folder).name, cfg).piece_dir
    return done


@pytest.mark.parametrize("folder", sorted(SAMPLE))
def test_heads_cover_ink(pieces, folder):
    piece = pieces[folder]
    heads = read_heads_csv(piece / "noteheads.csv")
    assert len(heads) > 20
    pages = {}
    for h in heads:
        if h.page not in pages:
            pages[h.page] = load_gray(piece / "pages" / f"page-{h.page:03d}.png")
        assert ink_fraction(pages[h.page], (h.x0, h.y0, h.x1, h.y1)) > 0.3, h


@pytest.mark.parametrize("folder", sorted(SAMPLE))
def test_onsets_plausible(pieces, folder):
    piece = pieces[folder]
    heads = read_heads_csv(piece / "noteheads.csv")
    events = read_performance_csv(piece / "performance.csv").events
    onsets = [e.onset_s for e in events]
    assert onsets == sorted(onsets) and onsets[0] >= 0
    assert 5.0 < events[-1].onset_s + events[-1].duration_s < 600.0
    for h in heads:
        # A tie continuation sounds on and has no onset; every other head is played.
        assert (len(h.onsets_s) == 0) == h.tied, h
        assert list(h.onsets_s) == sorted(h.onsets_s)
    ids = {h.id for h in heads}
    assert sum(e.notehead_id in ids for e in events) >= 0.95 * len(events)


def test_repeats_played_twice(pieces):
    heads = read_heads_csv(pieces["BeethovenLv/WoO82/menuett_WoO82"] / "noteheads.csv")
    assert sum(len(h.onsets_s) == 2 for h in heads) > len(heads) / 2


def test_grace_notes_exported(pieces):
    heads = read_heads_csv(pieces["Anonymous/lesgraces"] / "noteheads.csv")
    assert any(h.grace for h in heads)
