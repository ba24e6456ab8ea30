"""The on-the-fly reader against pack: same samples without augmentation, geometry with it."""
from __future__ import annotations

import json
import pickle

import h5py
import numpy as np
import pytest
import scipy.ndimage
from fixture_dataset import SEED

from msmd_prep.data import PieceDataset, SnippetDataset
from msmd_prep.errors import InputError
from msmd_prep.packing.core import SPLITS
from msmd_prep.packing.excerpts import (Augmentation, SheetStore, cut_sheets, rescale_sheet,
                                        sheet_anchor, sheet_windows)
from msmd_prep.packing.snippets import META_FIELDS, PackConfig, pack_workdir
from msmd_prep.inspect import sample_strip
from msmd_prep.reader import SnippetReader, torch_batch
from msmd_prep.stats import dataset_stats

NUMERIC = [name for name, kind in META_FIELDS if kind != "S"]
TEXT = [name for name, kind in META_FIELDS if kind == "S"]


@pytest.fixture(scope="session")
def plain(fixture_ds, tmp_path_factory):
    """The fixture work folder packed without augmentation, with the fixture's splits."""
    out = tmp_path_factory.mktemp("plain") / "ds"
    index = json.loads((fixture_ds.dataset / "index.json").read_text())
    split_file = out.parent / "split.yaml"
    split_file.write_text(json.dumps({s: index["splits"][s]["pieces"] for s in SPLITS}))
    pack_workdir(fixture_ds.work, out, PackConfig(seed=SEED, augment_splits=(),
                                                  split_file=str(split_file)))
    return out


def _packed(root, split):
    ds = SnippetDataset(root, split)
    return ds[np.arange(len(ds))]


def _assert_same(batch, packed):
    sheets, specs, meta = batch
    p_sheets, p_specs, p_meta = packed
    assert sheets.shape == p_sheets.shape and specs.dtype == p_specs.dtype
    assert sheets.tobytes() == p_sheets.tobytes()
    assert specs.tobytes() == p_specs.tobytes()
    for name in NUMERIC:
        dtype = p_meta[name].dtype
        assert np.asarray(meta[name]).astype(dtype).tobytes() == p_meta[name].tobytes(), name
    for name in TEXT:
        assert list(meta[name]) == list(p_meta[name]), name


@pytest.mark.parametrize("split", SPLITS)
def test_without_augmentation_the_reader_gives_the_packed_bytes(plain, split):
    reader = SnippetReader(plain, split)
    assert not reader.augment and len(reader) == len(SnippetDataset(plain, split))
    _assert_same(reader[np.arange(len(reader))], _packed(plain, split))


def test_unaugmented_splits_of_an_augmented_dataset_match(fixture_ds):
    for split in ("valid", "test"):
        reader = SnippetReader(fixture_ds.dataset, split)
        _assert_same(reader[np.arange(len(reader))], _packed(fixture_ds.dataset, split))


