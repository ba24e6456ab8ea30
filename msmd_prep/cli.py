"""The ``msmd-prep`` command line: a thin layer over the Python API."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .errors import MsmdPrepError


def _report_failures(failures: list[tuple[str, str, str]]) -> None:
    """Print one line per failed piece: file, stage, cause."""
    for path, stage, cause in failures:
        click.echo(f"FAILED {path} [{stage}]: {cause}", err=True)


@click.group()
@click.version_option(package_name="msmd-prep")
def main() -> None:
    """Build MSMD-style audio-sheet-music datasets with exact alignment."""


@main.command()
@click.argument("scores", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Work folder: one sub-folder per piece.")
@click.option("--dpi", default=150, show_default=True, type=int,
              help="Resolution of the page images, pixels per inch.")
@click.option("--timeout", "timeout_s", default=300.0, show_default=True, type=float,
              help="Time limit for one LilyPond run, seconds.")
@click.option("--default-tempo", "default_qpm", default=60.0, show_default=True, type=float,
              help="Quarter notes per minute where the score names no tempo.")
@click.option("--no-sandbox", is_flag=True,
              help="Run LilyPond without bubblewrap (only for scores you trust).")
def render(scores: tuple[Path, ...], out: Path, dpi: int, timeout_s: float,
           default_qpm: float, no_sandbox: bool) -> None:
    """Engrave SCORES (.ly files or folders of them) into OUT."""
    from .render import RenderConfig, find_scores, render_many

    try:
        cfg = RenderConfig(dpi=dpi, timeout_s=timeout_s, default_qpm=default_qpm,
                           sandbox=not no_sandbox)
    except MsmdPrepError as e:
        raise click.BadParameter(str(e)) from e
    results = render_many(find_scores(list(scores)), out, cfg, progress=True)
    failures = [(str(r.source), "render", r.error) for r in results if r.error]
    click.echo(f"render: {len(results) - len(failures)} ok, {len(failures)} failed, out: {out}")
    _report_failures(failures)
    sys.exit(1 if failures else 0)
