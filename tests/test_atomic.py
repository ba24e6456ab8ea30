"""Manifests go before their data is rewritten; packs never share a staging folder (issue 11)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import msmd_prep.align as align_module
import msmd_prep.synth as synth_module
from msmd_prep.align import AlignConfig, align_piece
from msmd_prep.dataset import build_dataset
from msmd_prep.errors import ConfigError, InputError
from msmd_prep.locking import folder_lock
from msmd_prep.packing.snippets import PackConfig, pack_workdir
from msmd_prep.render import RenderConfig
from msmd_prep.soundfonts import resolve_soundfont
from msmd_prep.synth import SynthConfig, Synthesizer, synthesize_performance

MELODY = Path(__file__).parent / "fixtures" / "scores" / "melody.ly"


@pytest.fixture
def work(tmp_path) -> Path:
    result = build_dataset([MELODY], tmp_path, render_config=RenderConfig(dpi=100),
                           tempo_factors=[1.0], soundfonts=["timgm6mb"],
                           synth_config=SynthConfig(), pack_config=PackConfig(seed=6),
                           keep_audio=True)
    assert not result.failures, result.failures
    return tmp_path / "work"


def test_a_synth_that_fails_midway_leaves_no_manifest_of_the_old_audio(work, monkeypatch):
    perf = work / "melody" / "performances" / "timgm6mb_t1.00"
    assert json.loads((perf / "performance.json").read_text())["status"] == "complete"

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(synth_module, "write_onsets_csv", broken)
    with Synthesizer(resolve_soundfont("timgm6mb"), SynthConfig(gain=0.3)) as synth:
        with pytest.raises(OSError):
            synthesize_performance(synth, work / "melody", 1.0)
    assert not (perf / "performance.json").exists()
    with pytest.raises(InputError, match="missing: no performance.json"):
        pack_workdir(work, work.parent / "again", PackConfig(seed=6))


def test_an_align_that_fails_midway_leaves_no_manifest_of_the_old_rows(work, monkeypatch):
    perf = work / "melody" / "performances" / "timgm6mb_t1.00"
    (perf / "onsets.csv").write_text((perf / "onsets.csv").read_text().replace(
        "0.000000", "0.010000", 1))

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(align_module, "write_alignment_csv", broken)
    with pytest.raises(OSError):
        align_piece(work / "melody", AlignConfig(spectrogram_preset="msmd"))
    assert not (perf / "alignment.json").exists()


def test_a_second_pack_into_one_dataset_is_refused_and_stale_staging_is_cleared(work):
    out = work.parent / "dataset"
    stale = work.parent / ".dataset.tmp-0123456789abcdef"
    stale.mkdir()
    other = work.parent / ".dataset.tmp-notours"
    other.mkdir()
    with folder_lock(work.parent / ".dataset.lock", str(out)):
        with pytest.raises(ConfigError, match="in use by another msmd-prep run"):
            pack_workdir(work, out, PackConfig(seed=6))
        assert stale.is_dir()
    pack_workdir(work, out, PackConfig(seed=6))
    assert not stale.exists() and other.is_dir()


def test_npy_files_load_from_many_threads_at_once(tmp_path):
    """Spectrogram files read by many threads at once (a Dask worker's threads packing),
    memory-mapped or whole: every read gives the saved array (np.load's header parse is
    serialized: CPython 3.11's AST constructor is not thread-safe)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from msmd_prep.workdir import load_npy

    arrays = [np.arange(136 * (k + 1), dtype=np.float32).reshape(136, -1) for k in range(8)]
    for k, a in enumerate(arrays):
        np.save(tmp_path / f"spec-{k}.npy", a)
    jobs = [(k % 8, "r" if k % 2 else None) for k in range(400)]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda j: np.array(load_npy(tmp_path / f"spec-{j[0]}.npy", j[1])),
                            jobs))
    assert all(np.array_equal(g, arrays[k]) for g, (k, _) in zip(got, jobs))
