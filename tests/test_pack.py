"""The pack stage: excerpt geometry, splits, the fixture dataset's shards and determinism."""
from __future__ import annotations

import json
import os

import h5py
import hdf5plugin  # noqa: F401  (the shards' filter)
import numpy as np
import pytest
from fixture_dataset import PIECES, SEED

from msmd_prep.align import read_alignment_csv
from msmd_prep.data import PieceDataset
from msmd_prep.errors import ConfigError, InputError
from msmd_prep.packing.excerpts import (SheetStore, cut_sheets, extract_spec, no_augmentation,
                                        spec_start)
from msmd_prep.packing.core import SPLITS, assign_splits, new_h5, pack_order, read_split_file
from msmd_prep.packing.schedule import iter_costly_first, least_slack
from msmd_prep.packing.pieces import codec
from msmd_prep.packing.shards import SpecRuns, compress_sheets, spec_runs, write_snippet_shard
from msmd_prep.packing.snippets import META_DTYPE, PRESETS, PackConfig, pack_workdir


def _shards(root, split):
    index = json.loads((root / "index.json").read_text())
    return [root / s["path"] for s in index["splits"][split]["shards"]]


def _read_shard(path):
    """sheet, spec excerpts (cut from spec_frames at spec_offset) and meta of a shard."""
    with h5py.File(path, "r") as f:
        frames, offsets, T = f["spec_frames"][:], f["spec_offset"][:], int(f.attrs["spec_frames"])
        spec = np.stack([frames[:, o:o + T] for o in offsets]) if len(offsets) else None
        return {"sheet": f["sheet"][:], "spec": spec, "meta": f["meta"][:]}


def _arrays(root):
    return {path.relative_to(root).as_posix(): _read_shard(path)
            for split in SPLITS for path in _shards(root, split)}


def _cut(image, x, center_y, scale=1.0, shift_px=0):
    aug = no_augmentation(1)
    aug.sheet_scale[0], aug.sheet_shift_px[0] = scale, shift_px
    store = SheetStore.build([image], [scale], width_px=200, height_px=160)
    return cut_sheets(store, np.zeros(1, int), x=np.array([x]), center_y=np.array([center_y]),
                      aug=aug, height_px=160, width_px=200)[0]


def test_cut_sheet_puts_the_point_on_the_middle_column():
    image = np.full((200, 1000), 255, np.uint8)
    image[95:105, 500:502] = 0       # a mark centred on x = 501, y = 100
    for x in (501.0, 500.6, 501.4):  # the nearest pixel boundary is 501
        ex = _cut(image, x, 100.0)
        cols = np.nonzero((ex < 128).any(axis=0))[0]
        rows = np.nonzero((ex < 128).any(axis=1))[0]
        assert cols.tolist() == [99, 100] and rows.tolist() == list(range(75, 85))
        assert set(np.unique(ex)) == {0, 255}      # unscaled: pixels copied, not interpolated
    shifted = _cut(image, 501.0, 100.0, shift_px=5)
    assert np.nonzero((shifted < 128).any(axis=1))[0].tolist() == list(range(80, 90))
    assert (_cut(image, 5.0, 100.0)[:, :90] == 255).all()
    # Rescaled about the anchor: the mark grows symmetrically about column 100.
    big = _cut(image, 501.0, 100.0, scale=2.0)
    cols = np.nonzero((big < 128).any(axis=0))[0]
    assert cols.min() + cols.max() == 199 and len(cols) >= 4


@pytest.mark.parametrize("anchor,expected_col", [("center", 21), ("end", 40)])
def test_spec_excerpt_places_the_onset(anchor, expected_col):
    spec = np.arange(5 * 100, dtype=np.float32).reshape(5, 100) + 1
    start = spec_start(50, n_frames=42, anchor=anchor, jitter_max_frames=1)
    assert 50 - start == expected_col
    np.testing.assert_array_equal(extract_spec(spec, start=start, n_frames=42),
                                  spec[:, start:start + 42])
    edge = extract_spec(spec, start=-3, n_frames=42)
    assert (edge[:, :3] == 0).all() and (edge[:, 3:] == spec[:, :39]).all()
    assert (extract_spec(spec, start=90, n_frames=42)[:, 10:] == 0).all()


