"""Readers of a packed dataset, for training code.

:class:`SnippetDataset` serves the paired snippets of one split, by index
(a map-style dataset for ``torch.utils.data.DataLoader``) or in batches
(:meth:`SnippetDataset.iter_batches`).  :class:`PieceDataset` serves whole
pieces (unrolled score, full spectrogram, onset <-> x mapping) for code that
cuts its own snippets on the fly.  :class:`ScoreFollowingDataset` serves the
samples of a score-following dataset (staff image, spectrogram, target).

Neither imports torch.  HDF5 files are opened lazily, once per process: a
dataset object built in the main process and copied into DataLoader
workers (by fork or pickle) opens its own handles in each worker.
"""
from __future__ import annotations

import bisect
import json
import operator
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers the Blosc filter the compact files use)
import numpy as np

from .errors import InputError

INDEX_NAME = "index.json"
SCHEMA_VERSION = 1
# Chunk cache per dataset.  Uncompressed samples are read past HDF5 (pread);
# a compressed sample is one chunk, decoded once per read, so a large cache
# only slows the lookups down (measured: 1.2-1.5x slower random reads at 64 MB).
CHUNK_CACHE_BYTES = 1024 * 1024


def _read_index(root: Path) -> dict:
    path = Path(root) / INDEX_NAME
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable msmd-prep dataset index ({e})") from e
    if index.get("schema_version") != SCHEMA_VERSION:
        raise InputError(f"{path}: schema version {index.get('schema_version')!r}, this "
                         f"reader knows {SCHEMA_VERSION}")
    return index


def _decode_meta(meta: np.ndarray) -> dict[str, np.ndarray]:
    """Structured metadata as one array per field, strings decoded to ``str``."""
    out = {}
    for name in meta.dtype.names:
        column = meta[name]
        out[name] = (np.char.decode(column, "utf-8").astype(object)
                     if column.dtype.kind == "S" else column)
    return out


