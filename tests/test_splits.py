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


def _hashed(names, seed, shares=SHARES):
    """The split of every piece by its draw alone (the rule before any filling)."""
    _, valid, test = shares
    return {n: "test" if split_draw(seed, n) < test
            else "valid" if split_draw(seed, n) < test + valid else "train" for n in names}


@pytest.mark.parametrize("seed", range(12))
def test_a_small_corpus_gets_every_split_from_the_draws_nearest_it(seed):
    names = ["au_clair_de_la_lune", "minuet_in_g", "ode_to_joy", "twinkle_variation"]
    hashed, splits = _hashed(names, seed), assign_splits(names, seed=seed, fractions=SHARES)
    assert set(splits.values()) == set(SPLITS)
    moved = {n for n in names if splits[n] != hashed[n]}
    assert len(moved) == sum(1 for s in SPLITS if s not in hashed.values())
    for n in moved:   # a moved piece is the nearest of its donor split to its new split
        stayed = [m for m in names if hashed[m] == hashed[n] and m not in moved]
        assert stayed, "a split was emptied"
        if splits[n] == "test":
            assert all(split_draw(seed, n) <= split_draw(seed, m) for m in stayed)
        if splits[n] == "train":
            assert all(split_draw(seed, n) >= split_draw(seed, m) for m in stayed)


def test_filling_leaves_large_corpora_and_zero_shares_alone():
    for seed in range(20):
        names = [f"piece-{i:03d}" for i in range(60)]
        if set(_hashed(names, seed).values()) == set(SPLITS):
            assert assign_splits(names, seed=seed, fractions=SHARES) == _hashed(names, seed)
    for seed in range(20):   # a share of 0 stays empty; fewer pieces than splits: no filling
        no_valid = assign_splits(["a", "b", "c", "d"], seed=seed, fractions=(0.8, 0.0, 0.2))
        assert set(no_valid.values()) == {"train", "test"}
        assert assign_splits(["a", "b"], seed=seed, fractions=SHARES) == _hashed(["a", "b"], seed)
