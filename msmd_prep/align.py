"""The align stage: every (note head, onset) of a performance with its place on the page.

Per piece, the align stage writes the unrolled score (``unrolled.png`` and
``unrolled.json``, see :mod:`msmd_prep.unroll`) and, per synthesized
performance, ``alignment.csv``: one row per onset of ``onsets.csv`` joined
with its head's box from ``noteheads.csv``.  Nothing is matched or guessed:
every onset already names its head.

Onset frames come from :func:`msmd_prep.spectrogram.time_to_frames` at the
frame rate of one spectrogram preset (``AlignConfig.spectrogram_preset``);
the pack stage converts the same onset times again for the preset it needs.
"""
from __future__ import annotations

import csv
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .stage_versions import stage_version
from .checks import Check, check_onset_energy, pitch_bands, summarize
from .errors import AlignmentError, ConfigError, InputError, MsmdPrepError
from .pages import load_gray
from .score import NoteHead, read_heads_csv, read_systems_csv
from .spectrogram import SpectrogramConfig, fft_frequencies, last_frame_before, time_to_frames
from .synth import ONSETS_NAME, read_onsets_csv
from .unroll import Unrolled, UnrollConfig, unroll
from .workdir import (PieceResult, load_npy, performance_dirs, read_json, rendered_pieces,
                      sha256_file, sha256_json, write_atomic, write_json_atomic)

ALIGNMENT_NAME = "alignment.csv"
ALIGNMENT_JSON = "alignment.json"
UNROLLED_PNG = "unrolled.png"
UNROLLED_JSON = "unrolled.json"
ALIGNMENT_COLUMNS = ("notehead_id", "page", "x", "y", "system", "unrolled_x", "pitch",
                     "performance", "onset_s", "onset_frame")


@dataclass(frozen=True)
class AlignConfig:
    """Options of the align stage.

    Attributes
    ----------
    band_height_px : int
        Height of the unrolled score's bands, pixels at ``sheet_dpi`` (MSMD: 200).
    sheet_dpi : float
        Resolution of the unrolled score, pixels per inch (MSMD: about 100).
    spectrogram_preset : str
        The spectrogram (``spec-<preset>.json``) whose frame rate gives ``onset_frame``.
    """

    band_height_px: int = 200
    sheet_dpi: float = 100.0
    spectrogram_preset: str = "default"

    def __post_init__(self) -> None:
        self.unroll_config()
        if not self.spectrogram_preset:
            raise ConfigError("spectrogram_preset must not be empty")

    def unroll_config(self) -> UnrollConfig:
        """The unrolled score's config."""
        return UnrollConfig(band_height_px=self.band_height_px, sheet_dpi=self.sheet_dpi)


@dataclass(frozen=True)
class AlignmentRow:
    """One onset of one note head in one performance.

    Attributes
    ----------
    notehead_id : str
    page : int
        Page number, from 1.
    x, y : float
        Centre of the head's box, page pixels.
    system : int
    unrolled_x : float
        ``x`` mapped into the unrolled score, pixels.
    pitch : int
        MIDI pitch.
    performance : str
        Performance id (``<soundfont>_t<tempo>``).
    onset_s : float
        Onset in the performance's audio, seconds.
    onset_frame : int
        ``time_to_frames(onset_s)`` at the spectrogram's frame rate.
    """

    notehead_id: str
    page: int
    x: float
    y: float
    system: int
    unrolled_x: float
    pitch: int
    performance: str
    onset_s: float
    onset_frame: int


