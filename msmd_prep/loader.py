"""Batches of a :class:`~msmd_prep.reader.SnippetReader` through torch's DataLoader, in shared slots.

A DataLoader worker hands a batch to the main process through a fresh
shared-memory file per tensor, and both processes fault its pages in anew:
on this project's machines that transfer alone bounds a DataLoader at about
14k pairs/s.  :class:`SnippetLoader` allocates a ring of batch buffers
(slots) in shared memory once; its workers (torch's, which it still starts,
feeds and orders) cut each batch straight into a free slot and return the
slot number and the metadata only, and the main process hands out tensors
that are views of the slot.

A slot is reused only when nothing derived from its batch is alive: per
batch, the slot's bytes are wrapped in a new numpy array, the two tensors
come from ``torch.from_numpy`` of views of it (torch keeps that array alive
as long as any tensor or array sharing their storage lives), and a
``weakref.finalize`` of the array marks the slot free.  A worker never
waits for a slot: with none free (a consumer that keeps its batches) it
returns an ordinary freshly allocated batch, so a consumer gets the same
data either way, only slower.

Slot states, in a small shared array: ``0`` free; ``g > 0`` being cut or in
flight for iteration ``g``; ``-1`` handed out to the main process.  Worker
``w`` of ``n`` uses slots ``w, w + n, ...`` only, one batch at a time, so no
two processes claim the same slot.  A slot left at ``g`` by an iteration
that ended early (its batch was never received) is free again for any
later iteration; workers of a dropped iteration are ended before the next
one starts.

torch is imported when a loader is made; the rest of the package does not
need it.
"""
from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np

from .reader import SnippetReader

HANDED_OUT = -1
#: Byte alignment of the spectrograms within a slot.
ALIGN = 64


