"""The main job at scale: processes, Dask, a killed run resumed, bad input isolated."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from mido import Message, MidiFile, MidiTrack

from msmd_prep.cli import main
from msmd_prep.dataset import _size, build_dataset
from msmd_prep.packing.core import SPLITS
from msmd_prep.packing.snippets import PackConfig
from msmd_prep.render import RenderConfig
from msmd_prep.synth import SynthConfig

SCORES = Path(__file__).parent / "fixtures" / "scores"
PIECES = [SCORES / f"{name}.ly" for name in ("melody", "volta", "ties", "grace")]


def _arrays(root: Path) -> dict[str, bytes]:
    """Every shard's and piece file's bytes, by path."""
    index = json.loads((root / "index.json").read_text())
    paths = [s["path"] for split in SPLITS for s in index["splits"][split]["shards"]]
    paths += [p["file"] for p in index["pieces"].values()]
    assert paths
    return {p: (root / p).read_bytes() for p in paths}


def _build(out: Path, **kwargs):
    return build_dataset(PIECES, out, render_config=RenderConfig(dpi=100), tempo_factors=[1.0],
                         soundfonts=["timgm6mb"], synth_config=SynthConfig(),
                         pack_config=PackConfig(seed=3), **kwargs)


@pytest.fixture(scope="module")
def single_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single")
    result = _build(out)
    assert not result.failures, result.failures
    return out


def test_two_processes_give_the_same_shards(single_run, tmp_path):
    result = _build(tmp_path, jobs=2)
    assert not result.failures
    assert _arrays(tmp_path / "dataset") == _arrays(single_run / "dataset")


def test_kept_audio_gives_the_same_shards(single_run, tmp_path):
    # With the audio kept, synth writes it and the spectrogram stage reads it back;
    # without, the spectrograms are made from the samples in memory.
    result = _build(tmp_path, keep_audio=True)
    assert not result.failures
    assert list((tmp_path / "work").glob("*/performances/*/audio.flac"))
    assert not list((single_run / "work").glob("*/performances/*/audio.flac"))
    assert _arrays(tmp_path / "dataset") == _arrays(single_run / "dataset")


def test_the_size_estimate_of_a_score_counts_its_includes(tmp_path):
    (tmp_path / "notes.ily").write_text("music = { " + "c'4 " * 500 + "}\n")
    (tmp_path / "main.ly").write_text('\\version "2.24.0"\n\\include "notes.ily"\n'
                                      "\\score { \\music }\n")
    (tmp_path / "alone.ly").write_text('\\version "2.24.0"\n{ ' + "c'4 " * 100 + "}\n")
    sizes = {p.name: p.stat().st_size for p in tmp_path.iterdir()}
    assert _size(tmp_path / "main.ly") == sizes["main.ly"] + sizes["notes.ily"]
    assert _size(tmp_path / "main.ly") > _size(tmp_path / "alone.ly") > sizes["main.ly"]


def test_dask_local_cluster_gives_the_same_shards(single_run, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None, processes=True) as cluster:
        result = _build(tmp_path, scheduler=cluster.scheduler_address)
    assert not result.failures
    assert _arrays(tmp_path / "dataset") == _arrays(single_run / "dataset")


def _stage_started(out: Path) -> dict[str, bool]:
    """Which stage has left a trace in ``out`` so far."""
    work = out / "work"
    return {
        "render": any(work.glob("*/piece.json")),
        "synth": any(work.glob("*/performances/*/onsets.csv")),
        "spectrogram": any(work.glob("*/performances/*/spec-*.npy")),
        "align": any(work.glob("*/performances/*/alignment.csv")),
        "pack": any(out.glob(".dataset.tmp-*")) or (out / "dataset").exists(),
    }


@pytest.mark.parametrize("stage", ["render", "synth", "spectrogram", "align", "pack"])
def test_killed_run_resumes_to_the_same_shards(single_run, tmp_path, stage):
    cmd = [sys.executable, "-m", "msmd_prep.cli", "dataset", *map(str, PIECES), "--out",
           str(tmp_path), "--dpi", "100", "--tempo", "1.0", "--seed", "3"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if _stage_started(tmp_path)[stage]:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before {stage} could be killed"
    rerun = subprocess.run(cmd, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert _arrays(tmp_path / "dataset") == _arrays(single_run / "dataset")
    assert not list(tmp_path.glob(".dataset.tmp-*"))


def test_bad_inputs_fail_alone_with_file_stage_and_cause(tmp_path):
    bad = tmp_path / "scores"
    bad.mkdir()
    (bad / "empty.ly").write_bytes(b"")
    (bad / "junk.ly").write_bytes(bytes(range(256)) * 8)
    (bad / "syntax_error.ly").write_text('\\version "2.24.0"\n{ c\'4 \\notACommand }\n')
    (bad / "no_notes.ly").write_text('\\version "2.24.0"\n\\markup { "words" }\n')
    (bad / "forever.ly").write_text('\\version "2.24.0"\n#(let loop () (loop))\n{ c\'4 }\n')
    (bad / "hostile.ly").write_text(
        '\\version "2.24.0"\n'
        f'#(system "touch {tmp_path}/ran-a-program")\n'
        f'#(catch #t (lambda () (with-output-to-file "{tmp_path}/wrote-outside" '
        '(lambda () (display "x")))) (lambda args #f))\n'
        "{ c'4 d' }\n")
    track = MidiTrack([Message("note_on", note=60, velocity=64, time=0),
                       Message("note_off", note=60, velocity=0, time=480)] * 8)
    MidiFile(tracks=[track]).save(tmp_path / "whole.mid")
    (bad / "truncated.mid").write_bytes((tmp_path / "whole.mid").read_bytes()[:30])
    (bad / "melody.ly").write_text((SCORES / "melody.ly").read_text())
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["dataset", str(bad), "--out", str(out),
                                       "--soundfont", "timgm6mb", "no_such_soundfont",
                                       "--timeout", "8", "--tempo", "1.0"])
    assert result.exit_code == 1
    failures = {Path(f["file"]).name: f for f in json.loads((out / "failures.json").read_text())}
    expected = {"empty.ly": "empty file", "junk.ly": "binary data",
                "syntax_error.ly": "notACommand", "no_notes.ly": "no printed notes",
                "forever.ly": "time limit", "truncated.mid": "truncated.mid",
                "soundfont no_such_soundfont": "no_such_soundfont"}
    assert set(failures) == set(expected)
    for name, cause in expected.items():
        assert cause in failures[name]["cause"], failures[name]
        assert failures[name]["stage"] == ("synth" if name.startswith("soundfont") else "render")
        assert any(line.startswith("FAILED") and name in line and cause in line
                   for line in result.output.splitlines()), name
    assert not (tmp_path / "ran-a-program").exists()
    assert not (tmp_path / "wrote-outside").exists()
    index = json.loads((out / "dataset" / "index.json").read_text())
    assert set(index["pieces"]) == {"melody", "hostile"}


def test_unwritable_output_folder_is_one_clear_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(main, ["dataset", str(PIECES[0]), "--out",
                                       str(blocker / "out"), "--tempo", "1.0"])
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.startswith("FAILED")]
    assert len(lines) == 1 and "cannot make the output folder: Not a directory" in lines[0]
    assert str(blocker) in lines[0]
