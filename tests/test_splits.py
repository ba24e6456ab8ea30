"""Splits and piece ids stable under growth (issue 11)."""
from __future__ import annotations

from pathlib import Path

import pytest

from msmd_prep.packing.core import SPLITS, assign_splits, choose_splits, split_draw
from msmd_prep.render import piece_ids

SHARES = (0.7, 0.15, 0.15)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_adding_a_piece_leaves_every_other_split_unchanged(seed):
    names = [f"piece-{i:03d}" for i in range(60)]
    before = assign_splits(names, seed=seed, fractions=SHARES)
    for extra in ("new-piece", "aaa-first", "zzz-last"):
        after = assign_splits(names + [extra], seed=seed, fractions=SHARES)
        assert {n: after[n] for n in names} == before
    fewer = assign_splits(names[::2], seed=seed, fractions=SHARES)
    assert fewer == {n: before[n] for n in names[::2]}


def test_a_split_is_a_function_of_seed_and_id_only():
    assert split_draw(3, "minuet") == split_draw(3, "minuet")
    assert split_draw(3, "minuet") != split_draw(4, "minuet")
    assert 0 <= split_draw(0, "x") < 1
    alone = assign_splits(["minuet"], seed=3, fractions=SHARES)["minuet"]
    crowd = assign_splits([f"p{i}" for i in range(100)] + ["minuet"], seed=3,
                          fractions=SHARES)["minuet"]
    assert alone == crowd


def test_shares_are_met_on_average():
    splits = assign_splits([f"p{i}" for i in range(4000)], seed=0, fractions=SHARES)
    for split, share in zip(SPLITS, SHARES):
        got = sum(1 for s in splits.values() if s == split) / len(splits)
        assert abs(got - share) < 0.03, (split, got)


def test_split_files_keep_working(tmp_path):
    path = tmp_path / "split.yaml"
    path.write_text("train: [a, b]\nvalid: [c]\ntest: [d, gone]\n")
    assert choose_splits(["a", "b", "c", "d"], seed=0, fractions=SHARES,
                         split_file=str(path)) == {"a": "train", "b": "train", "c": "valid",
                                                   "d": "test"}


def test_piece_id_depends_only_on_the_path_under_its_root(tmp_path):
    root = tmp_path / "corpus"
    files = [root / "bach" / "minuet" / "minuet.ly", root / "bach" / "gavotte.ly",
             root / "handel" / "minuet" / "minuet.ly"]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("{ c'4 }")
    alone = piece_ids([files[0]], roots={files[0]: root})
    together = piece_ids(files, roots={f: root for f in files})
    assert alone[files[0]] == together[files[0]] == "bach__minuet"
    assert together[files[1]] == "bach__gavotte"
    assert together[files[2]] == "handel__minuet"
    # A file named on its own is under its own folder: its stem.
    assert piece_ids([files[1]]) == {files[1]: "gavotte"}
