"""Score-following data: staff-system images, audio that ends at an onset, bucket targets.

The multimodal score-following network of Dorfer et al. (2016) sees a whole
staff system and the last second or so of audio, and predicts where in the
system the music is.  Its data, one sample per (note head, onset,
performance) as for the snippet task:

* the staff image: the head's staff system (its ``systems.csv`` box) cut from
  its page and resized to ``image_height_px x image_width_px`` (default
  40 x 390) so that the box around the staff lines is ``staff_height_px``
  rows high (default 40: the box fills the image) and spans the full width;
  rows above and below the box are added when ``image_height_px`` is larger;
* the spectrogram excerpt: the ``spec_frames`` frames (default 40, 1.28 s at
  31.25 fps) that end with the onset frame, which is the excerpt's last
  column; zeros (silence) before the start of the audio;
* the target: the image width cut into ``B`` equal buckets (default
  ``B = round(390 / 10) = 39``); the bucket holding the head's x gets weight
  1, the buckets ``k`` places away weight ``neighbour_weights[k - 1]``
  (default 0.5 for the direct neighbours, 0 further), and the weights are
  divided by their sum.  Inside the image that is 0.5 for the head's bucket
  and 0.25 for each neighbour; in the first or last bucket 2/3 and 1/3;
* ``head_x``: the head's centre in the resized image, continuous pixels
  (pixel ``i`` spans ``[i, i+1)``); bucket ``b`` spans
  ``[b W / B, (b+1) W / B)`` and its centre ``(b + 1/2) W / B`` turns a
  predicted bucket back into an x position.

:func:`pack_score_following` writes such a dataset (``msmd-prep pack --task
score-following``); :class:`msmd_prep.data.ScoreFollowingDataset` reads it.
There is no augmentation beyond the packed tempos and SoundFonts.
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..align import ALIGNMENT_NAME, page_paths, read_alignment_csv
from ..errors import ConfigError, InputError
from ..pages import load_gray
from ..score import System, read_systems_csv
from ..spectrogram import time_to_frames
from ..unroll import Band, band_image, system_band
from ..workdir import output_errors
from .core import (SPEC_DTYPES, Inputs, PackResult, PerformanceInput, Plan, check_split_options,
                   fixed_bytes, load_spec, meta_dtype, pack_pieces, performance_inputs,
                   PieceInputs)
from .excerpts import extract_spec
from .shards import SpecRuns, compress_sheets, write_snippet_shard

if TYPE_CHECKING:
    from .snippets import PackConfig

TASK = "score-following"
META_FIELDS = (
    ("piece", "S"), ("performance", "S"), ("notehead_id", "S"), ("soundfont", "S"),
    ("tempo_factor", "<f4"), ("onset_s", "<f8"), ("onset_frame", "<i4"), ("pitch", "<i2"),
    ("system", "<i2"), ("head_x", "<f4"), ("head_y", "<f4"), ("bucket", "<i2"),
    ("spec_start_frame", "<i4"))
META_DTYPE = meta_dtype(META_FIELDS)


@dataclass(frozen=True)
class ScoreFollowingConfig:
    """Options of score-following packing.

    Attributes
    ----------
    image_height_px, image_width_px : int
        Size of the staff image H x W (Dorfer et al. 2016: 40 x 390).
    staff_height_px : float
        Height the system's staff-line box is scaled to, rows; at most
        ``image_height_px`` (equal: the box fills the image).
    spec_frames : int
        Frames T of the spectrogram excerpt, which ends with the onset frame.
    spectrogram_preset : str
        The spectrogram (``spec-<name>.npy``) the excerpts come from; its
        bins and frame rate are taken from its manifest.
    bucket_width_px : float
        Nominal bucket width, pixels of the staff image:
        ``n_buckets = max(1, round(image_width_px / bucket_width_px))``.
    neighbour_weights : tuple of float
        Weight of the buckets 1, 2, ... places from the head's bucket
        (which has weight 1) before normalisation; each in (0, 1].
    seed : int
        Seeds the split.
    split_fractions : (float, float, float)
        Shares of pieces for train, valid and test (as
        :class:`~msmd_prep.packing.snippets.PackConfig`).
    split_file : str or None
        A YAML split file; overrides ``split_fractions``.
    spec_dtype : {"float16", "float32"}
        Type of the stored spectrogram excerpts.
    shard_max_mb : float
        Size cap of a shard, MB of sample arrays.
    include_flagged : bool
        Also pack pieces whose self-checks failed (as
        :class:`~msmd_prep.packing.snippets.PackConfig`).
    """

    image_height_px: int = 40
    image_width_px: int = 390
    staff_height_px: float = 40.0
    spec_frames: int = 40
    spectrogram_preset: str = "default"
    bucket_width_px: float = 10.0
    neighbour_weights: tuple[float, ...] = (0.5,)
    seed: int = 0
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    split_file: str | None = None
    spec_dtype: str = "float16"
    shard_max_mb: float = 256.0
    include_flagged: bool = False

    def __post_init__(self) -> None:
        for key in ("image_height_px", "image_width_px", "spec_frames"):
            value = getattr(self, key)
            if not (isinstance(value, int) and value > 0):
                raise ConfigError(f"{key} must be a positive integer, got {value!r}")
        if not 0 < self.staff_height_px <= self.image_height_px:
            raise ConfigError(f"staff_height_px must be in (0, image_height_px = "
                              f"{self.image_height_px}], got {self.staff_height_px!r}")
        if not 0 < self.bucket_width_px <= self.image_width_px:
            raise ConfigError(f"bucket_width_px must be in (0, image_width_px = "
                              f"{self.image_width_px}], got {self.bucket_width_px!r}")
        if not all(0 < w <= 1 for w in self.neighbour_weights):
            raise ConfigError(f"neighbour_weights must each be in (0, 1], "
                              f"got {self.neighbour_weights!r}")
        if not self.spectrogram_preset:
            raise ConfigError("spectrogram_preset must not be empty")
        check_split_options(self.seed, self.split_fractions)
        if self.spec_dtype not in SPEC_DTYPES:
            raise ConfigError(f"spec_dtype must be one of {SPEC_DTYPES}, got {self.spec_dtype!r}")
        if not self.shard_max_mb > 0:
            raise ConfigError(f"shard_max_mb must be > 0, got {self.shard_max_mb!r}")

    @classmethod
    def from_pack_config(cls, pack: PackConfig,
                         spectrogram_preset: str | None = None) -> "ScoreFollowingConfig":
        """The default score-following config with ``pack``'s split, dtype, shard and flag options.

        ``spectrogram_preset`` defaults to ``"default"`` (136 bins at 31.25 fps).
        """
        return cls(spectrogram_preset=spectrogram_preset or "default", seed=pack.seed,
                   split_file=pack.split_file, spec_dtype=pack.spec_dtype,
                   shard_max_mb=pack.shard_max_mb, include_flagged=pack.include_flagged)

    @property
    def n_buckets(self) -> int:
        """Number of buckets B."""
        return max(1, round(self.image_width_px / self.bucket_width_px))


def bucket_edges(n_buckets: int, *, width_px: float) -> np.ndarray:
    """Bucket boundaries [shape=(n_buckets + 1,)]: bucket ``b`` spans ``[e[b], e[b+1])`` px."""
    return np.linspace(0.0, float(width_px), n_buckets + 1)


def bucket_centres(n_buckets: int, *, width_px: float) -> np.ndarray:
    """Bucket centres [shape=(n_buckets,)], ``(b + 1/2) * width_px / n_buckets`` px."""
    return (np.arange(n_buckets, dtype=np.float64) + 0.5) * (float(width_px) / n_buckets)


def bucket_of(x_px: np.ndarray | float, *, n_buckets: int, width_px: float) -> np.ndarray:
    """The bucket holding ``x_px``: ``floor(x * B / W)``, clipped to ``0 .. B-1``.

    Returns
    -------
    bucket : np.ndarray [dtype=int64]
    """
    b = np.floor(np.asarray(x_px, dtype=np.float64) * n_buckets / float(width_px))
    return np.clip(b, 0, n_buckets - 1).astype(np.int64)


def soft_targets(x_px: np.ndarray | Sequence[float], *, n_buckets: int, width_px: float,
                 neighbour_weights: Sequence[float] = (0.5,)) -> np.ndarray:
    """Soft bucket targets of head positions.

    Parameters
    ----------
    x_px : np.ndarray [shape=(n,)]
        Head x in the staff image, continuous pixels.
    n_buckets : int
        B.
    width_px : float
        Image width W.
    neighbour_weights : sequence of float
        Weight of the buckets 1, 2, ... places away; the head's bucket has 1.

    Returns
    -------
    targets : np.ndarray [shape=(n, n_buckets), dtype=float32]
        Each row sums to 1 and peaks at the head's bucket.
    """
    x = np.atleast_1d(np.asarray(x_px, dtype=np.float64))
    centre = bucket_of(x, n_buckets=n_buckets, width_px=width_px)
    weights = np.zeros((len(x), n_buckets), dtype=np.float64)
    rows = np.arange(len(x))
    weights[rows, centre] = 1.0
    for k, w in enumerate(neighbour_weights, start=1):
        for b in (centre - k, centre + k):
            inside = (b >= 0) & (b < n_buckets)
            weights[rows[inside], b[inside]] = w
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def staff_crop(system: System, *, image_height_px: int, image_width_px: int,
               staff_height_px: float) -> Band:
    """Where the staff image of ``system`` comes from (:func:`~msmd_prep.unroll.system_band`).

    Columns: the box's, widened to whole pixels.  Rows: ``image_height_px /
    staff_height_px`` box heights centred on the box (rounded to whole pixels).
    ``Band.to_image`` maps page pixels into the staff image.
    """
    return system_band(system, rows=(system.y1 - system.y0) * image_height_px / staff_height_px,
                       height_px=image_height_px, width_px=image_width_px)


def staff_image(page: np.ndarray, crop: Band, *, image_height_px: int,
                image_width_px: int) -> np.ndarray:
    """Cut ``crop`` out of ``page`` (white outside it) and resize it (area interpolation).

    Returns
    -------
    image : np.ndarray [shape=(image_height_px, image_width_px), dtype=uint8]
    """
    if crop.width != image_width_px:
        raise ConfigError(f"staff crop is {crop.width} px wide, not {image_width_px}")
    return band_image(page, crop, height_px=image_height_px)


def spec_ending_at(spec: np.ndarray, onset_frame: int, *, n_frames: int,
                   ) -> tuple[np.ndarray, int]:
    """The ``n_frames`` frames of ``spec`` whose last one is ``onset_frame``.

    Returns
    -------
    excerpt : np.ndarray [shape=(n_bins, n_frames)]
        Zeros where it reaches before the first or after the last frame.
    start : int
        Its first frame, ``onset_frame - n_frames + 1`` (may be < 0).
    """
    start = int(onset_frame) - n_frames + 1
    return extract_spec(spec, start=start, n_frames=n_frames), start


@dataclass
class Block:
    """Samples of one performance.

    ``staff`` (n, H, W) uint8 (or its compressed chunks,
    :func:`~msmd_prep.packing.shards.compress_sheets`), ``spec`` (n, F, T)
    (or its :class:`~msmd_prep.packing.shards.SpecRuns`),
    ``target`` (n, B) float32, ``meta`` (n,) structured (:data:`META_FIELDS`).
    """

    staff: np.ndarray
    spec: np.ndarray | SpecRuns
    target: np.ndarray
    meta: np.ndarray


def piece_samples(piece: Path, perf: PerformanceInput, config: ScoreFollowingConfig,
                  *, crops: Mapping[int, Band], images: Mapping[int, np.ndarray]) -> Block:
    """The score-following samples of one performance of one piece.

    Parameters
    ----------
    piece : Path
        The piece folder.
    perf : PerformanceInput
        The performance (alignment and spectrogram).
    config : ScoreFollowingConfig
    crops, images : mapping of int
        Per system, its staff crop (:func:`staff_crop`) and its staff image.
    """
    rows = read_alignment_csv(perf.perf_dir / ALIGNMENT_NAME)
    spec = load_spec(perf, config.spectrogram_preset, n_bins=int(perf.spec_meta["n_bins"]),
                     dtype=config.spec_dtype)
    fps = float(perf.spec_meta["config"]["frame_rate_fps"])
    n, H, W, T = len(rows), config.image_height_px, config.image_width_px, config.spec_frames
    frames = time_to_frames(np.array([r.onset_s for r in rows], dtype=np.float64),
                            frame_rate_fps=fps)
    hx = np.empty(n, dtype=np.float64)
    hy = np.empty(n, dtype=np.float64)
    staff = np.empty((n, H, W), dtype=np.uint8)
    specs = np.empty((n, spec.shape[0], T), dtype=spec.dtype)
    starts = np.empty(n, dtype=np.int64)
    for i, r in enumerate(rows):
        if r.system not in crops:
            raise InputError(f"{perf.perf_dir / ALIGNMENT_NAME}: system {r.system} is not in "
                             f"{piece / 'systems.csv'}")
        x, y = crops[r.system].to_image(r.x, r.y)
        hx[i], hy[i] = float(x), float(y)
        staff[i] = images[r.system]
        specs[i], starts[i] = spec_ending_at(spec, int(frames[i]), n_frames=T)
    meta = np.zeros(n, dtype=META_DTYPE)
    meta["piece"] = fixed_bytes(perf.piece)
    meta["performance"] = fixed_bytes(perf.performance)
    meta["notehead_id"] = [fixed_bytes(r.notehead_id) for r in rows]
    meta["soundfont"] = fixed_bytes(perf.soundfont["name"])
    meta["tempo_factor"] = perf.tempo_factor
    meta["onset_s"] = [r.onset_s for r in rows]
    meta["onset_frame"] = frames
    meta["pitch"] = [r.pitch for r in rows]
    meta["system"] = [r.system for r in rows]
    meta["head_x"] = hx
    meta["head_y"] = hy
    meta["bucket"] = bucket_of(hx, n_buckets=config.n_buckets, width_px=W)
    meta["spec_start_frame"] = starts
    target = soft_targets(hx, n_buckets=config.n_buckets, width_px=W,
                          neighbour_weights=config.neighbour_weights)
    return Block(staff, specs, target, meta)


@dataclass(frozen=True)
class ScoreFollowingTask:
    """The score-following task: one sample is a staff image, an excerpt and a target."""

    config: ScoreFollowingConfig
    format = "msmd-prep score-following dataset"
    meta_fields = META_FIELDS

    def read_inputs(self, piece: Path, *, only: Collection[str] | None = None,
                    include_flagged: bool = False) -> PieceInputs:
        """The performances of ``piece`` with the config's spectrogram."""
        return performance_inputs(piece, self.config.spectrogram_preset,
                                  needed_by="score following", only=only,
                                  include_flagged=include_flagged)

    def plan(self, workdir: Path, inputs: Inputs) -> Plan:
        """Sizes from the config and the spectrograms' bins (one number for all pieces)."""
        config = self.config
        n_bins = {int(p.spec_meta["n_bins"]) for _, perfs in inputs.values() for p in perfs}
        if len(n_bins) != 1:
            raise InputError(f"{workdir}: the {config.spectrogram_preset!r} spectrograms have "
                             f"different numbers of bins {sorted(n_bins)}")
        F = n_bins.pop()
        H, W, T, B = (config.image_height_px, config.image_width_px, config.spec_frames,
                      config.n_buckets)
        rates = {float(p.spec_meta["config"]["frame_rate_fps"])
                 for _, perfs in inputs.values() for p in perfs}
        return Plan(
            sample_bytes=(H * W + F * T * np.dtype(config.spec_dtype).itemsize + B * 4
                          + META_DTYPE.itemsize),
            chunk_samples=1, shard_attrs={"task": TASK},
            provenance={"task": TASK, "config": asdict(config)},
            index={"task": TASK, "staff_shape": [H, W], "spec_shape": [F, T], "n_buckets": B,
                   "bucket_edges_px": bucket_edges(B, width_px=W).tolist(),
                   "bucket_centres_px": bucket_centres(B, width_px=W).tolist(),
                   "frame_rate_fps": sorted(rates)},
            write_shard=partial(write_snippet_shard, sheet_shape=(H, W), image="staff"))

    def open_piece(self, piece: Path) -> tuple[Path, dict[int, Band], dict[int, np.ndarray]]:
        """The piece folder, and the staff crop and staff image of each of its systems."""
        return (piece, *_staff_images(piece, self.config))

    def pack_piece(self, name: str, split: str,
                   source: tuple[Path, dict[int, Band], dict[int, np.ndarray]],
                   perfs: Sequence[PerformanceInput], add: Callable[[Block], None],
                   staging: Path, attrs: Mapping[str, str | int]) -> dict:
        """The samples of every performance of one piece, staff images compressed."""
        piece, crops, images = source
        seen: dict = {}   # one chunk per staff system (compress_sheets)
        for perf in perfs:
            block = piece_samples(piece, perf, self.config, crops=crops, images=images)
            # Compressed here, in the worker: the shard writer only copies chunks;
            # the excerpts travel as the run of frames they span.
            add(replace(block, staff=compress_sheets(block.staff, seen),
                        spec=SpecRuns.of_excerpts(block.spec, block.meta["spec_start_frame"])))
        return {}


