"""The unrolled score: every staff system cut out as a band and laid left to right.

MSMD trains on the score as one long line: each system is cut out as a band
of fixed height centred on the system and the bands are concatenated.  Here
the bands are resampled from the render resolution to a sheet scale chosen
by the config, with OpenCV's area interpolation (the pages are never
re-rendered).

Coordinates are continuous pixel coordinates: pixel ``i`` spans ``[i, i+1)``,
as for the boxes of ``noteheads.csv``.  A point ``(x, y)`` of a page maps to
``(x_offset + (x - src_x0) * scale_x, (y - src_y0) * scale_y)`` in the
unrolled image, where the band's source rectangle ``src_*`` is in page
pixels (integers; it may reach outside the page, where the band is white).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .errors import ConfigError, InputError
from .score import System

WHITE = 255


@dataclass(frozen=True)
class UnrollConfig:
    """How systems are cut out and scaled.

    Exactly one of ``sheet_dpi`` and ``system_height_px`` sets the scale.

    Attributes
    ----------
    band_height_px : int
        Height of every band, pixels of the unrolled image.
    sheet_dpi : float or None
        Resolution of the unrolled image, pixels per inch (MSMD: about 100,
        its A4 pages were 835 px wide).  Every system gets the same scale.
    system_height_px : float or None
        Instead of a resolution: each system is scaled so that the box
        around its staff lines is this many pixels high.
    """

    band_height_px: int = 200
    sheet_dpi: float | None = 100.0
    system_height_px: float | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.band_height_px, int) and self.band_height_px > 0):
            raise ConfigError(f"band_height_px must be a positive integer, "
                              f"got {self.band_height_px!r}")
        if (self.sheet_dpi is None) == (self.system_height_px is None):
            raise ConfigError("give exactly one of sheet_dpi and system_height_px, got "
                              f"sheet_dpi={self.sheet_dpi!r}, "
                              f"system_height_px={self.system_height_px!r}")
        if self.sheet_dpi is not None and not 10 <= self.sheet_dpi <= 1200:
            raise ConfigError(f"sheet_dpi must be in 10..1200, got {self.sheet_dpi!r}")
        if self.system_height_px is not None and not self.system_height_px > 0:
            raise ConfigError(f"system_height_px must be > 0, got {self.system_height_px!r}")


@dataclass(frozen=True)
class Band:
    """Where one system lies on its page and in the unrolled image.

    Attributes
    ----------
    system : int
        System index (``systems.csv``).
    page : int
        Page number, from 1.
    src_x0, src_y0, src_x1, src_y1 : int
        The rectangle cut from the page, page pixels (may reach outside it).
    x_offset : int
        Column of the unrolled image where the band starts.
    width : int
        Width of the band in the unrolled image, pixels.
    scale_x, scale_y : float
        Unrolled pixels per page pixel (equal up to rounding of the sizes).
    center_y : float
        Row of the system's vertical centre in the unrolled image.
    """

    system: int
    page: int
    src_x0: int
    src_y0: int
    src_x1: int
    src_y1: int
    x_offset: int
    width: int
    scale_x: float
    scale_y: float
    center_y: float

    def to_image(self, x: np.ndarray | float, y: np.ndarray | float,
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Map page pixels ``(x, y)`` of this band's system into the band's own image."""
        return ((np.asarray(x, dtype=np.float64) - self.src_x0) * self.scale_x,
                (np.asarray(y, dtype=np.float64) - self.src_y0) * self.scale_y)

    def to_unrolled(self, x: np.ndarray | float, y: np.ndarray | float,
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Map page pixels ``(x, y)`` of this band's system into the unrolled image."""
        u, v = self.to_image(x, y)
        return self.x_offset + u, v


@dataclass(frozen=True)
class Unrolled:
    """An unrolled score.

    Attributes
    ----------
    image : np.ndarray [shape=(band_height_px, total_width), dtype=uint8]
        White 255, ink dark.
    bands : tuple of Band
        One per system, in system order, left to right.
    """

    image: np.ndarray
    bands: tuple[Band, ...]

    def band(self, system: int) -> Band:
        """The band of ``system``."""
        for b in self.bands:
            if b.system == system:
                return b
        raise InputError(f"system {system} is not in the unrolled score")

    def layout(self) -> dict:
        """The bands as JSON-ready data (``unrolled.json``)."""
        return {"height_px": int(self.image.shape[0]), "width_px": int(self.image.shape[1]),
                "systems": [{"system": b.system, "page": b.page,
                             "source_rows": [b.src_y0, b.src_y1],
                             "source_cols": [b.src_x0, b.src_x1],
                             "x_offset": b.x_offset, "width": b.width,
                             "scale_x": b.scale_x, "scale_y": b.scale_y,
                             "center_y": b.center_y} for b in self.bands]}


def system_band(system: System, *, rows: float, height_px: int, width_px: int | None = None,
                scale: float | None = None, x_offset: int = 0) -> Band:
    """The band of ``system``: the page rectangle it is cut from and its scale.

    The one crop geometry, of the unrolled score's bands and of the staff
    images.  Columns: the system box's, widened to whole pixels (at least
    one).  Rows: ``max(1, round(rows))`` page rows centred on the box
    (rounded to whole pixels).  The rectangle is resized to ``height_px``
    rows and ``width_px`` columns, or to its columns times ``scale``.
    """
    x0, x1 = math.floor(system.x0), math.ceil(system.x1)
    x1 = max(x1, x0 + 1)
    if width_px is None:
        width_px = max(1, round((x1 - x0) * scale))
    src_h = max(1, round(rows))
    center = (system.y0 + system.y1) / 2
    y0 = math.floor(center - src_h / 2 + 0.5)
    scale_y = height_px / src_h
    return Band(system=system.index, page=system.page, src_x0=x0, src_y0=y0, src_x1=x1,
                src_y1=y0 + src_h, x_offset=x_offset, width=width_px,
                scale_x=width_px / (x1 - x0), scale_y=scale_y, center_y=(center - y0) * scale_y)


def band_image(page: np.ndarray, band: Band, *, height_px: int) -> np.ndarray:
    """Cut ``band``'s rectangle out of ``page`` (white outside it) and resize it.

    Area interpolation, to ``band.width x height_px``.

    Returns
    -------
    image : np.ndarray [shape=(height_px, band.width), dtype=uint8]
    """
    x0, y0, x1, y1 = band.src_x0, band.src_y0, band.src_x1, band.src_y1
    out = np.full((y1 - y0, x1 - x0), WHITE, dtype=np.uint8)
    h, w = page.shape
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx0 < cx1 and cy0 < cy1:
        out[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0] = page[cy0:cy1, cx0:cx1]
    return cv2.resize(out, (band.width, height_px), interpolation=cv2.INTER_AREA)


def unroll(pages: Sequence[np.ndarray], systems: Sequence[System], *, dpi: float,
           config: UnrollConfig) -> Unrolled:
    """Cut every system out of its page and concatenate the bands left to right.

    Parameters
    ----------
    pages : sequence of np.ndarray [shape=(height, width), dtype=uint8]
        The page images, page 1 first, at ``dpi``.
    systems : sequence of System
        The systems (``systems.csv``), boxes in page pixels.
    dpi : float
        Resolution of ``pages``, pixels per inch.
    config : UnrollConfig

    Returns
    -------
    unrolled : Unrolled
        ``image`` has ``config.band_height_px`` rows.  Each band spans the
        system box's columns (widened to whole pixels) and
        ``band_height_px / scale`` page rows centred on the box.
    """
    if not systems:
        raise InputError("no staff system to unroll")
    band_h = config.band_height_px
    bands: list[Band] = []
    images: list[np.ndarray] = []
    offset = 0
    for s in sorted(systems, key=lambda s: s.index):
        if not 1 <= s.page <= len(pages):
            raise InputError(f"system {s.index} is on page {s.page}, "
                             f"but there are {len(pages)} pages")
        if config.sheet_dpi is not None:
            scale = config.sheet_dpi / dpi
        else:
            scale = config.system_height_px / (s.y1 - s.y0)
        band = system_band(s, rows=band_h / scale, height_px=band_h, scale=scale,
                           x_offset=offset)
        images.append(band_image(pages[s.page - 1], band, height_px=band_h))
        bands.append(band)
        offset += band.width
    return Unrolled(image=np.ascontiguousarray(np.concatenate(images, axis=1)),
                    bands=tuple(bands))
