"""Cutting one snippet: the sheet and spectrogram excerpts of an onset, and its augmentation.

One implementation for both the pack stage (which stores the excerpts in
shards) and the on-the-fly reader (:mod:`msmd_prep.reader`, which cuts them
at read time), so that the two give the same bytes for the same parameters.

Geometry (continuous pixel coordinates: pixel ``i`` spans ``[i, i + 1)``):

* the sheet excerpt is anchored at the pixel boundary nearest the head's
  centre, ``col = floor(x + 0.5)``, and the one nearest the system's
  centre, ``row = floor(center_y + 0.5)``.  Unscaled, the excerpt is the
  rectangle of the unrolled score whose column ``W // 2`` starts at ``col``
  and whose row ``H // 2 + shift`` starts at ``row``: a plain copy of
  pixels, no interpolation, so that the head's centre lies at
  ``head_col = W // 2 + (x - col)``, within half a pixel of ``W // 2``.
  Rescaled by ``scale``, the image is magnified about that anchor
  (bilinear): ``head_col = W // 2 + (x - col) * scale``.
* the spectrogram excerpt is ``T`` frames from ``start``; zeros outside the
  spectrogram.

Inputs are padded once (:func:`pad_sheet`, :func:`pad_spec`) so that almost
every unscaled excerpt is a slice: a view, no copy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

WHITE = 255


@dataclass(frozen=True)
class Padded:
    """An array with ``pad_rows`` and ``pad_cols`` of fill on every side.

    Attributes
    ----------
    array : np.ndarray [shape=(rows + 2 * pad_rows, cols + 2 * pad_cols)]
    pad_rows, pad_cols : int
    """

    array: np.ndarray
    pad_rows: int
    pad_cols: int


def pad_sheet(image: np.ndarray, *, height_px: int, width_px: int) -> Padded:
    """The unrolled score with white margins of ``height_px`` rows and ``width_px`` columns."""
    return Padded(cv2.copyMakeBorder(image, height_px, height_px, width_px, width_px,
                                     cv2.BORDER_CONSTANT, value=WHITE), height_px, width_px)


def pad_spec(spec: np.ndarray, *, n_frames: int) -> Padded:
    """The spectrogram [shape=(F, total)] with ``n_frames`` zero frames on both sides."""
    out = np.zeros((spec.shape[0], spec.shape[1] + 2 * n_frames), dtype=spec.dtype)
    out[:, n_frames:n_frames + spec.shape[1]] = spec
    return Padded(out, 0, n_frames)


def sheet_anchor(x: float, center_y: float) -> tuple[int, int]:
    """Column and row of the pixel boundaries nearest ``x`` and ``center_y``."""
    return math.floor(x + 0.5), math.floor(center_y + 0.5)


def cut_sheet(sheet: Padded, *, x: float, center_y: float, scale: float, shift_px: int,
              height_px: int, width_px: int) -> np.ndarray:
    """The sheet excerpt of a head at ``(x, center_y)`` (see the module notes).

    Parameters
    ----------
    sheet : Padded
        From :func:`pad_sheet`: the unrolled score [shape=(band_height, width)], uint8.
    x, center_y : float
        Column of the head's centre and row of its system's centre, continuous
        pixels of the unpadded score.
    scale : float
        Magnification; > 1 enlarges.  Exactly 1: a copy of pixels.
    shift_px : int
        Vertical shift, pixels down.
    height_px, width_px : int
        Excerpt size H, W.

    Returns
    -------
    excerpt : np.ndarray [shape=(height_px, width_px), dtype=uint8]
        A read-only view of ``sheet`` when unscaled and inside its margins.
    """
    col, row = sheet_anchor(x, center_y)
    top = row - height_px // 2 - shift_px + sheet.pad_rows
    left = col - width_px // 2 + sheet.pad_cols
    a = sheet.array
    if (scale == 1.0 and 0 <= top and top + height_px <= a.shape[0]
            and 0 <= left and left + width_px <= a.shape[1]):
        view = a[top:top + height_px, left:left + width_px]
        view.flags.writeable = False
        return view
    inv = 1.0 / scale
    # cv2 samples at pixel indices; continuous X is index + 0.5.  With
    # scale 1 the map is an integer translation: the same pixels as a slice.
    matrix = np.array([
        [inv, 0.0, col + sheet.pad_cols - 0.5 + (0.5 - width_px // 2) * inv],
        [0.0, inv, row + sheet.pad_rows - 0.5 + (0.5 - height_px // 2 - shift_px) * inv]])
    return cv2.warpAffine(a, matrix, (width_px, height_px),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=WHITE)


def head_position(*, x: np.ndarray, y: np.ndarray, center_y: np.ndarray, scale: np.ndarray,
                  shift_px: np.ndarray, height_px: int, width_px: int,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of the head's centre ``(x, y)`` in its excerpt, continuous pixels.

    Arrays of shape (n,); float64.
    """
    col = np.floor(np.asarray(x, np.float64) + 0.5)
    row = np.floor(np.asarray(center_y, np.float64) + 0.5)
    s = np.asarray(scale, np.float64)
    head_col = width_px // 2 + (x - col) * s
    head_row = height_px // 2 + np.asarray(shift_px, np.float64) + (y - row) * s
    return head_row, head_col