def align_onsets(onsets: Sequence[tuple[str, float]], heads: Mapping[str, NoteHead], *,
                 unrolled: Unrolled, performance: str, frame_rate_fps: float,
                 ) -> list[AlignmentRow]:
    """Join a performance's onsets with their heads.

    Parameters
    ----------
    onsets : sequence of (str, float)
        ``(notehead_id, onset_s)`` as in ``onsets.csv``.
    heads : mapping of str to NoteHead
        The printed heads by id.
    unrolled : Unrolled
        The piece's unrolled score, for ``unrolled_x``.
    performance : str
        Performance id written into every row.
    frame_rate_fps : float
        Frame rate of the spectrogram the frames refer to.

    Returns
    -------
    rows : list of AlignmentRow
        Sorted by onset, then pitch, then head id.  Onsets of heads without
        a box (hidden heads) have no row.
    """
    known = [(hid, t) for hid, t in onsets if hid in heads]
    frames = time_to_frames(np.array([t for _, t in known], dtype=np.float64),
                            frame_rate_fps=frame_rate_fps)
    rows = []
    for (hid, t), frame in zip(known, frames):
        h = heads[hid]
        x, y = (h.x0 + h.x1) / 2, (h.y0 + h.y1) / 2
        u, _ = unrolled.band(h.system).to_unrolled(x, y)
        rows.append(AlignmentRow(notehead_id=hid, page=h.page, x=x, y=y, system=h.system,
                                 unrolled_x=float(u), pitch=h.pitch, performance=performance,
                                 onset_s=t, onset_frame=int(frame)))
    rows.sort(key=lambda r: (r.onset_s, r.pitch, int(r.notehead_id.lstrip("h") or 0),
                             r.notehead_id))
    return rows


def write_alignment_csv(rows: Sequence[AlignmentRow], path: Path) -> None:
    """Write ``alignment.csv`` (columns :data:`ALIGNMENT_COLUMNS`)."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(ALIGNMENT_COLUMNS)
            w.writerows((r.notehead_id, r.page, f"{r.x:.2f}", f"{r.y:.2f}", r.system,
                         f"{r.unrolled_x:.2f}", r.pitch, r.performance, f"{r.onset_s:.6f}",
                         r.onset_frame) for r in rows)
    write_atomic(path, write)


def read_alignment_csv(path: Path) -> list[AlignmentRow]:
    """Read an ``alignment.csv`` written by :func:`write_alignment_csv`."""
    with open(path, newline="") as f:
        return [AlignmentRow(r["notehead_id"], int(r["page"]), float(r["x"]), float(r["y"]),
                             int(r["system"]), float(r["unrolled_x"]), int(r["pitch"]),
                             r["performance"], float(r["onset_s"]), int(r["onset_frame"]))
                for r in csv.DictReader(f)]


def page_paths(piece: Path) -> list[Path]:
    """The page images of a rendered piece, page 1 first."""
    pages = sorted((piece / "pages").glob("page-*.png"))
    if not pages:
        raise InputError(f"{piece / 'pages'}: no page images")
    return pages


def render_dpi(piece: Path) -> float:
    """The resolution the piece's pages were rendered at, from ``piece.json``."""
    meta = read_json(piece / "piece.json")
    try:
        return float(meta["config"]["dpi"])
    except (TypeError, KeyError, ValueError) as e:
        raise InputError(f"{piece / 'piece.json'}: no render dpi") from e


def unroll_piece(piece: Path, config: UnrollConfig) -> Unrolled:
    """The unrolled score of a rendered piece, read from its pages and ``systems.csv``."""
    pages = [load_gray(p) for p in page_paths(piece)]
    return unroll(pages, read_systems_csv(piece / "systems.csv"), dpi=render_dpi(piece),
                  config=config)


def spectrogram_frame_rate(perf_dir: Path, preset: str) -> float:
    """Frame rate of ``spec-<preset>`` of a performance, from its manifest.

    Raises
    ------
    InputError
        The spectrogram is missing; the message names the command that makes it.
    """
    meta = read_json(perf_dir / f"spec-{preset}.json")
    if meta is None or meta.get("status") != "complete":
        raise InputError(f"{perf_dir}: no spectrogram for preset {preset!r}; run "
                         f"`msmd-prep spectrogram WORKDIR --preset {preset}`")
    return float(meta["config"]["frame_rate_fps"])


