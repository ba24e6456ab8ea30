"""The pack stage: paired sheet and spectrogram snippets in HDF5 shards.

One sample per row of ``alignment.csv``, that is per (note head, onset,
performance):

* the sheet excerpt: ``sheet_height_px x sheet_width_px`` pixels of the
  preset's unrolled score, the head's centre on the excerpt's middle column
  boundary ``x = W / 2`` and the system's vertical centre on ``y = H / 2``
  (before augmentation); white outside the score;
* the spectrogram excerpt: ``spec_frames`` frames of the preset's
  spectrogram, the onset frame at column ``T // 2`` (``anchor="center"``) or
  at ``T - 1 - jitter_max_frames`` (``anchor="end"``: the excerpt ends just
  after the onset); zeros (silence, ``log(1 + 0)``) outside the audio.

Augmentation (in the splits of ``augment_splits``; the others get none) is
drawn per sample from a :class:`numpy.random.Generator` seeded from the
config's seed and the piece and performance ids, so that a piece's samples
do not depend on which other pieces are packed or in which order:

* sheet rescale by a factor uniform in ``sheet_scale_range`` about the head;
* vertical shift of the sheet, an integer uniform in ``+-shift_max_px``;
* onset jitter, an integer uniform in ``+-jitter_max_frames`` frames.

Every synthesized performance (tempo, SoundFont) of a piece is packed; those
are the tempo and SoundFont augmentations.  Splits are by piece.  Sample
order is sorted (split, piece, performance, alignment row) so that the same
inputs and seed give byte-identical arrays.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import cv2
import h5py
import numpy as np
import yaml
from tqdm import tqdm

from ._version import __version__
from .align import ALIGNMENT_JSON, ALIGNMENT_NAME, read_alignment_csv, unroll_piece
from .data import INDEX_NAME, SCHEMA_VERSION
from .errors import ConfigError, InputError, MsmdPrepError
from .spectrogram import time_to_frames
from .synth import PERFORMANCE_JSON
from .unroll import WHITE, Unrolled, UnrollConfig
from .workdir import performance_dirs, read_json, rendered_pieces, sha256_file, write_json_atomic

SPLITS = ("train", "valid", "test")
ANCHORS = ("center", "end")
SPEC_DTYPES = ("float16", "float32")
PIECES_DIR = "pieces"
META_FIELDS = (
    ("piece", "S"), ("performance", "S"), ("notehead_id", "S"), ("soundfont", "S"),
    ("tempo_factor", "<f4"), ("onset_s", "<f8"), ("onset_frame", "<i4"), ("pitch", "<i2"),
    ("system", "<i2"), ("unrolled_x", "<f4"), ("sheet_scale", "<f4"),
    ("sheet_shift_px", "<i2"), ("onset_jitter_frames", "<i2"), ("spec_start_frame", "<i4"),
    ("head_row", "<f4"), ("head_col", "<f4"), ("onset_col", "<i2"))
# Strings are fixed-length UTF-8, so that every shard has the same type and
# a read needs no conversion.
STRING_BYTES = 64


def meta_dtype(meta_fields: Sequence[tuple[str, str]]) -> np.dtype:
    """The structured type of per-sample metadata; ``"S"`` fields are fixed-length."""
    return np.dtype([(name, f"S{STRING_BYTES}" if kind == "S" else kind)
                     for name, kind in meta_fields])


META_DTYPE = meta_dtype(META_FIELDS)


@dataclass(frozen=True)
class PackPreset:
    """Sizes and scales of one snippet format.

    Attributes
    ----------
    name : str
    sheet_height_px, sheet_width_px : int
        Sheet excerpt size H x W, pixels of the unrolled score.
    spectrogram_preset : str
        The spectrogram preset (``spec-<name>.npy``) the excerpts come from.
    spec_bins, spec_frames : int
        Spectrogram excerpt size F x T; ``spec_bins`` must match the spectrogram.
    frame_rate_fps : float
        Frame rate the spectrogram must have.
    unroll : UnrollConfig
        Scale and band height of the unrolled score the sheet excerpts are cut from.
    """

    name: str
    sheet_height_px: int
    sheet_width_px: int
    spectrogram_preset: str
    spec_bins: int
    spec_frames: int
    frame_rate_fps: float
    unroll: UnrollConfig

    def __post_init__(self) -> None:
        for key in ("sheet_height_px", "sheet_width_px", "spec_bins", "spec_frames"):
            value = getattr(self, key)
            if not (isinstance(value, int) and value > 0):
                raise ConfigError(f"{key} must be a positive integer, got {value!r}")


PRESETS: dict[str, PackPreset] = {
    # MSMD's retrieval code: SYSTEM_HEIGHT = 160 rows, SHEET_CONTEXT = 200
    # columns of a 200 px band at about 100 dpi; 42 frames of 92 bins at 20 fps.
    "msmd": PackPreset("msmd", sheet_height_px=160, sheet_width_px=200,
                       spectrogram_preset="msmd", spec_bins=92, spec_frames=42,
                       frame_rate_fps=20.0,
                       unroll=UnrollConfig(band_height_px=200, sheet_dpi=100.0)),
    # Dorfer et al. 2016: systems scaled to 40 px high, 40 x 100 sheet
    # snippets, 136 bins x 100 frames at 31.25 fps.  The band keeps 10 px
    # above and below the system for the vertical shift.
    "dorfer2016": PackPreset("dorfer2016", sheet_height_px=40, sheet_width_px=100,
                             spectrogram_preset="default", spec_bins=136, spec_frames=100,
                             frame_rate_fps=31.25,
                             unroll=UnrollConfig(band_height_px=60, sheet_dpi=None,
                                                 system_height_px=40.0)),
}


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


@dataclass(frozen=True)
class PackConfig:
    """Options of the pack stage.

    Attributes
    ----------
    preset : str
        A key of :data:`PRESETS`.
    seed : int
        Seeds the split and the augmentation.
    split_fractions : (float, float, float)
        Shares of pieces for train, valid and test; with three or more
        pieces, a split with a share > 0 gets at least one piece.
    split_file : str or None
        A YAML file ``{train: [...], valid: [...], test: [...]}`` of piece
        ids (MSMD's ``splits/*.yaml``); overrides ``split_fractions``.
    spec_anchor : {"center", "end"}
        Where the onset lies in the spectrogram excerpt (see module docs).
    sheet_scale_range : (float, float)
        Range of the sheet rescale factor.
    shift_max_px : int
        Largest vertical shift of the sheet excerpt, pixels.
    jitter_max_frames : int
        Largest onset jitter, frames.
    augment_splits : tuple of str
        Splits that are augmented.
    spec_dtype : {"float16", "float32"}
        Type of the stored spectrogram excerpts.
    shard_max_mb : float
        Size cap of a shard, MB (10**6 bytes) of sample arrays.
    chunk_samples : int
        Samples per HDF5 chunk.
    include_flagged : bool
        Also pack pieces whose self-checks failed (``aligned_well`` false in
        ``piece.json`` or in a performance's ``alignment.json``).
    """

    preset: str = "msmd"
    seed: int = 0
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    split_file: str | None = None
    spec_anchor: str = "center"
    sheet_scale_range: tuple[float, float] = (0.95, 1.05)
    shift_max_px: int = 5
    jitter_max_frames: int = 1
    augment_splits: tuple[str, ...] = ("train",)
    spec_dtype: str = "float16"
    shard_max_mb: float = 256.0
    chunk_samples: int = 1
    include_flagged: bool = False

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown pack preset {self.preset!r}; use one of {sorted(PRESETS)}")
        check_split_options(self.seed, self.split_fractions)
        if self.spec_anchor not in ANCHORS:
            raise ConfigError(f"spec_anchor must be one of {ANCHORS}, got {self.spec_anchor!r}")
        lo, hi = self.sheet_scale_range
        if not 0 < lo <= hi:
            raise ConfigError(f"sheet_scale_range must be 0 < lo <= hi, "
                              f"got {self.sheet_scale_range!r}")
        if not (isinstance(self.shift_max_px, int) and self.shift_max_px >= 0):
            raise ConfigError(f"shift_max_px must be an integer >= 0, got {self.shift_max_px!r}")
        if not (isinstance(self.jitter_max_frames, int) and self.jitter_max_frames >= 0):
            raise ConfigError(f"jitter_max_frames must be an integer >= 0, "
                              f"got {self.jitter_max_frames!r}")
        if self.spec_anchor == "end" and self.jitter_max_frames >= self.preset_obj.spec_frames:
            raise ConfigError(f"jitter_max_frames {self.jitter_max_frames} leaves no room in "
                              f"{self.preset_obj.spec_frames} frames")
        unknown = set(self.augment_splits) - set(SPLITS)
        if unknown:
            raise ConfigError(f"augment_splits must name splits of {SPLITS}, got {sorted(unknown)}")
        if self.spec_dtype not in SPEC_DTYPES:
            raise ConfigError(f"spec_dtype must be one of {SPEC_DTYPES}, got {self.spec_dtype!r}")
        if not self.shard_max_mb > 0:
            raise ConfigError(f"shard_max_mb must be > 0, got {self.shard_max_mb!r}")
        if not (isinstance(self.chunk_samples, int) and self.chunk_samples > 0):
            raise ConfigError(f"chunk_samples must be a positive integer, "
                              f"got {self.chunk_samples!r}")

    @property
    def preset_obj(self) -> PackPreset:
        """The :class:`PackPreset` named by ``preset``."""
        return PRESETS[self.preset]


@dataclass(frozen=True)
class Augmentation:
    """Per-sample augmentation parameters, arrays of shape (n,)."""

    sheet_scale: np.ndarray
    sheet_shift_px: np.ndarray
    onset_jitter_frames: np.ndarray


def draw_augmentation(n: int, *, rng: np.random.Generator | None, config: PackConfig,
                      ) -> Augmentation:
    """Augmentation for ``n`` samples; none (scale 1, no shift or jitter) when ``rng`` is None.

    The draws are made in a fixed order (scales, shifts, jitters) so that a
    generator seeded alike gives the same parameters.
    """
    if rng is None:
        return Augmentation(np.ones(n, np.float32), np.zeros(n, np.int16), np.zeros(n, np.int16))
    lo, hi = config.sheet_scale_range
    scale = rng.uniform(lo, hi, n).astype(np.float32)
    shift = rng.integers(-config.shift_max_px, config.shift_max_px, n, endpoint=True)
    jitter = rng.integers(-config.jitter_max_frames, config.jitter_max_frames, n, endpoint=True)
    return Augmentation(scale, shift.astype(np.int16), jitter.astype(np.int16))


def sample_rng(seed: int, piece: str, performance: str) -> np.random.Generator:
    """The generator of one performance's samples, from the seed and the ids only."""
    digest = hashlib.sha256(f"{piece}\0{performance}".encode()).digest()
    words = np.frombuffer(digest, dtype="<u4").tolist()
    return np.random.default_rng(np.random.SeedSequence([seed, *words]))


def extract_sheet(image: np.ndarray, *, x: float, center_y: float, scale: float, shift_px: int,
                  height_px: int, width_px: int) -> np.ndarray:
    """Cut a sheet excerpt around ``x``, rescaled about that point.

    The excerpt pixel at continuous position ``(X, Y)`` shows the unrolled
    score at ``(x + (X - W/2) / scale, center_y + (Y - H/2 - shift_px) / scale)``
    (bilinear, white outside the score): the point ``x`` lands on ``X = W/2``
    and the row ``center_y`` on ``Y = H/2 + shift_px``.

    Parameters
    ----------
    image : np.ndarray [shape=(band_height, width), dtype=uint8]
        The unrolled score.
    x, center_y : float
        Column of the head and row of its system's centre, continuous pixels.
    scale : float
        Magnification; > 1 enlarges.
    shift_px : int
        Vertical shift, pixels down.
    height_px, width_px : int
        Excerpt size H, W.

    Returns
    -------
    excerpt : np.ndarray [shape=(height_px, width_px), dtype=uint8]
    """
    inv = 1.0 / scale
    # cv2 samples at pixel indices; continuous X is index + 0.5.
    matrix = np.array([[inv, 0.0, x - 0.5 + (0.5 - width_px / 2) * inv],
                       [0.0, inv, center_y - 0.5 + (0.5 - height_px / 2 - shift_px) * inv]])
    return cv2.warpAffine(image, matrix, (width_px, height_px),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=WHITE)


def spec_start(onset_frame: int, *, n_frames: int, anchor: str, jitter_max_frames: int) -> int:
    """First frame of the excerpt for an (already jittered) onset frame; may be < 0."""
    if anchor == "center":
        return onset_frame - n_frames // 2
    return onset_frame - (n_frames - 1 - jitter_max_frames)


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


@dataclass
class SampleBlock:
    """Samples of one performance, ready to be written.

    Attributes
    ----------
    sheet : np.ndarray [shape=(n, H, W), dtype=uint8]
    spec : np.ndarray [shape=(n, F, T)]
    meta : np.ndarray [shape=(n,)]
        Structured array with the fields of :data:`META_FIELDS`.
    """

    sheet: np.ndarray
    spec: np.ndarray
    meta: np.ndarray

    def __len__(self) -> int:
        return len(self.meta)


@dataclass(frozen=True)
class Onsets:
    """The onsets of one performance placed in the preset's unrolled score.

    All arrays have shape (n,), one entry per alignment row.
    """

    notehead_id: np.ndarray
    pitch: np.ndarray
    system: np.ndarray
    onset_s: np.ndarray
    onset_frame: np.ndarray
    unrolled_x: np.ndarray
    unrolled_y: np.ndarray
    center_y: np.ndarray


def place_onsets(rows: Sequence, unrolled: Unrolled, *, frame_rate_fps: float) -> Onsets:
    """Map alignment rows into ``unrolled`` and their onsets to frames at ``frame_rate_fps``."""
    u, v, c = [], [], []
    for r in rows:
        band = unrolled.band(r.system)
        x, y = band.to_unrolled(r.x, r.y)
        u.append(float(x))
        v.append(float(y))
        c.append(band.center_y)
    onset_s = np.array([r.onset_s for r in rows], dtype=np.float64)
    return Onsets(notehead_id=np.array([r.notehead_id for r in rows], dtype=object),
                  pitch=np.array([r.pitch for r in rows], dtype=np.int16),
                  system=np.array([r.system for r in rows], dtype=np.int16),
                  onset_s=onset_s,
                  onset_frame=time_to_frames(onset_s, frame_rate_fps=frame_rate_fps),
                  unrolled_x=np.array(u, dtype=np.float64),
                  unrolled_y=np.array(v, dtype=np.float64),
                  center_y=np.array(c, dtype=np.float64))


def make_samples(onsets: Onsets, *, image: np.ndarray, spec: np.ndarray, aug: Augmentation,
                 preset: PackPreset, config: PackConfig, piece: str, performance: str,
                 soundfont: str, tempo_factor: float) -> SampleBlock:
    """Cut the sheet and spectrogram excerpts of one performance's onsets.

    Parameters
    ----------
    onsets : Onsets
        From :func:`place_onsets`, ``n`` onsets.
    image : np.ndarray [shape=(band_height, width), dtype=uint8]
        The preset's unrolled score.
    spec : np.ndarray [shape=(F, total_frames)]
        The preset's spectrogram, already in the stored dtype.
    aug : Augmentation
        ``n`` entries.
    preset : PackPreset
    config : PackConfig
    piece, performance, soundfont : str
    tempo_factor : float
        Recorded in every sample's metadata.

    Returns
    -------
    block : SampleBlock
    """
    n = len(onsets.onset_s)
    H, W, T = preset.sheet_height_px, preset.sheet_width_px, preset.spec_frames
    sheets = np.empty((n, H, W), dtype=np.uint8)
    specs = np.empty((n, spec.shape[0], T), dtype=spec.dtype)
    starts = np.empty(n, dtype=np.int64)
    for i in range(n):
        sheets[i] = extract_sheet(image, x=onsets.unrolled_x[i], center_y=onsets.center_y[i],
                                  scale=float(aug.sheet_scale[i]),
                                  shift_px=int(aug.sheet_shift_px[i]), height_px=H, width_px=W)
        starts[i] = spec_start(int(onsets.onset_frame[i] + aug.onset_jitter_frames[i]),
                               n_frames=T, anchor=config.spec_anchor,
                               jitter_max_frames=config.jitter_max_frames)
        specs[i] = extract_spec(spec, start=int(starts[i]), n_frames=T)
    scale = aug.sheet_scale.astype(np.float64)
    meta = np.zeros(n, dtype=META_DTYPE)
    meta["piece"] = fixed_bytes(piece)
    meta["performance"] = fixed_bytes(performance)
    meta["notehead_id"] = [fixed_bytes(h) for h in onsets.notehead_id]
    meta["soundfont"] = fixed_bytes(soundfont)
    meta["tempo_factor"] = tempo_factor
    meta["onset_s"] = onsets.onset_s
    meta["onset_frame"] = onsets.onset_frame
    meta["pitch"] = onsets.pitch
    meta["system"] = onsets.system
    meta["unrolled_x"] = onsets.unrolled_x
    meta["sheet_scale"] = aug.sheet_scale
    meta["sheet_shift_px"] = aug.sheet_shift_px
    meta["onset_jitter_frames"] = aug.onset_jitter_frames
    meta["spec_start_frame"] = starts
    meta["head_row"] = H / 2 + aug.sheet_shift_px + (onsets.unrolled_y - onsets.center_y) * scale
    meta["head_col"] = W / 2
    meta["onset_col"] = onsets.onset_frame - starts
    return SampleBlock(sheets, specs, meta)


def fixed_bytes(text: str) -> bytes:
    """``text`` as UTF-8 for a :data:`META_DTYPE` string field."""
    data = text.encode()
    if len(data) > STRING_BYTES:
        raise InputError(f"name {text!r} is longer than {STRING_BYTES} bytes of UTF-8")
    return data


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
    for perf_dir in performance_dirs(piece):
        perf = read_json(perf_dir / PERFORMANCE_JSON)
        if perf is None or perf.get("status") != "complete":
            continue
        if not (perf_dir / ALIGNMENT_NAME).is_file():
            raise InputError(f"{perf_dir}: no {ALIGNMENT_NAME}; run `msmd-prep align WORKDIR`")
        spec_meta = read_json(perf_dir / f"spec-{spectrogram_preset}.json")
        if spec_meta is None or spec_meta.get("status") != "complete":
            raise InputError(f"{perf_dir}: {needed_by} needs the spectrogram preset "
                             f"{spectrogram_preset!r}; run `msmd-prep spectrogram WORKDIR "
                             f"--preset {spectrogram_preset}`")
        found.append(PerformanceInput(piece.name, perf_dir.name, perf_dir, perf["soundfont"],
                                      float(perf["tempo_factor"]), spec_meta))
    if not found:
        raise InputError(f"{piece}: no synthesized performance; run `msmd-prep synth` first")
    return found


def _snippet_inputs(piece: Path, preset: PackPreset) -> list[PerformanceInput]:
    found = performance_inputs(piece, preset.spectrogram_preset,
                               needed_by=f"pack preset {preset.name!r}")
    for perf in found:
        fps = float(perf.spec_meta["config"]["frame_rate_fps"])
        if perf.spec_meta.get("n_bins") != preset.spec_bins or not math.isclose(
                fps, preset.frame_rate_fps):
            raise InputError(f"{perf.perf_dir / f'spec-{preset.spectrogram_preset}.json'}: "
                             f"{perf.spec_meta.get('n_bins')} bins at {fps} fps, pack preset "
                             f"{preset.name!r} needs {preset.spec_bins} bins at "
                             f"{preset.frame_rate_fps} fps")
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
        self._pending: list = []
        self._n_pending = 0

    def add(self, block) -> None:  # type: ignore[no-untyped-def]
        """Queue ``block``; write every full shard."""
        self._pending.append(block)
        self._n_pending += len(block.meta)
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


def write_piece_file(path: Path, *, piece: str, split: str, unrolled: Unrolled,
                     performances: Sequence[tuple[PerformanceInput, Onsets, np.ndarray]],
                     attrs: Mapping[str, str | int]) -> None:
    """Write what :class:`msmd_prep.data.PieceDataset` serves of one piece.

    Datasets: ``unrolled`` (band_height, width) uint8; per performance id,
    ``<perf>/spec`` (F, n_frames) and ``<perf>/onsets``, a structured array
    of ``notehead_id, pitch, system, onset_s, onset_frame, unrolled_x,
    unrolled_y`` sorted by onset.
    """
    onset_dtype = np.dtype([("notehead_id", f"S{STRING_BYTES}"), ("pitch", "<i2"),
                            ("system", "<i2"), ("onset_s", "<f8"), ("onset_frame", "<i8"),
                            ("unrolled_x", "<f4"), ("unrolled_y", "<f4")])
    with h5py.File(path, "w", libver=("v110", "v110")) as f:
        for key, value in attrs.items():
            f.attrs[key] = value
        f.attrs["piece"] = piece
        f.attrs["split"] = split
        f.attrs["layout"] = json.dumps(unrolled.layout())
        f.attrs["performances"] = json.dumps([p.performance for p, _, _ in performances])
        f.create_dataset("unrolled", data=unrolled.image, track_times=False)
        for perf, onsets, spec in performances:
            table = np.zeros(len(onsets.onset_s), dtype=onset_dtype)
            table["notehead_id"] = [fixed_bytes(h) for h in onsets.notehead_id]
            for name in ("pitch", "system", "onset_s", "onset_frame", "unrolled_x",
                         "unrolled_y"):
                table[name] = getattr(onsets, name)
            f.create_dataset(f"{perf.performance}/spec", data=spec, track_times=False)
            f.create_dataset(f"{perf.performance}/onsets", data=table, track_times=False)
            f[perf.performance].attrs["tempo_factor"] = perf.tempo_factor
            f[perf.performance].attrs["soundfont"] = json.dumps(perf.soundfont, sort_keys=True)


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


def _load_spec(perf: PerformanceInput, preset: PackPreset, dtype: str) -> np.ndarray:
    path = perf.perf_dir / f"spec-{preset.spectrogram_preset}.npy"
    try:
        spec = np.load(path)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: unreadable spectrogram ({e})") from e
    if spec.ndim != 2 or spec.shape[0] != preset.spec_bins:
        raise InputError(f"{path}: shape {spec.shape}, expected ({preset.spec_bins}, n_frames)")
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


def pack_workdir(workdir: Path, out: Path, config: PackConfig = PackConfig(), *,
                 progress: bool = False) -> PackResult:
    """Pack every aligned piece of ``workdir`` into the dataset folder ``out``.

    The dataset is built in a temporary folder next to ``out`` and moved
    into place when complete (an earlier dataset at ``out`` is replaced).
    A piece that cannot be packed (missing spectrogram or alignment) is left
    out and reported in :attr:`PackResult.failures`.

    Parameters
    ----------
    workdir : Path
        Work folder after the align stage.
    out : Path
        Dataset folder: ``index.json``, ``<split>/shard-NNNNN.h5``, ``pieces/<piece>.h5``.
    config : PackConfig
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    result : PackResult
    """
    preset = config.preset_obj
    result = PackResult(out=out)
    inputs = collect_pieces(workdir, lambda piece: _snippet_inputs(piece, preset),
                            include_flagged=config.include_flagged, result=result)
    splits = choose_splits(list(inputs), seed=config.seed, fractions=config.split_fractions,
                           split_file=config.split_file)

    H, W = preset.sheet_height_px, preset.sheet_width_px
    itemsize = np.dtype(config.spec_dtype).itemsize
    sample_bytes = H * W + preset.spec_bins * preset.spec_frames * itemsize + META_DTYPE.itemsize
    max_samples = max(1, int(config.shard_max_mb * 1e6) // sample_bytes)
    soundfonts = {p.soundfont["name"]: p.soundfont["sha256"]
                  for _, perfs in inputs.values() for p in perfs}
    spectrogram_configs = {p.spec_meta["config_hash"]: p.spec_meta["config"]
                           for _, perfs in inputs.values() for p in perfs}
    provenance = {"config": asdict(config), "preset": asdict(preset),
                  "spectrogram": list(spectrogram_configs.values()),
                  "soundfonts": soundfonts, "versions": library_versions()}
    attrs = {"schema_version": SCHEMA_VERSION, "preset": preset.name,
             "provenance": json.dumps(provenance, sort_keys=True)}

    out = Path(out)
    tmp = staging_folder(out)
    (tmp / PIECES_DIR).mkdir()
    index_splits = {}
    piece_index = {}
    try:
        bar = tqdm(total=len(inputs), desc="pack", unit="piece", disable=not progress)
        for split in SPLITS:
            names = sorted(p for p in inputs if splits[p] == split)
            writer = ShardWriter(tmp / split, split=split, max_samples=max_samples,
                                 chunk_samples=config.chunk_samples, attrs=attrs)
            for name in names:
                piece, perfs = inputs[name]
                unrolled = unroll_piece(piece, preset.unroll)
                stored = []
                n_piece = 0
                for perf in perfs:
                    rows = read_alignment_csv(perf.perf_dir / ALIGNMENT_NAME)
                    onsets = place_onsets(rows, unrolled, frame_rate_fps=preset.frame_rate_fps)
                    spec = _load_spec(perf, preset, config.spec_dtype)
                    rng = (sample_rng(config.seed, name, perf.performance)
                           if split in config.augment_splits else None)
                    aug = draw_augmentation(len(rows), rng=rng, config=config)
                    block = make_samples(onsets, image=unrolled.image, spec=spec, aug=aug,
                                         preset=preset, config=config, piece=name,
                                         performance=perf.performance,
                                         soundfont=perf.soundfont["name"],
                                         tempo_factor=perf.tempo_factor)
                    writer.add(block)
                    stored.append((perf, onsets, spec))
                    n_piece += len(block)
                write_piece_file(tmp / PIECES_DIR / f"{name}.h5", piece=name, split=split,
                                 unrolled=unrolled, performances=stored, attrs=attrs)
                piece_index[name] = {"split": split, "samples": n_piece,
                                     "performances": [p.performance for p in perfs],
                                     "file": f"{PIECES_DIR}/{name}.h5"}
                result.pieces[name] = split
                bar.update()
            shards = writer.close()
            index_splits[split] = {"pieces": names, "count": sum(s["count"] for s in shards),
                                   "shards": shards}
            result.counts[split] = index_splits[split]["count"]
        bar.close()
        write_json_atomic(tmp / INDEX_NAME, {
            "schema_version": SCHEMA_VERSION, "format": "msmd-prep snippet dataset",
            "preset": asdict(preset), "config": asdict(config),
            "sheet_shape": [H, W], "spec_shape": [preset.spec_bins, preset.spec_frames],
            "spec_dtype": config.spec_dtype, "meta_fields": [n for n, _ in META_FIELDS],
            "splits": index_splits, "pieces": piece_index,
            "failed_pieces": {Path(p).name: cause for p, cause in result.failures},
            "flagged_pieces": result.flagged,
            "provenance": provenance})
        replace_folder(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result
