"""The snippet task: paired sheet and spectrogram snippets in HDF5 shards.

One sample per row of ``alignment.csv``, that is per (note head, onset,
performance):

* the sheet excerpt: ``sheet_height_px x sheet_width_px`` pixels of the
  preset's unrolled score at the sample's scale (the whole score rescaled),
  anchored at the pixel boundaries nearest the head's centre (column
  ``W // 2``) and the system's vertical centre (row ``H // 2``, before the
  shift): a copy of pixels, the head within half a pixel of ``W // 2``
  (``head_col`` exact); white outside the score (:mod:`.excerpts`, shared
  with the on-the-fly reader);
* the spectrogram excerpt: ``spec_frames`` frames of the preset's
  spectrogram, the onset frame at column ``T // 2`` (``anchor="center"``) or
  at ``T - 1 - jitter_max_frames`` (``anchor="end"``: the excerpt ends just
  after the onset); zeros (silence, ``log(1 + 0)``) outside the audio.

Augmentation (in the splits of ``augment_splits``; the others get none) is
drawn per sample from a :class:`numpy.random.Generator` seeded from the
config's seed and the piece and performance ids, so that a piece's samples
do not depend on which other pieces are packed or in which order:

* sheet rescale by one of ``sheet_scale_steps`` factors evenly spaced over
  ``sheet_scale_range`` (uniform): the excerpt is cut from the whole score
  rescaled by it (:mod:`.excerpts`);
* vertical shift of the sheet, an integer uniform in ``+-shift_max_px``;
* onset jitter, an integer uniform in ``+-jitter_max_frames`` frames.

Every synthesized performance (tempo, SoundFont) of a piece is packed; those
are the tempo and SoundFont augmentations.  Each piece is also stored whole,
compressed, in ``pieces/<piece>.h5`` (:mod:`.pieces`); with
``shards=False`` that is all, the compact form the on-the-fly reader
(:mod:`msmd_prep.reader`) cuts samples from.  Splits are by piece.  Sample
order is sorted (split, piece, performance, alignment row) so that the same
inputs and seed give byte-identical arrays.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from ..align import ALIGNMENT_NAME, read_alignment_csv, unroll_piece
from ..errors import ConfigError, InputError
from ..spectrogram import time_to_frames
from ..unroll import Unrolled, UnrollConfig
from ..workdir import output_errors
from .core import (SPEC_DTYPES, SPLITS, PackResult, PerformanceInput, PieceInputs, Plan,
                   check_split_options, fixed_bytes, load_spec, meta_dtype, pack_pieces,
                   performance_inputs)
from .excerpts import (Augmentation, SheetStore, cut_sheets, draw_augmentation, head_position,
                       no_augmentation, scale_levels, spec_start)
from .pieces import StoredPerformance, StoredPiece, onset_table, write_piece_file
from .shards import SpecRuns, compress_sheets, write_snippet_shard

ANCHORS = ("center", "end")
PIECES_DIR = "pieces"
META_FIELDS = (
    ("piece", "S"), ("performance", "S"), ("notehead_id", "S"), ("soundfont", "S"),
    ("tempo_factor", "<f4"), ("onset_s", "<f8"), ("onset_frame", "<i4"), ("pitch", "<i2"),
    ("system", "<i2"), ("unrolled_x", "<f4"), ("sheet_scale", "<f4"),
    ("sheet_shift_px", "<i2"), ("onset_jitter_frames", "<i2"), ("spec_start_frame", "<i4"),
    ("head_row", "<f4"), ("head_col", "<f4"), ("onset_col", "<i2"))
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
    sheet_scale_steps : int
        Rescale factors evenly spaced over the range (one: its midpoint);
        the on-the-fly reader keeps the split's scores at each of them.
    shift_max_px : int
        Largest vertical shift of the sheet excerpt, pixels.
    jitter_max_frames : int
        Largest onset jitter, frames.
    augment_splits : tuple of str
        Splits that are augmented.
    spec_dtype : {"float16", "float32"}
        Type of the stored spectrogram excerpts.
    shard_max_mb : float
        Size cap of a shard, MB (10**6 bytes) of uncompressed sample arrays.
    shards : bool
        Also write the samples into shards; without, the dataset is the
        compact piece form only (``pieces/``, read by
        :class:`msmd_prep.reader.SnippetReader`).
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
    sheet_scale_steps: int = 5
    shift_max_px: int = 5
    jitter_max_frames: int = 1
    augment_splits: tuple[str, ...] = ("train",)
    spec_dtype: str = "float16"
    shard_max_mb: float = 256.0
    shards: bool = True
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
        if not (isinstance(self.sheet_scale_steps, int) and self.sheet_scale_steps >= 1):
            raise ConfigError(f"sheet_scale_steps must be an integer >= 1, "
                              f"got {self.sheet_scale_steps!r}")
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


def augmentation_for(n: int, rng: np.random.Generator | None, config: PackConfig,
                     ) -> Augmentation:
    """The augmentation of ``n`` samples by ``config``; none when ``rng`` is None."""
    if rng is None:
        return no_augmentation(n)
    return draw_augmentation(n, rng, scale_range=config.sheet_scale_range,
                             scale_steps=config.sheet_scale_steps, shift_max_px=config.shift_max_px,
                             jitter_max_frames=config.jitter_max_frames)


def sample_rng(seed: int, piece: str, performance: str) -> np.random.Generator:
    """The generator of one performance's samples, from the seed and the ids only."""
    digest = hashlib.sha256(f"{piece}\0{performance}".encode()).digest()
    words = np.frombuffer(digest, dtype="<u4").tolist()
    return np.random.default_rng(np.random.SeedSequence([seed, *words]))