class _Layout:
    """Where a batch of up to ``batch_size`` samples lies in a slot (bytes).

    The sheets are a C-ordered (B, W, H) uint8 array from byte 0, the
    spectrograms a C-ordered (B, T, F) array from ``spec_offset``: the
    layout :meth:`SnippetReader.__getitems__` returns, as (B, H, W) and
    (B, F, T) views.
    """

    def __init__(self, batch_size: int, sheet_shape: tuple[int, int], spec_shape: tuple[int, int],
                 spec_dtype: np.dtype) -> None:
        self.batch_size = batch_size
        self.sheet_shape, self.spec_shape = sheet_shape, spec_shape
        self.spec_dtype = np.dtype(spec_dtype)
        H, W = sheet_shape
        F, T = spec_shape
        self.spec_offset = -(-batch_size * H * W // ALIGN) * ALIGN
        self.slot_bytes = -(-(self.spec_offset + batch_size * F * T * self.spec_dtype.itemsize)
                            // ALIGN) * ALIGN

    def views(self, slot_bytes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Sheets [shape=(n, H, W)] and specs [shape=(n, F, T)], views of one slot's bytes."""
        H, W = self.sheet_shape
        F, T = self.spec_shape
        sheets = slot_bytes[:n * H * W].reshape(n, W, H).transpose(0, 2, 1)
        size = n * F * T * self.spec_dtype.itemsize
        specs = (slot_bytes[self.spec_offset:self.spec_offset + size].view(self.spec_dtype)
                 .reshape(n, T, F).transpose(0, 2, 1))
        return sheets, specs


class _SlotDataset:
    """What the workers hold: the reader, the ring and the slot states.

    ``dataset[(generation, epoch, indices)]`` cuts one batch and returns
    ``(slot, n, meta)``, or ``(None, sheets, specs, meta)`` with new tensors
    when none of this worker's slots is free.
    """

    def __init__(self, reader: SnippetReader, ring, states, layout: _Layout,  # type: ignore[no-untyped-def]
                 n_workers: int) -> None:
        self.reader, self.ring, self.states, self.layout = reader, ring, states, layout
        self.n_workers = n_workers
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_arrays"] = None
        return state

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, request: tuple[int, int, np.ndarray]) -> tuple:
        import torch

        generation, epoch, indices = request
        if self._arrays is None:
            self._arrays = self.ring.numpy(), self.states.numpy()
        ring, states = self._arrays
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        reader = self.reader
        reader.set_epoch(epoch)
        slot = next((s for s in range(worker, len(states), self.n_workers)
                     if states[s] == 0 or 0 < states[s] < generation), None)
        try:
            if slot is None:
                sheets, specs, meta = reader.__getitems__(indices)
                return None, torch.from_numpy(sheets), torch.from_numpy(specs), meta
            states[slot] = generation
            n = self.layout.slot_bytes
            sheets, specs = self.layout.views(ring[slot * n:(slot + 1) * n], len(indices))
            meta = reader.read_into(indices, sheets, specs)
            return slot, len(indices), meta
        except Exception as e:
            if slot is not None:
                states[slot] = 0
            e.add_note(f"SnippetLoader: batch of {len(indices)} samples of epoch {epoch} "
                       f"(first sample {indices[0] if len(indices) else None}) in worker "
                       f"{worker}")
            raise


class _Requests:
    """The DataLoader's sampler: one ``(generation, epoch, indices)`` per batch."""

    def __init__(self, loader: SnippetLoader) -> None:
        self._loader = weakref.proxy(loader)

    def __len__(self) -> int:
        return len(self._loader)

    def __iter__(self) -> Iterator[tuple[int, int, np.ndarray]]:
        loader = self._loader
        generation, epoch = loader._generation, loader.epoch
        for batch in loader.batch_indices():
            yield generation, epoch, batch


def _as_is(batch: Any) -> Any:
    return batch


def _free(states: np.ndarray, slot: int) -> None:
    states[slot] = 0


class SnippetLoader:
    """Shuffled batches of a :class:`SnippetReader` as torch tensors, from worker processes.

    Parameters
    ----------
    reader : SnippetReader
    batch_size : int
    shuffle : bool
        Order of :meth:`SnippetReader.iter_batches`: a permutation seeded
        by the reader's ``(seed, epoch)``; else sample order.
    drop_last : bool
        Leave out a last batch smaller than ``batch_size``.
    num_workers : int
        DataLoader workers (0: cut in the main process, into the slots alike).
    slots_per_worker : int, optional
        Batch buffers per worker; default ``prefetch_factor + 2`` (the
        batches in flight, the one handed out and the one before it).
    prefetch_factor : int
        Batches each worker cuts ahead (torch's option).
    persistent_workers : bool
        Keep the workers from one epoch to the next (torch's option; here
        the default: the epoch reaches them with every batch, and an epoch
        does not pay for starting them).  :meth:`close` ends them.
    multiprocessing_context : optional
        torch's option (``"fork"`` shares the reader's memory copy-on-write;
        ``"spawn"`` pickles the reader to every worker).

    Notes
    -----
    ``for sheets, specs, meta in loader`` yields the batches of the current
    epoch: ``sheets`` uint8 [shape=(B, H, W)] and ``specs`` [shape=(B, F, T)]
    tensors, column-major per sample as :meth:`SnippetReader.__getitems__`
    returns them (the same values, bit for bit), and ``meta`` its dict of
    numpy arrays.  The tensors are views of a slot until every tensor and
    array sharing their memory is gone; copy (``.clone()``, ``.to(device)``)
    what must outlive them without holding the slot.  :meth:`set_epoch`
    sets the epoch of the shuffle and of the augmentation.  One iteration at
    a time: starting another ends the previous one (and its workers, unless
    persistent).  A worker's exception ends the workers and is raised here.
    ``in_slots`` and ``fresh`` count the batches handed out from slots and
    freshly allocated ones (no slot was free).
    """

    def __init__(self, reader: SnippetReader, batch_size: int = 100, *, shuffle: bool = True,
                 drop_last: bool = False, num_workers: int = 2,
                 slots_per_worker: int | None = None, prefetch_factor: int = 2,
                 persistent_workers: bool = True, multiprocessing_context=None,  # type: ignore[no-untyped-def]
                 ) -> None:
        import torch

        if not (isinstance(batch_size, int) and batch_size > 0):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not (isinstance(num_workers, int) and num_workers >= 0):
            raise ValueError(f"num_workers must be an integer >= 0, got {num_workers!r}")
        if slots_per_worker is None:
            slots_per_worker = prefetch_factor + 2
        if not (isinstance(slots_per_worker, int) and slots_per_worker >= 0):
            raise ValueError(f"slots_per_worker must be an integer >= 0, got {slots_per_worker!r}")
        self.reader = reader
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.in_slots = self.fresh = 0
        self._layout = _Layout(batch_size, reader.sheet_shape, reader.spec_shape,
                               reader.spec_dtype)
        n_slots = slots_per_worker * max(num_workers, 1)
        # Shared memory (unlinked at once: nothing is left in /dev/shm),
        # inherited by forked workers or passed to spawned ones by torch.
        self._ring = torch.empty(n_slots * self._layout.slot_bytes, dtype=torch.uint8
                                 ).share_memory_()
        self._states = torch.zeros(n_slots, dtype=torch.int64).share_memory_()
        self._ring_bytes = memoryview(self._ring.numpy())
        self._state_array = self._states.numpy()
        self._generation = 0
        self._active: weakref.ref | None = None
        self.persistent_workers = bool(persistent_workers and num_workers)
        self._dataloader_options = dict(
            dataset=_SlotDataset(reader, self._ring, self._states, self._layout,
                                 max(num_workers, 1)),
            batch_size=None, sampler=_Requests(self), num_workers=num_workers,
            collate_fn=_as_is, **({"prefetch_factor": prefetch_factor,
                                   "persistent_workers": self.persistent_workers,
                                   "multiprocessing_context": multiprocessing_context}
                                  if num_workers else {}))
        self._dataloader = None
        self._persistent_iterator = None

    def __len__(self) -> int:
        n, b = len(self.reader), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    @property
    def epoch(self) -> int:
        """The reader's epoch, that of the next iteration."""
        return self.reader.epoch

    def set_epoch(self, epoch: int) -> None:
        """Shuffle and augment as epoch ``epoch`` (an integer >= 0) from the next iteration on.

        The reader's :meth:`SnippetReader.set_epoch` does the same.
        """
        self.reader.set_epoch(epoch)

    def batch_indices(self) -> Iterator[np.ndarray]:
        """The sample indices [shape=(B,), int64] of each batch of the current epoch."""
        n, b = len(self.reader), self.batch_size
        order = (np.random.default_rng([self.reader.seed, self.epoch, 1]).permutation(n)
                 if self.shuffle else np.arange(n))
        for lo in range(0, len(self) * b, b):
            yield order[lo:lo + b]

    def __iter__(self) -> Iterator[tuple[Any, Any, dict]]:
        import torch

        active = self._active() if self._active is not None else None
        if active is not None:
            # Persistent workers finish the old batches before any new one.
            active.close(end_workers=not self.persistent_workers)
        if self._dataloader is None:
            self._dataloader = torch.utils.data.DataLoader(**self._dataloader_options)
        self._generation += 1
        iterator = iter(self._dataloader)
        if self.persistent_workers:
            self._persistent_iterator = iterator
        batches = _Batches(self, iterator, self._generation)
        self._active = weakref.ref(batches)
        return batches

    def close(self) -> None:
        """End the current iteration and the workers (persistent ones too); iterating starts anew."""
        active = self._active() if self._active is not None else None
        if active is not None:
            active.close(end_workers=True)
        _end_workers(self._persistent_iterator)
        self._persistent_iterator = self._dataloader = None
        self._persistent_iterator = None

    def _hand_out(self, slot: int, n: int) -> tuple[Any, Any]:
        import torch

        self._state_array[slot] = HANDED_OUT
        size = self._layout.slot_bytes
        whole = np.frombuffer(self._ring_bytes[slot * size:(slot + 1) * size], np.uint8)
        weakref.finalize(whole, _free, self._state_array, slot).atexit = False
        sheets, specs = self._layout.views(whole, n)
        return torch.from_numpy(sheets), torch.from_numpy(specs)


class _Batches:
    """One iteration of a :class:`SnippetLoader`."""

    def __init__(self, loader: SnippetLoader, batches: Iterator, generation: int) -> None:
        self._loader, self._batches, self.generation = loader, batches, generation
        self._closed = False

    def __iter__(self) -> _Batches:
        return self

    def __next__(self) -> tuple[Any, Any, dict]:
        if self._closed:
            raise RuntimeError("this SnippetLoader iteration was ended (a newer one started)")
        try:
            item = next(self._batches)
        except StopIteration:
            self._closed = True
            raise
        except Exception:
            # Now: ended later, from the traceback's garbage, torch waits 5 s per worker.
            self._loader.close()
            raise
        loader = self._loader
        if item[0] is None:
            loader.fresh += 1
            return item[1], item[2], item[3]
        slot, n, meta = item
        loader.in_slots += 1
        sheets, specs = loader._hand_out(slot, n)
        return sheets, specs, meta

    def close(self, *, end_workers: bool) -> None:
        """End this iteration; ``end_workers``: and its workers, before the slots are used again."""
        self._closed = True
        if end_workers:
            _end_workers(self._batches)


def _end_workers(iterator) -> None:  # type: ignore[no-untyped-def]
    """Stop the workers of a torch DataLoader iterator (none without workers) and wait for them."""
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()
        for w in iterator._workers:
            if w.is_alive():
                w.kill()
                w.join()
