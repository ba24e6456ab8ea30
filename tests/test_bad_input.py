"""Bad and hostile scores fail alone, with the file and the cause named."""
from __future__ import annotations

import json
import os
from pathlib import Path

from click.testing import CliRunner

from msmd_prep.cli import main
from msmd_prep.render import RenderConfig, render_many

GOOD = Path(__file__).parent / "fixtures" / "scores" / "melody.ly"


def _bad_scores(folder: Path) -> dict[str, Path]:
    files = {
        "empty": b"",
        "junk": bytes(range(256)) * 8,
        "syntax_error": b'\\version "2.24.0"\n{ c\'4 d\' \\notACommand e\' }\n',
        "no_notes": b'\\version "2.24.0"\n\\markup { "Just words" }\n',
        "forever": b'\\version "2.24.0"\n#(let loop () (loop))\n{ c\'4 }\n',
    }
    paths = {}
    for name, data in files.items():
        paths[name] = folder / f"{name}.ly"
        paths[name].write_bytes(data)
    return paths


def test_each_bad_score_fails_alone_with_its_cause(tmp_path):
    bad = _bad_scores(tmp_path)
    scores = [bad["empty"], bad["junk"], GOOD, bad["syntax_error"], bad["no_notes"],
              bad["forever"]]
    results = render_many(scores, tmp_path / "out", RenderConfig(timeout_s=8))
    by_name = {r.source.stem: r for r in results}
    assert not by_name["melody"].error
    causes = {
        "empty": "empty file",
        "junk": "binary data",
        "syntax_error": "notACommand",
        "no_notes": "no printed notes",
        "forever": "time limit",
    }
    for name, cause in causes.items():
        error = by_name[name].error
        assert cause in error, (name, error)
        info = json.loads((by_name[name].piece_dir / "piece.json").read_text())
        assert info["status"] == "failed" and info["stage"] == "render"
    for name in ("empty", "junk", "no_notes"):
        assert str(bad[name]) in by_name[name].error


def test_hostile_score_can_neither_run_programs_nor_write_outside(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    marker_exec = outside / "ran-a-program"
    marker_write = outside / "wrote-a-file"
    hostile = tmp_path / "hostile.ly"
    hostile.write_text(
        '\\version "2.24.0"\n'
        f'#(system "touch {marker_exec}")\n'
        f'#(system "/usr/bin/touch {marker_exec}")\n'
        f'#(catch #t (lambda () (with-output-to-file "{marker_write}" '
        '(lambda () (display "x")))) (lambda args #f))\n'
        f'#(catch #t (lambda () (with-output-to-file "/tmp/msmd-hostile-{os.getpid()}" '
        '(lambda () (display "x")))) (lambda args #f))\n'
        "{ c'4 }\n")
    results = render_many([hostile], tmp_path / "out", RenderConfig(timeout_s=60))
    assert not marker_exec.exists()
    assert not marker_write.exists()
    assert not Path(f"/tmp/msmd-hostile-{os.getpid()}").exists()
    assert not results[0].error, results[0].error


def test_cli_reports_one_line_per_failure_and_exit_status(tmp_path):
    bad = _bad_scores(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["render", str(GOOD), str(bad["syntax_error"]),
                                  "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.startswith("FAILED")]
    assert len(lines) == 1
    assert "syntax_error.ly" in lines[0] and "[render]" in lines[0]
    assert (tmp_path / "out" / "melody" / "noteheads.csv").is_file()


def test_unwritable_output_folder_fails_clearly(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    results = render_many([GOOD, GOOD], blocker / "out", RenderConfig())
    # The system's own cause and the path it names, not a blanket "cannot write".
    for r in results:
        assert r.error.startswith("Not a directory: ") and str(blocker) in r.error, r.error
