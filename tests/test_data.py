"""The readers: SnippetDataset by index, in batches and in worker processes; PieceDataset."""
from __future__ import annotations

import multiprocessing
import pickle

import numpy as np
import pytest

from msmd_prep.data import PieceDataset, SnippetDataset
from msmd_prep.errors import InputError
from msmd_prep.packing.core import SPLITS


def _read(args):
    ds, indices = args
    return [(ds[i][0].sum(), ds[i][2]["notehead_id"]) for i in indices]


@pytest.mark.parametrize("split", SPLITS)
def test_getitem(fixture_ds, split):
    ds = SnippetDataset(fixture_ds.dataset, split)
    assert len(ds) > 0
    sheet, spec, meta = ds[0]
    assert sheet.shape == (160, 200) and sheet.dtype == np.uint8
    assert spec.shape == (92, 42) and spec.dtype == np.float16
    assert isinstance(meta["piece"], str) and isinstance(meta["onset_s"], float)
    assert meta["onset_frame"] - meta["spec_start_frame"] == meta["onset_col"]
    np.testing.assert_array_equal(ds[-1][0], ds[len(ds) - 1][0])
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_unknown_split_and_missing_root(fixture_ds, tmp_path):
    with pytest.raises(InputError, match="no split"):
        SnippetDataset(fixture_ds.dataset, "training")
    with pytest.raises(InputError):
        SnippetDataset(tmp_path, "train")


def test_iter_batches_sequential_matches_getitem(fixture_ds):
    ds = SnippetDataset(fixture_ds.dataset, "test")
    sheets, specs, ids = [], [], []
    for sheet, spec, meta in ds.iter_batches(16):
        assert sheet.shape[1:] == (160, 200) and len(sheet) == len(meta["piece"]) <= 16
        sheets.append(sheet)
        specs.append(spec)
        ids += meta["notehead_id"].tolist()
    sheets, specs = np.concatenate(sheets), np.concatenate(specs)
    assert len(sheets) == len(ds)
    for i in range(0, len(ds), 7):
        s, p, m = ds[i]
        np.testing.assert_array_equal(sheets[i], s)
        np.testing.assert_array_equal(specs[i], p)
        assert ids[i] == m["notehead_id"]


def test_iter_batches_shuffle_is_a_seeded_permutation(fixture_ds):
    ds = SnippetDataset(fixture_ds.dataset, "test")

    def keys(seed):
        return [(m_p, m_h, m_t) for _, _, m in ds.iter_batches(8, shuffle=True, seed=seed,
                                                                window_batches=2)
                for m_p, m_h, m_t in zip(m["piece"], m["notehead_id"], m["onset_s"])]

    first = keys(1)
    ordered = [(m["piece"], m["notehead_id"], m["onset_s"])
               for m in (ds[i][2] for i in range(len(ds)))]
    assert sorted(first) == sorted(ordered) and first != ordered
    assert keys(1) == first and keys(2) != first
    assert all(len(s) == 8 for s, _, _ in ds.iter_batches(8, shuffle=True, drop_last=True))


def test_workers_open_their_own_files(fixture_ds):
    ds = SnippetDataset(fixture_ds.dataset, "train")
    expected = _read((ds, range(len(ds))))          # opens files in this process
    copy = pickle.loads(pickle.dumps(ds))
    assert _read((copy, range(len(ds)))) == expected
    chunks = [(ds, range(k, len(ds), 2)) for k in range(2)]
    for method in ("fork", "spawn"):
        with multiprocessing.get_context(method).Pool(2) as pool:
            got = pool.map(_read, chunks)
        assert sorted(got[0] + got[1], key=str) == sorted(expected, key=str)


def test_torch_dataloader(fixture_ds):
    torch = pytest.importorskip("torch")
    ds = SnippetDataset(fixture_ds.dataset, "train")
    loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2, shuffle=True)
    n = 0
    for sheet, spec, meta in loader:
        assert sheet.shape[1:] == (160, 200) and spec.shape[1:] == (92, 42)
        n += len(sheet)
    assert n == len(ds)


def test_piece_dataset(fixture_ds):
    pieces = PieceDataset(fixture_ds.dataset)
    assert {pieces[i].piece for i in range(len(pieces))} == {"multipage", "piano_chords",
                                                             "ties", "volta"}
    snippets = {s: SnippetDataset(fixture_ds.dataset, s) for s in SPLITS}
    for i in range(len(pieces)):
        p = pieces[i]
        assert p.unrolled.shape[0] == 200 and p.unrolled.dtype == np.uint8
        assert p.spec.shape[0] == 92
        o2c = p.onset_to_x
        assert o2c.shape == (len(p.onsets["onset_s"]), 2)
        assert (np.diff(o2c[:, 0]) >= 0).all()
        assert o2c[:, 1].max() < p.unrolled.shape[1]
        assert o2c[:, 0].max() < p.spec.shape[1]
        assert p.split in SPLITS and p.tempo_factor == 1.0
        assert p.soundfont["name"] == "timgm6mb"
        count = sum(1 for j in range(len(snippets[p.split]))
                    if snippets[p.split][j][2]["piece"] == p.piece)
        assert count == len(o2c)
    train = PieceDataset(fixture_ds.dataset, split="train")
    assert 0 < len(train) < len(pieces)


def test_batch_by_index_list(fixture_ds):
    ds = SnippetDataset(fixture_ds.dataset, "valid")
    picks = [3, 0, -1, 3]
    sheet, spec, meta = ds[picks]
    assert sheet.shape == (4, 160, 200) and spec.shape == (4, 92, 42)
    for pos, i in enumerate(picks):
        s, p, m = ds[i]
        np.testing.assert_array_equal(sheet[pos], s)
        np.testing.assert_array_equal(spec[pos], p)
        assert {k: v[pos] for k, v in meta.items()} == m
    with pytest.raises(IndexError):
        ds[[0, len(ds)]]


def test_torch_dataloader_batch_sampler(fixture_ds):
    torch = pytest.importorskip("torch")
    ds = SnippetDataset(fixture_ds.dataset, "train")
    sampler = torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(ds), 8, False)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, sampler=sampler, num_workers=2)
    seen = []
    for sheet, spec, meta in loader:
        assert sheet.dtype == torch.uint8 and sheet.shape[1:] == (160, 200)
        seen += meta["notehead_id"].tolist() if hasattr(meta["notehead_id"], "tolist") else list(
            meta["notehead_id"])
    assert len(seen) == len(ds)