class _SampleArray:
    """Reads samples (first-axis entries) of one HDF5 dataset.

    An unfiltered dataset whose chunks hold whole samples stores every
    sample as one run of bytes in the file.  Their offsets are collected
    once (``H5Dchunk_iter``) and a sample is then read with one ``pread``
    into a fresh array: several times faster than an h5py selection, which
    costs tens of microseconds per call.  Other layouts are read by h5py.
    """

    def __init__(self, dataset: h5py.Dataset, fd: int) -> None:
        self.dataset = dataset
        self.fd = fd
        self.shape = dataset.shape[1:]
        self.dtype = dataset.dtype
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self.offsets = self._offsets() if hasattr(os, "preadv") else None
        # Samples after which the next one does not follow in the file (HDF5
        # puts index pages between some chunks): a range is one read per run.
        self.breaks = (None if self.offsets is None else
                       np.nonzero(np.diff(self.offsets) != self.nbytes)[0] + 1)

    def _offsets(self) -> np.ndarray | None:
        ds = self.dataset
        n = ds.shape[0]
        if n == 0 or ds.id.get_create_plist().get_nfilters() or not self.dtype.isnative:
            return None
        if ds.chunks is None:
            base = ds.id.get_offset()
            return None if base is None else base + np.arange(n, dtype=np.int64) * self.nbytes
        if tuple(ds.chunks[1:]) != self.shape:
            return None
        per_chunk = ds.chunks[0]
        starts = np.full(-(-n // per_chunk), -1, dtype=np.int64)

        def note(info) -> None:  # type: ignore[no-untyped-def]
            starts[info.chunk_offset[0] // per_chunk] = info.byte_offset

        ds.id.chunk_iter(note)
        if (starts < 0).any():
            return None
        i = np.arange(n, dtype=np.int64)
        return starts[i // per_chunk] + (i % per_chunk) * self.nbytes

    def read(self, i: int) -> np.ndarray:
        if self.offsets is None:
            return self.dataset[i]
        out = np.empty(self.shape, dtype=self.dtype)
        self.read_into(i, out)
        return out

    def read_into(self, i: int, out: np.ndarray) -> None:
        if self.offsets is None:
            # h5py's indexing is 2-3x faster than read_direct for one compressed chunk.
            out[...] = self.dataset[i]
        elif os.preadv(self.fd, [out], int(self.offsets[i])) != self.nbytes:
            raise InputError(f"{self.dataset.file.filename}: short read of sample {i}")

    def read_range(self, lo: int, hi: int) -> np.ndarray:
        if self.offsets is None or hi <= lo:
            return self.dataset[lo:hi]
        out = np.empty((hi - lo, *self.shape), dtype=self.dtype)
        inner = self.breaks[(self.breaks > lo) & (self.breaks < hi)].tolist()
        for a, b in zip([lo, *inner], [*inner, hi]):
            part = out[a - lo:b - lo]
            if os.preadv(self.fd, [part], int(self.offsets[a])) != part.nbytes:
                raise InputError(f"{self.dataset.file.filename}: short read of samples {a}:{b}")
        return out


class _BloscSamples:
    """Reads samples of a Blosc-compressed dataset stored one sample per chunk.

    The chunks' file offsets and sizes are collected once (``H5Dchunk_iter``);
    a sample is then one ``pread`` of its compressed bytes and one Blosc
    decode into the output array, past HDF5's filter pipeline (measured 1.6x
    less CPU per sample than h5py indexing).  :meth:`open` returns None for
    any other layout.
    """

    BLOSC_FILTER = 32001

    def __init__(self, dataset: h5py.Dataset, fd: int, offsets: list[int],
                 sizes: list[int]) -> None:
        import blosc

        self._decode = blosc.decompress_ptr
        self.dataset = dataset
        self.fd = fd
        self.shape = dataset.shape[1:]
        self.dtype = dataset.dtype
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self.offsets, self.sizes = offsets, sizes

    @classmethod
    def open(cls, dataset: h5py.Dataset, fd: int) -> _BloscSamples | None:
        plist = dataset.id.get_create_plist()
        n = dataset.shape[0]
        if (n == 0 or plist.get_nfilters() != 1 or plist.get_filter(0)[0] != cls.BLOSC_FILTER
                or dataset.chunks != (1, *dataset.shape[1:]) or not dataset.dtype.isnative):
            return None
        try:
            import blosc  # noqa: F401
        except ImportError:
            return None
        offsets, sizes = [-1] * n, [0] * n
        masks = []

        def note(info) -> None:  # type: ignore[no-untyped-def]
            k = info.chunk_offset[0]
            offsets[k], sizes[k] = info.byte_offset, info.size
            masks.append(info.filter_mask)

        dataset.id.chunk_iter(note)
        if min(offsets) < 0 or any(masks):
            return None
        return cls(dataset, fd, offsets, sizes)

    def read(self, i: int) -> np.ndarray:
        out = np.empty(self.shape, dtype=self.dtype)
        self.read_into(i, out)
        return out

    def read_into(self, i: int, out: np.ndarray) -> None:
        raw = os.pread(self.fd, self.sizes[i], self.offsets[i])
        if not out.flags.c_contiguous or self._decode(raw, out.ctypes.data) != self.nbytes:
            out[...] = self.dataset[i]

    def read_range(self, lo: int, hi: int) -> np.ndarray:
        out = np.empty((max(hi - lo, 0), *self.shape), dtype=self.dtype)
        for k in range(lo, hi):
            self.read_into(k, out[k - lo])
        return out


class _SpecFrames:
    """The spectrogram excerpts of a compact snippet shard: slices of ``spec_frames``.

    ``spec_frames`` (the frames each run of samples spans, stored once) is
    read whole when the shard opens; excerpt ``i`` starts at ``spec_offset[i]``.
    """

    def __init__(self, file: h5py.File) -> None:
        # Frames-major in memory: an excerpt is one contiguous run (measured
        # 2.5-5x less CPU to copy than 92 rows of 42 frames).
        self.frames = np.ascontiguousarray(file["spec_frames"][:].T)
        self.offsets = file["spec_offset"][:].tolist()
        self.n_frames = int(file.attrs["spec_frames"])

    def read(self, i: int) -> np.ndarray:
        """Excerpt ``i`` [shape=(F, T)], a copy, frames-major (the transpose of a C array)."""
        o = self.offsets[i]
        return self.frames[o:o + self.n_frames].copy().T

    def read_into(self, i: int, out: np.ndarray) -> None:
        o = self.offsets[i]
        out[...] = self.frames[o:o + self.n_frames].T

    def read_range(self, lo: int, hi: int) -> np.ndarray:
        out = np.empty((max(hi - lo, 0), self.frames.shape[1], self.n_frames),
                       dtype=self.frames.dtype)
        for k in range(lo, hi):
            self.read_into(k, out[k - lo])
        return out


class _Shard:
    """One open shard: its sample arrays and its metadata, decoded once when opened.

    ``image`` names the image dataset (``sheet``, or ``staff`` in a
    score-following shard); ``target`` is read when the shard has one.
    """

    def __init__(self, path: Path, image: str = "sheet") -> None:
        self.file = h5py.File(path, "r", rdcc_nbytes=CHUNK_CACHE_BYTES)
        self.fd = os.open(path, os.O_RDONLY)
        self.sheet = (_BloscSamples.open(self.file[image], self.fd)
                      or _SampleArray(self.file[image], self.fd))
        self.spec = (_SpecFrames(self.file) if "spec_frames" in self.file
                     else _SampleArray(self.file["spec"], self.fd))
        self.target = (_SampleArray(self.file["target"], self.fd)
                       if "target" in self.file else None)
        self.meta = _decode_meta(self.file["meta"][:])
        names = tuple(self.meta)
        # One dict per sample, built once: a per-item lookup of every field
        # would cost more than reading the arrays.
        self.rows = [dict(zip(names, values))
                     for values in zip(*(col.tolist() for col in self.meta.values()))]

    def close(self) -> None:
        os.close(self.fd)
        self.file.close()


class SnippetDataset:
    """The paired snippets of one split of a packed dataset.

    Parameters
    ----------
    root : str or Path
        The dataset folder (with ``index.json``).
    split : {"train", "valid", "test"}

    Notes
    -----
    ``dataset[i]`` returns ``(sheet, spec, meta)``: ``sheet`` uint8
    [shape=(H, W)], ``spec`` float16 or float32 [shape=(F, T)] and ``meta`` a
    dict of the sample's metadata (see ``docs/FORMAT.md``).  Samples are in
    the order of the shards: sorted by piece, performance and onset.
    """

    #: The ``task`` of ``index.json`` this reader serves; the image dataset of its shards.
    TASK = "snippets"
    IMAGE = "sheet"

    def __init__(self, root: str | Path, split: str) -> None:
        self.root = Path(root)
        self.index = _read_index(self.root)
        task = self.index.get("task", "snippets")
        if task != self.TASK:
            reader = "ScoreFollowingDataset" if task == "score-following" else "SnippetDataset"
            raise InputError(f"{self.root}: a {task!r} dataset; read it with {reader}")
        if split not in self.index["splits"]:
            raise InputError(f"{self.root}: no split {split!r}; "
                             f"splits: {sorted(self.index['splits'])}")
        self.split = split
        shards = self.index["splits"][split]["shards"]
        if not shards and self.index["splits"][split]["count"]:
            raise InputError(f"{self.root}: the {split} split has no shards (a dataset of "
                             "piece files only); read it with msmd_prep.reader.SnippetReader")
        self._paths = [self.root / s["path"] for s in shards]
        self._counts = [int(s["count"]) for s in shards]
        self._starts = np.concatenate([[0], np.cumsum(self._counts)]).astype(np.int64).tolist()
        self.sheet_shape = tuple(self.index[f"{self.IMAGE}_shape"])
        self.spec_shape = tuple(self.index["spec_shape"])
        self.spec_dtype = np.dtype(self.index["spec_dtype"])
        self._pid: int | None = None
        self._shards: list[_Shard | None] = []

    def __len__(self) -> int:
        return self._starts[-1]

    def __getstate__(self) -> dict:
        # Open HDF5 handles do not cross processes; the copy opens its own.
        return self.__dict__ | {"_pid": None, "_shards": []}

    def _shard(self, k: int) -> _Shard:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._shards = [None] * len(self._paths)
        shard = self._shards[k]
        if shard is None:
            shard = self._shards[k] = _Shard(self._paths[k], self.IMAGE)
        return shard

    def _locate(self, i: int) -> tuple[int, int]:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"sample {i} out of range for {n} samples")
        k = bisect.bisect_right(self._starts, i) - 1
        return k, i - self._starts[k]

    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        """``ds[i] -> (sheet, spec, meta)``; ``ds[[i, j, ...]]`` -> a batch.

        A batch is ``(sheet [shape=(B, H, W)], spec [shape=(B, F, T)], meta)``
        with ``meta`` a dict of arrays [shape=(B,)].  With a torch
        ``DataLoader(ds, batch_size=None, sampler=BatchSampler(...))`` each
        worker reads whole batches this way, without per-sample collation.
        """
        if isinstance(i, (list, tuple, np.ndarray)):
            return self._batch(np.asarray(i, dtype=np.int64).reshape(-1))
        k, j = self._locate(operator.index(i))
        shard = self._shard(k)
        return shard.sheet.read(j), shard.spec.read(j), dict(shard.rows[j])

    def _batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        n = len(self)
        indices = np.where(indices < 0, indices + n, indices)
        if len(indices) and not (0 <= indices.min() and indices.max() < n):
            raise IndexError(f"sample indices out of range for {n} samples")
        shard_of = np.searchsorted(self._starts, indices, side="right") - 1
        sheet = np.empty((len(indices), *self.sheet_shape), dtype=np.uint8)
        spec = np.empty((len(indices), *self.spec_shape), dtype=self.spec_dtype)
        meta: dict[str, np.ndarray] = {}
        for k in np.unique(shard_of).tolist():
            shard = self._shard(k)
            where = np.nonzero(shard_of == k)[0]
            local = indices[where] - self._starts[k]
            for pos, j in zip(where.tolist(), local.tolist()):
                shard.sheet.read_into(j, sheet[pos])
                shard.spec.read_into(j, spec[pos])
            for name, col in shard.meta.items():
                if name not in meta:
                    meta[name] = np.empty(len(indices), dtype=col.dtype)
                meta[name][where] = col[local]
        return sheet, spec, meta

    def close(self) -> None:
        """Close the files this process opened."""
        for shard in self._shards:
            if shard is not None:
                shard.close()
        self._shards = [None] * len(self._paths)

    def iter_batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                     drop_last: bool = False, window_batches: int = 16,
                     ) -> Iterator[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]]:
        """Read the split in batches with contiguous reads.

        Parameters
        ----------
        batch_size : int
            Samples per batch.
        shuffle : bool
            Without it, samples come in dataset order.  With it, shards and
            windows of ``window_batches * batch_size`` contiguous samples
            are visited in random order and the samples of each window are
            permuted (a block shuffle: samples are mixed within a window).
        seed : int
            Seeds the shuffle.
        drop_last : bool
            Drop the last batch of a window or shard when it is short.
        window_batches : int
            Batches per window read at once.

        Yields
        ------
        sheet : np.ndarray [shape=(B, H, W), dtype=uint8]
        spec : np.ndarray [shape=(B, F, T)]
        meta : dict of str to np.ndarray [shape=(B,)]
        """
        if not (isinstance(batch_size, int) and batch_size > 0):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        rng = np.random.default_rng(seed)
        window = batch_size * window_batches
        shard_order = rng.permutation(len(self._paths)) if shuffle else range(len(self._paths))
        for k in shard_order:
            shard = self._shard(int(k))
            count = self._counts[k]
            starts = np.arange(0, count, window)
            if shuffle:
                starts = rng.permutation(starts)
            for lo in starts.tolist():
                hi = min(lo + window, count)
                sheet, spec = shard.sheet.read_range(lo, hi), shard.spec.read_range(lo, hi)
                order = rng.permutation(hi - lo) if shuffle else None
                for b in range(0, hi - lo, batch_size):
                    if drop_last and b + batch_size > hi - lo:
                        break
                    sel = slice(b, b + batch_size) if order is None else order[b:b + batch_size]
                    meta = {name: col[lo:hi][sel] for name, col in shard.meta.items()}
                    yield sheet[sel], spec[sel], meta


@dataclass(frozen=True)
class PiecePerformance:
    """One performance of one piece, as training code samples from it.

    Attributes
    ----------
    piece, performance, split : str
    unrolled : np.ndarray [shape=(band_height, width), dtype=uint8]
        The unrolled score at the dataset preset's scale.
    spec : np.ndarray [shape=(F, n_frames)]
        The whole spectrogram.
    onsets : dict of str to np.ndarray [shape=(n,)]
        ``notehead_id``, ``pitch``, ``system``, ``onset_s``, ``onset_frame``,
        ``unrolled_x``, ``unrolled_y``, sorted by onset: the onset <-> x mapping.
    layout : dict
        The bands of the unrolled score (as ``unrolled.json``).
    tempo_factor : float
    soundfont : dict
        Name, checksum, bank, preset of the SoundFont.
    """

    piece: str
    performance: str
    split: str
    unrolled: np.ndarray
    spec: np.ndarray
    onsets: dict[str, np.ndarray]
    layout: dict
    tempo_factor: float
    soundfont: dict

    @property
    def onset_to_x(self) -> np.ndarray:
        """MSMD's ``o2c`` map [shape=(n, 2)]: onset frame and unrolled x of every onset."""
        return np.stack([self.onsets["onset_frame"].astype(np.float64),
                         self.onsets["unrolled_x"].astype(np.float64)], axis=1)


class ScoreFollowingDataset(SnippetDataset):
    """The samples of one split of a score-following dataset (``pack --task score-following``).

    Parameters
    ----------
    root : str or Path
        The dataset folder (with ``index.json``).
    split : {"train", "valid", "test"}

    Notes
    -----
    ``dataset[i]`` returns ``(staff, spec, target, meta)``: the staff-system
    image uint8 [shape=(H, W)], the spectrogram excerpt [shape=(F, T)] whose
    last column is the onset frame, the soft bucket target float32
    [shape=(B,)] (sums to 1) and a dict of the sample's metadata
    (``head_x`` is the head's x in the staff image, ``bucket`` its bucket).
    ``dataset[[i, j, ...]]`` returns a batch of the same, stacked.
    :attr:`bucket_centres` turns a predicted bucket back into an x position:
    ``x = dataset.bucket_centres[prediction.argmax()]``.
    """

    TASK = "score-following"
    IMAGE = "staff"

    def __init__(self, root: str | Path, split: str) -> None:
        super().__init__(root, split)
        self.n_buckets = int(self.index["n_buckets"])
        #: Bucket centres [shape=(B,)], pixels of the staff image.
        self.bucket_centres = np.asarray(self.index["bucket_centres_px"], dtype=np.float64)
        #: Bucket boundaries [shape=(B + 1,)]: bucket ``b`` spans ``[edges[b], edges[b+1])``.
        self.bucket_edges = np.asarray(self.index["bucket_edges_px"], dtype=np.float64)

    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        """``ds[i] -> (staff, spec, target, meta)``; ``ds[[i, j, ...]]`` -> a batch."""
        if isinstance(i, (list, tuple, np.ndarray)):
            indices = np.asarray(i, dtype=np.int64).reshape(-1)
            staff, spec, meta = self._batch(indices)
            target = np.empty((len(indices), self.n_buckets), dtype=np.float32)
            n = len(self)
            for pos, g in enumerate(np.where(indices < 0, indices + n, indices).tolist()):
                k, j = self._locate(g)
                self._shard(k).target.read_into(j, target[pos])
            return staff, spec, target, meta
        k, j = self._locate(operator.index(i))
        shard = self._shard(k)
        return (shard.sheet.read(j), shard.spec.read(j), shard.target.read(j),
                dict(shard.rows[j]))

    def iter_batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                     drop_last: bool = False, window_batches: int = 16,
                     ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, dict]]:
        """Batches ``(staff, spec, target, meta)`` of the split.

        With ``shuffle``, windows of ``window_batches * batch_size``
        consecutive samples are visited in random order and permuted inside
        (the block shuffle of :meth:`SnippetDataset.iter_batches`).
        """
        if not (isinstance(batch_size, int) and batch_size > 0):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        rng = np.random.default_rng(seed)
        n, window = len(self), batch_size * window_batches
        starts = np.arange(0, n, window)
        for lo in (rng.permutation(starts) if shuffle else starts).tolist():
            order = np.arange(lo, min(lo + window, n))
            if shuffle:
                order = rng.permutation(order)
            for b in range(0, len(order), batch_size):
                if drop_last and b + batch_size > len(order):
                    break
                yield self[order[b:b + batch_size]]