def pack_score_following(workdir: Path, out: Path,
                         config: ScoreFollowingConfig = ScoreFollowingConfig(), *,
                         progress: bool = False, jobs: int = 1) -> PackResult:
    """Pack every aligned piece of ``workdir`` into a score-following dataset ``out``.

    See :func:`msmd_prep.packing.core.pack_pieces` (staging, splits, failed
    and flagged pieces, sample order; ``jobs`` pieces at once, same bytes).

    Returns
    -------
    result : PackResult
    """
    with output_errors(Path(out)):
        return pack_pieces(workdir, out, ScoreFollowingTask(config), progress=progress,
                           jobs=jobs)


def _staff_images(piece: Path, config: ScoreFollowingConfig,
                  ) -> tuple[dict[int, Band], dict[int, np.ndarray]]:
    """The staff crop and staff image of every system of a rendered piece."""
    pages = [load_gray(p) for p in page_paths(piece)]
    crops, images = {}, {}
    for s in read_systems_csv(piece / "systems.csv"):
        if not 1 <= s.page <= len(pages):
            raise InputError(f"{piece / 'systems.csv'}: system {s.index} is on page {s.page}, "
                             f"but there are {len(pages)} pages")
        crop = staff_crop(s, image_height_px=config.image_height_px,
                          image_width_px=config.image_width_px,
                          staff_height_px=config.staff_height_px)
        crops[s.index] = crop
        images[s.index] = staff_image(pages[s.page - 1], crop,
                                      image_height_px=config.image_height_px,
                                      image_width_px=config.image_width_px)
    return crops, images