@pytest.mark.parametrize("n", [1, 2, 3, 4, 10, 57])
def test_assign_splits(n):
    names = [f"p{i:02d}" for i in range(n)]
    splits = assign_splits(names, seed=3, fractions=(0.7, 0.15, 0.15))
    assert splits == assign_splits(list(reversed(names)), seed=3, fractions=(0.7, 0.15, 0.15))
    assert set(splits) == set(names) and set(splits.values()) <= set(SPLITS)


def test_split_file(tmp_path):
    path = tmp_path / "split.yaml"
    path.write_text("train: [a, b]\nvalid: [c]\ntest: [d]\n")
    assert read_split_file(path) == {"a": "train", "b": "train", "c": "valid", "d": "test"}
    path.write_text("train: [a]\ntest: [a]\n")
    with pytest.raises(ConfigError, match="'a'"):
        read_split_file(path)
    path.write_text("training: [a]\n")
    with pytest.raises(ConfigError):
        read_split_file(path)


@pytest.mark.parametrize("kwargs", [
    {"preset": "nosuch"}, {"seed": -1}, {"split_fractions": (0.5, 0.5, 0.5)},
    {"spec_anchor": "middle"}, {"sheet_scale_range": (1.1, 0.9)}, {"shift_max_px": -1},
    {"jitter_max_frames": 1.5}, {"augment_splits": ("training",)}, {"spec_dtype": "int8"},
    {"shard_max_mb": 0}, {"chunk_samples": 0}])
def test_pack_config_rejects(kwargs):
    with pytest.raises(ConfigError):
        PackConfig(**kwargs)


def test_fixture_dataset_shapes_and_counts(fixture_ds):
    root = fixture_ds.dataset
    index = json.loads((root / "index.json").read_text())
    preset = PRESETS["msmd"]
    assert index["sheet_shape"] == [160, 200] and index["spec_shape"] == [92, 42]
    rows = {p: len(read_alignment_csv(next((fixture_ds.work / p / "performances").iterdir())
                                      / "alignment.csv")) for p in PIECES}
    seen = []
    for split in SPLITS:
        entry = index["splits"][split]
        assert entry["pieces"], split
        seen += entry["pieces"]
        assert entry["count"] == sum(rows[p] for p in entry["pieces"])
        for path in _shards(root, split):
            with h5py.File(path, "r") as f:
                n = len(f["meta"])
                assert f["sheet"].shape == (n, preset.sheet_height_px, preset.sheet_width_px)
                assert f["sheet"].dtype == np.uint8 and f["spec_frames"].dtype == np.float16
                assert f["spec_frames"].shape[0] == preset.spec_bins
                assert f.attrs["spec_frames"] == preset.spec_frames
                assert f["spec_offset"].shape == (n,)
                assert f["sheet"].chunks[0] == 1
                assert json.loads(f.attrs["codecs"])["sheet"]["name"] == "blosc-lz4hc"
                assert f.attrs["schema_version"] == 1 and f.attrs["split"] == split
                prov = json.loads(f.attrs["provenance"])
                assert prov["soundfonts"]["timgm6mb"] == (
                    "82475b91a76de15cb28a104707d3247ba932e228bada3f47bba63c6b31aaf7a1")
                assert set(np.char.decode(f["meta"]["piece"]).tolist()) <= set(entry["pieces"])
    assert sorted(seen) == sorted(PIECES)
    assert not list(root.parent.glob(".*tmp*")) and not list(root.rglob(".*.tmp"))