def onset_energy_check(perf_dir: Path, preset: str, rows: Sequence[AlignmentRow]) -> Check:
    """:func:`~msmd_prep.checks.check_onset_energy` on one performance's spectrogram."""
    meta = read_json(perf_dir / f"spec-{preset}.json") or {}
    cfg = SpectrogramConfig.from_mapping(meta.get("config", {}))
    spec = load_npy(perf_dir / f"spec-{preset}.npy")
    bands = pitch_bands(np.array([r.pitch for r in rows]), cfg.filterbank(),
                        fft_frequencies(sample_rate_hz=cfg.sample_rate_hz,
                                        frame_size_samples=cfg.frame_size_samples))
    before = last_frame_before(np.array([r.onset_s for r in rows], float), cfg)
    return check_onset_energy(bands, np.array([r.onset_frame for r in rows], int), before, spec)


def piece_input_hashes(piece: Path) -> dict:
    """What every alignment of ``piece`` reads of its render, hashed.

    ``noteheads.csv``, ``systems.csv``, the page images, and of ``piece.json``
    only what align uses (the render dpi, the undrawn heads): a render with
    other timings or options that made the same piece leaves the alignments
    current.
    """
    info = read_json(piece / "piece.json")
    if info is None:
        raise InputError(f"{piece / 'piece.json'}: missing or unreadable")
    used = {"dpi": (info.get("config") or {}).get("dpi"),
            "undrawn_heads": info.get("undrawn_heads"),
            "noteheads_not_drawn": (info.get("counts") or {}).get("noteheads_not_drawn")}
    return {"noteheads.csv": sha256_file(piece / "noteheads.csv"),
            "systems.csv": sha256_file(piece / "systems.csv"),
            "pages": sha256_json([sha256_file(p) for p in page_paths(piece)]),
            "piece.json": sha256_json(used)}


def alignment_input_hashes(piece_hashes: dict, perf_dir: Path, preset: str) -> dict:
    """What the alignment of one performance reads: the piece's render, its onsets, and
    the spectrogram ``preset`` (frame rate and identity: the energy check reads it).

    Raises
    ------
    InputError
        The spectrogram is missing (see :func:`spectrogram_frame_rate`).
    """
    fps = spectrogram_frame_rate(perf_dir, preset)
    spec = read_json(perf_dir / f"spec-{preset}.json") or {}
    return piece_hashes | {"onsets.csv": sha256_file(perf_dir / ONSETS_NAME),
                           "frame_rate_fps": fps,
                           "spectrogram": sha256_json([spec.get("input_hash"),
                                                       spec.get("config_hash")])}


def align_config_hash(config: AlignConfig) -> str:
    """Hash of the align options and the align stage's code version."""
    return sha256_json({"config": asdict(config), "stage_version": stage_version("align")})


def undrawn_heads(piece: Path) -> set[str]:
    """Ids of the heads ``piece`` plays but draws no box for (hidden or merged).

    Raises
    ------
    InputError
        ``piece.json`` counts undrawn heads but does not name them (a render
        of an older version); the piece must be rendered again.
    """
    info = read_json(piece / "piece.json") or {}
    ids = info.get("undrawn_heads")
    if ids is None:
        if info.get("counts", {}).get("noteheads_not_drawn", 0):
            raise InputError(f"{piece / 'piece.json'}: undrawn heads are not named; "
                             "render the piece again")
        return set()
    return set(ids)


