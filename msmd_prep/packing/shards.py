"""Compressed snippet shards: fixed samples, stored compactly.

A snippet shard holds ``N`` samples (a score-following shard likewise, with
its ``staff`` images in place of ``sheet`` and its ``target`` as is):

* ``sheet`` uint8 (N, H, W): the sheet excerpts, one sample per chunk,
  each compressed on its own (Blosc LZ4HC), so that a random read decodes
  one sample, fast;
* ``spec_frames`` (F, M) and ``spec_offset`` int64 (N,): the spectrogram
  excerpt of sample ``i`` is ``spec_frames[:, spec_offset[i]:spec_offset[i] + T]``.
  The excerpts of one performance overlap (consecutive onsets are frames
  apart), so each run of samples of one performance stores the frames it
  spans once (zeros where no excerpt reaches), 10 to 20 times less than
  the excerpts; the reader loads ``spec_frames`` whole when it opens the shard;
* ``meta`` (N,): the structured metadata.

The codec (``msmd_prep.pieces.CODECS``, chosen by measurement) is recorded
in the attribute ``codecs``.  Sheets stored one sample per chunk are
compressed where the samples are made (:func:`compress_sheets`, in pack's
workers); the process that writes the shard only copies the chunks.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from .blosc_pin import serial_blosc
from .core import new_h5
from .pieces import SPEC_CHUNK_FRAMES, codec, codecs_attr

# One sample per chunk, decoded at every random read: LZ4HC decodes a sheet
# excerpt 3.3x faster than zstd-5 (10.9 vs 36 us) for 10 % more bytes
# (6 430 vs 5 840 per excerpt), measured on Mutopia train excerpts.  Level 5,
# not 9: compressing is most of pack's work, and on 3 000 Mutopia excerpts
# level 9 took 1.45 ms each against 0.36 ms at 5, for 2.3 % fewer bytes
# (6 953 vs 7 116) and the same decode time (9.9 vs 11.5 us).
SHEET_CODEC = "blosc-lz4hc"
SPEC_CODEC = "blosc-zstd"
META_CODEC = "gzip-4"
# The Blosc compressor codes of HDF5's Blosc filter (its compression_opts[6]).
_BLOSC_NAMES = {0: "blosclz", 1: "lz4", 2: "lz4hc", 3: "snappy", 4: "zlib", 5: "zstd"}


def compress_sheets(sheets: np.ndarray, seen: dict[bytes, tuple[int, bytes]] | None = None,
                    ) -> np.ndarray:
    """Each sheet excerpt as the shard's chunk of one sample, compressed with :data:`SHEET_CODEC`.

    Parameters
    ----------
    sheets : np.ndarray [shape=(n, H, W), dtype=uint8]
    seen : dict, optional
        Chunks already made, by the BLAKE2b-256 digest of the raw image;
        updated.  An image met again (the heads of a chord, the same excerpt
        in every performance of a piece without augmentation, every head of
        one staff system in score following) reuses its chunk: Blosc's output
        is a function of its input and settings, so the bytes are the same,
        and compressing is most of pack's work (LZ4HC at level 5: about 0.4 ms
        of CPU per 160 x 200 excerpt).

    Returns
    -------
    chunks : np.ndarray [shape=(n,), dtype=object]
        ``(filter_mask, bytes)`` per sample: the bytes HDF5's Blosc filter
        stores (mask 0; the same settings, Blosc's format), or the raw sample
        where Blosc does not make it smaller (mask 1: the filter skipped, as
        HDF5 stores a chunk that an optional filter fails on).
    """
    import blosc

    opts = codec(SHEET_CODEC)["compression_opts"]
    clevel, shuffle, cname = opts[4], opts[5], _BLOSC_NAMES[opts[6]]
    sheets = np.ascontiguousarray(sheets)
    seen = {} if seen is None else seen
    chunks = np.empty(len(sheets), dtype=object)
    with serial_blosc():
        for i, sheet in enumerate(sheets):
            raw = sheet.tobytes()
            key = hashlib.blake2b(raw, digest_size=32).digest()
            if key not in seen:
                packed = blosc.compress(raw, typesize=sheets.itemsize, clevel=clevel,
                                        shuffle=shuffle, cname=cname)
                seen[key] = (0, packed) if len(packed) <= len(raw) else (1, raw)
            chunks[i] = seen[key]
    return chunks


def _write_sheet(f: h5py.File, name: str, sheet: np.ndarray, *, chunk_samples: int,
                 sheet_shape: tuple[int, int]) -> None:
    """The dataset ``name`` from images (n, H, W) or from :func:`compress_sheets` chunks."""
    if sheet.dtype != object:
        rows = max(1, min(chunk_samples, len(sheet)))
        f.create_dataset(name, data=sheet, chunks=(rows, *sheet.shape[1:]),
                         track_times=False, **codec(SHEET_CODEC))
        return
    ds = f.create_dataset(name, shape=(len(sheet), *sheet_shape), dtype=np.uint8,
                          chunks=(1, *sheet_shape), track_times=False, **codec(SHEET_CODEC))
    for i, (mask, data) in enumerate(sheet):
        ds.id.write_direct_chunk((i, 0, 0), data, filter_mask=mask)


def spec_runs(spec: np.ndarray, starts: np.ndarray, runs: np.ndarray,
              ) -> tuple[np.ndarray, np.ndarray]:
    """The frames that ``n`` excerpts span, once per run, and where each excerpt starts in them.

    Parameters
    ----------
    spec : np.ndarray [shape=(n, F, T)]
        The excerpts.
    starts : np.ndarray [shape=(n,)]
        First frame of each excerpt in its performance's spectrogram.
    runs : np.ndarray [shape=(n,)]
        Run label of each excerpt (samples of one performance in a row share it).

    Returns
    -------
    frames : np.ndarray [shape=(F, M)]
        The runs' frames side by side, zeros where no excerpt reaches.
    offsets : np.ndarray [shape=(n,), dtype=int64]
        ``spec[i] == frames[:, offsets[i]:offsets[i] + T]``.
    """
    n, n_bins, n_frames = spec.shape
    starts = np.asarray(starts, dtype=np.int64)
    bounds = np.flatnonzero(np.r_[True, runs[1:] != runs[:-1], True]) if n else np.zeros(1, int)
    offsets = np.empty(n, dtype=np.int64)
    spans = []
    base = 0
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        first = int(starts[lo:hi].min())
        offsets[lo:hi] = base + starts[lo:hi] - first
        spans.append(int(starts[lo:hi].max()) - first + n_frames)
        base += spans[-1]
    frames = np.zeros((n_bins, base), dtype=spec.dtype)
    for i, o in enumerate(offsets.tolist()):
        frames[:, o:o + n_frames] = spec[i]
    return frames, offsets


def _covered(offsets: np.ndarray, n_frames: int, length: int) -> list[tuple[int, int]]:
    """The frame ranges ``[lo, hi)`` of ``0 .. length`` that excerpts at ``offsets`` reach."""
    spans: list[tuple[int, int]] = []
    for o in np.unique(offsets).tolist():
        lo, hi = max(o, 0), min(o + n_frames, length)
        if lo >= hi:
            continue
        if spans and lo <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], hi))
        else:
            spans.append((lo, hi))
    return spans


class SpecRuns:
    """The spectrogram excerpts of consecutive samples, as the runs of frames a shard stores.

    Part ``k`` is one run: ``frames`` (F, M) and ``offsets`` (n_k,), excerpt
    ``i`` of the run being ``frames[:, offsets[i]:offsets[i] + T]``, exactly
    what :func:`spec_runs` makes of the run's excerpts (zeros where none of
    them reaches).  A block of one performance's samples carries one run
    (:meth:`of_spectrogram`, :meth:`of_excerpts`), made where the block is
    made: ~15 times less to send from a worker than the excerpts.  Slicing
    and :meth:`concatenate` keep that invariant (a run cut by a shard
    boundary keeps only the frames its part reaches), so the shard written
    from them has the bytes of one written from the excerpts.
    """

    def __init__(self, parts: Sequence[tuple[np.ndarray, np.ndarray]], *, n_bins: int,
                 n_frames: int, dtype: np.dtype) -> None:
        self.parts = tuple(parts)
        self.n_bins, self.n_frames, self.dtype = n_bins, n_frames, np.dtype(dtype)

    @classmethod
    def of_spectrogram(cls, spec: np.ndarray, starts: np.ndarray, *, n_frames: int) -> SpecRuns:
        """The run of excerpts ``spec[:, s:s + T]`` (zeros outside ``spec`` [shape=(F, total)])."""
        starts = np.asarray(starts, dtype=np.int64)
        n_bins = spec.shape[0]
        if not len(starts):
            return cls([], n_bins=n_bins, n_frames=n_frames, dtype=spec.dtype)
        first = int(starts.min())
        frames = np.zeros((n_bins, int(starts.max()) - first + n_frames), dtype=spec.dtype)
        for lo, hi in _covered(starts, n_frames, spec.shape[1]):
            frames[:, lo - first:hi - first] = spec[:, lo:hi]
        return cls([(frames, starts - first)], n_bins=n_bins, n_frames=n_frames, dtype=spec.dtype)

    @classmethod
    def of_excerpts(cls, spec: np.ndarray, starts: np.ndarray) -> SpecRuns:
        """The run of the excerpts ``spec`` [shape=(n, F, T)] of one performance."""
        n, n_bins, n_frames = spec.shape
        parts = [spec_runs(spec, starts, np.zeros(n, np.int64))] if n else []
        return cls(parts, n_bins=n_bins, n_frames=n_frames, dtype=spec.dtype)

    @classmethod
    def concatenate(cls, items: Sequence[SpecRuns]) -> SpecRuns:
        """The samples of ``items`` one after the other (each part stays its own run)."""
        first = items[0]
        return cls([p for item in items for p in item.parts], n_bins=first.n_bins,
                   n_frames=first.n_frames, dtype=first.dtype)

    def __len__(self) -> int:
        return sum(len(offsets) for _, offsets in self.parts)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(n, F, T)``, as of the excerpts."""
        return len(self), self.n_bins, self.n_frames

    @property
    def nbytes(self) -> int:
        """Bytes of the excerpts (what a shard of them is sized by)."""
        return len(self) * self.n_bins * self.n_frames * self.dtype.itemsize

    def __getitem__(self, index: slice) -> SpecRuns:
        """Samples ``index`` (a slice of step 1); a run cut keeps only the frames its part reaches."""
        lo, hi, step = index.indices(len(self))
        if step != 1:
            raise ValueError("SpecRuns slices need step 1")
        parts, base = [], 0
        for frames, offsets in self.parts:
            a, b = max(lo - base, 0), min(hi - base, len(offsets))
            base += len(offsets)
            if a >= b:
                continue
            parts.append((frames, offsets) if (a, b) == (0, len(offsets))
                         else _cut_run(frames, offsets[a:b], self.n_frames))
        return SpecRuns(parts, n_bins=self.n_bins, n_frames=self.n_frames, dtype=self.dtype)

    def joined(self) -> tuple[np.ndarray, np.ndarray]:
        """``frames`` (F, M) and ``offsets`` (n,) of all runs side by side (:func:`spec_runs`)."""
        if not self.parts:
            return np.zeros((self.n_bins, 0), self.dtype), np.zeros(0, np.int64)
        bases = np.cumsum([0] + [frames.shape[1] for frames, _ in self.parts[:-1]])
        frames = np.concatenate([f for f, _ in self.parts], axis=1)
        offsets = np.concatenate([o + b for (_, o), b in zip(self.parts, bases.tolist())])
        return frames, offsets.astype(np.int64, copy=False)

    def bounds(self) -> np.ndarray:
        """Sample index where each run begins, and ``n`` [shape=(n_runs + 1,)]."""
        return np.cumsum([0] + [len(o) for _, o in self.parts])


