"""A normalized copy of a LilyPond source, ready for the current LilyPond.

The user's files are never touched.  The main file and every file it
``\\include``s (found next to it, inside its folder tree) are decoded to UTF-8, upgraded with
``convert-ly`` and written flat into one folder, with the include names
rewritten to match, so that LilyPond finds them whatever its include mode.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .confine import resolve_include
from .errors import InputError
from .lilypond import convert_ly

INCLUDE_RE = re.compile(r'\\include\s*"([^"]+)"')
VERSION_RE = re.compile(r'\\version\s*"([0-9.]+)"')


@dataclass
class NormalizedSource:
    """The normalized copy of one score.

    Attributes
    ----------
    main : Path
        The main file inside the normalized folder.
    files : dict of Path to Path
        Original file -> normalized copy, the main file included.
    version : str or None
        The ``\\version`` the main file declared.
    """

    main: Path
    files: dict[Path, Path] = field(default_factory=dict)
    version: str | None = None


def decode_source(data: bytes, path: Path) -> str:
    """Text of a LilyPond file: UTF-8, else Latin-1 (old Mutopia files).

    Raises
    ------
    InputError
        The file is empty or holds binary data.
    """
    if not data.strip():
        raise InputError(f"{path}: empty file")
    if b"\0" in data:
        raise InputError(f"{path}: binary data, not a LilyPond file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    return text.lstrip("\ufeff")


def find_version(text: str) -> str | None:
    """The ``\\version`` string of a LilyPond source, if any."""
    m = VERSION_RE.search(text)
    return m.group(1) if m else None


def local_includes(text: str, bases: list[Path], root: Path, where: Path) -> list[tuple[str, Path]]:
    """``\\include`` names in ``text`` with the score's own file each reads.

    Names are resolved against ``bases`` in order; LilyPond's own files are
    left out.  An include of a file outside ``root`` fails (see
    :mod:`msmd_prep.confine`).
    """
    found = []
    for name in INCLUDE_RE.findall(text):
        inc = resolve_include(name, bases, root, where=where)
        if inc is not None:
            found.append((name, inc))
    return found


def normalize_source(main: Path, out_dir: Path, *, upgrade: bool = True,
                     fixes=None, pre_fixes=None) -> NormalizedSource:
    """Write the normalized copy of ``main`` and its includes into ``out_dir``.

    Parameters
    ----------
    main : Path
        The score's main ``.ly`` file.
    out_dir : Path
        Folder for the copy; created if needed.
    upgrade : bool
        Run ``convert-ly`` on every file.
    fixes : callable, optional
        ``fixes(text) -> text`` applied to every file after ``convert-ly``.
    pre_fixes : callable, optional
        ``pre_fixes(text) -> text`` applied to every file before ``convert-ly``
        (constructs that stop ``convert-ly`` itself).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    main = main.resolve()
    texts: dict[Path, str] = {}
    names: dict[Path, str] = {main: main.name}
    queue = [main]
    while queue:
        path = queue.pop()
        text = decode_source(path.read_bytes(), path)
        texts[path] = text
        for _, inc in local_includes(text, [path.parent, main.parent], main.parent, path):
            if inc not in names:
                names[inc] = f"inc{len(names):02d}-{inc.name}"
                queue.append(inc)
    version = find_version(texts[main])
    result = NormalizedSource(main=out_dir / names[main], version=version)
    for path, text in texts.items():
        def rename(m: re.Match, base: Path = path.parent) -> str:
            for root in (base, main.parent):
                inc = (root / m.group(1)).resolve()
                if inc in names:
                    return f'\\include "{names[inc]}"'
            return m.group(0)

        text = INCLUDE_RE.sub(rename, text)
        if pre_fixes is not None:
            text = pre_fixes(text)
        target = out_dir / names[path]
        target.write_text(text, encoding="utf-8")
        # A file with no \version anywhere is taken as current syntax.
        if upgrade and (find_version(text) or version):
            text = convert_ly(target, from_version=None if find_version(text) else version)
        if fixes is not None:
            text = fixes(text)
        target.write_text(text, encoding="utf-8")
        result.files[path] = target
    return result
