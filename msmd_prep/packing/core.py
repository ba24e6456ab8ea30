"""The packing core: what every packed dataset shares, whatever one sample is.

A task (:mod:`.snippets`, :mod:`.score_following`) defines what one sample
is and its config; :func:`pack_pieces` does the rest, the same way for
every task:

* collect the rendered pieces of a work folder that have what the task
  reads (:func:`collect_pieces`), leaving out failed and flagged pieces;
* choose the split of every piece, from a seed or a split file
  (:func:`choose_splits`);
* build the dataset in a staging folder beside ``out`` and move it into
  place when complete (:func:`staging_folder`, :func:`replace_folder`);
* for each split, piece by piece in sorted order, write the task's sample
  blocks into shards of a size cap (:class:`ShardWriter`), then
  ``index.json`` with the shards' sha256 and the provenance.
"""
from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import json
import math
import os
import pickle
import re
import shutil
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import cv2
import h5py
import numpy as np
import yaml

from .._version import __version__
from ..align import ALIGNMENT_NAME
from ..data import INDEX_NAME, SCHEMA_VERSION
from ..errors import ConfigError, InputError, MsmdPrepError
from ..locking import folder_lock
from .blosc_pin import serial_blosc
from .schedule import iter_costly_first
from ..parallel import map_pieces
from ..stage_versions import stage_version
from .currency import LeftOut, performance_state, piece_hashes_or_reason, piece_state
from ..workdir import (ensure_room, load_npy, make_temp_dir, performance_dirs, sha256_file,
                       stale_temp_dirs, write_json_atomic)

SPLITS = ("train", "valid", "test")
SPEC_DTYPES = ("float16", "float32")
# Strings are fixed-length UTF-8, so that every shard has the same type and
# a read needs no conversion.
STRING_BYTES = 64


def meta_dtype(meta_fields: Sequence[tuple[str, str]]) -> np.dtype:
    """The structured type of per-sample metadata; ``"S"`` fields are fixed-length."""
    return np.dtype([(name, f"S{STRING_BYTES}" if kind == "S" else kind)
                     for name, kind in meta_fields])




def fixed_bytes(text: str) -> bytes:
    """``text`` as UTF-8 for a metadata string field (:func:`meta_dtype`)."""
    data = text.encode()
    if len(data) > STRING_BYTES:
        raise InputError(f"name {text!r} is longer than {STRING_BYTES} bytes of UTF-8")
    return data


def check_split_options(seed: int, split_fractions: Sequence[float]) -> None:
    """Validate a packing seed and split shares (train, valid, test).

    Raises
    ------
    ConfigError
        The seed is not an integer >= 0, or the shares are not three numbers
        >= 0 summing to 1 with train > 0.
    """
    if not (isinstance(seed, int) and seed >= 0):
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    fr = tuple(split_fractions)
    if len(fr) != 3 or min(fr) < 0 or not math.isclose(sum(fr), 1.0) or fr[0] <= 0:
        raise ConfigError(f"split_fractions must be three shares >= 0 summing to 1 with "
                          f"train > 0, got {split_fractions!r}")


def split_draw(seed: int, piece: str) -> float:
    """A number in [0, 1) drawn from ``seed`` and the piece id alone (SHA-256)."""
    digest = hashlib.sha256(f"msmd-prep split\0{seed}\0{piece}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def assign_splits(pieces: Sequence[str], *, seed: int,
                  fractions: tuple[float, float, float]) -> dict[str, str]:
    """Put each piece into train, valid or test, from ``seed`` and the pieces' ids.

    A piece's draw ``u`` (:func:`split_draw`) puts it in test when
    ``u < test``, in valid when ``u < test + valid``, else in train.  The
    shares are met on average, not exactly, so a small corpus can leave a
    split empty; when there are at least as many pieces as splits with a
    share above 0, each such split that the draws leave empty gets one piece
    (:func:`fill_empty_splits`).  Adding or removing pieces never moves
    another piece unless that fills or empties a split (in practice: only
    in corpora of a few dozen pieces or fewer).
    """
    _, valid, test = fractions
    draws = {name: split_draw(seed, name) for name in sorted(pieces)}
    out = {name: "test" if u < test else "valid" if u < test + valid else "train"
           for name, u in draws.items()}
    return fill_empty_splits(out, draws, fractions)