def spec_start(onset_frame: int, *, n_frames: int, anchor: str, jitter_max_frames: int) -> int:
    """First frame of the excerpt for an (already jittered) onset frame; may be < 0.

    ``anchor="center"``: the onset frame is column ``n_frames // 2``;
    ``"end"``: column ``n_frames - 1 - jitter_max_frames``.
    """
    if anchor == "center":
        return onset_frame - n_frames // 2
    return onset_frame - (n_frames - 1 - jitter_max_frames)


def cut_spec(spec: Padded, *, start: int, n_frames: int) -> np.ndarray:
    """Frames ``start .. start + n_frames - 1`` of the spectrogram, zeros outside it.

    Parameters
    ----------
    spec : Padded
        From :func:`pad_spec`.

    Returns
    -------
    excerpt : np.ndarray [shape=(F, n_frames)]
        A read-only view when inside the margins.
    """
    a = spec.array
    lo = start + spec.pad_cols
    if 0 <= lo and lo + n_frames <= a.shape[1]:
        view = a[:, lo:lo + n_frames]
        view.flags.writeable = False
        return view
    total = a.shape[1] - 2 * spec.pad_cols
    out = np.zeros((a.shape[0], n_frames), dtype=a.dtype)
    first, last = max(start, 0), min(start + n_frames, total)
    if first < last:
        out[:, first - start:last - start] = a[:, first + spec.pad_cols:last + spec.pad_cols]
    return out


@dataclass(frozen=True)
class Augmentation:
    """Per-sample augmentation parameters, arrays of shape (n,)."""

    sheet_scale: np.ndarray
    sheet_shift_px: np.ndarray
    onset_jitter_frames: np.ndarray

    def __getitem__(self, index) -> "Augmentation":  # type: ignore[no-untyped-def]
        return Augmentation(self.sheet_scale[index], self.sheet_shift_px[index],
                            self.onset_jitter_frames[index])


def no_augmentation(n: int) -> Augmentation:
    """Scale 1, no shift, no jitter for ``n`` samples."""
    return Augmentation(np.ones(n, np.float32), np.zeros(n, np.int16), np.zeros(n, np.int16))


def draw_augmentation(n: int, rng: np.random.Generator, *,
                      scale_range: tuple[float, float], shift_max_px: int,
                      jitter_max_frames: int) -> Augmentation:
    """Augmentation of ``n`` samples: scale uniform in ``scale_range``, integer shift and jitter.

    The draws are made in a fixed order (scales, shifts, jitters) so that a
    generator seeded alike gives the same parameters.
    """
    lo, hi = scale_range
    scale = rng.uniform(lo, hi, n).astype(np.float32)
    shift = rng.integers(-shift_max_px, shift_max_px, n, endpoint=True)
    jitter = rng.integers(-jitter_max_frames, jitter_max_frames, n, endpoint=True)
    return Augmentation(scale, shift.astype(np.int16), jitter.astype(np.int16))