def align_piece(piece: Path, config: AlignConfig = AlignConfig(), *,
                performances: Collection[str] | None = None) -> tuple[int, int]:
    """Write the unrolled score and every performance's alignment of one piece.

    Parameters
    ----------
    piece : Path
        A rendered piece with synthesized performances and their spectrograms.
    config : AlignConfig
    performances : collection of str, optional
        The performance ids to align (default: every synthesized one).

    Returns
    -------
    done, skipped : int
        Alignments written and alignments already up to date.

    Raises
    ------
    InputError
        A performance has no spectrogram of ``config.spectrogram_preset``.
    AlignmentError
        An onset names a head that the piece neither prints nor hides.
    """
    perf_dirs = [d for d in performance_dirs(piece) if (d / ONSETS_NAME).is_file()
                 and (performances is None or d.name in performances)]
    if not perf_dirs:
        raise InputError(f"{piece}: no synthesized performance; run `msmd-prep synth` first")
    inputs = piece_input_hashes(piece)
    config_hash = align_config_hash(config)
    unrolled_meta = read_json(piece / UNROLLED_JSON)
    todo = []
    for perf_dir in perf_dirs:
        perf_inputs = alignment_input_hashes(inputs, perf_dir, config.spectrogram_preset)
        fps = perf_inputs["frame_rate_fps"]
        meta = read_json(perf_dir / ALIGNMENT_JSON)
        if not (meta is not None and meta.get("input_hashes") == perf_inputs
                and meta.get("config_hash") == config_hash
                and (perf_dir / ALIGNMENT_NAME).is_file()):
            todo.append((perf_dir, fps, perf_inputs))
    unrolled_current = (unrolled_meta is not None and unrolled_meta.get("input_hashes") == inputs
                        and unrolled_meta.get("config_hash") == config_hash
                        and (piece / UNROLLED_PNG).is_file())
    if not todo and unrolled_current:
        return 0, len(perf_dirs)
    unrolled = unroll_piece(piece, config.unroll_config())
    if not unrolled_current:
        ok, png = cv2.imencode(".png", unrolled.image)
        if not ok:
            raise InputError(f"{piece}: cannot encode the unrolled score")
        # Each manifest goes before its data is rewritten and comes back last.
        (piece / UNROLLED_JSON).unlink(missing_ok=True)
        write_atomic(piece / UNROLLED_PNG, lambda tmp: tmp.write_bytes(png.tobytes()))
        write_json_atomic(piece / UNROLLED_JSON, {
            "stage": "align", "input_hashes": inputs, "config_hash": config_hash,
            "config": asdict(config), "stage_version": stage_version("align"),
            "render_dpi": render_dpi(piece),
            "coordinates": "continuous pixels: pixel i spans [i, i+1)",
        } | unrolled.layout())
    heads = {h.id: h for h in read_heads_csv(piece / "noteheads.csv")}
    undrawn = undrawn_heads(piece)
    for perf_dir, fps, perf_inputs in todo:
        onsets = read_onsets_csv(perf_dir / ONSETS_NAME)
        unknown = sorted({hid for hid, _ in onsets if hid not in heads and hid not in undrawn})
        if unknown:
            raise AlignmentError(f"{perf_dir / ONSETS_NAME}: onsets of heads the piece "
                                 f"neither prints nor hides: {unknown[:5]}")
        rows = align_onsets(onsets, heads, unrolled=unrolled, performance=perf_dir.name,
                            frame_rate_fps=fps)
        unprinted = len(onsets) - len(rows)
        (perf_dir / ALIGNMENT_JSON).unlink(missing_ok=True)
        write_alignment_csv(rows, perf_dir / ALIGNMENT_NAME)
        energy = onset_energy_check(perf_dir, config.spectrogram_preset, rows)
        write_json_atomic(perf_dir / ALIGNMENT_JSON, summarize([energy]) | {
            "stage": "align", "status": "complete", "input_hashes": perf_inputs,
            "config_hash": config_hash, "config": asdict(config),
            "stage_version": stage_version("align"),
            "spectrogram_preset": config.spectrogram_preset, "frame_rate_fps": fps,
            "rows": len(rows), "onsets_of_hidden_heads": unprinted,
            "frame_rule": "onset_frame = ceil(onset_s * fps) (spectrogram.time_to_frames)"})
    return len(todo), len(perf_dirs) - len(todo)


def align_workdir(workdir: Path, *, config: AlignConfig = AlignConfig(),
                  progress: bool = False) -> list[PieceResult]:
    """Align every synthesized performance of every rendered piece in ``workdir``.

    Returns
    -------
    results : list of PieceResult
        One per rendered piece, in name order.
    """
    results = []
    for piece in tqdm(rendered_pieces(workdir), desc="align", unit="piece", disable=not progress):
        try:
            done, skipped = align_piece(piece, config)
        except MsmdPrepError as e:
            results.append(PieceResult(piece, error=str(e)))
            continue
        results.append(PieceResult(piece, done, skipped))
    return results
