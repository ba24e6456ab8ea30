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


class _ManyValues(click.Option):
    """An option that takes every following word up to the next option: ``--tempo 0.8 1.0``.

    Declare it with ``multiple=True`` in a :class:`_Command`, which hands the
    words to click as repeated options.
    """


class _Command(click.Command):
    """A command whose :class:`_ManyValues` options take several words.

    Click options take a fixed number of values; ``--tempo 0.8 1.0`` is given
    to click as ``--tempo 0.8 --tempo 1.0``, so click still converts and
    checks every value.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        names = {name for p in self.params if isinstance(p, _ManyValues) for name in p.opts}
        return super().parse_args(ctx, spread_many_values(args, names))


def spread_many_values(args: list[str], names: set[str]) -> list[str]:
    """``args`` with the words after an option of ``names`` spread as repeats of it.

    The first word after the option is its value whatever it looks like (as
    click takes it); further words are its values up to the next word that
    starts with ``-``; ``--`` ends option parsing.
    """
    out: list[str] = []
    option, taken = None, 0
    words = iter(args)
    for word in words:
        if word == "--":
            out += [word, *words]
            break
        if option is not None and (taken == 0 or not word.startswith("-")):
            out += [word] if taken == 0 else [option, word]
            taken += 1
            continue
        option, taken = None, 0
        name = word.split("=", 1)[0]
        if name in names:
            option, taken = name, int("=" in word)
        out.append(word)
    return out


class _Group(click.Group):
    """The command group; its commands are :class:`_Command`."""

    command_class = _Command


@click.group(cls=_Group)
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
    roots: dict[Path, Path] = {}
    results = render_many(find_scores(list(scores), roots=roots), out, cfg, progress=True,
                          roots=roots)
    failures = [(str(r.source), "render", r.error) for r in results if r.error]
    click.echo(f"render: {len(results) - len(failures)} ok, {len(failures)} failed, out: {out}")
    _report_failures(failures)
    sys.exit(1 if failures else 0)


@main.command()
@click.argument("workdir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--tempo", "tempos", cls=_ManyValues, multiple=True, type=float,
              default=(1.0,), show_default=True,
              help="Tempo factors (speed: 1.2 plays 20 % faster), one or more.")
@click.option("--soundfont", "soundfonts", cls=_ManyValues, multiple=True,
              default=("timgm6mb",), show_default=True,
              help="SoundFonts by name in the SoundFont manifest (see soundfonts/README.md) "
                   "or .sf2/.sf3 path.")
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
        cfg = SynthConfig.from_velocity(velocity, gain=gain)
        fonts = [resolve_soundfont(name) for name in soundfonts]
    except MsmdPrepError as e:
        raise click.BadParameter(str(e)) from e
    try:
        results = synthesize_workdir(workdir, tempo_factors=tempos, soundfonts=fonts,
                                     config=cfg, progress=True)
    except MsmdPrepError as e:
        raise click.BadParameter(str(e)) from e
    _report_stage("synth", workdir, results)


def _performance_sources(manifest: Path | None, score_field: str, files: tuple[Path, ...],
                         score: Path | None) -> list:
    """Performances from a manifest and/or files given for one score."""
    from .performed.manifest import read_manifest, sources_for_score

    if files and score is None:
        raise click.BadParameter("--performance needs --score (the score they play)")
    try:
        return ((read_manifest(manifest, score_field=score_field) if manifest else [])
                + (sources_for_score(score, files) if files else []))
    except MsmdPrepError as e:
        raise click.BadParameter(str(e)) from e


def _perform_config(min_confidence: float, reference: str | None):  # type: ignore[no-untyped-def]
    from .performed.perform import PerformConfig

    return PerformConfig(min_confidence=min_confidence,
                         **({"reference": reference} if reference else {}))


def _perform_options(command):  # type: ignore[no-untyped-def]
    """Options shared by ``perform`` and ``dataset``: where the real performances are."""
    for option in reversed([
        click.option("--performances", "manifest", default=None,
                     type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="Manifest of real performances (CSV or YAML: score, performance, "
                          "optional id; or ASAP's metadata.csv)."),
        click.option("--score-field", default="midi_score", show_default=True,
                     type=click.Choice(["midi_score", "xml_score"]),
                     help="ASAP manifests: the score to align to."),
        click.option("--performance", "performance_files", cls=_ManyValues, multiple=True,
                     type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="MIDI or audio performances of the score named by --score."),
        click.option("--score", "performance_score", default=None,
                     type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="The score the --performance files play."),
        click.option("--min-confidence", default=0.3, show_default=True, type=float,
                     help="Performances aligned with less confidence are flagged and not packed."),
        click.option("--reference", default=None, metavar="SOUNDFONT|notes",
                     help="Score side of a recording's alignment: the score played by this "
                          "SoundFont, or 'notes' for its note list (default: timgm6mb)."),
    ]):
        command = option(command)
    return command


@main.command()
@click.argument("workdir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_perform_options
@click.option("--soundfont", "soundfonts", cls=_ManyValues, multiple=True,
              default=("timgm6mb",), show_default=True,
              help="SoundFonts that play the MIDI performances.")
def perform(workdir: Path, manifest: Path | None, score_field: str,
            performance_files: tuple[Path, ...], performance_score: Path | None,
            min_confidence: float, reference: str | None, soundfonts: tuple[str, ...]) -> None:
    """Align real performances (MIDI or audio) to the rendered pieces of WORKDIR."""
    from .performed.perform import perform_workdir
    from .soundfonts import resolve_soundfont

    sources = _performance_sources(manifest, score_field, performance_files, performance_score)
    if not sources:
        raise click.BadParameter("no performances: give --performances or --performance")
    try:
        cfg = _perform_config(min_confidence, reference)
        fonts = [resolve_soundfont(name) for name in soundfonts]
    except MsmdPrepError as e:
        raise click.BadParameter(str(e)) from e
    results = perform_workdir(workdir, sources, soundfonts=fonts, config=cfg, progress=True)
    _report_stage("perform", workdir, results)


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


@main.command()
@click.argument("workdir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--band-height", "band_height_px", default=200, show_default=True, type=int,
              help="Height of the unrolled score's bands, pixels at --sheet-dpi.")
@click.option("--sheet-dpi", default=100.0, show_default=True, type=float,
              help="Resolution of the unrolled score, pixels per inch (MSMD: about 100).")
@click.option("--spectrogram-preset", default="default", show_default=True,
              help="The spectrogram whose frame rate gives onset_frame.")
def align(workdir: Path, band_height_px: int, sheet_dpi: float, spectrogram_preset: str) -> None:
    """Write the unrolled score and every performance's alignment.csv in WORKDIR."""
    from .align import AlignConfig, align_workdir

    try:
        cfg = AlignConfig(band_height_px=band_height_px, sheet_dpi=sheet_dpi,
                          spectrogram_preset=spectrogram_preset)
    except MsmdPrepError as e:
        raise click.BadParameter(str(e)) from e
    _report_stage("align", workdir, align_workdir(workdir, config=cfg, progress=True))