def test_every_sample_has_its_head_and_onset(fixture_ds):
    root = fixture_ds.dataset
    pieces = PieceDataset(root)
    full = {(p.piece, p.performance): p.spec for p in (pieces[i] for i in range(len(pieces)))}
    head_ink, off_ink, n = [], [], 0
    for split in SPLITS:
        for path in _shards(root, split):
            a = _read_shard(path)
            sheets, specs, meta = a["sheet"], a["spec"], a["meta"]
            for sheet, spec, m in zip(sheets, specs, meta):
                n += 1
                assert abs(m["head_col"] - 100.0) <= 0.5 + 1e-4
                assert 0 <= m["onset_col"] < 42
                assert m["spec_start_frame"] + m["onset_col"] == m["onset_frame"]
                whole = full[(m["piece"].decode(), m["performance"].decode())]
                start = int(m["spec_start_frame"])
                lo, hi = max(start, 0), min(start + 42, whole.shape[1])
                np.testing.assert_array_equal(spec[:, lo - start:hi - start], whole[:, lo:hi])
                r = m["head_row"]
                if not 4 <= r < 156:
                    continue
                window = sheet[int(r) - 2:int(r) + 3, 97:103]
                head_ink.append((window < 128).mean())
                off_ink.append((sheet[int(r) - 2:int(r) + 3, 147:153] < 128).mean())
    assert len(head_ink) > 0.9 * n and min(head_ink) >= 0.15
    assert np.mean(head_ink) > 0.6 > np.mean(off_ink) + 0.2


def test_augmentation_recorded_and_only_in_train(fixture_ds):
    arrays = _arrays(fixture_ds.dataset)
    for name, a in arrays.items():
        m = a["meta"]
        if name.startswith("train/"):
            assert (0.95 <= m["sheet_scale"]).all() and (m["sheet_scale"] <= 1.05).all()
            assert np.abs(m["sheet_shift_px"]).max() <= 5 and np.abs(m["sheet_shift_px"]).max() > 0
            assert set(np.unique(m["onset_jitter_frames"])) <= {-1, 0, 1}
        else:
            assert (m["sheet_scale"] == 1).all() and not m["sheet_shift_px"].any()
            assert not m["onset_jitter_frames"].any()


def test_same_seed_same_bytes(fixture_ds):
    first, again = _arrays(fixture_ds.dataset), _arrays(fixture_ds.again)
    assert first.keys() == again.keys()
    for name in first:
        for key in ("sheet", "spec", "meta"):
            assert first[name][key].tobytes() == again[name][key].tobytes(), (name, key)


def test_other_seed_other_augmentation(fixture_ds, tmp_path):
    split_file = tmp_path / "split.yaml"
    index = json.loads((fixture_ds.dataset / "index.json").read_text())
    split_file.write_text(json.dumps({s: index["splits"][s]["pieces"] for s in SPLITS}))
    pack_workdir(fixture_ds.work, tmp_path / "ds", PackConfig(seed=SEED + 1,
                                                              split_file=str(split_file)))
    a = _arrays(fixture_ds.dataset)["train/shard-00000.h5"]
    b = _arrays(tmp_path / "ds")["train/shard-00000.h5"]
    assert a["sheet"].shape == b["sheet"].shape
    assert a["sheet"].tobytes() != b["sheet"].tobytes()
    np.testing.assert_array_equal(a["meta"]["onset_s"], b["meta"]["onset_s"])


