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

import importlib.metadata
import json
import math
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import cv2
import h5py
import numpy as np
import yaml
from tqdm import tqdm

from .._version import __version__
from ..align import ALIGNMENT_JSON, ALIGNMENT_NAME
from ..data import INDEX_NAME, SCHEMA_VERSION
from ..errors import ConfigError, InputError, MsmdPrepError
from ..synth import PERFORMANCE_JSON
from ..workdir import (ensure_room, performance_dirs, read_json, rendered_pieces, sha256_file,
                       write_json_atomic)

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


def assign_splits(pieces: Sequence[str], *, seed: int,
                  fractions: tuple[float, float, float]) -> dict[str, str]:
    """Put each piece into train, valid or test, deterministically from ``seed``.

    The sorted piece ids are permuted by ``default_rng(seed)``; the first
    ``round(n * test)`` go to test, the next ``round(n * valid)`` to valid,
    the rest to train.  With three or more pieces every split with a share
    > 0 gets at least one piece.
    """
    names = sorted(pieces)
    n = len(names)
    counts = [round(n * f) for f in fractions]
    if n >= 3:
        counts = [max(c, 1) if f > 0 else 0 for c, f in zip(counts, fractions)]
    n_test, n_valid = min(counts[2], n - 1), counts[1]
    n_valid = max(min(n_valid, n - 1 - n_test), 0)
    order = [names[i] for i in np.random.default_rng(seed).permutation(n)]
    return {name: ("test" if k < n_test else "valid" if k < n_test + n_valid else "train")
            for k, name in enumerate(order)}


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


def performance_inputs(piece: Path, spectrogram_preset: str, *,
                       needed_by: str) -> list[PerformanceInput]:
    """The synthesized, aligned performances of ``piece`` with their spectrogram.

    Raises
    ------
    InputError
        An alignment or the spectrogram ``spectrogram_preset`` is missing (the
        message names the command that makes it and ``needed_by``), or the
        piece has no performance.
    """
    found = []
    flagged = []
    for perf_dir in performance_dirs(piece):
        perf = read_json(perf_dir / PERFORMANCE_JSON)
        if perf is None or perf.get("status") != "complete":
            continue
        # A real performance flagged by the perform stage (wrong piece, silence) is left out.
        if perf.get("flagged"):
            flagged.append(perf_dir.name)
            continue
        if not (perf_dir / ALIGNMENT_NAME).is_file():
            raise InputError(f"{perf_dir}: no {ALIGNMENT_NAME}; run `msmd-prep align WORKDIR`")
        spec_meta = read_json(perf_dir / f"spec-{spectrogram_preset}.json")
        if spec_meta is None or spec_meta.get("status") != "complete":
            raise InputError(f"{perf_dir}: {needed_by} needs the spectrogram preset "
                             f"{spectrogram_preset!r}; run `msmd-prep spectrogram WORKDIR "
                             f"--preset {spectrogram_preset}`")
        found.append(PerformanceInput(piece.name, perf_dir.name, perf_dir, perf["soundfont"],
                                      float(perf["tempo_factor"]), spec_meta,
                                      perf.get("kind", "synthesized")))
    if not found and flagged:
        raise InputError(f"{piece}: every performance is flagged ({', '.join(flagged)}: "
                         "see their performance.json)")
    if not found:
        raise InputError(f"{piece}: no synthesized performance; run `msmd-prep synth` first")
    return found


def collect_pieces(workdir: Path, read_inputs: Callable[[Path], list[PerformanceInput]], *,
                   include_flagged: bool, result: PackResult,
                   ) -> dict[str, tuple[Path, list[PerformanceInput]]]:
    """The pieces of ``workdir`` to pack, with their performances, by name.

    A piece ``read_inputs`` rejects goes to ``result.failures``; one that
    failed its self-checks to ``result.flagged``, and is left out unless
    ``include_flagged``.

    Raises
    ------
    InputError
        No piece is left to pack.
    """
    inputs = {}
    for piece in rendered_pieces(workdir):
        try:
            perfs = read_inputs(piece)
        except MsmdPrepError as e:
            result.failures.append((str(piece), str(e)))
            continue
        flags = failed_checks(piece, [p.perf_dir for p in perfs])
        if flags:
            result.flagged[piece.name] = flags
            if not include_flagged:
                continue
        inputs[piece.name] = (piece, perfs)
    if not inputs:
        raise InputError(f"{workdir}: no piece to pack"
                         + (f" ({result.failures[0][1]})" if result.failures else ""))
    return inputs


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

    Temporary folders that a killed earlier run left behind are removed.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.mkdir()
    return tmp


