"""Which performances belong to which score: a manifest, or files beside the score.

Two ways to attach performances to scores:

* A manifest, CSV or YAML, one row per performance: ``score``,
  ``performance`` and optionally ``id``; paths relative to the manifest's
  folder.  ASAP's ``metadata.csv`` is read as it is: ``midi_score`` (or
  ``xml_score`` with ``score_field="xml_score"``) is the score and
  ``midi_performance`` the performance (``audio_performance`` too, where
  that file exists).
* A folder ``<score stem>.performances/`` beside a score: every MIDI or audio
  file in it is a performance of that score.

A performance's id is its ``id`` or its file stem, made unique within its
score by its parent folders.
"""
from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import ConfigError, InputError

MIDI_SUFFIXES = (".mid", ".midi")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".aif", ".aiff")
PERFORMANCES_SUFFIX = ".performances"
ASAP_SCORE_FIELDS = ("midi_score", "xml_score")


@dataclass(frozen=True)
class PerformanceSource:
    """One performance to align to a score.

    Attributes
    ----------
    score : Path
        The score file (resolved).
    path : Path
        The MIDI file or recording (resolved).
    id : str
        Unique among the score's performances; letters, digits, ``-``, ``_``, ``.``.
    """

    score: Path
    path: Path
    id: str

    @property
    def kind(self) -> str:
        """``"midi"`` or ``"audio"``, by the file's suffix."""
        return "midi" if self.path.suffix.lower() in MIDI_SUFFIXES else "audio"


def is_performance_file(path: Path) -> bool:
    """Whether ``path`` has a MIDI or audio suffix."""
    return path.suffix.lower() in MIDI_SUFFIXES + AUDIO_SUFFIXES


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "performance"


def _unique_ids(items: list[tuple[Path, Path, str | None]]) -> list[PerformanceSource]:
    """Give every performance of a score a distinct id (its stem, with parents if needed)."""
    out = []
    taken: dict[Path, set[str]] = {}
    for score, path, given in items:
        used = taken.setdefault(score, set())
        if given:
            pid = _safe_id(given)
            if pid in used:
                raise ConfigError(f"performance id {given!r} repeats for score {score}")
        else:
            parts = [path.stem]
            parent = path.parent
            pid = _safe_id(path.stem)
            while pid in used and parent != parent.parent:
                parts.insert(0, parent.name)
                parent = parent.parent
                pid = _safe_id("__".join(parts))
            n = 2
            base = pid
            while pid in used:
                pid, n = f"{base}-{n}", n + 1
        used.add(pid)
        out.append(PerformanceSource(score, path, pid))
    return out


def _rows(manifest: Path) -> list[dict]:
    try:
        if manifest.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(manifest.read_text())
            rows = data.get("performances", data) if isinstance(data, dict) else data
        else:
            with open(manifest, newline="") as f:
                rows = list(csv.DictReader(f))
    except (OSError, yaml.YAMLError, csv.Error, UnicodeDecodeError) as e:
        raise InputError(f"{manifest}: unreadable manifest ({e})") from e
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InputError(f"{manifest}: a manifest is a list of rows with score and performance")
    return rows


def read_manifest(manifest: Path, *, score_field: str = "midi_score") -> list[PerformanceSource]:
    """The performances a manifest lists, in its order.

    Parameters
    ----------
    manifest : Path
        CSV (header row) or YAML (a list of mappings, or ``performances:`` holding one).
    score_field : {"midi_score", "xml_score"}
        For ASAP's ``metadata.csv``: which score to align to.

    Raises
    ------
    InputError
        Unreadable, a row without score or performance, or a file that does not exist.
    """
    manifest = Path(manifest)
    if score_field not in ASAP_SCORE_FIELDS:
        raise ConfigError(f"score_field must be one of {ASAP_SCORE_FIELDS}, got {score_field!r}")
    base = manifest.resolve().parent
    items: list[tuple[Path, Path, str | None]] = []
    for n, row in enumerate(_rows(manifest), start=2):
        if "score" in row:
            pairs = [(row.get("score"), row.get("performance"))]
        elif score_field in row and "midi_performance" in row:
            pairs = [(row[score_field], row["midi_performance"])]
            audio = row.get("audio_performance")
            if audio and (base / audio).is_file():
                pairs.append((row[score_field], audio))
        else:
            raise InputError(f"{manifest}: row {n} has no 'score' and 'performance' columns "
                             "(nor ASAP's midi_score/xml_score and midi_performance)")
        for score, perf in pairs:
            if not score or not perf:
                raise InputError(f"{manifest}: row {n} lacks a score or a performance path")
            score_path, perf_path = (base / str(score)).resolve(), (base / str(perf)).resolve()
            for p in (score_path, perf_path):
                if not p.is_file():
                    raise InputError(f"{manifest}: row {n}: {p} does not exist")
            if not is_performance_file(perf_path):
                raise InputError(f"{manifest}: row {n}: {perf_path} is neither MIDI nor audio "
                                 f"({', '.join(MIDI_SUFFIXES + AUDIO_SUFFIXES)})")
            items.append((score_path, perf_path, row.get("id") if len(pairs) == 1 else None))
    return _unique_ids(items)


def attached_performances(scores: Sequence[Path]) -> list[PerformanceSource]:
    """The performances in ``<stem>.performances/`` folders beside ``scores``, sorted by name."""
    items = []
    for score in scores:
        folder = score.with_name(score.stem + PERFORMANCES_SUFFIX)
        if folder.is_dir():
            items += [(score.resolve(), p.resolve(), None) for p in sorted(folder.iterdir())
                      if p.is_file() and is_performance_file(p)]
    return _unique_ids(items)


def sources_for_score(score: Path, files: Sequence[Path]) -> list[PerformanceSource]:
    """Performances given one by one for one score (ids from their file stems).

    Raises
    ------
    InputError
        A file is neither MIDI nor audio.
    """
    bad = [str(f) for f in files if not is_performance_file(Path(f))]
    if bad:
        raise InputError(f"not a MIDI or audio file: {', '.join(bad)} "
                         f"({', '.join(MIDI_SUFFIXES + AUDIO_SUFFIXES)})")
    return _unique_ids([(Path(score).resolve(), Path(f).resolve(), None) for f in files])
