"""The work folder shared by the stages after render: pieces, performances, manifests.

A work folder holds one sub-folder per piece.  The render stage marks a piece
as usable by writing ``piece.json`` with ``"status": "ok"`` next to
``performance.csv``.  The synth and spectrogram stages write into
``PIECE/performances/<perf_id>/``; every file is first written under a
temporary name in the same folder and renamed when complete, so that an
interrupted run never leaves a truncated output behind a valid name.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PERFORMANCES_DIR = "performances"


@dataclass(frozen=True)
class PieceResult:
    """What one stage did with one piece.

    Attributes
    ----------
    piece : Path
        The piece folder.
    done : int
        Outputs made in this run.
    skipped : int
        Outputs already complete and up to date.
    error : str or None
        Why the piece failed (names the file and the cause), ``None`` if it did not.
    """

    piece: Path
    done: int = 0
    skipped: int = 0
    error: str | None = None


def rendered_pieces(workdir: Path) -> list[Path]:
    """Piece folders of ``workdir`` that the render stage completed, sorted by name.

    A folder counts as rendered when it holds ``performance.csv`` and a
    ``piece.json`` whose ``status`` is ``"ok"``; anything else is not a piece
    for the later stages (render reports its own failures).
    """
    pieces = []
    # Hidden folders are the temporary builds of pieces (see render_score).
    for d in sorted(p for p in Path(workdir).iterdir() if p.is_dir() and not p.name.startswith(".")):
        meta = read_json(d / "piece.json")
        if meta is not None and meta.get("status") == "ok" and (d / "performance.csv").is_file():
            pieces.append(d)
    return pieces


def performance_dirs(piece: Path) -> list[Path]:
    """The existing ``performances/<perf_id>`` folders of ``piece``, sorted by id."""
    root = piece / PERFORMANCES_DIR
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hex SHA-256 of ``obj`` as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or ``None`` when it is missing or unreadable.

    An unreadable manifest means "not done", so the stage redoes that output.
    """
    try:
        with open(path) as f:
            obj = json.load(f)
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary name next to ``path``, then rename it.

    The temporary name keeps the suffix of ``path`` so that libraries which
    pick a format by suffix (soundfile, numpy) still do so.
    """
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` via :func:`write_atomic`."""
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n"))
