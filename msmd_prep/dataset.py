"""The main job: scores to a packed dataset, every stage in turn.

``build_dataset`` works in one output folder ``OUT``: the work folder is
``OUT/work`` (one folder per piece, as every stage writes it) and the dataset
``OUT/dataset``.  Each piece goes through render, synth, spectrogram and
align as one task (:func:`process_piece`), so pieces run in parallel
(``jobs``) or on a Dask cluster (``scheduler``) and finish in any order; pack
then reads the work folder in name order, so the shards do not depend on how
the pieces ran.  Every stage skips what is already up to date, so a rerun
after a crash or a kill redoes only what was not finished.  A piece that
fails a stage is reported once, with that stage, in ``OUT/failures.json``
and on the terminal; the others go on.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

from .align import AlignConfig, align_piece
from .errors import ConfigError, MsmdPrepError, OutputError
from .locking import LOCK_NAME, folder_lock
from .normalize import local_includes
from .packing.core import PackResult
from .packing.snippets import PackConfig, pack_workdir
from .parallel import map_pieces
from .performed.manifest import PerformanceSource, attached_performances
from .performed.perform import PerformConfig, perform_piece
from .render import RenderConfig, RenderJob, find_scores, render_job, render_jobs
from .soundfonts import SoundFont, resolve_soundfont
from .spectrogram import PRESETS as SPECTROGRAM_PRESETS
from .spectrogram import needs_audio, spectrogram_performance
from .synth import (PERFORMANCE_JSON, Synthesizer, SynthConfig, performance_id,
                    synthesize_performance)
from .synth_spectrogram import synthesize_spectrograms
from .workdir import NO_SPACE, PERFORMANCES_DIR, describe_os_error, write_json_atomic

WORK_DIR = "work"
DATASET_DIR = "dataset"
FAILURES_NAME = "failures.json"
STAGES = ("render", "synth", "perform", "spectrogram", "align", "pack")


@dataclass(frozen=True)
class PieceConfig:
    """What :func:`process_piece` needs: every stage's options but pack's."""

    render: RenderConfig
    tempo_factors: tuple[float, ...]
    soundfonts: tuple[SoundFont, ...]
    synth: SynthConfig
    spectrogram_preset: str
    keep_audio: bool = False
    performances: Mapping[str, tuple[PerformanceSource, ...]] = field(default_factory=dict)
    synthesize: bool = True
    perform: PerformConfig = PerformConfig()

    def sources(self, score: Path) -> tuple[PerformanceSource, ...]:
        """The real performances attached to ``score``."""
        return self.performances.get(str(Path(score).resolve()), ())

    def performance_ids(self, score: Path) -> list[str]:
        """The performances this run makes of the piece of ``score``: SoundFonts x tempo
        factors (when it synthesizes) and its real performances (ids as
        :func:`msmd_prep.performed.perform.performance_ids` gives them)."""
        ids = [performance_id(sf.name, float(t)) for sf in self.soundfonts
               for t in self.tempo_factors] if self.synthesize else []
        for src in self.sources(score):
            ids += ([f"{src.id}_{sf.name}" for sf in self.soundfonts] if src.kind == "midi"
                    else [src.id])
        return sorted(set(ids))


@dataclass
class PieceReport:
    """What became of one piece in the main job.

    Attributes
    ----------
    source : str
        The input score.
    piece : str
        The piece folder.
    stage, error : str
        The stage that failed and why; empty when the piece got through.
    seconds : dict of str to float
        Wall time per stage.  Without ``keep_audio`` the spectrograms of the
        synthesized performances are made with their audio
        (:mod:`msmd_prep.synth_spectrogram`) and count as synth.
    counts : dict
        The render stage's counts (pages, heads ...).
    aligned_well : bool
        All self-checks passed.
    """

    source: str
    piece: str
    stage: str = ""
    error: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    aligned_well: bool = True


_SYNTHS: dict[tuple, Synthesizer] = {}
_SYNTHS_LOCK = threading.Lock()


def _synthesizer(soundfont: SoundFont, config: SynthConfig) -> Synthesizer:
    """A loaded synth per SoundFont and config, kept for the life of the process.

    Loading an sf3 takes seconds; every piece a worker plays reuses it.  The
    threads of a worker (Dask runs several) share it: a synth plays one
    performance at a time (:data:`msmd_prep.synth.FLUIDSYNTH_LOCK`).
    """
    key = (str(soundfont.path), soundfont.sha256, config)
    with _SYNTHS_LOCK:
        if key not in _SYNTHS:
            _SYNTHS[key] = Synthesizer(soundfont, config)
        return _SYNTHS[key]


def process_piece(job: RenderJob, config: PieceConfig) -> PieceReport:
    """Render, synthesize, compute spectrograms and align one piece.

    Never raises for a bad piece: the report names the stage and the cause.
    """
    report = PieceReport(str(job.source), str(job.piece_dir))
    stage = "render"
    try:
        t0 = time.perf_counter()
        result = render_job(job, config.render)
        report.seconds["render"] = time.perf_counter() - t0
        if result.error:
            report.stage, report.error = "render", result.error
            return report
        report.counts = result.stats
        piece = job.piece_dir
        stage = "synth"
        t0 = time.perf_counter()
        preset = config.spectrogram_preset
        spectrograms = {preset: SPECTROGRAM_PRESETS[preset]}
        if config.synthesize:
            for soundfont in config.soundfonts:
                synth = _synthesizer(soundfont, config.synth)
                for factor in config.tempo_factors:
                    perf_dir = piece / PERFORMANCES_DIR / performance_id(soundfont.name, factor)
                    # An earlier run removed the audio this run's spectrogram needs.
                    if needs_audio(perf_dir, spectrograms):
                        (perf_dir / PERFORMANCE_JSON).unlink()
                    if config.keep_audio:
                        synthesize_performance(synth, piece, float(factor))
                    else:
                        synthesize_spectrograms(synth, piece, float(factor), spectrograms)
        report.seconds["synth"] = time.perf_counter() - t0
        sources = config.sources(job.source)
        if sources:
            stage = "perform"
            t0 = time.perf_counter()
            # Performed MIDI keeps its own dynamics whatever --velocity says.
            played = replace(config.synth, velocity_policy="score")
            perform_piece(piece, sources, [_synthesizer(sf, played) for sf in config.soundfonts],
                          config.perform)
            report.seconds["perform"] = time.perf_counter() - t0
        stage = "spectrogram"
        t0 = time.perf_counter()
        wanted = config.performance_ids(job.source)
        for perf_id in wanted:
            spectrogram_performance(piece / PERFORMANCES_DIR / perf_id, spectrograms,
                                    keep_audio=config.keep_audio)
        report.seconds["spectrogram"] = time.perf_counter() - t0
        stage = "align"
        t0 = time.perf_counter()
        align_piece(piece, AlignConfig(spectrogram_preset=preset), performances=wanted)
        report.seconds["align"] = time.perf_counter() - t0
    except MsmdPrepError as e:
        report.stage, report.error = stage, str(e)
    except OSError as e:
        report.stage, report.error = stage, describe_os_error(e)
    return report


@dataclass
class DatasetResult:
    """What the main job made.

    Attributes
    ----------
    work : Path
        The work folder (``OUT/work``).
    pack : PackResult or None
        The packed dataset (``OUT/dataset``); ``None`` when no piece got that far.
    failures : list of (str, str, str)
        ``(file, stage, cause)``, one per failed piece or unusable option.
    reports : list of PieceReport
        One per piece, in input order.
    seconds : dict of str to float
        Wall time per stage, summed over pieces (pack: its own wall time).
    performances : int
        Performances asked for of the pieces that got through (pieces x
        SoundFonts x tempos).
    """

    work: Path
    pack: PackResult | None = None
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    reports: list[PieceReport] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    performances: int = 0


def build_dataset(scores: Sequence[Path], out: Path, *, render_config: RenderConfig,
                  tempo_factors: Sequence[float], soundfonts: Sequence[str | SoundFont],
                  synth_config: SynthConfig, pack_config: PackConfig,
                  keep_audio: bool = False, jobs: int = 1, scheduler: str | None = None,
                  performances: Sequence[PerformanceSource] = (), synthesize: bool = True,
                  perform_config: PerformConfig = PerformConfig(),
                  progress: bool = False) -> DatasetResult:
    """Run every stage from ``scores`` to the dataset ``out/dataset``.

    Parameters
    ----------
    scores : sequence of Path
        Score files or folders of them (see :func:`msmd_prep.render.find_scores`).
    out : Path
        Output folder; gets ``work/``, ``dataset/`` and ``failures.json``.
    render_config : RenderConfig
    tempo_factors : sequence of float
        Tempo factors of the performances.
    soundfonts : sequence of str or SoundFont
        SoundFont names (see ``msmd_prep/resources/soundfonts/manifest.yaml``) or paths; one that
        cannot be found is reported as a failure and the others are used.
    synth_config : SynthConfig
    pack_config : PackConfig
        Its preset also decides the one spectrogram computed, and the
        alignment's ``onset_frame`` refers to that spectrogram.
    keep_audio : bool
        Keep the synthesized audio after its spectrogram is made.
    jobs : int
        Pieces processed at once, in local worker processes.
    scheduler : str, optional
        Dask scheduler address (``tcp://host:port``); workers need ``out`` at
        the same path.
    performances : sequence of PerformanceSource
        Real performances (:func:`msmd_prep.performed.manifest.read_manifest`);
        their scores are rendered too.  Performances in ``<stem>.performances/``
        folders beside the scores are added.
    synthesize : bool
        Also synthesize every piece at every tempo with every SoundFont; without,
        only scores with real performances are processed.
    perform_config : PerformConfig
    progress : bool
        Show progress bars on stderr.
    """
    out = Path(out)
    work = out / WORK_DIR
    result = DatasetResult(work=work)
    fonts = []
    for sf in soundfonts:
        try:
            fonts.append(sf if isinstance(sf, SoundFont) else resolve_soundfont(sf))
        except MsmdPrepError as e:
            result.failures.append((f"soundfont {sf}", "synth", str(e)))
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        result.failures.append((str(out), "render",
                                f"cannot make the output folder: {describe_os_error(e)}"))
        return result
    try:
        with folder_lock(out / LOCK_NAME, str(out)):
            _run(scores, out, result, fonts, render_config=render_config,
                 tempo_factors=tempo_factors, synth_config=synth_config,
                 pack_config=pack_config, keep_audio=keep_audio, jobs=jobs,
                 scheduler=scheduler, performances=performances, synthesize=synthesize,
                 perform_config=perform_config, progress=progress)
    except ConfigError as e:
        result.failures.append((str(out), "dataset", str(e)))
    return result


def _run(scores: Sequence[Path], out: Path, result: DatasetResult, fonts: list[SoundFont], *,
         render_config: RenderConfig, tempo_factors: Sequence[float],
         synth_config: SynthConfig, pack_config: PackConfig, keep_audio: bool, jobs: int,
         scheduler: str | None, performances: Sequence[PerformanceSource], synthesize: bool,
         perform_config: PerformConfig, progress: bool) -> None:
    """The stages of :func:`build_dataset`, with the output folder locked."""
    work = result.work
    if fonts:
        config = PieceConfig(render_config, tuple(tempo_factors), tuple(fonts), synth_config,
                             pack_config.preset_obj.spectrogram_preset, keep_audio)
        roots: dict[Path, Path] = {}
        found = find_scores(list(scores), roots=roots)
        known = {p.resolve() for p in found}
        found += list(dict.fromkeys(s.score for s in performances if s.score.resolve() not in known))
        attached = list(performances) + attached_performances(found)
        by_score: dict[str, tuple[PerformanceSource, ...]] = {}
        for src in attached:
            key = str(src.score.resolve())
            by_score[key] = by_score.get(key, ()) + (src,)
        if not synthesize:
            found = [p for p in found if str(p.resolve()) in by_score]
        config = replace(config, performances=by_score, synthesize=synthesize,
                         perform=perform_config)
        todo = render_jobs(found, work, roots=roots)
        # Largest scores first, so that no worker is left with a long piece at the end.
        order = sorted(range(len(todo)), key=lambda i: -_size(todo[i].source))
        reports = map_pieces(partial(process_piece, config=config), [todo[i] for i in order],
                             jobs=jobs, scheduler=scheduler, desc="pieces", progress=progress)
        result.reports = [r for _, r in sorted(zip(order, reports), key=lambda p: p[0])]
    for r in result.reports:
        if r.error:
            result.failures.append((r.source, r.stage, r.error))
        for stage, s in r.seconds.items():
            result.seconds[stage] = result.seconds.get(stage, 0.0) + s
    ok = [r for r in result.reports if not r.error]
    if ok:
        t0 = time.perf_counter()
        only = {Path(r.piece).name: config.performance_ids(Path(r.source)) for r in ok}
        result.performances = sum(len(ids) for ids in only.values())
        request = {"pieces": sorted(Path(r.piece).name for r in ok),
                   "tempo_factors": sorted(float(t) for t in tempo_factors),
                   "soundfonts": {sf.name: sf.sha256 for sf in fonts},
                   "performances": sorted({p for ids in only.values() for p in ids}),
                   "synth": asdict(synth_config),
                   "spectrogram_preset": config.spectrogram_preset,
                   "pack_preset": pack_config.preset, "seed": pack_config.seed,
                   "render": asdict(render_config)}
        try:
            result.pack = pack_workdir(work, out / DATASET_DIR, pack_config, progress=progress,
                                       jobs=jobs, scheduler=scheduler, only=only,
                                       request=request)
        except MsmdPrepError as e:
            result.failures.append((str(work), "pack", str(e)))
        else:
            result.failures += [(p, "pack", cause) for p, cause in result.pack.failures]
        result.seconds["pack"] = time.perf_counter() - t0
    try:
        write_json_atomic(out / FAILURES_NAME, [
            {"file": f, "stage": stage, "cause": cause} for f, stage, cause in result.failures])
    except OutputError as e:
        # A full disk is reported once, where it first struck.
        if not any(NO_SPACE in cause for _, _, cause in result.failures):
            result.failures.append((str(out / FAILURES_NAME), "dataset", str(e)))


def _size(path: Path) -> int:
    """Bytes of a score file and of the files it includes, a rough measure of the work it is.

    The includes count because the music of a multi-file piece is often all
    in them (a 2 kB main file around a 10 kB file of notes).
    """
    root = Path(path).resolve().parent
    seen: set[Path] = set()
    queue = [Path(path).resolve()]
    total = 0
    while queue:
        file = queue.pop()
        if file in seen:
            continue
        seen.add(file)
        try:
            data = file.read_bytes()
        except OSError:
            continue
        total += len(data)
        if file.suffix.lower() in (".ly", ".ily", ".lyi"):
            try:
                queue += [inc for _, inc in local_includes(data.decode("utf-8", "replace"),
                                                           [file.parent, root], root, file)]
            except MsmdPrepError:
                pass  # an estimate only: the render reports a bad include
    return total


def summary_rows(result: DatasetResult) -> list[tuple[str, str]]:
    """The end-of-run summary as (label, value) rows."""
    reports = result.reports
    ok = [r for r in reports if not r.error]
    flagged = result.pack.flagged if result.pack else {}
    counts = [r.counts for r in ok]
    performances = result.performances
    rows = [
        ("pieces", f"{len(ok) - len(flagged)} ok, {len(flagged)} flagged, "
                   f"{len(reports) - len(ok)} failed"),
        ("pages", str(sum(c.get("pages", 0) for c in counts))),
        ("note heads", str(sum(c.get("noteheads", 0) for c in counts))),
        ("performances", str(performances)),
    ]
    if result.pack is not None:
        rows.append(("samples", ", ".join(f"{s} {n}" for s, n in result.pack.counts.items())))
    rows.append(("time per stage", ", ".join(
        f"{s} {result.seconds[s]:.1f} s" for s in STAGES if s in result.seconds)))
    return rows