class PieceDataset:
    """Whole pieces of a packed dataset, one item per (piece, performance).

    Parameters
    ----------
    root : str or Path
        The dataset folder.
    split : str, optional
        Only the pieces of this split.
    """

    def __init__(self, root: str | Path, split: str | None = None) -> None:
        self.root = Path(root)
        self.index = _read_index(self.root)
        if self.index.get("task", "snippets") != "snippets":
            raise InputError(f"{self.root}: a {self.index['task']!r} dataset has no whole "
                             "pieces; read it with ScoreFollowingDataset")
        pieces = self.index["pieces"]
        self.items = [(name, perf) for name in sorted(pieces)
                      if split is None or pieces[name]["split"] == split
                      for perf in pieces[name]["performances"]]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> PiecePerformance:
        name, perf = self.items[operator.index(i)]
        entry = self.index["pieces"][name]
        with h5py.File(self.root / entry["file"], "r") as f:
            group = f[perf]
            table = group["onsets"][:]
            return PiecePerformance(
                piece=name, performance=perf, split=entry["split"],
                unrolled=f["unrolled"][:], spec=group["spec"][:],
                onsets=_decode_meta(table), layout=json.loads(f.attrs["layout"]),
                tempo_factor=float(group.attrs["tempo_factor"]),
                soundfont=json.loads(group.attrs["soundfont"]))
