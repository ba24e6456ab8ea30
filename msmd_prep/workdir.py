"""The work folder shared by the stages after render: pieces, performances, manifests.

A work folder holds one sub-folder per piece.  The render stage marks a piece
as usable by writing ``piece.json`` with ``"status": "ok"`` next to
``performance.csv``.  The synth and spectrogram stages write into
``PIECE/performances/<perf_id>/``; every file is first written under a
temporary name in the same folder and renamed when complete, so that an
interrupted run never leaves a truncated output behind a valid name.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import OutputError

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


# np.load parses a file's header with ast.literal_eval, and CPython 3.11's AST constructor
# is not safe in two threads at once: "SystemError: AST constructor recursion depth
# mismatch" (python/cpython#106905), seen when a Dask worker's two threads packed together.
_NPY_HEADER_LOCK = threading.Lock()


def load_npy(path: Path, mmap_mode: str | None = None) -> np.ndarray:
    """``np.load(path, mmap_mode=mmap_mode)``, one thread at a time (the header only
    when memory-mapped: the data is read after the lock, on access)."""
    with _NPY_HEADER_LOCK:
        return np.load(path, mmap_mode=mmap_mode)


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary name next to ``path``, then rename it.

    The temporary name keeps the suffix of ``path`` so that libraries which
    pick a format by suffix (soundfile, numpy) still do so.

    Raises
    ------
    OutputError
        The file cannot be written; the message names ``path`` and the cause.
    """
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        with output_errors(path):
            write(tmp)
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` via :func:`write_atomic`."""
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n"))


#: The random part of :func:`make_temp_dir` names: nothing else ends so.
TEMP_TOKEN_RE = re.compile(r"[0-9a-f]{16}")


def make_temp_dir(parent: Path, prefix: str) -> Path:
    """A new folder ``parent/<prefix><16 hex digits>``, with the user's usual permissions.

    Unlike :func:`tempfile.mkdtemp` (mode 700) the folder is made with
    ``os.mkdir``, so the umask decides who may read it: a dataset shared by a
    group, or written by workers running as another user, stays readable.
    """
    while True:
        path = Path(parent) / f"{prefix}{secrets.token_hex(8)}"
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        return path


def stale_temp_dirs(parent: Path, prefix: str) -> list[Path]:
    """The folders :func:`make_temp_dir` made in ``parent`` with exactly this ``prefix``.

    Only names of the form ``<prefix><16 hex digits>`` count, so that the
    builds of piece ``op.10`` are never taken for those of piece ``op``.
    """
    parent = Path(parent)
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir()
                  if p.name.startswith(prefix) and TEMP_TOKEN_RE.fullmatch(p.name[len(prefix):]))


#: How a full disk is worded in messages (``os.strerror(errno.ENOSPC)``).
NO_SPACE = os.strerror(errno.ENOSPC)
#: errno values that mean "no room": a full disk, a quota, a file size limit.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def no_space_left(folder: Path, error: BaseException | None = None) -> bool:
    """Whether ``error`` (or, when it names no errno, the file system of ``folder``) says "full".

    An external tool (LilyPond) reports a full disk in its own words; the
    file system is asked then: less than 64 KiB free counts as full.
    """
    if isinstance(error, OSError) and error.errno is not None:
        return error.errno in NO_SPACE_ERRNOS
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


def ensure_room(path: Path, nbytes: int) -> None:
    """Refuse to start a file of about ``nbytes`` that the disk cannot hold.

    HDF5 crashes the process (a segmentation fault in h5py 3) when it closes
    a file whose write failed for want of space, so the HDF5 writers ask
    first, with 10 % and 1 MiB to spare.

    Raises
    ------
    OutputError
        The file system of ``path``'s folder has less room than that.
    """
    try:
        st = os.statvfs(Path(path).parent)
    except OSError:
        return
    free = st.f_bavail * st.f_frsize
    need = int(nbytes * 1.1) + (1 << 20)
    if free < need:
        raise OutputError(f"cannot write {path}: {NO_SPACE} "
                          f"({need / 1e6:.1f} MB needed, {free / 1e6:.1f} MB free)")


def describe_os_error(e: OSError) -> str:
    """One line for an ``OSError``: its own message and the path(s) it names.

    ``PermissionError(13, 'Permission denied', '/x')`` gives
    ``"Permission denied: /x"``; an error without a path keeps its text.
    """
    cause = e.strerror or str(e)
    paths = [str(p) for p in (e.filename, e.filename2) if p is not None]
    return f"{cause}: {' -> '.join(paths)}" if paths else cause


_HDF5_CAUSE_RE = re.compile(r"error message = '([^']+)'")


@contextmanager
def output_errors(path: Path) -> Iterator[None]:
    """Turn a failed write of ``path`` into an :class:`OutputError` naming it and the cause.

    Covers ``OSError`` and the ``RuntimeError`` that h5py raises for a failed
    system call (HDF5 puts the system's message in its text); any other
    ``RuntimeError`` is a bug and goes on.
    """
    try:
        yield
    except OutputError:
        raise
    except OSError as e:
        cause = e.strerror or str(e)
        raise OutputError(f"cannot write {path}: {cause}") from e
    except RuntimeError as e:
        m = _HDF5_CAUSE_RE.search(str(e))
        if m is None:
            raise
        raise OutputError(f"cannot write {path}: {m.group(1)}") from e
