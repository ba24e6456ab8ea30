"""Which outputs of a work folder may be packed: complete, current, and not flagged.

Pack reads nothing on trust.  A piece or a performance is packed only when
every manifest on its way is there, readable, complete, of the current stage
version (:mod:`msmd_prep.stage_versions`), and names as its inputs exactly
what is in the work folder now.  Anything else is left out with one of these
reasons, which ``index.json`` (``left_out``) and the summary give:

- ``failed``: the render of the piece failed (``piece.json`` says why);
- ``missing``: a stage has not made it (no synthesis, spectrogram or alignment);
- ``stale``: it was made from other inputs or by an older stage version;
- ``unreadable``: a manifest or data file cannot be read, or lacks what it must
  hold (a self-check result above all): unknown counts as bad, never as good;
- ``flagged``: a self-check failed (``--include-flagged`` packs it anyway).

Checks about the score (``piece.json``) flag the piece; checks about one
performance (``alignment.json``: ``energy``) flag that performance only.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..align import (ALIGNMENT_JSON, ALIGNMENT_NAME, alignment_input_hashes,
                     piece_input_hashes)
from ..errors import MsmdPrepError
from ..spectrogram import SpectrogramConfig, spectrogram_config_hash
from ..stage_versions import stage_version
from ..synth import ONSETS_NAME, PERFORMANCE_JSON
from ..workdir import load_npy, read_json, sha256_file, sha256_json

REASONS = ("failed", "missing", "stale", "unreadable", "flagged")
RENDER = "run `msmd-prep render` again"
SYNTH = "run `msmd-prep synth WORKDIR`"
ALIGN = "run `msmd-prep align WORKDIR`"


def _spectrogram(preset: str) -> str:
    return f"run `msmd-prep spectrogram WORKDIR --preset {preset}`"


@dataclass(frozen=True)
class LeftOut:
    """Why a piece or a performance is not packed: a reason of :data:`REASONS` and detail."""

    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


def _manifest(path: Path) -> tuple[dict | None, LeftOut | None]:
    """The manifest at ``path``; ``missing`` when absent, ``unreadable`` when not JSON."""
    if not path.is_file():
        return None, LeftOut("missing", f"no {path.name}")
    info = read_json(path)
    if info is None:
        return None, LeftOut("unreadable", f"{path} is not a JSON object")
    return info, None


def _flags(info: dict, path: Path) -> LeftOut | None:
    """``flagged`` when a self-check failed; ``unreadable`` when the checks are not there."""
    well = info.get("aligned_well")
    checks = info.get("checks")
    if not isinstance(well, bool) or not isinstance(checks, dict):
        return LeftOut("unreadable", f"{path} holds no self-check results")
    if not well:
        failed = sorted(n for n, c in checks.items()
                        if not (isinstance(c, dict) and c.get("passed") is True))
        return LeftOut("flagged", f"failed self-checks: {', '.join(failed) or 'checks'}")
    return None


def piece_state(piece: Path, *, include_flagged: bool) -> LeftOut | None:
    """Why the rendered piece ``piece`` cannot be packed, or ``None``."""
    info, why = _manifest(piece / "piece.json")
    if why:
        return why
    if info.get("status") == "failed":
        return LeftOut("failed", f"{info.get('stage', 'render')}: {info.get('error', '')}")
    if info.get("status") != "ok":
        return LeftOut("unreadable", f"{piece / 'piece.json'}: status {info.get('status')!r}")
    if info.get("stage_version") != stage_version("render"):
        return LeftOut("stale", f"rendered by render stage version {info.get('stage_version')}, "
                                f"now {stage_version('render')}; {RENDER}")
    from ..render import sha256_files  # render loads LilyPond's tools; only here

    try:
        current = sha256_files([Path(p) for p in info.get("inputs", [])])
    except OSError as e:
        return LeftOut("stale", f"its inputs are gone ({e.strerror}: {e.filename})")
    if not info.get("inputs") or current != info.get("inputs_sha256"):
        return LeftOut("stale", f"its score changed since it was rendered; {RENDER}")
    flag = _flags(info, piece / "piece.json")
    if flag and not (include_flagged and flag.reason == "flagged"):
        return flag
    return None


def performance_state(piece: Path, perf_dir: Path, spectrogram_preset: str, *,
                      piece_hashes: dict, include_flagged: bool
                      ) -> tuple[dict | None, dict | None, LeftOut | None]:
    """Whether one performance can be packed with the spectrogram ``spectrogram_preset``.

    Returns
    -------
    perf, spec : dict or None
        ``performance.json`` and ``spec-<preset>.json`` when it can.
    why : LeftOut or None
        Why it cannot.
    """
    perf, why = _manifest(perf_dir / PERFORMANCE_JSON)
    if why:
        return None, None, LeftOut(why.reason, f"{why.detail}; {SYNTH}")
    if perf.get("status") != "complete" or not (perf_dir / ONSETS_NAME).is_file():
        return None, None, LeftOut("missing", f"synthesis not complete; {SYNTH}")
    why = (_synthesis_state(piece, perf) if perf.get("kind", "synthesized") == "synthesized"
           else _real_performance_state(piece, perf))
    if why:
        return None, None, why
    spec, why = _manifest(perf_dir / f"spec-{spectrogram_preset}.json")
    if why:
        return None, None, LeftOut(why.reason, f"{why.detail}; "
                                               f"{_spectrogram(spectrogram_preset)}")
    try:
        spec_current = (spec.get("status") == "complete"
                        and spec.get("input_hash") == sha256_json([perf["input_hash"],
                                                                   perf["config_hash"]])
                        and spec.get("config_hash") == spectrogram_config_hash(
                            SpectrogramConfig.from_mapping(spec["config"])))
    except (KeyError, TypeError, MsmdPrepError) as e:
        return None, None, LeftOut("unreadable", f"spec-{spectrogram_preset}.json: {e!r}")
    if not spec_current:
        return None, None, LeftOut("stale", f"spectrogram {spectrogram_preset!r} not of this "
                                            "synthesis or stage version; "
                                            + _spectrogram(spectrogram_preset))
    npy = perf_dir / f"spec-{spectrogram_preset}.npy"
    try:
        array = load_npy(npy, mmap_mode="r")
    except (OSError, ValueError) as e:
        return None, None, LeftOut("unreadable", f"{npy}: {e}")
    if array.ndim != 2 or list(array.shape) != list(spec.get("shape", [])):
        return None, None, LeftOut("unreadable", f"{npy}: shape {array.shape}, its manifest "
                                                 f"says {spec.get('shape')}")
    align, why = _manifest(perf_dir / ALIGNMENT_JSON)
    if why:
        return None, None, LeftOut(why.reason, f"{why.detail}; {ALIGN}")
    if (align.get("status") != "complete" or align.get("stage_version") != stage_version("align")
            or not (perf_dir / ALIGNMENT_NAME).is_file()):
        return None, None, LeftOut("stale", "alignment not complete or of an older align "
                                            f"stage; {ALIGN}")
    try:
        expected = alignment_input_hashes(piece_hashes, perf_dir,
                                          str(align.get("spectrogram_preset")))
    except MsmdPrepError as e:
        return None, None, LeftOut("stale", f"alignment inputs are gone ({e})")
    if align.get("input_hashes") != expected:
        return None, None, LeftOut("stale", f"aligned to other inputs; {ALIGN}")
    flag = _flags(align, perf_dir / ALIGNMENT_JSON)
    if flag and not (include_flagged and flag.reason == "flagged"):
        return None, None, flag
    return perf, spec, None


def _synthesis_state(piece: Path, perf: dict) -> LeftOut | None:
    """Why a synthesized ``performance.json`` is not current, or ``None``."""
    if perf.get("stage_version") != stage_version("synth"):
        return LeftOut("stale", f"synthesized by an older synth stage; {SYNTH}")
    if perf.get("input_hash") != sha256_file(piece / "performance.csv"):
        return LeftOut("stale", "synthesized from another performance.csv; " + SYNTH)
    return None


def _real_performance_state(piece: Path, perf: dict) -> LeftOut | None:
    """Why a real performance (the perform stage's ``performance.json``) cannot be packed.

    Current when its recorded input hash is that of its performance file, the
    piece's ``performance.csv`` and ``noteheads.csv`` now (as
    :func:`msmd_prep.performed.perform.perform_source` computes it) and it was
    aligned by the current perform stage version; left out when the perform
    stage flagged it (wrong piece, silence).
    """
    perform = "run `msmd-prep dataset` or `msmd-prep perform` again"
    try:
        current = sha256_json([sha256_file(Path(perf["source"]["path"])),
                               sha256_file(piece / "performance.csv"),
                               sha256_file(piece / "noteheads.csv")])
    except (KeyError, TypeError) as e:
        return LeftOut("unreadable", f"performance.json names no source ({e!r})")
    except OSError as e:
        return LeftOut("stale", f"its performance file is gone ({e.strerror}: {e.filename})")
    if perf.get("input_hash") != current:
        return LeftOut("stale", f"aligned to another performance or score; {perform}")
    if perf.get("stage_version") != stage_version("perform"):
        return LeftOut("stale", f"aligned by an older perform stage; {perform}")
    # Wrong piece or silence: left out even with --include-flagged (as the perform stage says).
    if perf.get("flagged"):
        flags = perf.get("flags") or ["flagged by the perform stage"]
        return LeftOut("flagged", "; ".join(map(str, flags)))
    return None


def piece_hashes_or_reason(piece: Path) -> tuple[dict | None, LeftOut | None]:
    """:func:`msmd_prep.align.piece_input_hashes`, or why they cannot be had."""
    try:
        return piece_input_hashes(piece), None
    except (MsmdPrepError, OSError) as e:
        return None, LeftOut("unreadable", str(e))