def _pack_options(command):  # type: ignore[no-untyped-def]
    """The options of the pack stage, shared by ``pack`` and ``dataset``."""
    from .packing.snippets import ANCHORS, PRESETS

    options = [
        click.option("--preset", "pack_preset", default="msmd", show_default=True,
                     type=click.Choice(sorted(PRESETS)),
                     help="Snippet format: 'msmd' (sheet 160x200, 92x42 spectrogram at 20 fps)"
                          " or 'dorfer2016' (sheet 40x100, 136x100 at 31.25 fps)."),
        click.option("--seed", default=0, show_default=True, type=int,
                     help="Seeds the split and the augmentation."),
        click.option("--splits", "split_file", default=None,
                     type=click.Path(exists=True, dir_okay=False),
                     help="YAML file {train: [...], valid: [...], test: [...]} of piece ids "
                          "(default: each piece by a hash of --seed and its id, 70/15/15 on "
                          "average; small corpora may get an empty valid or test)."),
        click.option("--anchor", "spec_anchor", default="center", show_default=True,
                     type=click.Choice(ANCHORS),
                     help="Onset at the centre of the spectrogram excerpt, or at its end."),
        click.option("--no-augment", is_flag=True,
                     help="No sheet rescale, shift or onset jitter, in any split."),
        click.option("--spec-dtype", default="float16", show_default=True,
                     type=click.Choice(["float16", "float32"]),
                     help="Type of the stored spectrogram excerpts."),
        click.option("--shard-mb", "shard_max_mb", default=256.0, show_default=True,
                     type=float, help="Size cap of a shard, MB of uncompressed samples."),
        click.option("--shards/--no-shards", default=True, show_default=True,
                     help="Also write the samples into compressed shards (SnippetDataset); "
                          "--no-shards: piece files only, the compact form that "
                          "SnippetReader cuts samples from on the fly."),
        click.option("--include-flagged", is_flag=True,
                     help="Also pack pieces whose self-checks failed (aligned_well false)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _pack_config(pack_preset: str, seed: int, split_file: str | None, spec_anchor: str,
                 no_augment: bool, spec_dtype: str, shard_max_mb: float, shards: bool,
                 include_flagged: bool):  # type: ignore[no-untyped-def]
    from .packing.snippets import PackConfig

    try:
        return PackConfig(preset=pack_preset, seed=seed, split_file=split_file,
                          spec_anchor=spec_anchor, spec_dtype=spec_dtype,
                          shard_max_mb=shard_max_mb, include_flagged=include_flagged,
                          shards=shards, augment_splits=() if no_augment else ("train",))
    except MsmdPrepError as e:
        raise click.BadParameter(str(e)) from e


def _report_pack(result) -> None:  # type: ignore[no-untyped-def]
    counts = ", ".join(f"{split} {n}" for split, n in result.counts.items())
    splits = {s: sum(1 for p in result.pieces.values() if p == s) for s in result.counts}
    pieces = ", ".join(f"{split} {n}" for split, n in splits.items())
    click.echo(f"pack: {len(result.pieces)} pieces ({pieces}), samples: {counts}, "
               f"out: {result.out}")
    for piece, checks in result.flagged.items():
        click.echo(f"FLAGGED {piece}: failed self-checks ({checks})"
                   + ("" if piece in result.pieces else "; left out"), err=True)
    # Pieces that failed are FAILED lines; here the performances left out of packed pieces.
    for key, why in result.left_out.items():
        if "/" in key and why.reason != "flagged":
            click.echo(f"LEFT OUT {key}: {why}", err=True)


@main.command()
@click.argument("workdir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Dataset folder (replaced if it holds an earlier dataset).")
@_pack_options
@click.option("--task", default="snippets", show_default=True,
              type=click.Choice(["snippets", "score-following"]),
              help="'snippets': sheet/spectrogram pairs of --preset; 'score-following': "
                   "staff-system images 40x390, 40-frame excerpts ending at the onset and "
                   "bucket targets (--preset, --anchor and --no-augment do not apply).")
@click.option("--spectrogram-preset", default=None,
              help="Score following only: the spectrogram the excerpts come from "
                   "[default: default, 136 bins at 31.25 fps].")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=1),
              help="Pieces packed at once, in local processes (the same bytes as 1).")