@dataclass
class SampleBlock:
    """Samples of one performance, ready to be written.

    Attributes
    ----------
    sheet : np.ndarray [shape=(n, H, W), dtype=uint8] or [shape=(n,), dtype=object]
        The sheet excerpts, or, stored one sample per chunk, their compressed
        chunks (:func:`~msmd_prep.packing.shards.compress_sheets`).
    spec : SpecRuns
        The spectrogram excerpts (n, F, T), as the run of frames they span.
    meta : np.ndarray [shape=(n,)]
        Structured array with the fields of :data:`META_FIELDS`.
    """

    sheet: np.ndarray
    spec: SpecRuns
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


def make_samples(onsets: Onsets, *, sheet: SheetStore, spec: np.ndarray, aug: Augmentation,
                 preset: PackPreset, config: PackConfig, piece: str, performance: str,
                 soundfont: str, tempo_factor: float) -> SampleBlock:
    """Cut the sheet and spectrogram excerpts of one performance's onsets.

    Parameters
    ----------
    onsets : Onsets
        From :func:`place_onsets`, ``n`` onsets.
    sheet : SheetStore
        The preset's unrolled score at every scale of ``aug``.
    spec : np.ndarray [shape=(F, n_frames)]
        The preset's spectrogram in the stored dtype.
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
    which = np.zeros(n, dtype=np.int64)
    starts = spec_start(onsets.onset_frame + aug.onset_jitter_frames, n_frames=T,
                        anchor=config.spec_anchor, jitter_max_frames=config.jitter_max_frames)
    sheets = np.ascontiguousarray(cut_sheets(sheet, which, x=onsets.unrolled_x,
                                             center_y=onsets.center_y, aug=aug, height_px=H,
                                             width_px=W))
    # The run of frames the excerpts span, not the excerpts: what the shard
    # stores, 15 times smaller to send from a worker.
    specs = SpecRuns.of_spectrogram(spec, starts, n_frames=T)
    head_row, head_col = head_position(x=onsets.unrolled_x, y=onsets.unrolled_y,
                                       center_y=onsets.center_y, aug=aug, height_px=H,
                                       width_px=W)
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
    meta["head_row"] = head_row
    meta["head_col"] = head_col
    meta["onset_col"] = onsets.onset_frame - starts
    return SampleBlock(sheets, specs, meta)


@dataclass(frozen=True)
class SnippetTask:
    """The snippet task: one sample is a sheet excerpt and a spectrogram excerpt."""

    config: PackConfig
    format = "msmd-prep snippet dataset"
    meta_fields = META_FIELDS

    @property
    def preset(self) -> PackPreset:
        return self.config.preset_obj

    def read_inputs(self, piece: Path, *, only: Collection[str] | None = None,
                    include_flagged: bool = False) -> PieceInputs:
        """The performances of ``piece`` with the preset's spectrogram, of its bins and rate."""
        preset = self.preset
        found = performance_inputs(piece, preset.spectrogram_preset,
                                   needed_by=f"pack preset {preset.name!r}", only=only,
                                   include_flagged=include_flagged)
        for perf in found.perfs:
            fps = float(perf.spec_meta["config"]["frame_rate_fps"])
            if perf.spec_meta.get("n_bins") != preset.spec_bins or not math.isclose(
                    fps, preset.frame_rate_fps):
                raise InputError(f"{perf.perf_dir / f'spec-{preset.spectrogram_preset}.json'}: "
                                 f"{perf.spec_meta.get('n_bins')} bins at {fps} fps, pack preset "
                                 f"{preset.name!r} needs {preset.spec_bins} bins at "
                                 f"{preset.frame_rate_fps} fps")
        return found

    def plan(self, workdir: Path, inputs: Mapping) -> Plan:
        config, preset = self.config, self.preset
        H, W = preset.sheet_height_px, preset.sheet_width_px
        itemsize = np.dtype(config.spec_dtype).itemsize
        return Plan(
            sample_bytes=(H * W + preset.spec_bins * preset.spec_frames * itemsize
                          + META_DTYPE.itemsize),
            chunk_samples=config.chunk_samples, shard_attrs={"preset": preset.name},
            provenance={"config": asdict(config), "preset": asdict(preset)},
            index={"preset": asdict(preset), "sheet_shape": [H, W],
                   "spec_shape": [preset.spec_bins, preset.spec_frames]},
            write_shard=partial(write_snippet_shard, sheet_shape=(H, W)))

    def open_piece(self, piece: Path) -> Unrolled:
        """The preset's unrolled score of ``piece``."""
        return unroll_piece(piece, self.preset.unroll)

    def pack_piece(self, name: str, split: str, source: Unrolled,
                   perfs: Sequence[PerformanceInput], add: Callable[[SampleBlock], None],
                   staging: Path, attrs: Mapping[str, str | int]) -> dict:
        """The samples of every performance of one piece (with shards); its piece file."""
        config, preset = self.config, self.preset
        augment = split in config.augment_splits
        scales = (scale_levels(config.sheet_scale_range, config.sheet_scale_steps) if augment
                  else np.ones(1, np.float32))
        sheet: SheetStore | None = None
        seen: dict = {}   # compressed sheet chunks of this piece (compress_sheets)
        stored, counts = [], {}
        for perf in perfs:
            rows = read_alignment_csv(perf.perf_dir / ALIGNMENT_NAME)
            onsets = place_onsets(rows, source, frame_rate_fps=preset.frame_rate_fps)
            spec = load_spec(perf, preset.spectrogram_preset, n_bins=preset.spec_bins,
                             dtype=config.spec_dtype)
            counts[perf.performance] = len(rows)
            if config.shards:
                if sheet is None:
                    sheet = SheetStore.build([source.image], scales,
                                             width_px=preset.sheet_width_px,
                                             height_px=preset.sheet_height_px)
                rng = sample_rng(config.seed, name, perf.performance) if augment else None
                block = make_samples(onsets, sheet=sheet, spec=spec,
                                     aug=augmentation_for(len(rows), rng, config),
                                     preset=preset, config=config, piece=name,
                                     performance=perf.performance,
                                     soundfont=perf.soundfont["name"],
                                     tempo_factor=perf.tempo_factor)
                if config.chunk_samples == 1:
                    # Compressed here, in the worker: the shard writer only copies chunks.
                    block = replace(block, sheet=compress_sheets(block.sheet, seen))
                add(block)
            stored.append(StoredPerformance(
                performance=perf.performance, spec=spec,
                onsets=onset_table(notehead_id=onsets.notehead_id, pitch=onsets.pitch,
                                   system=onsets.system, onset_s=onsets.onset_s,
                                   onset_frame=onsets.onset_frame,
                                   unrolled_x=onsets.unrolled_x, unrolled_y=onsets.unrolled_y,
                                   center_y=onsets.center_y),
                tempo_factor=perf.tempo_factor, soundfont=perf.soundfont))
        (staging / PIECES_DIR).mkdir(exist_ok=True)
        path = f"{PIECES_DIR}/{name}.h5"
        write_piece_file(staging / path, StoredPiece(
            piece=name, split=split, unrolled=source.image, layout=source.layout(),
            performances=tuple(stored)), attrs=attrs)
        return {"file": path, "samples": sum(counts.values()), "performance_samples": counts}