def test_shards_roll_over_at_the_size_cap(fixture_ds, tmp_path):
    pack_workdir(fixture_ds.work, tmp_path / "ds", PackConfig(seed=SEED, shard_max_mb=2.0))
    index = json.loads((tmp_path / "ds" / "index.json").read_text())
    for split in SPLITS:
        shards = index["splits"][split]["shards"]
        assert all(s["count"] <= 2e6 // (160 * 200 + 92 * 42 * 2) for s in shards)
        assert sum(s["count"] for s in shards) == index["splits"][split]["count"]
    assert max(len(index["splits"][s]["shards"]) for s in SPLITS) > 1
    assert list(_arrays(fixture_ds.dataset)) != list(_arrays(tmp_path / "ds"))


def test_missing_spectrogram_preset_names_the_command(fixture_ds, tmp_path):
    with pytest.raises(InputError, match="msmd-prep spectrogram WORKDIR --preset default"):
        pack_workdir(fixture_ds.work, tmp_path / "ds", PackConfig(preset="dorfer2016"))


def test_refuses_to_replace_a_folder_that_is_not_a_dataset(fixture_ds, tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "precious.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not an msmd-prep dataset"):
        pack_workdir(fixture_ds.work, tmp_path / "ds", PackConfig())
    assert (tmp_path / "ds" / "precious.txt").read_text() == "keep me"


def _shard_arrays(n=6, seed=0):
    """``n`` samples: white sheets with ink, one of random noise (Blosc cannot shrink it)."""
    rng = np.random.default_rng(seed)
    sheet = np.full((n, 160, 200), 255, np.uint8)
    for i in range(n - 1):
        sheet[i, 40 + i:60 + i, 20:180] = 0
    sheet[-1] = rng.integers(0, 256, (160, 200), dtype=np.uint8)
    meta = np.zeros(n, dtype=META_DTYPE)
    meta["piece"], meta["performance"] = b"p", b"perf"
    meta["spec_start_frame"] = np.arange(n) * 3
    spec = rng.random((n, 92, 42)).astype(np.float16)
    return {"sheet": sheet, "spec": spec, "meta": meta}


def test_sheets_compressed_in_workers_give_the_same_shard(tmp_path):
    arrays = _shard_arrays()
    chunks = compress_sheets(arrays["sheet"])
    assert [mask for mask, _ in chunks] == [0] * 5 + [1]
    assert all(len(data) < 32000 for _, data in chunks[:-1])
    attrs = {"schema_version": 1, "preset": "msmd", "split": "train", "shard": 0}
    write_snippet_shard(tmp_path / "a.h5", arrays, chunk_samples=1, attrs=attrs,
                        sheet_shape=(160, 200))
    write_snippet_shard(tmp_path / "b.h5", arrays | {"sheet": chunks}, chunk_samples=1,
                        attrs=attrs, sheet_shape=(160, 200))
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    with h5py.File(tmp_path / "b.h5", "r") as f:
        assert np.array_equal(f["sheet"][:], arrays["sheet"])


def test_a_sheet_met_again_reuses_its_chunk():
    sheets = _shard_arrays()["sheet"]
    twice = np.concatenate([sheets, sheets[::-1]])
    seen: dict = {}
    chunks = compress_sheets(twice, seen)
    assert len(seen) == len(sheets)
    fresh = [compress_sheets(s[None])[0] for s in twice]   # each compressed on its own
    assert [c for c in chunks] == fresh
    assert all(chunks[i] is chunks[2 * len(sheets) - 1 - i] for i in range(len(sheets)))
    again = compress_sheets(sheets[:2], seen)   # a later performance of the piece
    assert again[0] is chunks[0] and len(seen) == len(sheets)


def test_score_following_shard_written_as_a_snippet_shard(tmp_path):
    # Score following: the images are named "staff", the targets stored as they are.
    arrays = _shard_arrays()
    staff = arrays.pop("sheet")
    target = np.random.default_rng(2).random((len(staff), 39)).astype(np.float32)
    attrs = {"schema_version": 1, "task": "score-following", "split": "train", "shard": 0}
    for name, images in (("a.h5", staff), ("b.h5", compress_sheets(staff))):
        write_snippet_shard(tmp_path / name, arrays | {"staff": images, "target": target},
                            chunk_samples=1, attrs=attrs, sheet_shape=(160, 200), image="staff")
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    with h5py.File(tmp_path / "b.h5", "r") as f:
        assert "sheet" not in f and set(json.loads(f.attrs["codecs"])) == {
            "staff", "spec_frames", "meta"}
        assert np.array_equal(f["staff"][:], staff) and f["staff"].chunks == (1, 160, 200)
        assert f["target"].chunks == (1, 39) and f["target"].compression is None
        assert np.array_equal(f["target"][:], target)


def test_file_bytes_do_not_depend_on_when_a_dataset_object_is_freed(tmp_path):
    # A Dask worker sometimes freed the object after the next dataset was
    # placed; with HDF5's chunk cache the chunk then moved in the file.
    spec = np.random.default_rng(1).random((92, 242)).astype(np.float16)

    def write(path, keep):
        held = []
        with new_h5(path) as f:
            group = f.create_group("perf", track_order=True)
            ds = group.create_dataset("spec", data=spec, chunks=spec.shape, track_times=False,
                                      **codec("blosc-zstd"))
            if keep:
                held.append(ds)
            del ds
            group.create_dataset("onsets", data=np.arange(50), track_times=False)
        held.clear()
        return path.read_bytes()

    assert write(tmp_path / "freed.h5", False) == write(tmp_path / "held.h5", True)


def _piece_and_shard_bytes(folder):
    """Bytes of a piece file (multi-block Blosc chunks) and of a shard, written in this process."""
    from msmd_prep.packing.pieces import StoredPerformance, StoredPiece, onset_table, write_piece_file

    rng = np.random.default_rng(5)
    image = np.full((180, 40000), 255, np.uint8)
    image[:, ::3] = rng.integers(0, 256, (180, image[:, ::3].shape[1]), dtype=np.uint8)
    n = 30
    onsets = onset_table(notehead_id=[f"h{k}" for k in range(n)], pitch=np.arange(n),
                         system=np.zeros(n), onset_s=np.arange(n) * 0.1,
                         onset_frame=np.arange(n) * 3, unrolled_x=np.arange(n) * 10.0,
                         unrolled_y=np.full(n, 90.0), center_y=np.full(n, 90.0))
    perf = StoredPerformance("sf_t1.0", rng.random((92, 20000)).astype(np.float16), onsets, 1.0,
                             {"name": "sf"})
    folder.mkdir()
    write_piece_file(folder / "p.h5", StoredPiece("p", "train", image, {}, (perf,)),
                     attrs={"schema_version": 1})
    arrays = _shard_arrays()
    chunks = compress_sheets(arrays["sheet"])
    write_snippet_shard(folder / "s.h5", arrays | {"sheet": chunks}, chunk_samples=1,
                        attrs={"schema_version": 1, "preset": "msmd", "split": "train",
                               "shard": 0}, sheet_shape=(160, 200))
    return (folder / "p.h5").read_bytes(), (folder / "s.h5").read_bytes()


def test_blosc_environment_does_not_change_the_bytes(tmp_path, monkeypatch):
    """BLOSC_NTHREADS (threads place the blocks in their finishing order) and BLOSC_CLEVEL
    would make other files; the writers pin them."""
    import blosc

    reference = _piece_and_shard_bytes(tmp_path / "plain")
    monkeypatch.setenv("BLOSC_NTHREADS", "2")
    monkeypatch.setenv("BLOSC_CLEVEL", "1")
    before = blosc.set_nthreads(2)
    try:
        for k in range(3):
            assert _piece_and_shard_bytes(tmp_path / f"env{k}") == reference, k
    finally:
        blosc.set_nthreads(before)
    # The caller's environment is as it was.
    assert os.environ["BLOSC_NTHREADS"] == "2" and os.environ["BLOSC_CLEVEL"] == "1"


def _two_performances(rng, T=8):
    """Two spectrograms, excerpt starts reaching before and beyond them, in any order."""
    specs = [rng.random((5, 60)).astype(np.float16), rng.random((5, 33)).astype(np.float16)]
    starts = [rng.integers(-12, 64, 40), np.r_[rng.integers(0, 5, 6), rng.integers(20, 30, 6)]]
    excerpts = [np.stack([extract_spec(s, start=int(t), n_frames=T) for t in st])
                for s, st in zip(specs, starts)]
    return specs, starts, excerpts


def test_spec_runs_cut_anywhere_are_the_runs_of_their_excerpts():
    """A performance's run, whole or cut by a shard boundary, as spec_runs makes it of the excerpts."""
    rng = np.random.default_rng(3)
    specs, starts, excerpts = _two_performances(rng)
    runs = [SpecRuns.of_spectrogram(s, st, n_frames=8) for s, st in zip(specs, starts)]
    for run, ex, st in zip(runs, excerpts, starts):
        want = spec_runs(ex, st, np.zeros(len(st)))
        for got in (run.joined(), SpecRuns.of_excerpts(ex, st).joined()):
            assert [a.tobytes() for a in got] == [a.tobytes() for a in want]
    both = SpecRuns.concatenate(runs)
    ex, st = np.concatenate(excerpts), np.concatenate(starts)
    label = np.r_[np.zeros(40, int), np.ones(12, int)]
    assert both.shape == ex.shape and both.nbytes == ex.nbytes
    for lo, hi in [(0, 52), (3, 17), (0, 41), (39, 52), (45, 46), (40, 52), (10, 10)]:
        got, want = both[lo:hi].joined(), spec_runs(ex[lo:hi], st[lo:hi], label[lo:hi])
        assert [a.tobytes() for a in got] == [a.tobytes() for a in want], (lo, hi)
        cut = [got[0][:, o:o + 8] for o in got[1]]
        assert np.array_equal(np.reshape(cut, (-1, 5, 8)), ex[lo:hi])


def test_a_shard_from_spec_runs_has_the_bytes_of_one_from_excerpts(tmp_path):
    rng = np.random.default_rng(4)
    specs, starts, excerpts = _two_performances(rng)
    n = 52
    arrays = _shard_arrays(n)
    arrays["meta"]["performance"] = [b"a"] * 40 + [b"b"] * 12
    arrays["meta"]["spec_start_frame"] = np.concatenate(starts)
    arrays["spec"] = np.concatenate(excerpts)
    runs = SpecRuns.concatenate([SpecRuns.of_spectrogram(s, st, n_frames=8)
                                 for s, st in zip(specs, starts)])
    attrs = {"schema_version": 1, "preset": "msmd", "split": "train", "shard": 0}
    for name, lo, hi in [("whole", 0, n), ("cut", 7, 45)]:
        part = {k: v[lo:hi] for k, v in arrays.items()}
        write_snippet_shard(tmp_path / f"{name}-a.h5", part, chunk_samples=1, attrs=attrs,
                            sheet_shape=(160, 200))
        write_snippet_shard(tmp_path / f"{name}-b.h5", part | {"spec": runs[lo:hi]},
                            chunk_samples=1, attrs=attrs, sheet_shape=(160, 200))
        assert (tmp_path / f"{name}-a.h5").read_bytes() == (tmp_path / f"{name}-b.h5").read_bytes()
    with pytest.raises(ValueError, match="runs are not the performances"):
        write_snippet_shard(tmp_path / "bad.h5", arrays | {"spec": SpecRuns.concatenate(
            [runs[:20], runs[20:]])}, chunk_samples=1, attrs=attrs, sheet_shape=(160, 200))


def test_two_processes_cut_spectrogram_runs_at_shard_boundaries_to_the_same_bytes(fixture_ds,
                                                                                  tmp_path):
    """Shards of ~12 samples: boundaries inside performances; 1 and 2 processes, same files."""
    config = PackConfig(seed=SEED, shard_max_mb=0.5)
    for jobs in (1, 2):
        pack_workdir(fixture_ds.work, tmp_path / f"jobs{jobs}", config, jobs=jobs)
    one, two = tmp_path / "jobs1", tmp_path / "jobs2"
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(two) for p in two.rglob("*") if p.is_file())
    assert [f for f in files if (one / f).read_bytes() != (two / f).read_bytes()] == []
    shards = _arrays(one)
    split_runs = 0
    for split in SPLITS:
        paths = [p.relative_to(one).as_posix() for p in _shards(one, split)]
        for a, b in zip(paths, paths[1:]):
            split_runs += shards[a]["meta"][-1]["performance"] == shards[b]["meta"][0]["performance"]
    assert split_runs > 0
    pieces = PieceDataset(one)
    full = {(p.piece, p.performance): p.spec for p in (pieces[i] for i in range(len(pieces)))}
    for arrays in shards.values():
        for spec, row in zip(arrays["spec"], arrays["meta"]):
            whole = full[row["piece"].decode(), row["performance"].decode()]
            assert np.array_equal(spec, extract_spec(whole, start=int(row["spec_start_frame"]),
                                                     n_frames=42))