def pack(workdir: Path, out: Path, task: str, spectrogram_preset: str | None, jobs: int,
         **options) -> None:  # type: ignore[no-untyped-def]
    """Pack the aligned pieces of WORKDIR into snippet shards in OUT."""
    from .packing.snippets import pack_workdir

    cfg = _pack_config(**options)
    if task == "score-following":
        from .packing.score_following import ScoreFollowingConfig, pack_score_following

        try:
            sf_cfg = ScoreFollowingConfig.from_pack_config(cfg, spectrogram_preset)
        except MsmdPrepError as e:
            raise click.BadParameter(str(e)) from e
        run = lambda: pack_score_following(workdir, out, sf_cfg, progress=True,  # noqa: E731
                                           jobs=jobs)
    elif spectrogram_preset is not None:
        raise click.BadParameter("--spectrogram-preset is for --task score-following; the "
                                 "snippet task takes the spectrogram of --preset")
    else:
        run = lambda: pack_workdir(workdir, out, cfg, progress=True, jobs=jobs)  # noqa: E731
    try:
        result = run()
    except MsmdPrepError as e:
        click.echo(f"FAILED {workdir} [pack]: {e}", err=True)
        sys.exit(1)
    _report_pack(result)
    _report_failures([(p, "pack", cause) for p, cause in result.failures])
    sys.exit(1 if result.failures else 0)


def _params(command: click.Command, names: set[str]) -> list[click.Parameter]:
    """The options ``names`` of another command, so that both keep one definition."""
    return [p for p in command.params if p.name in names]


@main.command(params=[*_params(render, {"dpi", "timeout_s", "default_qpm", "no_sandbox"}),
                      *_params(synth, {"tempos", "soundfonts", "velocity", "gain"}),
                      *_params(spectrogram, {"keep_audio"})])
@click.argument("scores", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Output folder: OUT/work (the stages' work folder), OUT/dataset and "
                   "OUT/failures.json.")
@_perform_options
@click.option("--no-synth", is_flag=True,
              help="Make no synthesized performances: only the real ones (--performances, "
                   "--performance, <score>.performances/ folders) are packed.")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=1),
              help="Pieces processed at once, in local processes.")
