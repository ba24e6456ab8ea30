"""Page images and the boxes of note heads and staves on them.

``msmd_prep/resources/lilypond/msmd.ily`` walks every page's stencil after page layout and
writes the box of each linked grob (``B`` records, millimetres from the
page's top left corner, exact to LilyPond's floating point).  The Cairo
backend writes the page images.  Boxes are converted to pixels of those
images with the same resolution.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError

MM_PER_INCH = 25.4


@dataclass(frozen=True)
class Box:
    """A linked grob's box: page (from 1), pixels (origin top left), link."""

    page: int
    x0: float
    y0: float
    x1: float
    y1: float
    link: str


def boxes_to_pixels(records: list[tuple[int, str, float, float, float, float]],
                    dpi: float) -> list[Box]:
    """Convert ``(page, link, x0, y0, x1, y1)`` in mm to :class:`Box` in pixels.

    Parameters
    ----------
    records : list of tuple
        Boxes in millimetres from the top left corner of the page.
    dpi : float
        Resolution of the page images, pixels per inch.
    """
    s = dpi / MM_PER_INCH
    return [Box(page, x0 * s, y0 * s, x1 * s, y1 * s, link)
            for page, link, x0, y0, x1, y1 in records]


def page_images(build: Path, stems: list[str]) -> list[Path]:
    """LilyPond's PNG pages for the books ``stems`` (``a``, ``a-1`` ...), in order.

    A one-page book is ``STEM.png``, a longer one ``STEM-page1.png`` ...
    """
    pages = []
    for stem in stems:
        single = build / f"{stem}.png"
        if single.is_file():
            pages.append(single)
            continue
        numbered = [(int(m.group(1)), p) for p in build.glob(f"{stem}-page*.png")
                    if (m := re.fullmatch(re.escape(stem) + r"-page(\d+)\.png", p.name))]
        pages += [p for _, p in sorted(numbered)]
    return pages


def load_gray(path: Path) -> np.ndarray:
    """A page image as uint8 grayscale [shape=(height, width)], white 255."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise InputError(f"cannot read page image {path}")
    return image


def ink_fraction(image: np.ndarray, box: tuple[float, float, float, float],
                 threshold: int = 128) -> float:
    """Fraction of dark pixels (< ``threshold``) in ``box`` = (x0, y0, x1, y1) px."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    patch = image[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)]
    return float((patch < threshold).mean()) if patch.size else 0.0