def fill_empty_splits(splits: Mapping[str, str], draws: Mapping[str, float],
                      fractions: tuple[float, float, float]) -> dict[str, str]:
    """``splits`` with one piece moved into each empty split whose share is above 0.

    The splits' intervals of the draw are test ``[0, t)``, valid
    ``[t, t + v)`` and train ``[t + v, 1)``.  Empty splits are filled in the
    order test, valid, train; each takes the piece whose draw is nearest its
    interval (ties: the first id) among the pieces of splits that keep at
    least one.  Nothing moves when there are fewer pieces than splits with a
    share above 0.
    """
    train, valid, test = fractions
    bounds = {"test": (0.0, test), "valid": (test, test + valid), "train": (test + valid, 1.0)}
    shares = {"train": train, "valid": valid, "test": test}
    out = dict(splits)
    wanted = [s for s in ("test", "valid", "train") if shares[s] > 0]
    if len(out) < len(wanted):
        return out
    for split in wanted:
        sizes = {s: sum(1 for v in out.values() if v == s) for s in SPLITS}
        if sizes[split]:
            continue
        lo, hi = bounds[split]
        donors = sorted(name for name, s in out.items() if sizes[s] > 1)
        out[min(donors, key=lambda n: max(lo - draws[n], draws[n] - hi, 0.0))] = split
    return out


