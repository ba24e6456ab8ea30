"""msmd-prep: MSMD-style audio-sheet-music datasets with exact alignment.

The stages are plain functions, callable from a notebook as from the CLI::

    from pathlib import Path
    from msmd_prep import RenderConfig, render_score
    render_score(Path("piece.ly"), Path("work/piece"), RenderConfig(dpi=150))

The other stages live in their modules: :mod:`msmd_prep.synth`,
:mod:`msmd_prep.spectrogram`, :mod:`msmd_prep.align`, :mod:`msmd_prep.packing`,
the score tables in :mod:`msmd_prep.score`, the readers in :mod:`msmd_prep.data`,
and the whole job in :func:`msmd_prep.dataset.build_dataset`.
"""
from ._version import __version__
from .errors import AlignmentError, ConfigError, InputError, MsmdPrepError, ToolError

# The render stage (OpenCV, LilyPond) loads on first use only, so that
# ``import msmd_prep.data`` in a training job stays light.
_RENDER_NAMES = ("RenderConfig", "find_scores", "render_many", "render_score")


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    if name in _RENDER_NAMES:
        from . import render
        return getattr(render, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AlignmentError", "ConfigError", "InputError", "MsmdPrepError", "RenderConfig",
           "ToolError", "find_scores", "render_many", "render_score", "__version__"]
