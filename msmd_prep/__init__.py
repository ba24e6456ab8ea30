"""msmd-prep: MSMD-style audio-sheet-music datasets with exact alignment.

The stages are plain functions, callable from a notebook as from the CLI::

    from pathlib import Path
    from msmd_prep import RenderConfig, render_score
    render_score(Path("piece.ly"), Path("work/piece"), RenderConfig(dpi=150))

The other stages live in their modules: :mod:`msmd_prep.synth`,
:mod:`msmd_prep.spectrogram`, :mod:`msmd_prep.align`, :mod:`msmd_prep.pack`,
the readers in :mod:`msmd_prep.data`, and the whole job in
:func:`msmd_prep.dataset.build_dataset`.
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("msmd-prep")
except PackageNotFoundError:
    __version__ = "0.0.0+unknown"

from .errors import AlignmentError, ConfigError, InputError, MsmdPrepError, ToolError  # noqa: E402
from .render import RenderConfig, find_scores, render_many, render_score  # noqa: E402

__all__ = ["AlignmentError", "ConfigError", "InputError", "MsmdPrepError", "RenderConfig",
           "ToolError", "find_scores", "render_many", "render_score", "__version__"]