class ShardWriter:
    """Writes sample blocks of one split into shards of at most ``max_samples`` samples.

    A block is a dataclass of arrays with one row per sample (``meta`` among
    them): :class:`SampleBlock`, or the score-following block.  Blocks are
    queued and every full shard is written at once, under a temporary name
    renamed when complete.
    """

    def __init__(self, folder: Path, *, split: str, max_samples: int, chunk_samples: int,
                 attrs: Mapping[str, str | int]) -> None:
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
        """Write the last, partial shard; the shards as ``{path, count, sha256}``."""
        if self._n_pending:
            self._write(self._n_pending)
        return self.shards

    def _write(self, n: int) -> None:
        kind = type(self._pending[0])
        whole = {f.name: np.concatenate([getattr(b, f.name) for b in self._pending])
                 for f in fields(kind)}
        rest = kind(**{name: array[n:] for name, array in whole.items()})
        self._pending = [rest] if len(rest.meta) else []
        self._n_pending = len(rest.meta)
        name = f"shard-{len(self.shards):05d}.h5"
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / name
        tmp = self.folder / f".{name}.tmp"
        ensure_room(tmp, sum(array[:n].nbytes for array in whole.values()))
        write_shard(tmp, {key: array[:n] for key, array in whole.items()},
                    chunk_samples=self.chunk_samples,
                    attrs=self.attrs | {"split": self.split, "shard": len(self.shards)})
        os.replace(tmp, path)
        self.shards.append({"path": f"{self.split}/{name}", "count": n,
                            "sha256": sha256_file(path)})


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
    with h5py.File(path, "w", libver=("v110", "v110")) as f:
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
        Pieces whose self-checks failed, with the failed checks; left out
        unless ``include_flagged``.
    """

    out: Path
    counts: dict[str, int] = field(default_factory=dict)
    pieces: dict[str, str] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    flagged: dict[str, str] = field(default_factory=dict)


def failed_checks(piece: Path, perf_dirs: Sequence[Path]) -> str:
    """The self-checks a piece failed, as text; empty when it is aligned well."""
    failed = []
    for path in [piece / "piece.json", *(d / ALIGNMENT_JSON for d in perf_dirs)]:
        info = read_json(path) or {}
        if info.get("aligned_well") is False:
            names = [n for n, c in info.get("checks", {}).items() if not c.get("passed", True)]
            where = path.parent.name if path.name == ALIGNMENT_JSON else "render"
            failed.append(f"{where}: {', '.join(names) or 'checks'}")
    return "; ".join(failed)


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
        spec = np.load(path)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: unreadable spectrogram ({e})") from e
    if spec.ndim != 2 or spec.shape[0] != n_bins:
        raise InputError(f"{path}: shape {spec.shape}, expected ({n_bins}, n_frames)")
    return np.ascontiguousarray(spec.astype(dtype))


def extract_spec(spec: np.ndarray, *, start: int, n_frames: int) -> np.ndarray:
    """Frames ``start .. start + n_frames - 1`` of ``spec``, zeros outside it.

    Parameters
    ----------
    spec : np.ndarray [shape=(n_bins, total_frames)]

    Returns
    -------
    excerpt : np.ndarray [shape=(n_bins, n_frames), dtype=spec.dtype]
    """
    total = spec.shape[1]
    if start >= 0 and start + n_frames <= total:
        return spec[:, start:start + n_frames]
    out = np.zeros((spec.shape[0], n_frames), dtype=spec.dtype)
    lo, hi = max(start, 0), min(start + n_frames, total)
    if lo < hi:
        out[:, lo - start:hi - start] = spec[:, lo:hi]
    return out


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
    """

    sample_bytes: int
    chunk_samples: int
    shard_attrs: dict
    provenance: dict
    index: dict


