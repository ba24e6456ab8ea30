"""Runs that overlap never touch each other's files (issue 11)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from msmd_prep.dataset import build_dataset
from msmd_prep.locking import LOCK_NAME
from msmd_prep.packing.snippets import PackConfig
from msmd_prep.render import RenderConfig, render_many, render_score
from msmd_prep.synth import SynthConfig

SCORES = Path(__file__).parent / "fixtures" / "scores"
MELODY = SCORES / "melody.ly"


def test_render_never_removes_the_build_of_a_piece_with_a_longer_id(tmp_path):
    """Ids ``op`` and ``op.10``: cleaning up ``op``'s stale builds keeps ``op.10``'s live one."""
    work = tmp_path / "work"
    work.mkdir()
    live = [Path(tempfile.mkdtemp(prefix=".op.10.", dir=work)),
            work / ".op.10.build-0123456789abcdef"]
    live[1].mkdir()
    stale = work / ".op.build-0123456789abcdef"
    stale.mkdir()
    render_score(MELODY, work / "op", RenderConfig(dpi=100))
    assert all(p.is_dir() for p in live)
    assert not stale.exists()


def test_ids_op_and_op10_render_at_two_jobs(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("op", "op.10"):
        (src / f"{name}.ly").write_text(MELODY.read_text())
    results = render_many(sorted(src.glob("*.ly")), tmp_path / "work", RenderConfig(dpi=100),
                          jobs=2)
    assert [r.error for r in results] == ["", ""]
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["op", "op.10"]


def _build(out: Path, scores=(MELODY,), tempo_factors=(1.0,), **kwargs):
    return build_dataset(list(scores), out, render_config=RenderConfig(dpi=100),
                         tempo_factors=list(tempo_factors), soundfonts=["timgm6mb"],
                         synth_config=SynthConfig(), pack_config=PackConfig(seed=3), **kwargs)


def test_second_dataset_run_on_one_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "msmd_prep.cli", "dataset", str(MELODY), str(SCORES / "ties.ly"),
           "--out", str(out), "--dpi", "100"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / LOCK_NAME).is_file() or not (out / LOCK_NAME).read_text():
        assert first.poll() is None and time.monotonic() < deadline, "the first run never started"
        time.sleep(0.01)
    second = _build(out)
    assert first.poll() is None, "the first run must still be running for this test"
    [(where, stage, cause)] = second.failures
    assert (where, stage) == (str(out), "dataset")
    assert "in use by another msmd-prep run" in cause and f"pid {first.pid}" in cause
    assert second.pack is None and not second.reports
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    index = json.loads((out / "dataset" / "index.json").read_text())
    assert sorted(index["pieces"]) == ["melody", "ties"]


def test_lock_of_a_killed_run_is_taken_over(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename,
                                             "started": "2026-01-01T00:00:00Z"}))
    result = _build(out)
    assert not result.failures, result.failures
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()


def _shard_bytes(dataset: Path) -> dict[str, str]:
    index = json.loads((dataset / "index.json").read_text())
    return {s["path"]: s["sha256"] for split in index["splits"].values() for s in split["shards"]}


def test_dask_worker_threads_share_no_synth(tmp_path):
    """One worker process with two threads: byte-identical to a serial run.

    The threaded run starts from the serial run's renders, so that the two
    threads spend their time synthesizing, side by side.
    """
    distributed = pytest.importorskip("distributed")
    scores = [SCORES / f"{n}.ly" for n in ("melody", "volta", "ties", "grace")]
    tempos = [0.7, 0.8, 0.9, 1.0]
    serial = _build(tmp_path / "serial", scores=scores, tempo_factors=tempos)
    assert not serial.failures
    for piece in (tmp_path / "serial" / "work").iterdir():
        if piece.is_dir():
            shutil.copytree(piece, tmp_path / "threads" / "work" / piece.name,
                            ignore=shutil.ignore_patterns("performances", "unrolled.*"))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, host="127.0.0.1",
                                  dashboard_address=None, processes=True) as cluster:
        threaded = _build(tmp_path / "threads", scores=scores, tempo_factors=tempos,
                          scheduler=cluster.scheduler_address)
    assert not threaded.failures
    assert _shard_bytes(tmp_path / "threads" / "dataset") == _shard_bytes(
        tmp_path / "serial" / "dataset")