def test_augmented_samples_keep_head_and_onset(fixture_ds):
    reader = SnippetReader(fixture_ds.dataset, "train")
    assert reader.augment
    H, W = reader.sheet_shape
    T = reader.spec_shape[1]
    pieces = PieceDataset(fixture_ds.dataset, "train")
    full = {(p.piece, p.performance): p.spec for p in (pieces[i] for i in range(len(pieces)))}
    sheets, specs, meta = reader[np.arange(len(reader))]
    scale = meta["sheet_scale"]
    levels = np.linspace(0.95, 1.05, reader.config.sheet_scale_steps).astype(np.float32)
    assert set(np.unique(scale)) == set(levels)
    assert np.abs(meta["sheet_shift_px"]).max() > 0
    # The documented column: within half a pixel of W // 2.
    assert (np.abs(meta["head_col"] - W // 2) <= 0.5 + 1e-4).all()
    assert ((0 <= meta["onset_col"]) & (meta["onset_col"] < T)).all()
    head_ink, off_ink = [], []
    for k in range(len(sheets)):
        start = int(meta["spec_start_frame"][k])
        assert start + meta["onset_col"][k] == meta["onset_frame"][k]
        whole = full[(meta["piece"][k], meta["performance"][k])]
        lo, hi = max(start, 0), min(start + T, whole.shape[1])
        np.testing.assert_array_equal(specs[k][:, lo - start:hi - start], whole[:, lo:hi])
        r, c = float(meta["head_row"][k]), float(meta["head_col"][k])
        if 4 <= r < H - 4:
            head_ink.append((sheets[k][int(r) - 2:int(r) + 3, int(c) - 3:int(c) + 3] < 128).mean())
            off_ink.append((sheets[k][int(r) - 2:int(r) + 3, int(c) + 47:int(c) + 53] < 128).mean())
    assert len(head_ink) > 0.9 * len(sheets)
    assert np.mean(head_ink) > np.mean(off_ink) + 0.2
    # Each excerpt is a window of the whole score rescaled by its factor
    # (bilinear, pixel centres aligned, with a 1-pixel white border): the
    # window's pixel (Y, X) samples the score at ((row - H // 2 - shift + Y +
    # 0.5) / s - 1, (col - W // 2 + X + 0.5) / s - 1), computed here
    # independently with scipy (cv2 rounds weights to fixed point).
    items = [pieces[i] for i in range(len(pieces))]
    x = np.concatenate([p.onsets["unrolled_x"] for p in items])
    cy = np.concatenate([p.onsets["center_y"] for p in items])
    image = np.concatenate([[i] * len(p.onsets["unrolled_x"]) for i, p in enumerate(items)])
    Y, X = np.mgrid[0:H, 0:W] + 0.5
    for k in range(len(sheets)):
        s, d = float(scale[k]), int(meta["sheet_shift_px"][k])
        col, row = np.floor((x[k] + 1) * s + 0.5), np.floor((cy[k] + 1) * s + 0.5)
        assert np.isclose(meta["head_col"][k], W // 2 + (x[k] + 1) * s - col, atol=1e-4)
        coords = [(row - H // 2 - d + Y) / s - 1.5, (col - W // 2 + X) / s - 1.5]
        expected = scipy.ndimage.map_coordinates(items[image[k]].unrolled.astype(float), coords,
                                                 order=1, mode="grid-constant", cval=255.0)
        diff = np.abs(sheets[k] - expected)
        assert diff.mean() < 0.6 and diff.max() <= 1.01, (k, diff.mean(), diff.max())


def test_epochs_are_reproducible_and_differ(fixture_ds):
    reader = SnippetReader(fixture_ds.dataset, "train")
    idx = np.arange(len(reader))
    first = reader[idx]
    again = SnippetReader(fixture_ds.dataset, "train")[idx]
    assert first[0].tobytes() == again[0].tobytes() and first[1].tobytes() == again[1].tobytes()
    # A sample does not depend on the batch it is read in, nor on the order.
    picks = (7, 2, len(reader) - 1)
    some = reader[list(picks)]
    for pos, i in enumerate(picks):
        one = reader[i]
        assert one[0].tobytes() == first[0][i].tobytes() == some[0][pos].tobytes()
        assert one[1].tobytes() == first[1][i].tobytes() == some[1][pos].tobytes()
        assert not one[0].flags.writeable and not one[1].flags.writeable   # views
        for name, value in one[2].items():
            assert value == first[2][name][i], name
    reader.set_epoch(1)
    second = reader[idx]
    assert first[0].tobytes() != second[0].tobytes()
    assert (first[2]["sheet_scale"] != second[2]["sheet_scale"]).mean() > 0.8
    np.testing.assert_array_equal(first[2]["onset_s"], second[2]["onset_s"])
    reader.set_epoch(0)
    assert reader[idx][0].tobytes() == first[0].tobytes()
    other_seed = SnippetReader(fixture_ds.dataset, "train", seed=SEED + 1)[idx]
    assert other_seed[0].tobytes() != first[0].tobytes()


def test_iter_batches_cover_the_split_once(fixture_ds):
    reader = SnippetReader(fixture_ds.dataset, "valid")
    seen = np.concatenate([b[2]["onset_s"] for b in reader.iter_batches(8)])
    assert len(seen) == len(reader)
    np.testing.assert_array_equal(np.sort(seen), np.sort(reader[np.arange(len(reader))][2]["onset_s"]))


def test_torch_dataloader_with_workers(fixture_ds):
    torch = pytest.importorskip("torch")
    reader = SnippetReader(fixture_ds.dataset, "train")
    loader = torch.utils.data.DataLoader(reader, batch_size=16, num_workers=2,
                                         collate_fn=torch_batch)
    batches = list(loader)
    whole = reader[np.arange(len(reader))]
    sheets = torch.cat([b[0] for b in batches]).numpy()
    specs = torch.cat([b[1] for b in batches]).numpy()
    assert sheets.tobytes() == whole[0].tobytes() and specs.tobytes() == whole[1].tobytes()
    assert sum(len(b[2]["piece"]) for b in batches) == len(reader)


def test_piece_files_only(fixture_ds, tmp_path):
    out = tmp_path / "ds"
    pack_workdir(fixture_ds.work, out, PackConfig(seed=SEED, shards=False))
    assert not list(out.rglob("shard-*.h5"))
    with h5py.File(next((out / "pieces").glob("*.h5")), "r") as f:
        codecs = json.loads(f.attrs["codecs"])
        assert codecs["sheet"]["name"] == "blosc-zstd"
        assert f["unrolled"].compression is not None and f["unrolled"].chunks is not None
    reader = SnippetReader(out, "valid")
    _assert_same(reader[np.arange(len(reader))], _packed(fixture_ds.dataset, "valid"))
    with pytest.raises(InputError, match="SnippetReader"):
        SnippetDataset(out, "valid")
    # stats and inspect read the piece files when there are no shards.
    full, compact = dataset_stats(fixture_ds.dataset), dataset_stats(out)
    assert compact.n_samples == full.n_samples and compact.performances == full.performances
    np.testing.assert_array_equal(np.sort(compact.pitches), np.sort(full.pitches))
    piece = reader[0][2]
    assert sample_strip(out, piece["piece"], piece["performance"]) is not None


def test_pack_in_two_processes_gives_the_same_bytes(fixture_ds, tmp_path):
    serial = tmp_path / "one"
    pack_workdir(fixture_ds.work, serial, PackConfig(seed=SEED), jobs=1)
    parallel = tmp_path / "two"
    pack_workdir(fixture_ds.work, parallel, PackConfig(seed=SEED), jobs=2)
    files = sorted(p.relative_to(serial) for p in serial.rglob("*.h5"))
    assert files == sorted(p.relative_to(parallel) for p in parallel.rglob("*.h5"))
    assert len(files) > 4
    for name in files:
        assert (serial / name).read_bytes() == (parallel / name).read_bytes(), name
    assert (serial / "index.json").read_text() == (parallel / "index.json").read_text()


def test_excerpts_beyond_the_store_are_cut_alike():
    """An excerpt reaching past the stored rows or into the next score is cut on its own."""
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (60, 300)).astype(np.uint8),
              rng.integers(0, 256, (60, 250)).astype(np.uint8)]
    scales = np.array([0.95, 1.0, 1.05], np.float32)
    store = SheetStore.build(images, scales, width_px=100, height_px=40)
    n = 400
    which = rng.integers(0, 2, n)
    x = rng.uniform(-30, 330, n)
    cy = rng.uniform(-20, 80, n)
    aug = Augmentation(scales[rng.integers(0, 3, n)], rng.integers(-5, 6, n).astype(np.int16),
                       np.zeros(n, np.int16))
    _, _, inside = sheet_windows(store, which, x=x, center_y=cy, aug=aug, height_px=40,
                                 width_px=100)
    assert 0.2 < inside.mean() < 0.9
    got = cut_sheets(store, which, x=x, center_y=cy, aug=aug, height_px=40, width_px=100)
    into = np.zeros((n, 40, 100), np.uint8)     # row-major, unlike the default
    assert cut_sheets(store, which, x=x, center_y=cy, aug=aug, height_px=40, width_px=100,
                      out=into) is into
    np.testing.assert_array_equal(into, got)
    col, row = sheet_anchor(x, cy, aug.sheet_scale)
    for k in range(n):
        # Independently: the rescaled score pasted on a large white canvas.
        scaled = rescale_sheet(images[which[k]], float(aug.sheet_scale[k]))
        canvas = np.full((scaled.shape[0] + 400, scaled.shape[1] + 400), 255, np.uint8)
        canvas[200:200 + scaled.shape[0], 200:200 + scaled.shape[1]] = scaled
        top = 200 + int(row[k]) - int(aug.sheet_shift_px[k]) - 20
        left = 200 + int(col[k]) - 50
        np.testing.assert_array_equal(got[k], canvas[top:top + 40, left:left + 100])


@pytest.mark.parametrize("rows", [(5, 48), (-10, 35)])
def test_a_store_of_some_rows_cuts_the_excerpts_within_them(rows):
    """``rows=``: the excerpts inside the kept rows are those of the whole scores, white beyond."""
    rng = np.random.default_rng(4)
    images = [rng.integers(0, 256, (60, 300)).astype(np.uint8),
              rng.integers(0, 256, (60, 250)).astype(np.uint8)]
    store = SheetStore.build(images, [1.0], width_px=100, height_px=40, rows=rows)
    assert store.cropped and store.array.shape[1] == rows[1] - rows[0]
    n = 300
    which = rng.integers(0, 2, n)
    x = rng.uniform(-30, 330, n)
    # Windows' first rows (bordered score) rows[0] .. rows[1] - 40.
    cy = rng.integers(rows[0] + 20, rows[1] - 20, n, endpoint=True) - 1.5 + rng.uniform(0, 1, n)
    aug = Augmentation(np.ones(n, np.float32), np.zeros(n, np.int16), np.zeros(n, np.int16))
    _, tops, inside = sheet_windows(store, which, x=x, center_y=cy, aug=aug, height_px=40,
                                    width_px=100)
    assert 0.2 < inside.mean() < 1 and tops.min() == 0 and tops.max() == store.array.shape[1] - 40
    got = cut_sheets(store, which, x=x, center_y=cy, aug=aug, height_px=40, width_px=100)
    whole = cut_sheets(SheetStore.build(images, [1.0], width_px=100, height_px=40), which, x=x,
                       center_y=cy, aug=aug, height_px=40, width_px=100)
    assert got.tobytes() == whole.tobytes()
    with pytest.raises(ValueError, match="scale 1 only"):
        SheetStore.empty([(60, 300)], [0.95, 1.0], width_px=100, height_px=40, rows=rows)


def test_an_unaugmented_reader_keeps_the_excerpt_rows_only(plain):
    """Its store holds the rows the excerpts lie in: here ``H``, each excerpt one block."""
    reader = SnippetReader(plain, "train")
    H = reader.sheet_shape[0]
    _, row = sheet_anchor(reader._x, reader._cy, np.ones(len(reader)))
    tops = row - H // 2
    assert reader._sheets.cropped
    assert reader._sheets.array.shape[1] == tops.max() - tops.min() + H == H
    sheets, specs, _ = reader[np.arange(len(reader))]
    for i in range(0, len(reader), 5):
        sheet, spec, _ = reader[i]
        assert sheet.tobytes() == sheets[i].tobytes() and spec.tobytes() == specs[i].tobytes()


def test_read_into_gives_the_batch_bytes(fixture_ds):
    """Into new, C-ordered or reused dirty arrays: the values and metadata of ``__getitems__``."""
    for split in ("train", "valid"):
        reader = SnippetReader(fixture_ds.dataset, split)
        n = len(reader)
        idx = np.random.default_rng(0).permutation(n)[:min(n, 40)]
        sheets, specs, meta = reader[idx]
        (H, W), (F, T) = reader.sheet_shape, reader.spec_shape
        fast = reader.new_batch(len(idx))
        buffers = (np.full((len(idx) + 5, W, H), 7, np.uint8).transpose(0, 2, 1),
                   np.full((len(idx) + 5, T, F), 3, reader.spec_dtype).transpose(0, 2, 1))
        for out_sheets, out_specs in (fast, (np.full((len(idx), H, W), 9, np.uint8),
                                             np.full((len(idx), F, T), 1, reader.spec_dtype)),
                                      (buffers[0][:len(idx)], buffers[1][:len(idx)])):
            got = reader.read_into(idx, out_sheets, out_specs)
            np.testing.assert_array_equal(out_sheets, sheets)
            np.testing.assert_array_equal(out_specs, specs)
            assert out_sheets.tobytes() == sheets.tobytes()
            assert out_specs.tobytes() == specs.tobytes()
            assert got.keys() == meta.keys()
            for name in meta:
                np.testing.assert_array_equal(got[name], meta[name], err_msg=name)
        assert (buffers[0][len(idx):] == 7).all() and (buffers[1][len(idx):] == 3).all()
        # Decoded in one thread: the same samples.
        one = SnippetReader(fixture_ds.dataset, split, threads=1)[idx]
        assert one[0].tobytes() == sheets.tobytes()
        assert one[1].tobytes() == specs.tobytes()
        assert pickle.loads(pickle.dumps(reader))[idx][0].tobytes() == sheets.tobytes()
    with pytest.raises(ValueError, match="sheets must be"):
        reader.read_into(idx, np.zeros((len(idx), H, W + 1), np.uint8), fast[1])
    with pytest.raises(ValueError, match="specs must be"):
        reader.read_into(idx, fast[0], np.zeros((len(idx), F, T), np.float64))
    fast[0].flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        reader.read_into(idx, *fast)


def test_piece_files_decode_into_the_stores_as_read_whole(tmp_path):
    """Blosc chunks decoded in threads into the stores: the stores built from read_piece_file."""
    from msmd_prep.packing.excerpts import SpecStore
    from msmd_prep.packing.pieces import (StoredPerformance, StoredPiece, onset_table,
                                          read_piece_contents, read_piece_file, write_piece_file)
    from msmd_prep.reader import _decode_into

    rng = np.random.default_rng(4)
    paths = []
    # Several chunks per array (16384 columns, 8192 frames), one chunk, and a gzip file.
    for k, (cols, frames, codec_name) in enumerate(((40000, 20000, "blosc-zstd"),
                                                    (700, 300, "blosc-zstd"),
                                                    (18000, 9000, "gzip-4"))):
        image = np.full((150 + 10 * k, cols), 255, np.uint8)
        image[20:60, ::3] = rng.integers(0, 256, (40, image[:, ::3].shape[1]), dtype=np.uint8)
        if cols > 32768:    # a chunk Blosc cannot shrink
            image[:, 16384:32768] = rng.integers(0, 256, (len(image), 16384), dtype=np.uint8)
        perfs = tuple(StoredPerformance(
            f"sf_t{t}", rng.random((92, frames + 7 * t)).astype(np.float16),
            onset_table(notehead_id=["a"], pitch=np.ones(1), system=np.zeros(1),
                        onset_s=np.zeros(1), onset_frame=np.zeros(1), unrolled_x=np.ones(1),
                        unrolled_y=np.ones(1), center_y=np.ones(1)), 1.0, {"name": "sf"})
            for t in range(2))
        paths.append(tmp_path / f"p{k}.h5")
        write_piece_file(paths[-1], StoredPiece(f"p{k}", "train", image, {}, perfs),
                         attrs={"schema_version": 1}, sheet_codec=codec_name,
                         spec_codec=codec_name)
    whole = [read_piece_file(p) for p in paths]
    contents = [read_piece_contents(p) for p in paths]
    assert contents[0].unrolled.values is None
    assert [mask for *_, mask in contents[0].unrolled.chunks] == [0, 1, 0]
    assert contents[2].unrolled.values is not None     # gzip: read by HDF5
    specs = [perf.spec for piece in whole for perf in piece.performances]
    expected_specs = SpecStore.build(specs, n_frames=42)
    for scales, rows in (([1.0], None), ([1.0], (20, 140)), ([1.0], (-3, 200)),
                         ([0.95, 1.0, 1.05], None)):
        expected = SheetStore.build([p.unrolled for p in whole], scales, width_px=200,
                                    height_px=160, rows=rows)
        if rows is not None:     # those rows of the whole store, white beyond it
            full = SheetStore.build([p.unrolled for p in whole], scales, width_px=200,
                                    height_px=160).array
            kept = np.full((len(full), rows[1] - rows[0]), 255, np.uint8)
            lo, hi = max(rows[0], 0), min(rows[1], full.shape[1])
            kept[:, lo - rows[0]:hi - rows[0]] = full[:, lo:hi]
            assert expected.array.tobytes() == kept.tobytes(), rows
        for threads in (1, 2):
            sheets = SheetStore.empty([p.unrolled.shape for p in contents], scales,
                                      width_px=200, height_px=160, white=False, rows=rows)
            sheets.array[...] = 7          # what new memory may hold
            got_specs = SpecStore.empty([s.shape[1] for s in specs], n_bins=92, n_frames=42,
                                        dtype=np.float16, zero=False)
            got_specs.array[...] = 5
            _decode_into(sheets, got_specs, contents, [0, 2, 4], threads=threads)
            assert sheets.array.tobytes() == expected.array.tobytes(), (scales, threads)
            assert got_specs.array.tobytes() == expected_specs.array.tobytes(), threads


@pytest.mark.parametrize("rows", [2, 0])
def test_onset_tables_read_as_stored_or_through_hdf5(tmp_path, rows):
    """Pack's contiguous tables are read as their bytes; chunked, compressed or
    big-endian ones through HDF5; the values are those written either way."""
    from msmd_prep.packing.pieces import (StoredPerformance, StoredPiece, onset_table,
                                          read_piece_contents, write_piece_file)

    table = onset_table(notehead_id=["a", "b\u00e9"][:rows], pitch=np.array([60, 61][:rows]),
                        system=np.array([0, 1][:rows]), onset_s=np.array([0.5, 1.25][:rows]),
                        onset_frame=np.array([10, 25][:rows]),
                        unrolled_x=np.array([3.5, 9.0][:rows]),
                        unrolled_y=np.array([1.0, 2.0][:rows]),
                        center_y=np.array([100.0, 99.5][:rows]))
    path = tmp_path / "p.h5"
    write_piece_file(path, StoredPiece("p", "train", np.full((20, 30), 255, np.uint8), {}, (
        StoredPerformance("sf_t1", np.zeros((4, 9), np.float16), table, 1.0, {"name": "sf"}),)),
        attrs={"schema_version": 1})
    got = read_piece_contents(path).performances[0][2]
    assert got.dtype == table.dtype and got.tobytes() == table.tobytes()
    for options in ({"chunks": (1,), "compression": "gzip"},
                    {"dtype": table.dtype.newbyteorder(">")}):
        with h5py.File(path, "a") as f:
            del f["sf_t1/onsets"]
            f["sf_t1"].create_dataset("onsets", data=table.astype(options.pop(
                "dtype", table.dtype)), **(options if rows else {}))
        again = read_piece_contents(path).performances[0][2]
        assert len(again) == rows and again.astype(table.dtype).tobytes() == table.tobytes()
