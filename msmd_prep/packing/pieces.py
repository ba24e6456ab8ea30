"""Piece files: one piece's unrolled score, spectrograms and onset table, stored compactly.

``pieces/<piece>.h5`` is the unit of storage of a dataset: the samples of
the piece are cut from it, by ``pack`` into shards or by
:class:`msmd_prep.reader.SnippetReader` at read time.  The unrolled score
is compressed losslessly (it is mostly white), the spectrograms are stored
as float16 (or float32) and compressed alike, and both are chunked in large
pieces for whole-piece reads.  The codec was chosen by measurement
(``benchmarks/bench_codecs.py``) and is recorded in the file (attribute
``codecs``); HDF5 also records each dataset's filter, so any HDF5 reader
with the filter decodes it.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import h5py
import hdf5plugin
from h5py import h5d, h5s, h5t
import numpy as np

from ..errors import ConfigError, InputError
from ..workdir import ensure_room
from .core import STRING_BYTES, fixed_bytes, new_h5
#: Columns per chunk of an unrolled score, frames per chunk of a spectrogram.
SHEET_CHUNK_COLS = 16384
SPEC_CHUNK_FRAMES = 8192
#: Codecs by name: h5py ``create_dataset`` keywords.  ``blosc-zstd`` (Blosc's
#: zstd at level 5, byte shuffle) needs the filter of hdf5plugin to read:
#: ``import hdf5plugin`` before opening a file with h5py (msmd-prep's readers do).
CODECS: dict[str, dict] = {
    "none": {},
    "gzip-4": {"compression": "gzip", "compression_opts": 4},
    "blosc-zstd": dict(hdf5plugin.Blosc(cname="zstd", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE)),
    "blosc-lz4": dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE)),
    "blosc-lz4hc": dict(hdf5plugin.Blosc(cname="lz4hc", clevel=5,
                                         shuffle=hdf5plugin.Blosc.NOSHUFFLE)),
}
# Measured on Mutopia (benchmarks/bench_codecs.py, docs in /work/notes/issue14.md):
# unrolled scores 9.2x smaller, spectrograms 1.35x, decoded at 2-5x the speed of gzip.
SHEET_CODEC = "blosc-zstd"
SPEC_CODEC = "blosc-zstd"
T = TypeVar("T")
ONSET_DTYPE = np.dtype([("notehead_id", f"S{STRING_BYTES}"), ("pitch", "<i2"),
                        ("system", "<i2"), ("onset_s", "<f8"), ("onset_frame", "<i8"),
                        ("unrolled_x", "<f8"), ("unrolled_y", "<f8"), ("center_y", "<f8")])


def codec(name: str) -> dict:
    """The h5py ``create_dataset`` keywords of codec ``name`` (a key of :data:`CODECS`)."""
    try:
        return CODECS[name]
    except KeyError:
        raise ConfigError(f"unknown codec {name!r}; use one of {sorted(CODECS)}") from None


@dataclass(frozen=True)
class StoredPerformance:
    """One performance as a piece file holds it.

    Attributes
    ----------
    performance : str
        Its id (``<soundfont>_t<tempo>``).
    spec : np.ndarray [shape=(F, n_frames)]
        The pack preset's spectrogram, float16 or float32.
    onsets : np.ndarray [shape=(n,), dtype=ONSET_DTYPE]
        One row per sample, in sample order (``alignment.csv`` order):
        head id, pitch, system, onset (s and frame at the preset's frame
        rate), the head's centre and its system's centre row in the unrolled score.
    tempo_factor : float
    soundfont : dict
        Name, SHA-256, bank and preset.
    """

    performance: str
    spec: np.ndarray
    onsets: np.ndarray
    tempo_factor: float
    soundfont: dict


@dataclass(frozen=True)
class StoredPiece:
    """What a piece file holds: the unrolled score, its layout and the performances."""

    piece: str
    split: str
    unrolled: np.ndarray
    layout: dict
    performances: tuple[StoredPerformance, ...]


def write_piece_file(path: Path, piece: StoredPiece, *, attrs: Mapping[str, str | int],
                     sheet_codec: str = SHEET_CODEC, spec_codec: str = SPEC_CODEC) -> None:
    """Write ``piece`` to ``path`` (no timestamps: the same piece gives the same bytes).

    The file is written under a temporary name and renamed when complete.

    Datasets: ``unrolled`` uint8 (band_height, width); per performance id a
    group with ``spec`` (F, n_frames) and ``onsets`` (:data:`ONSET_DTYPE`),
    and attributes ``tempo_factor`` and ``soundfont`` (JSON).  File
    attributes: ``attrs``, ``piece``, ``split``, ``layout`` (JSON),
    ``performances`` (JSON list, sample order) and ``codecs`` (JSON:
    ``{"sheet": name, "spec": name}`` with their HDF5 filter settings).
    """
    sheet_kw, spec_kw = codec(sheet_codec), codec(spec_codec)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    # Uncompressed sizes: an upper bound of what the file needs.
    ensure_room(tmp, piece.unrolled.nbytes + sum(p.spec.nbytes + p.onsets.nbytes
                                                 for p in piece.performances))
    with new_h5(tmp) as f:
        for key, value in attrs.items():
            f.attrs[key] = value
        f.attrs["piece"] = piece.piece
        f.attrs["split"] = piece.split
        f.attrs["layout"] = json.dumps(piece.layout)
        f.attrs["performances"] = json.dumps([p.performance for p in piece.performances])
        f.attrs["codecs"] = codecs_attr(sheet=sheet_codec, spec=spec_codec)
        image = piece.unrolled
        f.create_dataset("unrolled", data=image, track_times=False,
                         chunks=_chunks(image.shape, SHEET_CHUNK_COLS) if sheet_kw else None,
                         **sheet_kw)
        for perf in piece.performances:
            group = f.create_group(perf.performance, track_order=True)
            group.create_dataset("spec", data=perf.spec, track_times=False,
                                 chunks=_chunks(perf.spec.shape, SPEC_CHUNK_FRAMES)
                                 if spec_kw else None, **spec_kw)
            group.create_dataset("onsets", data=perf.onsets, track_times=False)
            group.attrs["tempo_factor"] = perf.tempo_factor
            group.attrs["soundfont"] = json.dumps(perf.soundfont, sort_keys=True)
    os.replace(tmp, path)


def codecs_attr(**names: str) -> str:
    """JSON of the codecs used, by role: ``{role: {"name": ..., <h5py keywords>}}``."""
    return json.dumps({role: {"name": name, **{k: list(v) if isinstance(v, tuple) else v
                                               for k, v in codec(name).items()}}
                       for role, name in names.items()})


def _chunks(shape: tuple[int, ...], cols: int) -> tuple[int, int] | None:
    if 0 in shape:
        return None
    return shape[0], min(shape[1], cols)


def read_piece_file(path: Path) -> StoredPiece:
    """Read a piece file whole.

    Raises
    ------
    InputError
        The file is missing, unreadable or lacks a dataset.
    """
    attrs, unrolled, perfs = _read_piece(path, lambda dataset: dataset[:])
    return StoredPiece(piece=str(attrs["piece"]), split=str(attrs["split"]), unrolled=unrolled,
                       layout=json.loads(attrs["layout"]),
                       performances=tuple(StoredPerformance(*p) for p in perfs))


def _read_piece(path: Path, large: Callable[[h5py.Dataset], T],
                ) -> tuple[dict, T, list[tuple[str, T, np.ndarray, float, dict]]]:
    """A piece file's ``piece``, ``split`` and ``layout`` attributes,
    ``large(unrolled)`` and, in sample order, per performance ``(name,
    large(spec), onsets, tempo_factor, soundfont)``: one reader of the layout
    for both the whole read and the read that leaves the arrays encoded.

    Raises
    ------
    InputError
        The file is missing, unreadable or lacks a dataset.
    """
    try:
        # One descriptor per file for the raw reads of its onset tables.
        with h5py.File(path, "r") as f, open(path, "rb", buffering=0) as raw:
            perfs = []
            for name in json.loads(f.attrs["performances"]):
                group = f[name]
                perfs.append((name, large(group["spec"]), _values(group["onsets"], raw.fileno()),
                              float(group.attrs["tempo_factor"]),
                              json.loads(group.attrs["soundfont"])))
            attrs = {key: f.attrs[key] for key in ("piece", "split", "layout")}
            return attrs, large(f["unrolled"]), perfs
    except (OSError, KeyError, ValueError) as e:
        raise InputError(f"{path}: unreadable piece file ({e})") from e


def _values(ds: h5py.Dataset, fd: int) -> np.ndarray:
    """``ds[()]`` of a dataset with a shape: its bytes as stored when that is ``ds[()]``.

    An onset table per performance is read at every reader's start: through
    h5py's selections it costs about 1 ms, through HDF5's compound type
    conversion 0.6 ms; a contiguous dataset whose stored type is the
    numpy dtype's (the tables pack writes) is read as its bytes from ``fd``,
    a descriptor of the dataset's file.
    """
    dsid = ds.id
    out = np.empty(dsid.shape, dsid.dtype)
    if not out.size:
        return out
    offset = dsid.get_offset()
    if (offset is not None and dsid.get_storage_size() == out.nbytes
            and dsid.get_type() == h5t.py_create(out.dtype)):
        raw = os.pread(fd, out.nbytes, offset)
        if len(raw) == out.nbytes:
            out.reshape(-1).view(np.uint8)[:] = np.frombuffer(raw, np.uint8)
            return out
    dsid.read(h5s.ALL, h5s.ALL, out)
    return out


def onset_table(*, notehead_id: Sequence[str], pitch: np.ndarray, system: np.ndarray,
                onset_s: np.ndarray, onset_frame: np.ndarray, unrolled_x: np.ndarray,
                unrolled_y: np.ndarray, center_y: np.ndarray) -> np.ndarray:
    """The :data:`ONSET_DTYPE` table of one performance from its columns [shape=(n,)]."""
    table = np.zeros(len(onset_s), dtype=ONSET_DTYPE)
    table["notehead_id"] = [fixed_bytes(h) for h in notehead_id]
    for name, column in (("pitch", pitch), ("system", system), ("onset_s", onset_s),
                         ("onset_frame", onset_frame), ("unrolled_x", unrolled_x),
                         ("unrolled_y", unrolled_y), ("center_y", center_y)):
        table[name] = column
    return table


#: HDF5's filter id of Blosc (hdf5plugin's filter).
BLOSC_FILTER = 32001


@dataclass(frozen=True)
class StoredArray:
    """A dataset of a piece file, not decoded yet: its Blosc chunks, or its values.

    Attributes
    ----------
    shape : tuple of int
    dtype : np.dtype
    chunks : tuple of (int, int, int, int)
        ``(first column, file offset, size in bytes, filter mask)`` of each
        chunk of ``chunk_shape``, all rows per chunk (the layout
        :func:`write_piece_file` writes; mask 1: stored as is, Blosc could
        not shrink it); empty when ``values`` holds the array.
    chunk_shape : tuple of int
    values : np.ndarray or None
        The array, read by HDF5 (any other layout or filter).
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    chunks: tuple[tuple[int, int, int, int], ...]
    chunk_shape: tuple[int, ...]
    values: np.ndarray | None

    @classmethod
    def of(cls, ds: h5py.Dataset) -> StoredArray:
        """Where the chunks of ``ds`` are (Blosc, 2-D, chunked by columns), or its values."""
        # The low-level calls: h5py's properties cost 0.1-0.2 ms each.
        dsid = ds.id
        shape, dtype = tuple(dsid.shape), dsid.dtype
        plist = dsid.get_create_plist()
        chunk_shape = (tuple(plist.get_chunk()) if plist.get_layout() == h5d.CHUNKED
                       else None)
        if (len(shape) == 2 and chunk_shape is not None and chunk_shape[0] == shape[0]
                and plist.get_nfilters() == 1 and plist.get_filter(0)[0] == BLOSC_FILTER
                and dtype.isnative and 0 not in shape):
            chunks = [(info.chunk_offset[1], info.byte_offset, info.size, info.filter_mask)
                      for info in map(dsid.get_chunk_info, range(dsid.get_num_chunks()))]
            if len(chunks) == -(-shape[1] // chunk_shape[1]):
                return cls(shape, dtype, tuple(sorted(chunks)), chunk_shape, None)
        return cls(shape, dtype, (), chunk_shape or shape, ds[()])

    def blocks(self, fd: int, scratch: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """``(first column, block [shape=(rows, columns)])`` covering the array, left to right.

        Blosc chunks are read from the open file ``fd`` and decoded into
        ``scratch`` (uint8, at least one chunk's bytes; each block is a
        view of it, valid until the next); python-blosc releases the GIL
        while decoding when ``blosc.set_releasegil(True)``.
        """
        if self.values is not None:
            yield 0, self.values
            return
        import blosc

        rows, cols = self.chunk_shape
        nbytes = rows * cols * self.dtype.itemsize
        out = scratch[:nbytes].view(self.dtype).reshape(rows, cols)
        for first, offset, size, mask in self.chunks:
            raw = os.pread(fd, size, offset)
            if mask and len(raw) == nbytes:
                out.reshape(-1).view(np.uint8)[:] = np.frombuffer(raw, np.uint8)
            elif mask or len(raw) != size or blosc.decompress_ptr(raw, out.ctypes.data) != nbytes:
                raise InputError(f"chunk at column {first}: {size} bytes do not decode to "
                                 f"{nbytes}")
            yield first, out[:, :min(cols, self.shape[1] - first)]

    @property
    def chunk_nbytes(self) -> int:
        """Bytes of one decoded chunk (0 when ``values`` holds the array)."""
        if self.values is not None:
            return 0
        return int(np.prod(self.chunk_shape)) * self.dtype.itemsize


@dataclass(frozen=True)
class PieceContents:
    """A piece file's large arrays where they are stored, and its small data.

    ``performances`` holds, in sample order, ``(performance, spec, onsets,
    tempo_factor, soundfont)`` with ``spec`` a :class:`StoredArray`.
    """

    path: Path
    piece: str
    unrolled: StoredArray
    performances: tuple[tuple[str, StoredArray, np.ndarray, float, dict], ...]


def read_piece_contents(path: Path) -> PieceContents:
    """What :func:`read_piece_file` reads, the two large arrays left encoded where they are.

    Decoding them (:meth:`StoredArray.blocks`) needs no HDF5 call: it can
    run in threads, straight into the caller's memory.

    Raises
    ------
    InputError
        The file is missing, unreadable or lacks a dataset.
    """
    attrs, unrolled, perfs = _read_piece(path, StoredArray.of)
    return PieceContents(path, str(attrs["piece"]), unrolled, tuple(perfs))
