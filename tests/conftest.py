"""Shared fixtures: the score fixtures rendered once per test session."""
from __future__ import annotations

from pathlib import Path

import pytest
from fixture_dataset import FixtureDataset, fixture_dataset

from msmd_prep.render import RenderConfig, render_many

FIXTURES = Path(__file__).parent / "fixtures"
SCORES = FIXTURES / "scores"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


@pytest.fixture(scope="session")
def rendered(tmp_path_factory) -> dict[str, Path]:
    """Every ``tests/fixtures/scores/*.ly`` rendered at 150 dpi: name -> piece folder."""
    out = tmp_path_factory.mktemp("rendered")
    scores = sorted(SCORES.glob("*.ly"))
    results = render_many(scores, out, RenderConfig(dpi=150))
    failed = {r.source.name: r.error for r in results if r.error}
    assert not failed, failed
    return {r.source.stem: r.piece_dir for r in results}


@pytest.fixture(scope="session")
def fixture_ds(tmp_path_factory) -> FixtureDataset:
    """The fixture dataset (work folder, packed dataset, a second pack), built once."""
    return fixture_dataset(tmp_path_factory)
