"""A small dataset built once per test session from the fixture scores, by the CLI.

Four pieces (chords on two staves, a volta repeat, ties, several pages),
one tempo, the default TimGM6mb SoundFont, preset ``msmd``.  The work folder
is then packed a second time with the same seed, for the determinism check.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from msmd_prep.cli import main
from msmd_prep.packing.snippets import PackConfig, pack_workdir

SCORES = Path(__file__).parent / "fixtures" / "scores"
PIECES = ("multipage", "piano_chords", "ties", "volta")
SEED = 6  # every split gets a piece of the four (splits are hashed per piece)
_CACHE: dict[str, "FixtureDataset"] = {}


@dataclass(frozen=True)
class FixtureDataset:
    """Paths of the fixture dataset: ``work`` folder, ``dataset`` and its repack ``again``."""

    work: Path
    dataset: Path
    again: Path


def fixture_dataset(tmp_path_factory) -> FixtureDataset:  # type: ignore[no-untyped-def]
    """Build the fixture dataset on first use; later calls return the same one."""
    if "ds" not in _CACHE:
        out = tmp_path_factory.mktemp("fixture-dataset")
        result = CliRunner().invoke(main, ["dataset", *(str(SCORES / f"{p}.ly") for p in PIECES),
                                           "--out", str(out), "--seed", str(SEED)])
        assert result.exit_code == 0, result.output
        again = out / "again"
        pack_workdir(out / "work", again, PackConfig(seed=SEED))
        _CACHE["ds"] = FixtureDataset(work=out / "work", dataset=out / "dataset", again=again)
    return _CACHE["ds"]