def test_pack_order_keeps_each_split_in_order_and_puts_small_pieces_last():
    order = [("train", ["a", "b", "c", "d"]), ("valid", ["e"]), ("test", ["f", "g"])]
    cost = {"a": 1, "b": 9, "c": 2, "d": 1, "e": 3, "f": 1, "g": 20}
    got = pack_order(order, cost)
    assert sorted(got) == sorted((s, n) for s, names in order for n in names)
    for split, names in order:
        assert [n for s, n in got if s == split] == names
    assert got[:2] == [("test", "f"), ("test", "g")]      # mean 10.5 first
    assert got[-1] == ("train", "d")


def _slow_identity(item):
    import time
    time.sleep(item[1])
    return item[0]


def test_costly_first_yields_in_order():
    items = [(i, c) for i, c in enumerate([0.01, 0.01, 0.2, 0.01, 0.01, 0.3, 0.01])]
    for jobs in (1, 2):
        got = list(iter_costly_first(_slow_identity, items, cost=[c for _, c in items],
                                     jobs=jobs, ahead=3))
        assert got == list(range(len(items)))


def test_least_slack_starts_a_long_piece_as_early_as_its_turn_needs_and_no_earlier():
    def picks(cost, jobs=2):
        before = [sum(cost[:k]) for k in range(len(cost) + 1)]
        waiting, out = list(range(len(cost))), []
        while waiting:
            out.append(least_slack(waiting, cost, before, jobs))
            waiting.remove(out[-1])
        return out

    # Latest starts: -1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5 and 1 for the long last piece.
    assert picks([1] * 8 + [3]) == [0, 1, 2, 3, 4, 8, 5, 6, 7]
    assert picks([1, 1, 1, 10]) == [3, 0, 1, 2]        # it would be late whenever it starts
    assert picks([5, 1, 1, 1]) == [0, 1, 2, 3]         # the long piece is due first
    assert picks([1] * 8 + [3], jobs=1) == [0, 1, 2, 3, 4, 5, 6, 8, 7]