class PackTask(Protocol):
    """What one packing task defines: its config and what one sample is.

    ``config`` has the fields ``seed``, ``split_fractions``, ``split_file``,
    ``spec_dtype``, ``shard_max_mb`` and ``include_flagged``.
    """

    config: Any
    #: ``index.json`` ``format``.
    format: str
    meta_fields: Sequence[tuple[str, str]]

    def read_inputs(self, piece: Path) -> list[PerformanceInput]:
        """The performances of ``piece`` the task packs; raises InputError if it cannot."""

    def plan(self, workdir: Path, inputs: Inputs) -> Plan:
        """The dataset-wide sizes and records."""

    def open_piece(self, piece: Path) -> Any:
        """What the samples of ``piece`` are cut from (its score images)."""

    def pack_piece(self, name: str, split: str, source: Any,
                   perfs: Sequence[PerformanceInput], add: Callable[[Any], None],
                   staging: Path, attrs: Mapping[str, str | int]) -> dict:
        """Pass every sample block of one piece to ``add``; extra ``index.json`` piece fields.

        ``staging`` is the dataset folder being built, ``attrs`` the shards'
        attributes (for files of the task's own).
        """


def pack_pieces(workdir: Path, out: Path, task: PackTask, *, progress: bool = False,
                ) -> PackResult:
    """Pack every aligned piece of ``workdir`` into the dataset folder ``out`` with ``task``.

    The dataset is built in a temporary folder next to ``out`` and moved
    into place when complete (an earlier dataset at ``out`` is replaced).
    Splits are by piece; samples are ordered by split, piece, performance,
    then ``alignment.csv`` row.  A piece the task cannot read or open is left
    out and named in :attr:`PackResult.failures` and ``index.json``
    (``failed_pieces``); pieces that failed their self-checks are left out
    unless ``include_flagged`` (``flagged_pieces``).
    """
    config = task.config
    result = PackResult(out=Path(out))
    inputs = collect_pieces(workdir, task.read_inputs, include_flagged=config.include_flagged,
                            result=result)
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
        "versions": library_versions()}
    attrs = {"schema_version": SCHEMA_VERSION, **plan.shard_attrs,
             "provenance": json.dumps(provenance, sort_keys=True)}

    out = Path(out)
    tmp = staging_folder(out)
    index_splits, piece_index = {}, {}
    bar = tqdm(total=len(inputs), desc="pack", unit="piece", disable=not progress)
    try:
        for split in SPLITS:
            names = sorted(p for p in inputs if splits[p] == split)
            writer = ShardWriter(tmp / split, split=split, max_samples=max_samples,
                                 chunk_samples=plan.chunk_samples, attrs=attrs)
            for name in names:
                piece, perfs = inputs[name]
                try:
                    source = task.open_piece(piece)
                except MsmdPrepError as e:
                    result.failures.append((str(piece), str(e)))
                    bar.update()
                    continue
                before = writer.n_added
                extra = task.pack_piece(name, split, source, perfs, writer.add, tmp, attrs)
                piece_index[name] = {"split": split, "samples": writer.n_added - before,
                                     "performances": [p.performance for p in perfs],
                                     "performance_kinds": {p.performance: p.kind
                                                           for p in perfs}, **extra}
                result.pieces[name] = split
                bar.update()
            shards = writer.close()
            index_splits[split] = {"pieces": [n for n in names if n in piece_index],
                                   "count": sum(s["count"] for s in shards), "shards": shards}
            result.counts[split] = index_splits[split]["count"]
        write_json_atomic(tmp / INDEX_NAME, plan.index | {
            "schema_version": SCHEMA_VERSION, "format": task.format,
            "config": asdict(config), "spec_dtype": config.spec_dtype,
            "meta_fields": [n for n, _ in task.meta_fields],
            "splits": index_splits, "pieces": piece_index,
            "failed_pieces": {Path(p).name: cause for p, cause in result.failures},
            "flagged_pieces": result.flagged, "provenance": provenance})
        replace_folder(tmp, out)
    finally:
        bar.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return result
