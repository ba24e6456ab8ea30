"""Files the package ships as package data, found with :mod:`importlib.resources`.

- ``lilypond/msmd.ily``: the Scheme include that exports every note head's
  box and the performance from LilyPond (:data:`msmd_prep.lilypond.EXPORT_ILY`);
- ``soundfonts/manifest.yaml``: the SoundFonts known by name
  (:data:`msmd_prep.soundfonts.MANIFEST_PATH`).

They live inside the package so that an editable install, a wheel and a
plain ``PYTHONPATH`` checkout all find the same files.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def resource_path(*parts: str) -> Path:
    """The shipped file ``parts`` (e.g. ``"lilypond", "msmd.ily"``) as a path on disk.

    LilyPond reads the include by path (and the sandbox binds its folder),
    so the package must be installed as files, as pip does; a zipped
    install is refused with this message.
    """
    ref = files(__name__).joinpath(*parts)
    if not isinstance(ref, Path):
        raise RuntimeError(f"msmd-prep resource {'/'.join(parts)} is not a file on disk "
                           f"({ref!r}); install msmd-prep unpacked (pip install)")
    return ref
