"""The on-the-fly snippet reader: samples cut at read time from a dataset's piece files.

:class:`SnippetReader` loads the piece files of one split into memory once
(the unrolled scores and spectrograms, padded so that excerpts are slices)
and cuts each sample when it is read, as MSMD's own training code did
(its data pools keep whole pieces and an (image, spectrogram, onset) index
table).  The samples are those ``pack`` writes for the same dataset: one per
(head, onset, performance), in the same order, with the same preset, the
same cutting code (:mod:`msmd_prep.packing.excerpts`) and the same augmentation
distributions (sheet rescale, vertical shift, onset jitter; every tempo and
SoundFont variant is a performance of its own).  Without augmentation its
samples are bit-identical to the packed ones.

Augmentation is seeded by ``(seed, epoch, index)`` only: the parameters of
sample ``i`` in epoch ``e`` are the ``i % 4096``-th draw of a generator seeded
by ``SeedSequence([seed, e, i // 4096])``, whatever the batch, the order or
the worker that reads it.  An epoch is reproducible; :meth:`set_epoch` gives
the next one other augmentations.

It is a map-style dataset for ``torch.utils.data.DataLoader`` (torch is not
imported here): ``reader[i]`` is one sample, ``reader.__getitems__(indices)``
a whole batch, which the DataLoader calls for every batch
(:meth:`SnippetReader.read_into` cuts it into the caller's arrays); pass
``collate_fn=torch_batch`` to hand the batch over as tensors.  Without torch,
:meth:`SnippetReader.iter_batches` yields shuffled batches.
"""
from __future__ import annotations

import math
import operator
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path

import numpy as np

from .data import _read_index
from .errors import InputError
from .packing.excerpts import (BORDER_PX, Augmentation, SheetStore, SpecStore, cut_sheets, cut_specs,
                               draw_augmentation, head_position, new_sheets, new_specs,
                               no_augmentation, scale_levels, sheet_anchor, spec_start)
from .packing.pieces import PieceContents, read_piece_contents
from .packing.snippets import PRESETS, PackConfig

#: Samples per augmentation generator: sample ``i`` uses generator ``i // AUG_BLOCK``.
AUG_BLOCK = 4096


def pack_config(index: dict) -> PackConfig:
    """The :class:`PackConfig` recorded in a dataset's ``index.json``."""
    known = {f.name for f in fields(PackConfig)}
    values = {k: tuple(v) if isinstance(v, list) else v
              for k, v in index["config"].items() if k in known}
    return PackConfig(**values)