def _perf_with_alignment(tmp_path, name, text, newline="\n"):
    from msmd_prep.packing.core import PerformanceInput

    perf_dir = tmp_path / name
    perf_dir.mkdir()
    (perf_dir / "alignment.csv").write_bytes(text.replace("\n", newline).encode())
    return PerformanceInput("piece", name, perf_dir, {"name": "sf"}, 1.0, {})


@pytest.mark.parametrize("rows, fits", [
    (["h1", "x" * 64], True),
    (['"h1"', '"h,2"'], True),                     # quoted: parsed
    (["h1", "x" * 65], False),
    (["h1", '"' + "x" * 65 + '"'], False),
    (["h1", "é" * 33], False),                     # 66 bytes of UTF-8
    (["h1", "a" * 40 + '"' + "b" * 40], False),    # a quote inside an unquoted field
])
@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_check_names_rejects_every_head_id_too_long_for_the_metadata(tmp_path, rows, fits,
                                                                     newline):
    from msmd_prep.packing.core import check_names

    text = "notehead_id,page,x\n" + "".join(f"{r},1,2.5\n" for r in rows)
    perf = _perf_with_alignment(tmp_path, "p", text, newline)
    # The same rows with notehead_id not the first column.
    moved = _perf_with_alignment(tmp_path, "q", "page,notehead_id,x\n" + "".join(
        f"1,{r},2.5\n" for r in rows), newline)
    for p in (perf, moved):
        if fits:
            check_names("piece", [p])
        else:
            with pytest.raises(InputError, match="longer than 64 bytes"):
                check_names("piece", [p])
