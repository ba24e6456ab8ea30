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


class _ManyValues(click.Option):
    """An option that takes every following word up to the next option: ``--tempo 0.8 1.0``.

    Click options take a fixed number of values; this one re-feeds each word
    to click as a repeated option, so click still converts and checks them.
    """

    def add_to_parser(self, parser, ctx):  # type: ignore[no-untyped-def]
        super().add_to_parser(parser, ctx)
        for name in self.opts:
            option = parser._long_opt.get(name) or parser._short_opt.get(name)
            if option is not None:
                store = option.process

                def process(value, state, store=store):  # type: ignore[no-untyped-def]
                    store(value, state)
                    while state.rargs and not state.rargs[0].startswith("-"):
                        store(state.rargs.pop(0), state)

                option.process = process


@main.command()
@click.argument("workdir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--tempo", "tempos", cls=_ManyValues, multiple=True, type=float,
              default=(1.0,), show_default=True,
              help="Tempo factors (speed: 1.2 plays 20 % faster), one or more.")
@click.option("--soundfont", "soundfonts", cls=_ManyValues, multiple=True,
              default=("timgm6mb",), show_default=True,
              help="SoundFonts by manifest name (soundfonts/manifest.yaml) or .sf2/.sf3 path.")
@click.option("--velocity", default="score", show_default=True,
              help="'score' plays the score's dynamics; a number 1..127 plays every note "
                   "at that velocity (MSMD used 64).")
@click.option("--gain", default=0.2, show_default=True, type=float,
              help="FluidSynth master gain.")
def synth(workdir: Path, tempos: tuple[float, ...], soundfonts: tuple[str, ...], velocity: str,
          gain: float) -> None:
    """Synthesize every rendered piece in WORKDIR at every tempo with every SoundFont."""
    from .soundfonts import resolve_soundfont
    from .synth import SynthConfig, synthesize_workdir

    try:
        policy = {"velocity_policy": "score"} if velocity == "score" else {
            "velocity_policy": "fixed", "fixed_velocity": int(velocity)}
        cfg = SynthConfig(gain=gain, **policy)
        fonts = [resolve_soundfont(name) for name in soundfonts]
    except ValueError as e:
        raise click.BadParameter(f"--velocity must be 'score' or 1..127, got {velocity!r}") from e
    except MsmdPrepError as e:
        raise click.BadParameter(str(e)) from e
    try:
        results = synthesize_workdir(workdir, tempo_factors=tempos, soundfonts=fonts,
                                     config=cfg, progress=True)
    except MsmdPrepError as e:
        raise click.BadParameter(str(e)) from e
    _report_stage("synth", workdir, results)


@main.command()
@click.argument("workdir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--preset", "presets", cls=_ManyValues, multiple=True, default=("default",),
              show_default=True,
              help="Spectrogram presets: 'default' (31.25 fps, 136 bins), 'msmd' (20 fps, "
                   "92 bins) or a .yaml file of SpectrogramConfig fields; one or more.")
@click.option("--keep-audio", is_flag=True,
              help="Keep audio.flac once its spectrograms exist (default: delete it, as MSMD).")
def spectrogram(workdir: Path, presets: tuple[str, ...], keep_audio: bool) -> None:
    """Compute log-filterbank spectrograms of every synthesized performance in WORKDIR."""
    from .spectrogram import load_preset, spectrogram_workdir

    try:
        configs = dict(load_preset(p) for p in presets)
    except MsmdPrepError as e:
        raise click.BadParameter(str(e)) from e
    results = spectrogram_workdir(workdir, presets=configs, keep_audio=keep_audio, progress=True)
    _report_stage("spectrogram", workdir, results)


def _report_stage(stage: str, workdir: Path, results: list) -> None:
    """Print a summary and one line per failed piece; exit 1 if any failed or none was found."""
    failures = [(str(r.piece), stage, r.error) for r in results if r.error]
    done = sum(r.done for r in results)
    skipped = sum(r.skipped for r in results)
    click.echo(f"{stage}: {len(results)} pieces, {done} outputs made, {skipped} up to date, "
               f"{len(failures)} failed, in {workdir}")
    _report_failures(failures)
    if not results:
        click.echo(f"{stage}: no rendered piece in {workdir}", err=True)
    sys.exit(1 if failures or not results else 0)