class SnippetReader:
    """The snippets of one split, cut on the fly from the piece files.

    Parameters
    ----------
    root : str or Path
        The dataset folder (``index.json`` and ``pieces/``).
    split : {"train", "valid", "test"}
    augment : bool, optional
        Rescale, shift and jitter as the pack config says; default: as
        ``pack`` did for this split (``augment_splits``).
    seed : int, optional
        Seeds the augmentation and :meth:`iter_batches`' shuffle; default:
        the pack config's seed.
    threads : int, optional
        Threads that decode the piece files (default 2).  The samples are
        the same whatever the number.

    Notes
    -----
    ``reader[i]`` returns ``(sheet, spec, meta)`` as
    :class:`msmd_prep.data.SnippetDataset` does: ``sheet`` uint8
    [shape=(H, W)], ``spec`` [shape=(F, T)] in the stored dtype, ``meta`` a
    dict of the fields of ``docs/FORMAT.md``.  ``reader[[i, j, ...]]`` and
    ``reader.__getitems__([i, j, ...])`` return a batch: arrays
    [shape=(B, H, W)] and [shape=(B, F, T)] and a dict of arrays [shape=(B,)].
    """

    def __init__(self, root: str | Path, split: str, *, augment: bool | None = None,
                 seed: int | None = None, threads: int = 2) -> None:
        self.root = Path(root)
        index = _read_index(self.root)
        if index.get("task", "snippets") != "snippets":
            raise InputError(f"{self.root}: a {index['task']!r} dataset has no piece files; "
                             "read it with ScoreFollowingDataset")
        if split not in index["splits"]:
            raise InputError(f"{self.root}: no split {split!r}; splits: {sorted(index['splits'])}")
        self.split = split
        self.config = pack_config(index)
        self.preset = PRESETS[self.config.preset]
        self.augment = split in self.config.augment_splits if augment is None else bool(augment)
        self.seed = self.config.seed if seed is None else int(seed)
        if not (isinstance(threads, int) and threads >= 1):
            raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
        self.threads = threads
        self.epoch = 0
        p = self.preset
        self.sheet_shape = (p.sheet_height_px, p.sheet_width_px)
        self.spec_shape = (p.spec_bins, p.spec_frames)
        self._load(index)
        self._aug: tuple[int, Augmentation] | None = None

    def _load(self, index: dict) -> None:
        H, W = self.sheet_shape
        T = self.spec_shape[1]
        c = self.config
        names = sorted(n for n, e in index["pieces"].items() if e["split"] == self.split)
        contents = [read_piece_contents(self.root / index["pieces"][n]["file"]) for n in names]
        scales = (scale_levels(c.sheet_scale_range, c.sheet_scale_steps) if self.augment
                  else np.ones(1, np.float32))
        self._sheets = SheetStore.empty([p.unrolled.shape for p in contents], scales,
                                        width_px=W, height_px=H, white=False,
                                        rows=None if self.augment else _excerpt_rows(contents, H))
        stored_specs = [perf[1] for p in contents for perf in p.performances]
        self.spec_dtype = (stored_specs[0].dtype if stored_specs
                           else np.dtype(index.get("spec_dtype", "float16")))
        self._specs = SpecStore.empty([s.shape[1] for s in stored_specs],
                                      n_bins=stored_specs[0].shape[0] if stored_specs else 0,
                                      n_frames=T, dtype=self.spec_dtype, zero=False)
        first_spec = np.cumsum([0] + [len(p.performances) for p in contents]).tolist()
        _decode_into(self._sheets, self._specs, contents, first_spec, threads=self.threads)
        piece_names, perf_names, soundfonts, tempos, perf_piece = [], [], [], [], []
        columns: dict[str, list[np.ndarray]] = {k: [] for k in (
            "perf", "notehead_id", "pitch", "system", "onset_s", "onset_frame", "unrolled_x",
            "unrolled_y", "center_y")}
        for name, piece in zip(names, contents):
            piece_names.append(name)
            for performance, _, table, tempo, soundfont in piece.performances:
                columns["perf"].append(np.full(len(table), len(perf_names), np.int32))
                perf_names.append(performance)
                soundfonts.append(soundfont["name"])
                tempos.append(tempo)
                perf_piece.append(len(piece_names) - 1)
                for field in columns:
                    if field != "perf":
                        columns[field].append(table[field])
        cols = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in columns.items()}
        self._perf = cols["perf"].astype(np.int64)
        self._x, self._y, self._cy = cols["unrolled_x"], cols["unrolled_y"], cols["center_y"]
        self._onset_frame = cols["onset_frame"].astype(np.int64)
        self._image = np.array(perf_piece, np.int64)
        # Decoded once: a batch's strings are then a gather of object pointers.
        self._text = {
            "piece": np.array(piece_names, dtype=object)[self._image]
            if perf_piece else np.zeros(0, object),
            "performance": np.array(perf_names, dtype=object),
            "soundfont": np.array(soundfonts, dtype=object)}
        self._tempo = np.array(tempos, dtype=np.float32)
        # For reader[i]: one record per sample, read as Python numbers at once.
        rows = np.zeros(len(self._perf), dtype=[
            ("perf", "<i8"), ("x", "<f8"), ("y", "<f8"), ("cy", "<f8"), ("onset", "<i8"),
            ("onset_s", "<f8"), ("pitch", "<i2"), ("system", "<i2"), ("ux", "<f4")])
        for name, column in (("perf", self._perf), ("x", self._x), ("y", self._y),
                             ("cy", self._cy), ("onset", self._onset_frame),
                             ("onset_s", cols["onset_s"]), ("pitch", cols["pitch"]),
                             ("system", cols["system"]), ("ux", self._x)):
            rows[name] = column
        self._rows = rows
        self._perf_text = [(piece_names[perf_piece[k]], perf_names[k], soundfonts[k],
                            self._tempo[k].item()) for k in range(len(perf_names))]
        self._image_of = self._image.tolist()
        self._level_of = {s: k for k, s in enumerate(self._sheets.scales.tolist())}
        self._cols = [list(zip(a.tolist(), b.tolist()))
                      for a, b in zip(self._sheets.col0, self._sheets.col1)]
        self._frame0 = self._specs.frame0.tolist()
        self._n_frames = self._specs.n_frames.tolist()
        # str.decode of each: 0.03 s for 155k ids, np.char.decode 0.1-0.15 s.
        self._meta = {"notehead_id": np.array([h.decode() for h in cols["notehead_id"].tolist()],
                                              dtype=object)
                      if len(cols["notehead_id"]) else np.zeros(0, object),
                      "onset_s": cols["onset_s"].astype(np.float64),
                      "onset_frame": self._onset_frame.astype(np.int32),
                      "pitch": cols["pitch"].astype(np.int16),
                      "system": cols["system"].astype(np.int16),
                      "unrolled_x": self._x.astype(np.float32)}

    def __len__(self) -> int:
        return len(self._perf)

    def indices_of(self, piece: str, performance: str) -> np.ndarray:
        """The sample indices [shape=(n,), int64] of one performance of one piece."""
        hit = ((self._text["piece"] == piece) & (self._text["performance"] == performance))
        return np.nonzero(hit[self._perf])[0].astype(np.int64)

    def set_epoch(self, epoch: int) -> None:
        """Augment as epoch ``epoch`` (an integer >= 0); call it before each epoch.

        DataLoader workers get the reader anew at the start of every epoch
        (unless ``persistent_workers=True``), so this reaches them.
        """
        if not (isinstance(epoch, int) and epoch >= 0):
            raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
        self.epoch = epoch

    def augmentation(self, indices: np.ndarray) -> Augmentation:
        """The augmentation parameters of samples ``indices`` in the current epoch."""
        if not self.augment:
            return no_augmentation(len(indices))
        return self._epoch_augmentation()[indices]

    def _epoch_augmentation(self) -> Augmentation:
        if self._aug is None or self._aug[0] != self.epoch:
            n, c = len(self), self.config
            blocks = [draw_augmentation(
                AUG_BLOCK, np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, b])),
                scale_range=c.sheet_scale_range, scale_steps=c.sheet_scale_steps,
                shift_max_px=c.shift_max_px,
                jitter_max_frames=c.jitter_max_frames) for b in range(-(-n // AUG_BLOCK))]
            whole = Augmentation(*(np.concatenate([getattr(b, f.name) for b in blocks])[:n]
                                   if blocks else np.zeros(0)
                                   for f in fields(Augmentation)))
            self._aug = (self.epoch, whole)
        return self._aug[1]

    def _indices(self, indices) -> np.ndarray:  # type: ignore[no-untyped-def]
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        idx = np.where(idx < 0, idx + n, idx)
        if len(idx) and not (0 <= idx.min() and idx.max() < n):
            raise IndexError(f"sample indices out of range for {n} samples")
        return idx

    def __getitems__(self, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray, dict]:
        """A batch: ``(sheet [shape=(B, H, W)], spec [shape=(B, F, T)], meta)``.

        The arrays are new, column-major per sample (see the class notes).
        """
        idx = self._indices(indices)
        sheets, specs = self.new_batch(len(idx))
        return sheets, specs, self._read(idx, sheets, specs)

    def new_batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Uninitialised ``sheets`` [shape=(n, H, W), uint8] and ``specs`` [shape=(n, F, T)].

        In the layout :meth:`read_into` fills fastest (column-major per
        sample, as :meth:`__getitems__` returns).
        """
        H, W = self.sheet_shape
        F, T = self.spec_shape
        return (new_sheets(n, height_px=H, width_px=W),
                new_specs(n, n_bins=F, n_frames=T, dtype=self.spec_dtype))

    def read_into(self, indices: Sequence[int], sheets: np.ndarray, specs: np.ndarray) -> dict:
        """Cut the batch ``indices`` into the caller's arrays; returns its metadata.

        ``sheets`` [shape=(B, H, W), dtype=uint8] and ``specs``
        [shape=(B, F, T), the reader's ``spec_dtype``], B = ``len(indices)``,
        writeable, of any memory layout (fastest that of :meth:`new_batch`;
        a slice ``buffer[:B]`` of larger ones works).  Their values are then
        those :meth:`__getitems__` returns, and the metadata its dict.
        Reusing the same arrays batch after batch also spares the page
        faults of new memory.
        """
        idx = self._indices(indices)
        B = len(idx)
        for name, array, shape, dtype in (("sheets", sheets, (B, *self.sheet_shape), np.uint8),
                                          ("specs", specs, (B, *self.spec_shape),
                                           self.spec_dtype)):
            if not isinstance(array, np.ndarray) or array.shape != shape or array.dtype != dtype:
                raise ValueError(f"{name} must be a numpy array of shape {shape} and dtype "
                                 f"{np.dtype(dtype)}, got "
                                 f"{getattr(array, 'shape', type(array))} "
                                 f"{getattr(array, 'dtype', '')}")
            if not array.flags.writeable:
                raise ValueError(f"{name} is read-only")
        return self._read(idx, sheets, specs)

    def _read(self, idx: np.ndarray, sheets: np.ndarray, specs: np.ndarray) -> dict:
        H, W = self.sheet_shape
        T = self.spec_shape[1]
        c = self.config
        aug = self.augmentation(idx)
        perf = self._perf[idx]
        onset_frame = self._onset_frame[idx]
        starts = spec_start(onset_frame + aug.onset_jitter_frames, n_frames=T,
                            anchor=c.spec_anchor, jitter_max_frames=c.jitter_max_frames)
        x, cy = self._x[idx], self._cy[idx]
        image = self._image[perf]
        cut_sheets(self._sheets, image, x=x, center_y=cy, aug=aug, height_px=H, width_px=W,
                   out=sheets)
        cut_specs(self._specs, perf, starts=starts, n_frames=T, out=specs)
        head_row, head_col = head_position(x=x, y=self._y[idx], center_y=cy, aug=aug,
                                           height_px=H, width_px=W)
        meta = {"piece": self._text["piece"][perf],
                "performance": self._text["performance"][perf],
                "notehead_id": self._meta["notehead_id"][idx],
                "soundfont": self._text["soundfont"][perf],
                "tempo_factor": self._tempo[perf],
                **{k: self._meta[k][idx] for k in ("onset_s", "onset_frame", "pitch", "system",
                                                   "unrolled_x")},
                "sheet_scale": aug.sheet_scale, "sheet_shift_px": aug.sheet_shift_px,
                "onset_jitter_frames": aug.onset_jitter_frames,
                "spec_start_frame": starts.astype(np.int32),
                "head_row": head_row.astype(np.float32), "head_col": head_col.astype(np.float32),
                "onset_col": (onset_frame - starts).astype(np.int16)}
        return meta

    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        """``reader[i] -> (sheet, spec, meta)``; ``reader[[i, j, ...]]`` -> a batch.

        One sample's arrays are read-only views of the reader's memory (no
        copy); copy them to change them.
        """
        if isinstance(i, (list, tuple, np.ndarray)):
            return self.__getitems__(i)
        i = operator.index(i)
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"sample {i} out of range for {n} samples")
        i %= n
        one = self._one(i)
        if one is None:      # beyond the stores' margins: cut on its own
            sheets, specs, meta = self.__getitems__([i])
            return sheets[0], specs[0], {k: v[0].item() if hasattr(v[0], "item") else v[0]
                                         for k, v in meta.items()}
        return one

    def _one(self, i: int) -> tuple[np.ndarray, np.ndarray, dict] | None:
        """Sample ``i`` as views, with the arithmetic of :meth:`_read` on Python numbers."""
        H, W = self.sheet_shape
        T = self.spec_shape[1]
        c = self.config
        p, x, y, cy, onset, onset_s, pitch, system, ux = self._rows[i].item()
        if self.augment:
            whole = self._epoch_augmentation()
            scale, shift, jitter = (whole.sheet_scale[i].item(), whole.sheet_shift_px[i].item(),
                                    whole.onset_jitter_frames[i].item())
        else:
            scale, shift, jitter = 1.0, 0, 0
        start = int(spec_start(onset + jitter, n_frames=T, anchor=c.spec_anchor,
                               jitter_max_frames=c.jitter_max_frames))
        store, image, k = self._sheets, self._image_of[p], self._level_of[scale]
        col = math.floor((x + BORDER_PX) * scale + 0.5)
        row = math.floor((cy + BORDER_PX) * scale + 0.5)
        c0, c1 = self._cols[image][k]
        left, top = c0 + col - W // 2, store.row0 + row - shift - H // 2
        specs = self._specs
        first, length = self._frame0[p] + start, self._n_frames[p]
        if not (c0 - W // 2 - 1 <= left and left + W <= c1 + W // 2 + 1
                and 0 <= top and top + H <= store.array.shape[1]
                and -specs.pad <= start and start + T <= length + specs.pad):
            return None
        perf_of = self._perf_text[p]
        meta = {"piece": perf_of[0], "performance": perf_of[1],
                "notehead_id": self._meta["notehead_id"][i], "soundfont": perf_of[2],
                "tempo_factor": perf_of[3], "onset_s": onset_s, "onset_frame": onset,
                "pitch": pitch, "system": system, "unrolled_x": ux,
                "sheet_scale": scale, "sheet_shift_px": shift,
                "onset_jitter_frames": jitter, "spec_start_frame": start,
                "head_row": np.float32(H // 2 + shift + (y + BORDER_PX) * scale - row).item(),
                "head_col": np.float32(W // 2 + (x + BORDER_PX) * scale - col).item(),
                "onset_col": onset - start}
        return (_readonly(store.array[left:left + W, top:top + H].T),
                _readonly(specs.array[first:first + T].T), meta)

    def iter_batches(self, batch_size: int, *, shuffle: bool = True, drop_last: bool = False,
                     ) -> Iterator[tuple[np.ndarray, np.ndarray, dict]]:
        """Batches of the current epoch, shuffled by ``(seed, epoch)``, without torch."""
        if not (isinstance(batch_size, int) and batch_size > 0):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        n = len(self)
        order = (np.random.default_rng([self.seed, self.epoch, 1]).permutation(n) if shuffle
                 else np.arange(n))
        for lo in range(0, n, batch_size):
            if drop_last and lo + batch_size > n:
                break
            yield self.__getitems__(order[lo:lo + batch_size])


def _excerpt_rows(contents: Sequence[PieceContents], height_px: int) -> tuple[int, int] | None:
    """The rows of the bordered scores that the unaugmented excerpts of ``contents`` lie in.

    Systems are centred in the unrolled band, so these are ``H`` rows or a
    few more: a store of these rows only makes each excerpt one contiguous
    block.  None without samples.
    """
    center_y = [table["center_y"] for piece in contents for _, _, table, *_ in piece.performances]
    if not sum(map(len, center_y)):
        return None
    _, row = sheet_anchor(np.zeros(1), np.concatenate(center_y), np.ones(1))
    top = row - height_px // 2
    return int(top.min()), int(top.max()) + height_px


def _decode_into(sheets: SheetStore, specs: SpecStore, contents: Sequence[PieceContents],
                 first_spec: Sequence[int], *, threads: int) -> None:
    """Decode every piece's score and spectrograms into the stores, pieces shared by ``threads``.

    Decoding (python-blosc with the GIL released), the transposes into the
    stores (OpenCV), rescaling and the first touch of the stores' memory
    run without the GIL; each thread decodes into scratch memory of its own
    that it reuses from piece to piece.
    """
    import blosc

    local = threading.local()

    def scratch(name: str, nbytes: int) -> np.ndarray:
        buf = getattr(local, name, None)
        if buf is None or buf.nbytes < nbytes:
            buf = np.empty(max(nbytes, 1 << 20), np.uint8)
            setattr(local, name, buf)
        return buf

    whole_scores = not (len(sheets.scales) == 1 and sheets.scales[0] == 1.0)

    def one(i: int) -> None:
        piece = contents[i]
        sheets.whiten(i)
        fd = os.open(piece.path, os.O_RDONLY)
        try:
            score = piece.unrolled
            chunk = scratch("chunk", score.chunk_nbytes)
            if whole_scores:
                image = scratch("image", int(np.prod(score.shape))).reshape(-1)[
                    :int(np.prod(score.shape))].reshape(score.shape)
                for first, block in score.blocks(fd, chunk):
                    image[:, first:first + block.shape[1]] = block
                sheets.put(i, image)
            else:
                for first, block in score.blocks(fd, chunk):
                    sheets.put_columns(i, first, block)
            for k, (_, spec, *_) in enumerate(piece.performances, start=first_spec[i]):
                specs.clear(k)
                for first, block in spec.blocks(fd, scratch("chunk", spec.chunk_nbytes)):
                    specs.put(k, first, block)
        finally:
            os.close(fd)

    before = blosc.set_releasegil(True)
    try:
        if threads == 1 or len(contents) < 2:
            for i in range(len(contents)):
                one(i)
        else:
            with ThreadPoolExecutor(threads) as pool:
                # Largest first: the threads end together.
                order = sorted(range(len(contents)),
                               key=lambda i: -int(np.prod(contents[i].unrolled.shape)))
                list(pool.map(one, order))
    finally:
        blosc.set_releasegil(before)


def _readonly(view: np.ndarray) -> np.ndarray:
    view.flags.writeable = False
    return view


def torch_batch(batch: tuple[np.ndarray, np.ndarray, dict]):  # type: ignore[no-untyped-def]
    """A batch as torch tensors (``collate_fn`` of a DataLoader over a :class:`SnippetReader`).

    Sheets and spectrograms become tensors (no copy; their strides are the
    batch's, column-major per sample); the metadata stay numpy arrays.  A
    tensor crosses from a worker to the main process through a shared
    memory file of its own, a small array inside the pickled batch: 13
    numeric fields as tensors measured 2x slower per batch.
    """
    import torch

    sheets, specs, meta = batch
    return torch.from_numpy(sheets), torch.from_numpy(specs), meta
