"""SnippetLoader: the reader's batches through DataLoader workers and shared slots."""
from __future__ import annotations

import gc
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

from msmd_prep.errors import InputError
from msmd_prep.reader import SnippetReader

torch = pytest.importorskip("torch")
from msmd_prep.loader import SnippetLoader  # noqa: E402  (needs torch)

BATCH = 16


@pytest.fixture(scope="module")
def reader(fixture_ds):
    """The augmented train split of the fixture dataset."""
    r = SnippetReader(fixture_ds.dataset, "train")
    assert r.augment and len(r) > 4 * BATCH
    return r


def _expected(reader, epoch, batch=BATCH, shuffle=True):
    reader.set_epoch(epoch)
    if shuffle:
        return list(reader.iter_batches(batch))
    return [reader.__getitems__(np.arange(lo, min(lo + batch, len(reader))))
            for lo in range(0, len(reader), batch)]


def _assert_batch(got, want):
    sheets, specs, meta = got
    w_sheets, w_specs, w_meta = want
    assert isinstance(sheets, torch.Tensor) and isinstance(specs, torch.Tensor)
    assert sheets.shape == w_sheets.shape and specs.shape == w_specs.shape
    assert sheets.stride() == torch.from_numpy(w_sheets).stride()
    assert specs.stride() == torch.from_numpy(w_specs).stride()
    assert sheets.numpy().tobytes() == w_sheets.tobytes()
    assert specs.numpy().tobytes() == w_specs.tobytes()
    assert sorted(meta) == sorted(w_meta)
    for name, values in w_meta.items():
        if values.dtype == object:
            assert list(meta[name]) == list(values), name
        else:
            assert meta[name].dtype == values.dtype and meta[name].tobytes() == values.tobytes(), name


