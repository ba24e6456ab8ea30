"""Outputs on a full disk and under a umask (issue 11).

The full disk is a small tmpfs mounted by the test in a private mount
namespace (``unshare -rm``: no root needed where user namespaces are
allowed), grown again afterwards as if space had been freed.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from msmd_prep.dataset import build_dataset
from msmd_prep.packing.snippets import PackConfig
from msmd_prep.render import RenderConfig
from msmd_prep.synth import SynthConfig

SCORES = Path(__file__).parent / "fixtures" / "scores"
MELODY = SCORES / "melody.ly"

DRIVER = r'''
import json, os, subprocess, sys
from pathlib import Path

mnt, report_path, score = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)], check=True)


def resize(kib):
    subprocess.run(["mount", "-o", f"remount,size={kib}k", str(mnt)], check=True)


def used_kib():
    st = os.statvfs(mnt)
    return (st.f_blocks - st.f_bfree) * st.f_frsize // 1024


def cli(*args):
    r = subprocess.run([sys.executable, "-m", "msmd_prep.cli", *args], capture_output=True,
                       text=True, cwd=mnt)
    return {"rc": r.returncode, "out": r.stdout, "err": r.stderr}


STAGES = {
    "render": ["render", score, "--out", "w", "--dpi", "100", "--no-sandbox"],
    "synth": ["synth", "w", "--tempo", "1.0"],
    "spectrogram": ["spectrogram", "w", "--preset", "msmd"],
    "align": ["align", "w", "--spectrogram-preset", "msmd"],
    "pack": ["pack", "w", "--out", "d", "--seed", "3"],
    "dataset": ["dataset", score, "--out", "D", "--dpi", "100", "--no-sandbox", "--seed", "3"],
}
report = {}
for stage, args in STAGES.items():
    # Room for what is there and 8 KiB more: the stage's first big file fills it.
    resize(used_kib() + 8)
    full = cli(*args)
    full["files"] = sorted(str(p.relative_to(mnt)) for p in mnt.rglob("*"))
    resize(64 * 1024)
    report[stage] = {"full": full, "again": cli(*args)}
for name in ("d", "D/dataset"):
    index = json.loads((mnt / name / "index.json").read_text())
    report[name] = sorted(s["sha256"] for split in index["splits"].values()
                          for s in split["shards"])
report_path.write_text(json.dumps(report))
'''


def _can_unshare() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-rm", "true"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def full_disk(tmp_path_factory) -> dict:
    if not _can_unshare():
        pytest.skip("no private mount namespace here (unshare -rm)")
    tmp = tmp_path_factory.mktemp("full-disk")
    (tmp / "driver.py").write_text(DRIVER)
    (tmp / "mnt").mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run(["unshare", "-rm", sys.executable, str(tmp / "driver.py"),
                          str(tmp / "mnt"), str(tmp / "report.json"), str(MELODY)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads((tmp / "report.json").read_text())


FINAL_NAMES = {"render": "w/melody/noteheads.csv", "synth": "performance.json",
               "spectrogram": "spec-msmd.json", "align": "alignment.json",
               "pack": "d/index.json", "dataset": "D/dataset/index.json"}


@pytest.mark.parametrize("stage", list(FINAL_NAMES))
def test_full_disk_is_one_line_nothing_partial_and_the_rerun_completes(full_disk, stage):
    full = full_disk[stage]["full"]
    assert full["rc"] == 1
    # Progress bars end in carriage returns; a terminal shows each message on its own line.
    lines = re.split(r"[\r\n]", full["out"] + full["err"])
    failed = [ln for ln in lines if ln.startswith("FAILED")]
    assert len(failed) == 1, failed
    expected = "render" if stage == "dataset" else stage
    assert f"[{expected}]" in failed[0] and "No space left on device" in failed[0], failed[0]
    assert "cannot write " in failed[0]
    assert "Traceback" not in full["err"]
    # Nothing partial: no manifest of the stage, no temporary file or folder left.
    assert not [f for f in full["files"] if f.endswith(FINAL_NAMES[stage])]
    assert not [f for f in full["files"] if ".tmp" in f or ".build-" in f]
    again = full_disk[stage]["again"]
    assert again["rc"] == 0, again["err"][-2000:]


def test_reruns_after_a_full_disk_give_the_same_shards(full_disk):
    assert full_disk["d"] and full_disk["d"] == full_disk["D/dataset"]


def test_outputs_are_readable_by_the_group_under_a_usual_umask(tmp_path):
    old = os.umask(0o002)
    try:
        result = build_dataset([MELODY], tmp_path, render_config=RenderConfig(dpi=100),
                               tempo_factors=[1.0], soundfonts=["timgm6mb"],
                               synth_config=SynthConfig(), pack_config=PackConfig(seed=3))
    finally:
        os.umask(old)
    assert not result.failures, result.failures
    paths = [p for p in tmp_path.rglob("*") if not p.is_symlink()]
    assert any(p.name == "melody" and p.is_dir() for p in paths)
    for p in paths:
        mode = stat.S_IMODE(p.stat().st_mode)
        want = 0o775 if p.is_dir() else 0o664
        assert mode & want == want, (str(p.relative_to(tmp_path)), oct(mode))
