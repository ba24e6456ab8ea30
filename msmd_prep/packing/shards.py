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
from collections.abc import Mapping
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


def write_snippet_shard(path: Path, arrays: Mapping[str, np.ndarray], *, chunk_samples: int,
                        attrs: Mapping[str, str | int], sheet_shape: tuple[int, int],
                        image: str = "sheet") -> None:
    """Write one shard from ``image``, ``spec`` (excerpts) and ``meta`` arrays.

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