def pack_workdir(workdir: Path, out: Path, config: PackConfig = PackConfig(), *,
                 progress: bool = False, jobs: int = 1,
                 scheduler: str | None = None,
                 only: Mapping[str, Collection[str]] | None = None,
                 request: Mapping | None = None) -> PackResult:
    """Pack every aligned piece of ``workdir`` into the snippet dataset folder ``out``.

    See :func:`msmd_prep.packing.core.pack_pieces` (staging, splits, failed
    and flagged pieces).

    Parameters
    ----------
    workdir : Path
        Work folder after the align stage.
    out : Path
        Dataset folder: ``index.json``, ``<split>/shard-NNNNN.h5``, ``pieces/<piece>.h5``.
    config : PackConfig
    progress : bool
        Show a progress bar on stderr.
    jobs : int
        Pieces packed at once, in local processes (the same bytes as one).
    scheduler : str, optional
        Pack the pieces on this Dask scheduler (``tcp://host:port``) instead.
    only, request
        Exactly what to pack, and what was asked for (see
        :func:`msmd_prep.packing.core.pack_pieces`).

    Returns
    -------
    result : PackResult
    """
    with output_errors(Path(out)):
        return pack_pieces(workdir, out, SnippetTask(config), progress=progress, jobs=jobs,
                           scheduler=scheduler, only=only, request=request)