def read_split_file(path: Path) -> dict[str, str]:
    """Piece id -> split from a YAML file ``{train: [...], valid: [...], test: [...]}``."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"split file {path} is unreadable: {e}") from e
    if not isinstance(data, dict) or set(data) - set(SPLITS):
        raise ConfigError(f"split file {path} must map some of {SPLITS} to lists of piece ids")
    splits: dict[str, str] = {}
    for split, names in data.items():
        for name in names or []:
            if str(name) in splits:
                raise ConfigError(f"split file {path}: piece {name!r} is in "
                                  f"{splits[str(name)]} and {split}")
            splits[str(name)] = split
    return splits


def library_versions() -> dict:
    return {"msmd-prep": __version__, "numpy": np.__version__, "h5py": h5py.__version__,
            "hdf5": h5py.version.hdf5_version, "opencv": cv2.__version__,
            "pyyaml": importlib.metadata.version("pyyaml")}


@dataclass(frozen=True)
class PerformanceInput:
    """What pack reads of one performance."""

    piece: str
    performance: str
    perf_dir: Path
    soundfont: dict
    tempo_factor: float
    spec_meta: dict
    kind: str = "synthesized"


def performance_inputs(piece: Path, spectrogram_preset: str, *, needed_by: str,
                       only: Collection[str] | None = None,
                       include_flagged: bool = False) -> PieceInputs:
    """The performances of ``piece`` that can be packed with ``spectrogram_preset``.

    Parameters
    ----------
    piece : Path
        A rendered piece folder.
    spectrogram_preset : str
        The spectrogram the task reads.
    needed_by : str
        Who needs it, for the messages.
    only : collection of str, optional
        The performance ids asked for (``dataset``: this run's SoundFonts x
        tempos); one asked for but absent is ``missing``.  Default: every
        performance folder of the piece.
    include_flagged : bool
        Pack performances whose self-checks failed.

    Returns
    -------
    PieceInputs
        The packable performances, and every other one with its reason (see
        :mod:`msmd_prep.packing.currency`).

    Raises
    ------
    InputError
        The piece itself cannot be packed (failed, stale, flagged, unreadable),
        or none of its performances can; the message gives the reason.
    """
    why = piece_state(piece, include_flagged=include_flagged)
    if why:
        raise LeftOutError(why)
    piece_hashes, why = piece_hashes_or_reason(piece)
    if why:
        raise LeftOutError(why)
    dirs = {d.name: d for d in performance_dirs(piece)}
    wanted = sorted(dirs) if only is None else sorted(only)
    found, left_out = [], {}
    for perf_id in wanted:
        if perf_id not in dirs:
            left_out[perf_id] = LeftOut("missing", f"not synthesized ({needed_by}); "
                                                   "run `msmd-prep synth WORKDIR`")
            continue
        perf_dir = dirs[perf_id]
        perf, spec_meta, why = performance_state(piece, perf_dir, spectrogram_preset,
                                                 piece_hashes=piece_hashes,
                                                 include_flagged=include_flagged)
        if why:
            left_out[perf_id] = why
            continue
        found.append(PerformanceInput(piece.name, perf_id, perf_dir, perf["soundfont"],
                                      float(perf["tempo_factor"]), spec_meta,
                                      perf.get("kind", "synthesized")))
    if not found:
        reasons = "; ".join(f"{p} {w}" for p, w in left_out.items()) or "no performance"
        raise LeftOutError(LeftOut(_worst(left_out.values()), f"no performance to pack "
                                   f"({reasons})"), left_out)
    return PieceInputs(found, left_out)


def _worst(reasons: Iterable[LeftOut]) -> str:
    """The reason a piece is left out for when all its performances are."""
    kinds = {w.reason for w in reasons}
    return next((k for k in ("unreadable", "stale", "flagged", "missing") if k in kinds),
                "missing")


class LeftOutError(InputError):
    """A piece cannot be packed; :attr:`why` says why, :attr:`performances` per performance."""

    def __init__(self, why: LeftOut, performances: Mapping[str, LeftOut] | None = None) -> None:
        super().__init__(str(why))
        self.why = why
        self.performances = dict(performances or {})

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return LeftOutError, (self.why, self.performances)


@dataclass(frozen=True)
class PieceInputs:
    """What a task packs of one piece: its performances, and those it leaves out, why."""

    perfs: list[PerformanceInput]
    left_out: dict[str, LeftOut] = field(default_factory=dict)


def collect_pieces(workdir: Path, read_inputs: Callable[..., PieceInputs], *,
                   include_flagged: bool, result: PackResult,
                   only: Mapping[str, Collection[str]] | None = None, jobs: int = 1,
                   scheduler: str | None = None,
                   ) -> dict[str, tuple[Path, list[PerformanceInput]]]:
    """The pieces of ``workdir`` to pack, with their performances, by name.

    ``only`` (piece name -> performance ids) packs exactly those, as
    ``dataset`` asks; by default every rendered piece with every performance.
    A piece that cannot be packed at all goes to ``result.failures``; every
    piece or performance left out to ``result.left_out`` with its reason,
    flagged ones also to ``result.flagged``.  A piece whose name, or one of
    whose performance or head ids, is too long for the metadata is left out
    (``unreadable``) before anything is written.  The pieces are read in
    ``jobs`` processes or on the Dask ``scheduler`` (:func:`read_piece`);
    the outcome does not depend on where.

    Raises
    ------
    InputError
        No piece is left to pack.
    """
    inputs = {}
    folders = {p.name: p for p in all_piece_dirs(workdir)}
    names = sorted(folders) if only is None else sorted(only)
    reads = [PieceRead(read_inputs, name, folders.get(name),
                       None if only is None else tuple(only[name]), include_flagged)
             for name in names]
    for read, outcome in zip(reads, map_pieces(read_piece, reads, jobs=jobs,
                                               scheduler=scheduler)):
        name, piece = read.name, read.piece
        if isinstance(outcome, LeftOutError):
            _leave_out(result, name, outcome.why, outcome.performances)
            # A failed render was reported by render; a flagged piece is flagged.
            if outcome.why.reason not in ("failed", "flagged"):
                result.failures.append((str(piece or Path(workdir) / name), str(outcome.why)))
            continue
        if isinstance(outcome, str):
            _leave_out(result, name, LeftOut("unreadable", outcome), {})
            result.failures.append((str(piece), outcome))
            continue
        _leave_out(result, None, None, {f"{name}/{p}": w for p, w in outcome.left_out.items()})
        flagged = [f"{p}: {w.detail}" for p, w in outcome.left_out.items()
                   if w.reason == "flagged"]
        if flagged:
            result.flagged[name] = "; ".join(flagged)
        inputs[name] = (piece, outcome.perfs)
    if not inputs:
        raise InputError(f"{workdir}: no piece to pack"
                         + (f" ({result.failures[0][1]})" if result.failures else ""))
    return inputs


@dataclass(frozen=True)
class PieceRead:
    """What :func:`read_piece` reads of one piece, picklable for a worker process."""

    read_inputs: Callable[..., PieceInputs]
    name: str
    piece: Path | None
    only: tuple[str, ...] | None
    include_flagged: bool


def read_piece(read: PieceRead) -> PieceInputs | LeftOutError | str:
    """The performances of one piece to pack, why it is left out, or why it is unreadable."""
    try:
        if read.piece is None:
            raise LeftOutError(LeftOut("missing", "no piece folder; run `msmd-prep render`"))
        selected = read.read_inputs(read.piece, only=read.only,
                                    include_flagged=read.include_flagged)
        check_names(read.name, selected.perfs)
    except LeftOutError as e:
        return e
    except MsmdPrepError as e:
        return str(e)
    return selected


def _leave_out(result: PackResult, name: str | None, why: LeftOut | None,
               performances: Mapping[str, LeftOut]) -> None:
    if name is not None and why is not None:
        result.left_out[name] = why
        if why.reason == "flagged":
            result.flagged[name] = why.detail
    for key, w in performances.items():
        result.left_out[key if name is None else f"{name}/{key}"] = w


def all_piece_dirs(workdir: Path) -> list[Path]:
    """Every piece folder of ``workdir`` (rendered or failed), sorted by name."""
    return sorted(p for p in Path(workdir).iterdir()
                  if p.is_dir() and not p.name.startswith(".") and (p / "piece.json").exists())


def check_names(piece: str, perfs: Sequence[PerformanceInput]) -> None:
    """Every id that goes into the metadata fits it (:data:`STRING_BYTES`).

    Raises
    ------
    InputError
        The piece name, a performance or SoundFont name, or a head id of an
        alignment is too long.
    """
    fixed_bytes(piece)
    for perf in perfs:
        fixed_bytes(perf.performance)
        fixed_bytes(str(perf.soundfont.get("name", "")))
        path = perf.perf_dir / ALIGNMENT_NAME
        if _ids_fit(path.read_bytes()):
            continue
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                fixed_bytes(row["notehead_id"])


# A row whose first field may be longer than STRING_BYTES bytes, or is quoted.
_MAYBE_LONG_ROW = re.compile(rb'[\r\n](?:"|[^,\r\n]{%d})' % (STRING_BYTES + 1))


def _ids_fit(alignment_csv: bytes) -> bool:
    """True when no head id of the ``alignment.csv`` bytes can exceed :data:`STRING_BYTES`.

    Without parsing: ``notehead_id`` is the first column, and every row
    starts after a line break; a row whose first field is unquoted and
    shorter than the limit up to its comma has an id that fits.  False means
    "parse to be sure" (quoted ids, another column order, a long id);
    parsing every row took 4 ms per performance.
    """
    return (alignment_csv.startswith(b"notehead_id,")
            and _MAYBE_LONG_ROW.search(alignment_csv) is None)


def choose_splits(pieces: Sequence[str], *, seed: int,
                  fractions: tuple[float, float, float],
                  split_file: str | None) -> dict[str, str]:
    """The split of every piece: from ``split_file`` if given, else by ``seed``.

    Raises
    ------
    ConfigError
        The split file does not list every piece.
    """
    if split_file is None:
        return assign_splits(list(pieces), seed=seed, fractions=fractions)
    listed = read_split_file(Path(split_file))
    unlisted = sorted(set(pieces) - set(listed))
    if unlisted:
        raise ConfigError(f"split file {split_file} does not list the pieces {unlisted}")
    return {p: listed[p] for p in pieces}


def staging_folder(out: Path) -> Path:
    """A fresh temporary folder beside ``out`` to build a dataset in.

    Its name is unique (``.<out>.tmp-<16 hex digits>``), so two packs never
    share one.  Staging folders that a killed earlier run left behind are
    removed; the caller holds the lock of ``out`` (:func:`pack_lock`), so no
    live pack owns them.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{out.name}.tmp-"
    for stale in stale_temp_dirs(out.parent, prefix):
        shutil.rmtree(stale, ignore_errors=True)
    return make_temp_dir(out.parent, prefix)


