"""The main job: scores to a packed dataset, every stage in turn.

``build_dataset`` runs render, synth, spectrogram, align and pack over one
output folder ``OUT``: the work folder is ``OUT/work`` (one folder per
piece, as every stage writes it) and the dataset ``OUT/dataset``.  Each stage
skips what is already up to date, so a rerun after adding scores or
changing a late stage's options redoes only what changed.  A piece that
fails a stage is reported once, with the first stage it failed, and left
out of the later ones; the others go on.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .align import AlignConfig, align_workdir
from .pack import PackConfig, PackResult, pack_workdir
from .render import RenderConfig, find_scores, render_many
from .soundfonts import SoundFont
from .spectrogram import PRESETS as SPECTROGRAM_PRESETS
from .spectrogram import spectrogram_workdir
from .synth import SynthConfig, synthesize_workdir
from .workdir import rendered_pieces

WORK_DIR = "work"
DATASET_DIR = "dataset"


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
        ``(piece or score, stage, cause)``, one per failed piece.
    """

    work: Path
    pack: PackResult | None = None
    failures: list[tuple[str, str, str]] = field(default_factory=list)


def build_dataset(scores: Sequence[Path], out: Path, *, render_config: RenderConfig,
                  tempo_factors: Sequence[float], soundfonts: Sequence[SoundFont],
                  synth_config: SynthConfig, pack_config: PackConfig,
                  keep_audio: bool = False, progress: bool = False) -> DatasetResult:
    """Run every stage from ``scores`` to the dataset ``out/dataset``.

    Parameters
    ----------
    scores : sequence of Path
        ``.ly`` files or folders of them (see :func:`msmd_prep.render.find_scores`).
    out : Path
        Output folder; gets ``work/`` and ``dataset/``.
    render_config : RenderConfig
    tempo_factors : sequence of float
        Tempo factors of the performances.
    soundfonts : sequence of SoundFont
        SoundFonts of the performances.
    synth_config : SynthConfig
    pack_config : PackConfig
        Its preset also decides the one spectrogram computed, and the
        alignment's ``onset_frame`` refers to that spectrogram.
    keep_audio : bool
        Keep the synthesized audio after its spectrogram is made.
    progress : bool
        Show progress bars on stderr.

    Returns
    -------
    result : DatasetResult
    """
    work = Path(out) / WORK_DIR
    result = DatasetResult(work=work)
    failed: set[str] = set()

    def note(piece: Path, stage: str, cause: str) -> None:
        if piece.name not in failed:
            failed.add(piece.name)
            result.failures.append((str(piece), stage, cause))

    for r in render_many(find_scores(list(scores)), work, render_config, progress=progress):
        if r.error:
            note(r.piece_dir, "render", r.error)
    spec_name = pack_config.preset_obj.spectrogram_preset
    stages = (
        ("synth", lambda: synthesize_workdir(work, tempo_factors=tempo_factors,
                                             soundfonts=soundfonts, config=synth_config,
                                             progress=progress)),
        ("spectrogram", lambda: spectrogram_workdir(
            work, presets={spec_name: SPECTROGRAM_PRESETS[spec_name]}, keep_audio=keep_audio,
            progress=progress)),
        ("align", lambda: align_workdir(work, config=AlignConfig(spectrogram_preset=spec_name),
                                        progress=progress)),
    )
    if not work.is_dir():
        return result
    for stage, run in stages:
        for r in run():
            if r.error:
                note(r.piece, stage, r.error)
    if not any(p.name not in failed for p in rendered_pieces(work)):
        return result
    result.pack = pack_workdir(work, Path(out) / DATASET_DIR, pack_config, progress=progress)
    for piece, cause in result.pack.failures:
        note(Path(piece), "pack", cause)
    return result
