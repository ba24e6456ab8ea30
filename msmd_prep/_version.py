"""The installed version of msmd-prep, read once from the package metadata.

It imports nothing of the package, so every stage can record it without an
import cycle.
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("msmd-prep")
except PackageNotFoundError:
    __version__ = "0.0.0+unknown"
