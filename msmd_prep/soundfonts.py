"""SoundFonts: the manifest of named SoundFonts, lookup by name or path, checksums.

The manifest (package data ``msmd_prep/resources/soundfonts/manifest.yaml``) maps a
logical name (``timgm6mb``,
``fluidr3_gm``, ``musescore_general``) to a file, the bank and preset to
play, a licence, a SHA-256 checksum and where the file is found.  A user may
also name any ``.sf2``/``.sf3`` file by path; it then plays bank 0, preset 0
and its checksum is recorded but not checked against anything.
"""
from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import ConfigError
from .resources import resource_path
from .workdir import sha256_file

MANIFEST_PATH = resource_path("soundfonts", "manifest.yaml")
SOUNDFONT_SUFFIXES = (".sf2", ".sf3")


@dataclass(frozen=True)
class ManifestEntry:
    """One named SoundFont as the manifest describes it.

    Attributes
    ----------
    name : str
        Logical name, lower case; the prefix of the performance ids.
    file : str
        File name of the SoundFont.
    bank, preset : int
        The program played, 0..16383 and 0..127.
    licence : str
        Licence of the SoundFont.
    sha256 : str
        Expected hex SHA-256 of the file.
    python_package : str or None
        The file lies in this installed package's folder ...
    paths : tuple of str
        ... or at the first of these absolute paths that exists.
    get : str
        How to get the file when it is missing.
    """

    name: str
    file: str
    bank: int
    preset: int
    licence: str
    sha256: str
    python_package: str | None
    paths: tuple[str, ...]
    get: str

    def locate(self) -> Path | None:
        """The file on this machine, or ``None`` when it is not there."""
        candidates = [Path(p) for p in self.paths]
        if self.python_package is not None:
            spec = importlib.util.find_spec(self.python_package)
            if spec is not None and spec.submodule_search_locations:
                candidates += [Path(d) / self.file for d in spec.submodule_search_locations]
        return next((p for p in candidates if p.is_file()), None)


@dataclass(frozen=True)
class SoundFont:
    """A SoundFont file found on this machine, ready to load.

    Attributes
    ----------
    name : str
        Logical name (manifest name, or the file's stem for a path).
    path : Path
        Absolute path of the file.
    bank, preset : int
        The program played.
    sha256 : str
        Hex SHA-256 of the file, computed when it was resolved.
    licence : str or None
        Licence from the manifest; ``None`` for a file named by path.
    """

    name: str
    path: Path
    bank: int
    preset: int
    sha256: str
    licence: str | None

    def provenance(self) -> dict:
        """The fields a performance records about its SoundFont."""
        return {"name": self.name, "path": str(self.path), "sha256": self.sha256,
                "bank": self.bank, "preset": self.preset, "licence": self.licence}


def load_manifest(path: Path = MANIFEST_PATH) -> dict[str, ManifestEntry]:
    """Read the SoundFont manifest.

    Parameters
    ----------
    path : Path
        The manifest YAML file (default: the package's :data:`MANIFEST_PATH`).

    Returns
    -------
    entries : dict of str to ManifestEntry
        By logical name, in manifest order, the default first.
    """
    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
        default = doc["default"]
        raw = doc["soundfonts"]
        entries = {name: ManifestEntry(
            name=name, file=e["file"], bank=int(e["bank"]), preset=int(e["preset"]),
            licence=e["licence"], sha256=str(e["sha256"]).lower(),
            python_package=e.get("python_package"), paths=tuple(e.get("paths", ())),
            get=e["get"]) for name, e in raw.items()}
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError(f"SoundFont manifest {path} is unreadable: {e!r}") from e
    for entry in entries.values():
        if not re.fullmatch(r"[0-9a-f]{64}", entry.sha256):
            raise ConfigError(f"SoundFont manifest {path}: sha256 of {entry.name!r} must be "
                              f"64 hex digits in quotes, got {entry.sha256!r}")
    if default not in entries:
        raise ConfigError(f"SoundFont manifest {path}: default {default!r} is not listed")
    return {default: entries[default]} | entries


def soundfont_name_for_path(path: Path) -> str:
    """The logical name of a SoundFont named by path: its stem, lower case, ``[a-z0-9_]``."""
    return re.sub(r"[^a-z0-9_]+", "_", path.stem.lower()).strip("_") or "soundfont"


def resolve_soundfont(name_or_path: str, *, manifest: dict[str, ManifestEntry] | None = None,
                      ) -> SoundFont:
    """Find a SoundFont by manifest name or by path, and checksum it.

    Parameters
    ----------
    name_or_path : str
        A manifest name (case-insensitive), or a path to a ``.sf2``/``.sf3``
        file (anything with a path separator or one of those suffixes).
    manifest : dict, optional
        Entries from :func:`load_manifest`; read from the default file if omitted.

    Returns
    -------
    soundfont : SoundFont

    Raises
    ------
    ConfigError
        The name is unknown, the file is missing (the message says how to get
        it), or a named file's checksum differs from the manifest's.
    """
    as_path = Path(name_or_path).expanduser()
    if "/" in name_or_path or as_path.suffix.lower() in SOUNDFONT_SUFFIXES:
        if not as_path.is_file():
            raise ConfigError(f"SoundFont file {name_or_path!r} does not exist")
        if as_path.suffix.lower() not in SOUNDFONT_SUFFIXES:
            raise ConfigError(f"SoundFont file {name_or_path!r} is not a .sf2 or .sf3 file")
        path = as_path.resolve()
        return SoundFont(soundfont_name_for_path(path), path, 0, 0, sha256_file(path), None)

    entries = load_manifest() if manifest is None else manifest
    entry = entries.get(name_or_path.lower())
    if entry is None:
        raise ConfigError(f"unknown SoundFont {name_or_path!r}: use one of "
                          f"{', '.join(entries)} or a path to a .sf2/.sf3 file")
    path = entry.locate()
    if path is None:
        raise ConfigError(f"SoundFont {entry.name!r} ({entry.file}) is not installed; "
                          f"get it with: {entry.get}")
    digest = sha256_file(path)
    if digest != entry.sha256:
        raise ConfigError(f"SoundFont {entry.name!r} at {path} has sha256 {digest}, the manifest "
                          f"expects {entry.sha256}; name the file by path to use it anyway")
    return SoundFont(entry.name, path.resolve(), entry.bank, entry.preset, digest, entry.licence)