@click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
              help="Run the pieces on this Dask scheduler (workers need OUT at the same path).")
@_pack_options
def dataset(scores: tuple[Path, ...], out: Path, dpi: int, timeout_s: float, default_qpm: float,
            no_sandbox: bool, tempos: tuple[float, ...], soundfonts: tuple[str, ...],
            velocity: str, gain: float, keep_audio: bool, jobs: int, scheduler: str | None,
            manifest: Path | None, score_field: str, performance_files: tuple[Path, ...],
            performance_score: Path | None, min_confidence: float, reference: str | None,
            no_synth: bool, **options) -> None:  # type: ignore[no-untyped-def]
    """Run render, synth, perform, spectrogram, align and pack from SCORES to OUT/dataset."""
    from .dataset import build_dataset, summary_rows
    from .render import RenderConfig
    from .synth import SynthConfig

    sources = _performance_sources(manifest, score_field, performance_files, performance_score)
    if not scores and not sources:
        raise click.BadParameter("give SCORES, or performances with --performances/--performance")
    pack_cfg = _pack_config(**options)
    try:
        render_cfg = RenderConfig(dpi=dpi, timeout_s=timeout_s, default_qpm=default_qpm,
                                  sandbox=not no_sandbox)
        synth_cfg = SynthConfig.from_velocity(velocity, gain=gain)
        perform_cfg = _perform_config(min_confidence, reference)
    except MsmdPrepError as e:
        raise click.BadParameter(str(e)) from e
    result = build_dataset(list(scores), out, render_config=render_cfg, tempo_factors=tempos,
                           soundfonts=soundfonts, synth_config=synth_cfg, pack_config=pack_cfg,
                           keep_audio=keep_audio, jobs=jobs, scheduler=scheduler,
                           performances=sources, synthesize=not no_synth,
                           perform_config=perform_cfg, progress=True)
    if result.pack is not None:
        _report_pack(result.pack)
    width = max(len(label) for label, _ in summary_rows(result))
    for label, value in summary_rows(result):
        click.echo(f"{label:<{width}}  {value}")
    _report_failures(result.failures)
    sys.exit(1 if result.failures or result.pack is None else 0)


@main.command("inspect")
@click.argument("piece_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--performance", default=None,
              help="Performance id (e.g. timgm6mb_t1.00) [default: the first aligned one].")
@click.option("--dataset", "dataset_dir", default=None,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Packed dataset for the sample strip [default: DIR/dataset when PIECE_DIR "
                   "is DIR/work/PIECE, as `msmd-prep dataset` makes it].")
@click.option("--out", "out", default=None, type=click.Path(path_type=Path),
              help="Output folder [default: PIECE_DIR/inspect].")
@click.option("--labels", is_flag=True, help="Write each head's onset times under its box.")
@click.option("--samples", "n_samples", default=8, show_default=True,
              type=click.IntRange(min=1), help="Sample pairs in the strip.")
def inspect_command(piece_dir: Path, performance: str | None, dataset_dir: Path | None,
                    out: Path | None, labels: bool, n_samples: int) -> None:
    """Draw PIECE_DIR: pages with head and system boxes, the unrolled score with its
    onset-to-x map, packed sample pairs; PNGs and one self-contained index.html."""
    from .inspect import inspect_piece

    try:
        result = inspect_piece(piece_dir, out, performance=performance, dataset=dataset_dir,
                               labels=labels, n_samples=n_samples)
    except MsmdPrepError as e:
        click.echo(f"FAILED {piece_dir} [inspect]: {e}", err=True)
        sys.exit(1)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"inspect: {len(result.pictures)} pictures"
               + (f" of {result.performance}" if result.performance else "")
               + f", report: {result.html}")


@main.command()
@click.argument("dataset_dir", metavar="DATASET",
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out", default=None, type=click.Path(path_type=Path),
              help="Output folder for stats.txt and histograms.png [default: DATASET/stats].")
def stats(dataset_dir: Path, out: Path | None) -> None:
    """Print the counts of DATASET (per split, piece, performance, tempo, SoundFont) and
    draw histograms of samples per piece, onsets per second and pitch."""
    from .stats import format_stats, write_stats

    try:
        result, _, png = write_stats(dataset_dir, out)
    except MsmdPrepError as e:
        click.echo(f"FAILED {dataset_dir} [stats]: {e}", err=True)
        sys.exit(1)
    click.echo(format_stats(result))
    click.echo(f"\nhistograms: {png}")


if __name__ == "__main__":
    main()
