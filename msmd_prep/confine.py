"""Untrusted inputs may read only their own folder tree.

A score may include files from the folder of its main file and below, and
LilyPond's own files (a plain relative name that is not there, such as
``"english.ly"``, which LilyPond finds on its own include path).  Any other
reference to a file fails the piece, with a message naming the reference: an
absolute path, a ``..`` that leaves the tree, a symbolic link that points out
of it.  The same rule holds for MusicXML (external entities, XInclude) and
ABC (``%%abc-include``), whose converters would otherwise be asked to read
other files.
"""
from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from .errors import InputError

_XML_REFERENCE_RE = re.compile(
    r"<!ENTITY\s+(?:%\s*)?[^\s>]+\s+(?:SYSTEM|PUBLIC)\s+(\"[^\"]*\"|'[^']*')"
    r"|<[\w.-]*:?include\b[^>]*\bhref\s*=\s*(\"[^\"]*\"|'[^']*')", re.IGNORECASE)
_ABC_INCLUDE_RE = re.compile(r"^\s*(?:%%|I:)\s*abc-include\s+(\S+)", re.MULTILINE)


def is_inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (symbolic links resolved) lies in ``root``'s folder tree."""
    return Path(path).resolve().is_relative_to(Path(root).resolve())


def resolve_include(name: str, bases: list[Path], root: Path, *, where: Path) -> Path | None:
    """The file an ``\\include "name"`` of ``where`` reads, if it is the score's own.

    Parameters
    ----------
    name : str
        The include's file name as written.
    bases : list of Path
        Folders LilyPond resolves a relative name against (the including
        file's folder, the main file's folder), in order.
    root : Path
        The score's folder tree (the main file's folder).
    where : Path
        The file that holds the include, for the message.

    Returns
    -------
    Path or None
        The resolved file inside ``root``; ``None`` for a plain relative name
        found in no base (one of LilyPond's own files).

    Raises
    ------
    InputError
        The include names a file outside ``root``.
    """
    for base in bases:
        candidate = base / name
        if candidate.is_file():
            if not is_inside(candidate, root):
                raise InputError(f"{where}: \\include \"{name}\" reads a file outside the "
                                 f"score's folder {root}")
            return candidate.resolve()
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or Path(name).is_absolute():
        raise InputError(f"{where}: \\include \"{name}\" names a file outside the score's "
                         f"folder {root}")
    return None


def check_references(source: Path, text: str, fmt: str) -> None:
    """Refuse a MusicXML or ABC input that refers to another file.

    Parameters
    ----------
    source : Path
        The input file, for the message.
    text : str
        Its text (the score XML of an ``.mxl``).
    fmt : {"musicxml", "abc", "midi"}
        Its format; MIDI files refer to nothing.

    Raises
    ------
    InputError
        An external entity or XInclude (MusicXML), an ``abc-include`` (ABC);
        the message names the reference.
    """
    if fmt == "musicxml":
        m = _XML_REFERENCE_RE.search(text)
        if m:
            ref = (m.group(1) or m.group(2))[1:-1]
            raise InputError(f"{source}: refers to another file ({ref!r}); MusicXML inputs "
                             "must be self-contained")
    elif fmt == "abc":
        m = _ABC_INCLUDE_RE.search(text)
        if m:
            raise InputError(f"{source}: abc-include {m.group(1)!r} refers to another file; "
                             "ABC inputs must be self-contained")