def _cut_run(frames: np.ndarray, offsets: np.ndarray, n_frames: int,
             ) -> tuple[np.ndarray, np.ndarray]:
    """The run of some of a run's excerpts: only the frames they reach (:func:`spec_runs`)."""
    first = int(offsets.min())
    out = np.zeros((frames.shape[0], int(offsets.max()) - first + n_frames), frames.dtype)
    for lo, hi in _covered(offsets, n_frames, frames.shape[1]):
        out[:, lo - first:hi - first] = frames[:, lo:hi]
    return out, offsets - first


def write_snippet_shard(path: Path, arrays: Mapping[str, np.ndarray], *, chunk_samples: int,
                        attrs: Mapping[str, str | int], sheet_shape: tuple[int, int],
                        image: str = "sheet") -> None:
    """Write one shard from ``image``, ``spec`` (excerpts, or their :class:`SpecRuns`) and ``meta``.

    ``image`` names the images: ``sheet`` (snippets) or ``staff`` (score
    following).  They are (n, H, W) uint8, or, one sample per chunk, the
    chunks of :func:`compress_sheets` (``sheet_shape`` is ``(H, W)``); both
    give the same file.  Any other array (``target``) is stored as is,
    ``chunk_samples`` samples per chunk.  No timestamps are stored, so the
    same arrays give the same file.
    """
    sheet, spec, meta = arrays[image], arrays["spec"], arrays["meta"]
    change = ((meta["piece"][1:] != meta["piece"][:-1])
              | (meta["performance"][1:] != meta["performance"][:-1]))
    if isinstance(spec, SpecRuns):
        if not np.array_equal(spec.bounds(), np.flatnonzero(np.r_[True, change, True])
                              if len(meta) else np.zeros(1, int)):
            raise ValueError(f"{path}: the spectrogram runs are not the performances' runs")
        frames, offsets = spec.joined()
    else:
        runs = np.r_[0, np.cumsum(change)] if len(meta) else np.zeros(0, np.int64)
        frames, offsets = spec_runs(spec, meta["spec_start_frame"], runs)
    with new_h5(path) as f:
        for key, value in attrs.items():
            f.attrs[key] = value
        f.attrs["codecs"] = codecs_attr(**{image: SHEET_CODEC, "spec_frames": SPEC_CODEC,
                                           "meta": META_CODEC})
        f.attrs["spec_frames"] = spec.shape[2]
        _write_sheet(f, image, sheet, chunk_samples=chunk_samples, sheet_shape=sheet_shape)
        f.create_dataset("spec_frames", data=frames, track_times=False,
                         chunks=(frames.shape[0], max(1, min(frames.shape[1], SPEC_CHUNK_FRAMES))),
                         **codec(SPEC_CODEC))
        f.create_dataset("spec_offset", data=offsets, track_times=False)
        for name, data in arrays.items():
            if name not in (image, "spec", "meta"):
                f.create_dataset(name, data=data, track_times=False,
                                 chunks=(max(1, min(chunk_samples, len(data))), *data.shape[1:]))
        f.create_dataset("meta", data=meta, chunks=(max(1, min(1024, len(meta))),),
                         track_times=False, **codec(META_CODEC))