def _assert_epoch(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        _assert_batch(g, w)


def test_batches_are_the_readers_bit_for_bit(reader):
    loader = SnippetLoader(reader, BATCH, num_workers=2)
    loader.set_epoch(0)
    assert len(loader) == -(-len(reader) // BATCH)
    first = [(s.clone(), p.clone(), m) for s, p, m in loader]
    _assert_epoch(first, _expected(reader, 0))
    assert loader.fresh == 0 and loader.in_slots == len(loader)
    loader.set_epoch(3)
    third = [(s.clone(), p.clone(), m) for s, p, m in loader]
    _assert_epoch(third, _expected(reader, 3))
    assert not torch.equal(first[0][0], third[0][0])   # other order, other augmentation


def test_sample_order_and_drop_last(reader):
    loader = SnippetLoader(reader, BATCH, shuffle=False, drop_last=True, num_workers=2)
    loader.set_epoch(0)
    got = [(s.clone(), p.clone(), m) for s, p, m in loader]
    want = _expected(reader, 0, shuffle=False)[:len(reader) // BATCH]
    _assert_epoch(got, want)


def test_kept_batches_are_never_overwritten(reader):
    """Keep every batch (and a view of one): no slot is free, the rest come fresh, all intact."""
    loader = SnippetLoader(reader, BATCH, num_workers=2, slots_per_worker=1)
    loader.set_epoch(0)
    kept = list(loader)
    view = kept[1][0][3].numpy()[::2]       # an array derived from a handed-out tensor
    del kept[1]
    gc.collect()
    loader.set_epoch(1)
    for batch in loader:            # reuses every slot that is free
        pass
    want = _expected(reader, 0)
    assert view.tobytes() == want[1][0][3][::2].tobytes()
    del want[1]
    _assert_epoch(kept, want)
    assert loader.in_slots >= 2 and loader.fresh >= 1


def test_dropped_batches_free_their_slots(reader):
    loader = SnippetLoader(reader, BATCH, num_workers=2, slots_per_worker=4)
    loader.set_epoch(0)
    for sheets, specs, meta in loader:
        assert sheets.shape[0] == len(meta["piece"])
    assert loader.fresh == 0 and loader.in_slots == len(loader)


def test_epochs_reach_persistent_workers_and_dropped_iterations(reader):
    loader = SnippetLoader(reader, BATCH, num_workers=2, persistent_workers=True)
    loader.set_epoch(0)
    it = iter(loader)
    next(it), next(it)               # an iteration dropped after two batches
    loader.set_epoch(1)
    _assert_epoch([(s.clone(), p.clone(), m) for s, p, m in loader], _expected(reader, 1))
    with pytest.raises(RuntimeError, match="ended"):
        next(it)
    loader.set_epoch(2)
    _assert_epoch([(s.clone(), p.clone(), m) for s, p, m in loader], _expected(reader, 2))
    assert loader.fresh == 0


def test_a_new_iteration_ends_the_previous_workers(reader):
    loader = SnippetLoader(reader, BATCH, num_workers=2, persistent_workers=False)
    loader.set_epoch(0)
    it = iter(loader)
    next(it)
    workers = list(it._batches._workers)
    assert all(w.is_alive() for w in workers)
    got = [(s.clone(), p.clone(), m) for s, p, m in loader]
    assert not any(w.is_alive() for w in workers)
    _assert_epoch(got, _expected(reader, 0))
    assert loader.fresh == 0


def test_persistent_workers_stay_until_closed(reader):
    loader = SnippetLoader(reader, BATCH, num_workers=2)
    assert loader.persistent_workers
    it = iter(loader)
    next(it)
    workers = list(it._batches._workers)
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        _assert_epoch([(s.clone(), p.clone(), m) for s, p, m in loader], _expected(reader, epoch))
        assert all(w.is_alive() for w in workers)
        assert it._batches._workers == workers
    loader.close()
    assert not any(w.is_alive() for w in workers)
    loader.set_epoch(2)          # iterating again starts new workers
    _assert_epoch([(s.clone(), p.clone(), m) for s, p, m in loader], _expected(reader, 2))
    assert loader.fresh == 0


def test_without_workers(reader):
    loader = SnippetLoader(reader, BATCH, num_workers=0)
    loader.set_epoch(0)
    _assert_epoch([(s.clone(), p.clone(), m) for s, p, m in loader], _expected(reader, 0))


class _Broken(SnippetReader):
    """Fails on the batch that holds sample 5."""

    def _check(self, indices):  # type: ignore[no-untyped-def]
        if 5 in list(indices):
            raise InputError(f"{self.root}: sample 5 is broken")

    def __getitems__(self, indices):  # type: ignore[no-untyped-def]
        self._check(indices)
        return super().__getitems__(indices)

    def read_into(self, indices, sheets, specs):  # type: ignore[no-untyped-def]
        self._check(indices)
        return super().read_into(indices, sheets, specs)


def test_worker_exceptions_surface(fixture_ds):
    children = set(multiprocessing.active_children())
    loader = SnippetLoader(_Broken(fixture_ds.dataset, "train"), BATCH, num_workers=2)
    with pytest.raises(InputError) as caught:
        list(loader)
    assert set(multiprocessing.active_children()) <= children     # the workers ended
    message = str(caught.value)
    assert "sample 5 is broken" in message and "DataLoader worker" in message
    assert "SnippetLoader: batch of 16 samples of epoch 0" in message


def _torch_mappings() -> int:
    return sum("/torch_" in line for line in Path("/proc/self/maps").read_text().splitlines())


@pytest.mark.parametrize("persistent", [False, True])
def test_shared_memory_is_released(reader, persistent):
    gc.collect()
    shm_before = set(os.listdir("/dev/shm"))
    maps_before = _torch_mappings()
    children_before = set(multiprocessing.active_children())
    loader = SnippetLoader(reader, 4 * BATCH, num_workers=2, slots_per_worker=1,
                           persistent_workers=persistent)
    kept = list(loader)                        # slots and fresh batches
    assert loader.fresh and _torch_mappings() > maps_before
    it = iter(loader)
    next(it)
    del it                                     # an iterator dropped mid-epoch
    if not persistent:                         # ends its workers
        assert set(multiprocessing.active_children()) <= children_before
    del loader                                 # ends persistent ones
    assert set(multiprocessing.active_children()) <= children_before
    assert _torch_mappings() > maps_before     # the kept batches hold their memory
    _assert_batch(kept[0], _expected(reader, 0, 4 * BATCH)[0])
    del kept
    gc.collect()
    assert _torch_mappings() == maps_before
    # Only torch's files: other processes (and multiprocessing's semaphores) come and go meanwhile.
    assert not {n for n in set(os.listdir("/dev/shm")) - shm_before if n.startswith("torch_")}


def test_arguments_are_checked(reader):
    with pytest.raises(ValueError, match="batch_size"):
        SnippetLoader(reader, 0)
    with pytest.raises(ValueError, match="slots_per_worker"):
        SnippetLoader(reader, 4, slots_per_worker=-1)


def test_spawned_workers_share_the_slots(reader):
    """Spawned workers get the reader pickled and the slots' memory passed by torch."""
    loader = SnippetLoader(reader, BATCH, num_workers=1, multiprocessing_context="spawn")
    loader.set_epoch(1)
    _assert_epoch([(s.clone(), p.clone(), m) for s, p, m in loader], _expected(reader, 1))
    assert loader.fresh == 0