def pack_lock(out: Path):  # type: ignore[no-untyped-def]
    """The lock of the dataset folder ``out`` (``.<out>.lock`` beside it) for one pack."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return folder_lock(out.with_name(f".{out.name}.lock"), str(out))


class ShardWriter:
    """Writes sample blocks of one split into shards of at most ``max_samples`` samples.

    A block is a dataclass of arrays with one row per sample (``meta`` among
    them): :class:`SampleBlock`, or the score-following block; a field may
    also be a type with ``len``, slicing and a ``concatenate`` class method
    (the spectrogram runs, :class:`~msmd_prep.packing.shards.SpecRuns`).  Blocks are
    queued and every full shard is written at once by ``write`` (default
    :func:`write_shard`), under a temporary name renamed when complete.
    """

    def __init__(self, folder: Path, *, split: str, max_samples: int, chunk_samples: int,
                 attrs: Mapping[str, str | int],
                 write: Callable[..., None] | None = None) -> None:
        self.write = write_shard if write is None else write
        self.folder = folder
        self.split = split
        self.max_samples = max_samples
        self.chunk_samples = chunk_samples
        self.attrs = dict(attrs)
        self.shards: list[dict] = []
        #: Samples added so far.
        self.n_added = 0
        self._pending: list = []
        self._n_pending = 0

    def add(self, block) -> None:  # type: ignore[no-untyped-def]
        """Queue ``block``; write every full shard."""
        self._pending.append(block)
        self._n_pending += len(block.meta)
        self.n_added += len(block.meta)
        while self._n_pending >= self.max_samples:
            self._write(self.max_samples)

    def close(self) -> list[dict]:
        """Write the last, partial shard; the shards as ``{path, count, sha256}``.

        Closing again writes nothing more.
        """
        if self._n_pending:
            self._write(self._n_pending)
        return self.shards

    def _write(self, n: int) -> None:
        kind = type(self._pending[0])
        whole = {f.name: _concatenate([getattr(b, f.name) for b in self._pending])
                 for f in fields(kind)}
        rest = kind(**{name: array[n:] for name, array in whole.items()})
        self._pending = [rest] if len(rest.meta) else []
        self._n_pending = len(rest.meta)
        name = f"shard-{len(self.shards):05d}.h5"
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / name
        tmp = self.folder / f".{name}.tmp"
        head = {key: array[:n] for key, array in whole.items()}
        ensure_room(tmp, sum(_stored_bytes(array) for array in head.values()))
        self.write(tmp, head, chunk_samples=self.chunk_samples,
                   attrs=self.attrs | {"split": self.split, "shard": len(self.shards)})
        os.replace(tmp, path)
        self.shards.append({"path": f"{self.split}/{name}", "count": n,
                            "sha256": sha256_file(path)})


@contextmanager
def new_h5(path: Path) -> Iterator[h5py.File]:
    """A new HDF5 file of a dataset, open for writing, whose bytes depend only on what is written.

    The HDF5 1.10 file format (readable by HDF5 >= 1.10), and no chunk
    cache: every chunk is placed in the file when its dataset is written.
    With HDF5's cache a chunk is placed when its dataset object is freed,
    and in a Dask worker that was sometimes after the next dataset had been
    placed: the same arrays at other offsets, so other bytes.  Blosc
    compresses in one thread whatever ``BLOSC_NTHREADS`` says
    (:func:`~msmd_prep.packing.blosc_pin.serial_blosc`).
    """
    with serial_blosc(), h5py.File(path, "w", libver=("v110", "v110"), rdcc_nbytes=0) as f:
        yield f


def _concatenate(parts: Sequence[Any]) -> Any:
    """One block field of several blocks: arrays, or a field type with ``concatenate``
    (:class:`~msmd_prep.packing.shards.SpecRuns`)."""
    concatenate = getattr(type(parts[0]), "concatenate", None)
    return np.concatenate(parts) if concatenate is None else concatenate(parts)


def _stored_bytes(array: np.ndarray) -> int:
    """Bytes of a block field: an array, or chunks ``(filter_mask, bytes)`` made in a worker."""
    if array.dtype == object:
        return sum(len(chunk) for _, chunk in array)
    return array.nbytes


def write_shard(path: Path, arrays: Mapping[str, np.ndarray], *, chunk_samples: int,
                attrs: Mapping[str, str | int]) -> None:
    """Write one shard: one dataset per array, samples along the first axis.

    Uncompressed and chunked by ``chunk_samples`` samples, so that a random
    read touches only the chunks of its sample; ``meta``, which the reader
    loads whole, in larger chunks.  The HDF5 1.10 file format (readable by
    HDF5 >= 1.10) keeps the chunks of a fixed-size dataset back to back, so
    that a run of samples is one run of bytes.  No timestamps are stored, so
    the same arrays give the same file.
    """
    with new_h5(path) as f:
        for key, value in attrs.items():
            f.attrs[key] = value
        for name, data in arrays.items():
            rows = 1024 if name == "meta" else chunk_samples
            c = max(1, min(rows, len(data)))
            f.create_dataset(name, data=data, chunks=(c, *data.shape[1:]), track_times=False)


@dataclass
class PackResult:
    """What the pack stage made.

    Attributes
    ----------
    out : Path
        The dataset folder.
    counts : dict of str to int
        Samples per split.
    pieces : dict of str to str
        Split of each packed piece.
    failures : list of (str, str)
        ``(piece folder, cause)`` of pieces left out.
    flagged : dict of str to str
        Pieces whose self-checks (of the score, or of some performances)
        failed, with the failed checks; left out unless ``include_flagged``.
    left_out : dict of str to LeftOut
        Every piece (``name``) and performance (``name/perf_id``) not packed,
        with its reason (:mod:`msmd_prep.packing.currency`).
    """

    out: Path
    counts: dict[str, int] = field(default_factory=dict)
    pieces: dict[str, str] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    flagged: dict[str, str] = field(default_factory=dict)
    left_out: dict[str, LeftOut] = field(default_factory=dict)


def load_spec(perf: PerformanceInput, spectrogram_preset: str, *, n_bins: int,
              dtype: str) -> np.ndarray:
    """The spectrogram ``spec-<spectrogram_preset>.npy`` of ``perf`` as ``dtype``.

    Returns
    -------
    spec : np.ndarray [shape=(n_bins, n_frames)]

    Raises
    ------
    InputError
        The file is unreadable or not ``n_bins`` rows high.
    """
    path = perf.perf_dir / f"spec-{spectrogram_preset}.npy"
    try:
        spec = load_npy(path)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: unreadable spectrogram ({e})") from e
    if spec.ndim != 2 or spec.shape[0] != n_bins:
        raise InputError(f"{path}: shape {spec.shape}, expected ({n_bins}, n_frames)")
    return np.ascontiguousarray(spec.astype(dtype))


def replace_folder(new: Path, target: Path) -> None:
    """Put the finished folder ``new`` at ``target``, replacing an earlier dataset."""
    if target.exists():
        if not (target / INDEX_NAME).is_file() and any(target.iterdir()):
            raise ConfigError(f"{target} exists and is not an msmd-prep dataset; "
                              "choose another --out")
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old)
    else:
        os.replace(new, target)


#: A piece's rendered folder and the performances a task reads of it, by piece name.
Inputs = Mapping[str, tuple[Path, list[PerformanceInput]]]


@dataclass(frozen=True)
class Plan:
    """What a task fixes for the whole dataset once its inputs are known.

    Attributes
    ----------
    sample_bytes : int
        Bytes of one sample's arrays (for the shard size cap).
    chunk_samples : int
        Samples per HDF5 chunk of the sample arrays.
    shard_attrs : dict
        Attributes of every shard besides ``schema_version`` and ``provenance``
        (``preset`` or ``task``).
    provenance : dict
        What the task records of its config, besides the spectrograms,
        SoundFonts and library versions.
    index : dict
        Fields of ``index.json`` that the task adds (sample shapes and the like).
    write_shard : callable, optional
        Writes one shard (signature of :func:`write_shard`, the default).
    """

    sample_bytes: int
    chunk_samples: int
    shard_attrs: dict
    provenance: dict
    index: dict
    write_shard: Callable[..., None] | None = None


class PackTask(Protocol):
    """What one packing task defines: its config and what one sample is.

    ``config`` has the fields ``seed``, ``split_fractions``, ``split_file``,
    ``spec_dtype``, ``shard_max_mb`` and ``include_flagged``.
    """

    config: Any
    #: ``index.json`` ``format``.
    format: str
    meta_fields: Sequence[tuple[str, str]]

    def read_inputs(self, piece: Path, *, only: Collection[str] | None = None,
                    include_flagged: bool = False) -> PieceInputs:
        """The performances of ``piece`` the task packs (:func:`performance_inputs`);
        raises InputError if it cannot pack the piece."""

    def plan(self, workdir: Path, inputs: Inputs) -> Plan:
        """The dataset-wide sizes and records."""

    def open_piece(self, piece: Path) -> Any:
        """What the samples of ``piece`` are cut from (its score images)."""

    def pack_piece(self, name: str, split: str, source: Any,
                   perfs: Sequence[PerformanceInput], add: Callable[[Any], None],
                   staging: Path, attrs: Mapping[str, str | int]) -> dict:
        """Pass every sample block of one piece to ``add``; extra ``index.json`` piece fields.

        ``staging`` is the dataset folder being built, ``attrs`` the shards'
        attributes (for files of the task's own).  The extra fields may give
        ``samples`` when the task passes no blocks (a dataset without shards).
        It runs in a worker process when packing with ``jobs > 1``.
        """


@dataclass(frozen=True)
class PieceJob:
    """One piece to pack, picklable for a worker process."""

    task: Any
    name: str
    split: str
    piece: Path
    perfs: tuple[PerformanceInput, ...]
    staging: Path
    attrs: dict
    #: Hand the blocks over in a file (:func:`spill`), not through the worker's pipe.
    spill: bool = False


#: Folder of the staging folder where workers leave their pieces' blocks (:func:`spill`).
SPILL_DIR = ".blocks"


def spill(staging: Path, name: str, outcome: Any) -> Path:
    """Pickle ``outcome`` into a file of ``staging``; its path, for :func:`unspill`.

    A worker's result through its pipe is read by the executor's thread in
    the process that writes the shards, which holds the GIL while it writes
    them: the pipe then drains in 64 KB steps at each GIL switch, and the
    worker, blocked on it, waits idle (measured: gaps of 1-2 s after each
    large piece at 2 jobs).  A file is written at once and read in one call.
    """
    folder = staging / SPILL_DIR
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.pickle"
    with open(path, "wb") as f:
        pickle.dump(outcome, f, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def unspill(path: Path) -> Any:
    """What :func:`spill` wrote to ``path``; the file is removed."""
    data = path.read_bytes()
    path.unlink()
    return pickle.loads(data)


def pack_order(order: Sequence[tuple[str, Sequence[str]]], cost: Mapping[str, float],
               ) -> list[tuple[str, str]]:
    """``(split, piece)`` in the order to pack them: costly pieces early, small ones last.

    Each split's pieces keep their order (its shards are written in it);
    the splits are merged by Sidney's rule for chains: repeatedly, the
    prefix of a split's remaining pieces of the highest mean ``cost`` goes
    next (ties: the first split, the shorter prefix).  The pieces packed
    last, while a worker may have nothing left to do, are then small ones.
    The order changes when pieces are packed, never what is written.
    """
    queues = [(split, list(names)) for split, names in order]
    out: list[tuple[str, str]] = []
    while any(names for _, names in queues):
        best = (-1.0, 0, 0)
        for q, (_, names) in enumerate(queues):
            total = 0.0
            for k, name in enumerate(names, 1):
                total += cost[name]
                if total / k > best[0]:
                    best = (total / k, q, k)
        _, q, k = best
        split, names = queues[q]
        out += [(split, name) for name in names[:k]]
        del names[:k]
    return out


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def pack_one(job: PieceJob) -> tuple[list, dict] | Path | str:
    """The sample blocks and extra index fields of one piece (or the file they are spilled to,
    ``job.spill``), or why it cannot be opened."""
    try:
        source = job.task.open_piece(job.piece)
    except MsmdPrepError as e:
        return str(e)
    blocks: list = []
    extra = job.task.pack_piece(job.name, job.split, source, job.perfs, blocks.append,
                                job.staging, job.attrs)
    return spill(job.staging, job.name, (blocks, extra)) if job.spill else (blocks, extra)


def _add_piece(writer: ShardWriter, split: str, perfs: Sequence[PerformanceInput],
               outcome: tuple[list, dict] | Path) -> dict:
    """Write one piece's blocks (:func:`pack_one`) into its split's shards; its index entry."""
    blocks, extra = unspill(outcome) if isinstance(outcome, Path) else outcome
    counted = dict.fromkeys((p.performance for p in perfs), 0)
    for block in blocks:
        writer.add(block)
        for perf, n in zip(*np.unique(block.meta["performance"], return_counts=True)):
            counted[perf.decode()] += int(n)
    return {"split": split, "samples": sum(counted.values()),
            "performances": [p.performance for p in perfs], "performance_samples": counted,
            "performance_kinds": {p.performance: p.kind for p in perfs}, **extra}


def pack_pieces(workdir: Path, out: Path, task: PackTask, *, progress: bool = False,
                jobs: int = 1, scheduler: str | None = None,
                only: Mapping[str, Collection[str]] | None = None,
                request: Mapping[str, Any] | None = None) -> PackResult:
    """Pack every aligned piece of ``workdir`` into the dataset folder ``out`` with ``task``.

    The dataset is built in a temporary folder next to ``out`` and moved
    into place when complete (an earlier dataset at ``out`` is replaced).
    Splits are by piece; samples are ordered by split, piece, performance,
    then ``alignment.csv`` row.  A piece the task cannot read or open is left
    out and named in :attr:`PackResult.failures` and ``index.json``
    (``failed_pieces``); pieces that failed their self-checks are left out
    unless ``include_flagged`` (``flagged_pieces``).  Only complete and current
    outputs are packed; everything left out is in ``left_out`` with its reason
    (:mod:`msmd_prep.packing.currency`).

    ``only`` (piece name -> performance ids) packs exactly those pieces and
    performances (``dataset`` passes this run's); ``request`` records what was
    asked for in ``index.json`` (tempos, SoundFonts, presets, seed).

    Each piece's blocks are made by :func:`pack_one`, in ``jobs`` local
    processes (long pieces started early, :func:`.schedule.iter_costly_first`) or on the Dask
    ``scheduler`` (:func:`msmd_prep.parallel.iter_pieces`),
    and written into each split's shards here in piece order (the splits
    interleaved so that large pieces are packed first, :func:`pack_order`):
    the files are byte-identical to a one-process pack.
    """
    config = task.config
    result = PackResult(out=Path(out))
    inputs = collect_pieces(workdir, task.read_inputs, include_flagged=config.include_flagged,
                            result=result, only=only, jobs=jobs, scheduler=scheduler)
    plan = task.plan(workdir, inputs)
    splits = choose_splits(list(inputs), seed=config.seed, fractions=config.split_fractions,
                           split_file=config.split_file)
    max_samples = max(1, int(config.shard_max_mb * 1e6) // plan.sample_bytes)
    spectrogram_configs = {p.spec_meta["config_hash"]: p.spec_meta["config"]
                           for _, perfs in inputs.values() for p in perfs}
    provenance = plan.provenance | {
        "spectrogram": list(spectrogram_configs.values()),
        "soundfonts": {p.soundfont["name"]: p.soundfont["sha256"]
                       for _, perfs in inputs.values() for p in perfs},
        "versions": library_versions(), "pack_stage_version": stage_version("pack")}
    attrs = {"schema_version": SCHEMA_VERSION, **plan.shard_attrs,
             "provenance": json.dumps(provenance, sort_keys=True)}

    out = Path(out)
    with pack_lock(out):
        return _stage_and_pack(out, task, inputs, splits, plan, attrs, provenance,
                               max_samples, result, request, progress, jobs, scheduler)


def _stage_and_pack(out: Path, task: PackTask, inputs: Inputs, splits: Mapping[str, str],
                    plan: Plan, attrs: Mapping[str, str | int], provenance: dict,
                    max_samples: int, result: PackResult, request: Mapping[str, Any] | None,
                    progress: bool, jobs: int, scheduler: str | None) -> PackResult:
    """The rest of :func:`pack_pieces`, with ``out`` locked."""
    config = task.config
    tmp = staging_folder(out)
    index_splits, piece_index, unreadable = {}, {}, {}
    order = [(split, sorted(p for p in inputs if splits[p] == split)) for split in SPLITS]
    cost = {name: sum(_file_size(p.perf_dir / ALIGNMENT_NAME) for p in perfs)
            for name, (_, perfs) in inputs.items()}
    sequence = pack_order(order, cost)
    jobs_list = [PieceJob(task, name, split, inputs[name][0], tuple(inputs[name][1]), tmp,
                          attrs, spill=jobs > 1 or bool(scheduler)) for split, name in sequence]
    writers = {split: ShardWriter(tmp / split, split=split, max_samples=max_samples,
                                  chunk_samples=plan.chunk_samples, attrs=attrs,
                                  write=plan.write_shard) for split, _ in order}
    # Closing the stream closes its progress bar and workers, also on an error.
    packed = iter_costly_first(pack_one, jobs_list, cost=[cost[name] for _, name in sequence],
                               jobs=jobs, scheduler=scheduler, desc="pack", progress=progress)
    # A split's last shard is written as soon as its last piece is in, while
    # the workers still pack the others, not after the last piece of all.
    last = {split: name for split, name in sequence}
    try:
        for (split, name), outcome in zip(sequence, packed):
            piece, perfs = inputs[name]
            if isinstance(outcome, str):
                unreadable[name] = (str(piece), outcome)
            else:
                piece_index[name] = _add_piece(writers[split], split, perfs, outcome)
            if last[split] == name:
                writers[split].close()
        shutil.rmtree(tmp / SPILL_DIR, ignore_errors=True)
        for split, names in order:
            for name in names:
                if name in unreadable:
                    result.failures.append(unreadable[name])
                    result.left_out[name] = LeftOut("unreadable", unreadable[name][1])
                else:
                    result.pieces[name] = split
            kept = [n for n in names if n in piece_index]
            index_splits[split] = {"pieces": kept,
                                   "count": sum(piece_index[n]["samples"] for n in kept),
                                   "shards": writers[split].close()}
            result.counts[split] = index_splits[split]["count"]
        write_json_atomic(tmp / INDEX_NAME, plan.index | {
            "schema_version": SCHEMA_VERSION, "format": task.format,
            "config": asdict(config), "spec_dtype": config.spec_dtype,
            "meta_fields": [n for n, _ in task.meta_fields],
            "splits": index_splits, "pieces": piece_index,
            "failed_pieces": {Path(p).name: cause for p, cause in result.failures},
            "flagged_pieces": result.flagged,
            "left_out": {k: {"reason": w.reason, "detail": w.detail}
                         for k, w in sorted(result.left_out.items())},
            "request": dict(request or {"pieces": "every piece of the work folder",
                                        "performances": "every performance"}),
            "provenance": provenance})
        replace_folder(tmp, out)
    finally:
        packed.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return result
