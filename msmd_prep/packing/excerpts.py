"""Cutting snippets: the sheet and spectrogram excerpts of onsets, and their augmentation.

One implementation for both the pack stage (which stores the excerpts in
shards) and the on-the-fly reader (:mod:`msmd_prep.reader`, which cuts them
at read time), so that the two give the same bytes for the same parameters.

Geometry (continuous pixel coordinates: pixel ``i`` spans ``[i, i + 1)``):

* the score at scale ``s`` is the unrolled score with a one-pixel white
  border, rescaled by ``s`` (:func:`rescale_sheet`: OpenCV's bit-exact
  bilinear resize, pixel centres aligned: a point ``u`` of the bordered
  score lies at ``u * s``); white beyond it.  At ``s = 1`` it is the
  bordered score itself, pixels unchanged.
* the sheet excerpt is anchored at the pixel boundaries of the scaled score
  nearest the head's centre, ``col = floor((x + 1) * s + 0.5)``, and the
  system's centre, ``row = floor((center_y + 1) * s + 0.5)``: it is the
  rectangle whose column ``W // 2`` starts at ``col`` and whose row
  ``H // 2 + shift`` starts at ``row``, a slice of pixels.  The head's
  centre lies at ``head_col = W // 2 + (x + 1) * s - col``, within half a
  pixel of ``W // 2``.
* the spectrogram excerpt is ``T`` frames from ``start``; zeros outside the
  spectrogram.

Augmentation rescales by one of ``scale_steps`` factors evenly spaced over
the scale range (each a whole rescaled score, made once), so that every
excerpt, augmented or not, is a slice.  The scores and spectrograms are
stored side by side in one array each (:class:`SheetStore`,
:class:`SpecStore`), the scores column-major and the spectrograms
frames-major, so that an excerpt is one nearly contiguous block, with
enough margin that an excerpt never leaves the array (the rare one that
would is cut on its own, with the same result).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

WHITE = 255
#: White border added to the unrolled score before rescaling (it fixes the scaled pixel grid).
BORDER_PX = 1


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


def scale_levels(scale_range: tuple[float, float], steps: int) -> np.ndarray:
    """The ``steps`` rescale factors [shape=(steps,), float32], evenly spaced over ``scale_range``.

    One step is the range's midpoint.
    """
    lo, hi = scale_range
    if steps == 1:
        return np.array([(lo + hi) / 2], np.float32)
    return np.linspace(lo, hi, steps).astype(np.float32)


def draw_augmentation(n: int, rng: np.random.Generator, *,
                      scale_range: tuple[float, float], scale_steps: int, shift_max_px: int,
                      jitter_max_frames: int) -> Augmentation:
    """Augmentation of ``n`` samples: one of ``scale_steps`` scales, integer shift and jitter.

    Each uniform; drawn in a fixed order (scales, shifts, jitters) so that a
    generator seeded alike gives the same parameters.
    """
    levels = scale_levels(scale_range, scale_steps)
    scale = levels[rng.integers(0, len(levels), n)]
    shift = rng.integers(-shift_max_px, shift_max_px, n, endpoint=True)
    jitter = rng.integers(-jitter_max_frames, jitter_max_frames, n, endpoint=True)
    return Augmentation(scale, shift.astype(np.int16), jitter.astype(np.int16))


def rescale_sheet(image: np.ndarray, scale: float) -> np.ndarray:
    """The score [shape=(rows, cols)] with its white border, rescaled by ``scale`` (see module)."""
    bordered = cv2.copyMakeBorder(image, BORDER_PX, BORDER_PX, BORDER_PX, BORDER_PX,
                                  cv2.BORDER_CONSTANT, value=WHITE)
    if scale == 1.0:
        return bordered
    # Pixel centres aligned (dst x + 0.5 = (src x + 0.5) * scale); the edge
    # it replicates is the white border.  The bit-exact variant: the same
    # bytes on every platform.
    return cv2.resize(bordered, (0, 0), fx=float(scale), fy=float(scale),
                      interpolation=cv2.INTER_LINEAR_EXACT)


def sheet_anchor(x: np.ndarray, center_y: np.ndarray, scale: np.ndarray,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Column and row [shape=(n,), int64] of the scaled score's boundaries nearest ``x``, ``center_y``."""
    s = np.asarray(scale, np.float64)
    return (np.floor((np.asarray(x, np.float64) + BORDER_PX) * s + 0.5).astype(np.int64),
            np.floor((np.asarray(center_y, np.float64) + BORDER_PX) * s + 0.5).astype(np.int64))


def head_position(*, x: np.ndarray, y: np.ndarray, center_y: np.ndarray, aug: Augmentation,
                  height_px: int, width_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column [shape=(n,), float64] of each head's centre ``(x, y)`` in its excerpt."""
    s = aug.sheet_scale.astype(np.float64)
    col, row = sheet_anchor(x, center_y, s)
    head_col = width_px // 2 + (np.asarray(x, np.float64) + BORDER_PX) * s - col
    head_row = (height_px // 2 + aug.sheet_shift_px.astype(np.float64)
                + (np.asarray(y, np.float64) + BORDER_PX) * s - row)
    return head_row, head_col


@dataclass(frozen=True)
class SheetStore:
    """Unrolled scores at the scales excerpts are cut at, side by side in one column-major array.

    Make it with :meth:`build`, or :meth:`empty` and one :meth:`put` per score.

    Attributes
    ----------
    array : np.ndarray [shape=(columns, rows), dtype=uint8]
        Column ``k`` of a scaled score is a row of ``array``; white between
        the scores (at least ``W // 2 + 1`` columns) and around them.
    col0, col1 : np.ndarray [shape=(n_images, n_scales), dtype=int64]
        The columns of ``array`` each scaled score may fill.
    row0 : int
        Where row 0 of every scaled score is.
    scales : np.ndarray [shape=(n_scales,), dtype=float32]
        Sorted.
    cropped : bool
        The store keeps some rows of the scores only (``empty(rows=)``).
    """

    array: np.ndarray
    col0: np.ndarray
    col1: np.ndarray
    row0: int
    scales: np.ndarray
    cropped: bool = False

    @classmethod
    def empty(cls, shapes: Sequence[tuple[int, int]], scales: Sequence[float], *,
              width_px: int, height_px: int, white: bool = True,
              rows: tuple[int, int] | None = None) -> SheetStore:
        """A white store for scores of ``shapes`` (rows, columns) at every one of ``scales``.

        Rows are those of the scaled scores (excerpts of systems centred in
        their band do not leave them; those that do are cut one by one).
        ``rows=(lo, hi)``, scale 1 only: the store keeps rows ``lo .. hi - 1``
        of the bordered scores (``lo`` may be < 0, ``hi`` beyond them: white),
        the rows every excerpt to be cut lies in; with ``hi - lo`` equal to
        ``H`` each excerpt is one contiguous block (measured 1.5x faster to
        copy than 160 of 203 bytes per column).
        ``white=False``: uninitialised, each score's part made white by
        :meth:`whiten` (in the threads that fill it: the first touch of new
        memory is its page faults).
        """
        levels = np.unique(np.asarray(scales, np.float32))
        top, rows_, gap = 0, height_px, width_px // 2 + 1
        if rows is not None:
            if not (levels.tolist() == [1.0] and rows[1] > rows[0]):
                raise ValueError(f"rows {rows} need rows[1] > rows[0] and scale 1 only, "
                                 f"got scales {levels}")
            top, rows_ = -int(rows[0]), int(rows[1]) - int(rows[0])
        col0 = np.zeros((len(shapes), len(levels)), np.int64)
        col1 = np.zeros_like(col0)
        cols = gap
        for i, (h, w) in enumerate(shapes):
            for k, s in enumerate(levels.astype(np.float64).tolist()):
                # Room for OpenCV's rounding of the scaled size.
                sw, sh = _scaled_size(w, s), _scaled_size(h, s)
                col0[i, k] = cols
                col1[i, k] = cols = cols + sw
                cols += gap
                if rows is None:
                    rows_ = max(rows_, top + sh)
        array = (np.full((cols, rows_), WHITE, np.uint8) if white or not len(shapes)
                 else np.empty((cols, rows_), np.uint8))
        return cls(array, col0, col1, top, levels, rows is not None)

    @classmethod
    def build(cls, images: Sequence[np.ndarray], scales: Sequence[float], *, width_px: int,
              height_px: int, rows: tuple[int, int] | None = None) -> SheetStore:
        """The store of ``images`` (unrolled scores, uint8) at every one of ``scales``."""
        store = cls.empty([im.shape for im in images], scales, width_px=width_px,
                          height_px=height_px, rows=rows)
        for i, image in enumerate(images):
            store.put(i, image)
        return store

    def whiten(self, i: int) -> None:
        """Make score ``i``'s part of the store white: its columns and the gap before them."""
        gap = int(self.col0[0, 0])
        first = 0 if i == 0 else int(self.col0[i, 0]) - gap
        last = self.array.shape[0] if i + 1 == len(self.col0) else int(self.col0[i + 1, 0]) - gap
        self.array[first:last].fill(WHITE)

    def put_columns(self, i: int, first: int, block: np.ndarray) -> None:
        """Columns ``first ..`` of score ``i`` [shape=(rows, n)] into its scale-1 place."""
        k = int(self.level(np.ones(1))[0])
        c, r = int(self.col0[i, k]) + BORDER_PX + first, self.row0 + BORDER_PX
        if c + block.shape[1] > self.col1[i, k] or (
                not self.cropped and r + block.shape[0] > self.array.shape[1]):
            raise ValueError(f"score {i}: columns {first}.. {block.shape} exceed its room")
        self._transpose_into(c, r, block)

    def _transpose_into(self, c: int, r: int, block: np.ndarray) -> None:
        """``block`` [shape=(rows, n)] at column ``c``, row ``r`` of the store (rows < 0 or
        beyond the store's are dropped: they are those of a store of some rows only)."""
        lo, hi = max(0, -r), min(block.shape[0], self.array.shape[1] - r)
        if lo < hi:
            cv2.transpose(block[lo:hi], dst=self.array[c:c + block.shape[1], r + lo:r + hi])

    def put(self, i: int, image: np.ndarray) -> None:
        """Rescale score ``i`` (the shape given to :meth:`empty`) by every scale into the store."""
        for k, s in enumerate(self.scales.astype(np.float64).tolist()):
            c = int(self.col0[i, k])
            if s == 1.0:
                # The white border is the store's own white.
                a, c, r = image, c + BORDER_PX, self.row0 + BORDER_PX
            else:
                a, r = rescale_sheet(image, s), self.row0
            if c + a.shape[1] > self.col1[i, k] or (
                    not self.cropped and r + a.shape[0] > self.array.shape[1]):
                raise ValueError(f"score {i} at scale {s}: {a.shape} exceeds its room")
            self._transpose_into(c, r, a)

    def level(self, scale: np.ndarray) -> np.ndarray:
        """Index [shape=(n,), int64] in ``scales`` of each of ``scale``; every one must be there."""
        s = np.asarray(scale, np.float32)
        k = np.minimum(np.searchsorted(self.scales, s), len(self.scales) - 1)
        if len(s) and not (self.scales[k] == s).all():
            raise ValueError(f"scales {np.setdiff1d(s, self.scales)} are not among the "
                             f"store's {self.scales}")
        return k.astype(np.int64)


def _scaled_size(n: int, scale: float) -> int:
    """An upper bound of the size of ``n`` pixels plus the border, rescaled by OpenCV."""
    return int(np.ceil((n + 2 * BORDER_PX) * scale)) + 1


def cut_sheets(store: SheetStore, which: np.ndarray, *, x: np.ndarray, center_y: np.ndarray,
               aug: Augmentation, height_px: int, width_px: int,
               out: np.ndarray | None = None) -> np.ndarray:
    """The sheet excerpts of ``n`` heads (see the module notes).

    Parameters
    ----------
    store : SheetStore
        Holds every scale of ``aug``.
    which : np.ndarray [shape=(n,), int]
        The score of each head.
    x, center_y : np.ndarray [shape=(n,)]
        Column of each head's centre and row of its system's centre,
        continuous pixels of the unrolled score.
    aug : Augmentation
        ``n`` entries: scale and vertical shift (pixels down).
    height_px, width_px : int
        ``H`` and ``W``.
    out : np.ndarray [shape=(n, H, W), dtype=uint8], optional
        Where to cut them, of any memory layout; fastest column-major (as
        returned, or :func:`new_sheets`).

    Returns
    -------
    sheets : np.ndarray [shape=(n, H, W), dtype=uint8]
        ``out``, or column-major: a view of a C-ordered (n, W, H) array
        whose every excerpt is one nearly contiguous block of the store
        (measured 2x faster than row-major excerpts of row-major scores);
        ``np.ascontiguousarray`` makes it row-major.
    """
    H, W = height_px, width_px
    lefts, tops, inside = sheet_windows(store, which, x=x, center_y=center_y, aug=aug,
                                        height_px=H, width_px=W)
    a = store.array
    if out is None:
        out = new_sheets(len(lefts), height_px=H, width_px=W)
    columns = out.transpose(0, 2, 1)
    # One thread: split over two (numpy copies without the GIL) it measured
    # no faster on a 2-core VM whose memory bandwidth two threads do not raise.
    everywhere = bool(inside.all())
    for k, (left, top) in enumerate(zip(lefts.tolist(), tops.tolist())):
        if everywhere or inside[k]:
            columns[k] = a[left:left + W, top:top + H]
    for k in np.flatnonzero(~inside).tolist():
        columns[k] = _window_alone(store, int(which[k]), float(aug.sheet_scale[k]),
                                   int(lefts[k]), int(tops[k]), W, H)
    return out


def new_sheets(n: int, *, height_px: int, width_px: int) -> np.ndarray:
    """An uninitialised column-major batch of sheet excerpts [shape=(n, H, W), dtype=uint8]."""
    return np.empty((n, width_px, height_px), np.uint8).transpose(0, 2, 1)


def sheet_windows(store: SheetStore, which: np.ndarray, *, x: np.ndarray, center_y: np.ndarray,
                  aug: Augmentation, height_px: int, width_px: int,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the excerpts of :func:`cut_sheets` are in ``store.array``.

    Returns ``lefts``, ``tops`` [shape=(n,), int64]: excerpt ``k`` is
    ``store.array[lefts[k]:lefts[k] + W, tops[k]:tops[k] + H].T`` where
    ``inside[k]`` [shape=(n,), bool]; elsewhere it would reach beyond the
    array or into another score.
    """
    H, W = height_px, width_px
    which = np.asarray(which, np.int64)
    level = store.level(aug.sheet_scale)
    col, row = sheet_anchor(x, center_y, aug.sheet_scale)
    c0s = store.col0[which, level]
    lefts = c0s + col - W // 2
    tops = store.row0 + row - aug.sheet_shift_px.astype(np.int64) - H // 2
    gap = W // 2 + 1
    inside = ((lefts >= c0s - gap) & (lefts + W <= store.col1[which, level] + gap)
              & (tops >= 0) & (tops + H <= store.array.shape[1]))
    return lefts, tops, inside


def _window_alone(store: SheetStore, image: int, scale: float, left: int, top: int,
                  width: int, height: int) -> np.ndarray:
    """The (W, H) excerpt of one score at ``left``, ``top`` of the store, white beyond it."""
    k = int(store.level(np.array([scale]))[0])
    # The scaled score, white around it, is that part of the store.
    c0, c1 = int(store.col0[image, k]), int(store.col1[image, k])
    return _window(store.array[c0:c1], left - c0, top, width, height)


def _window(image: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """Rows ``top .. top + height - 1``, columns ``left ..`` of ``image``, white outside it."""
    out = np.full((height, width), WHITE, np.uint8)
    r0, r1 = max(top, 0), min(top + height, image.shape[0])
    c0, c1 = max(left, 0), min(left + width, image.shape[1])
    if r0 < r1 and c0 < c1:
        out[r0 - top:r1 - top, c0 - left:c1 - left] = image[r0:r1, c0:c1]
    return out


def spec_start(onset_frame, *, n_frames: int, anchor: str, jitter_max_frames: int):  # type: ignore[no-untyped-def]
    """First frame of the excerpt for (already jittered) onset frames, int or array; may be < 0.

    ``anchor="center"``: the onset frame is column ``n_frames // 2``;
    ``"end"``: column ``n_frames - 1 - jitter_max_frames``.
    """
    if anchor == "center":
        return onset_frame - n_frames // 2
    return onset_frame - (n_frames - 1 - jitter_max_frames)


@dataclass(frozen=True)
class SpecStore:
    """Spectrograms side by side, frames-major, ``T`` zero frames between and around them.

    Attributes
    ----------
    array : np.ndarray [shape=(frames, F)]
        Frame ``j`` of spectrogram ``k`` is row ``frame0[k] + j``.
    frame0, n_frames : np.ndarray [shape=(n_specs,), dtype=int64]
        Where each spectrogram begins, and its length.
    pad : int
        Zero frames between two spectrograms (``T``).
    """

    array: np.ndarray
    frame0: np.ndarray
    n_frames: np.ndarray
    pad: int

    @classmethod
    def build(cls, specs: Sequence[np.ndarray], *, n_frames: int,
              dtype: np.dtype | None = None) -> SpecStore:
        """Lay out ``specs`` [shape=(F, frames_k)] (excerpts of ``n_frames`` frames)."""
        store = cls.empty([s.shape[1] for s in specs], n_bins=specs[0].shape[0] if specs else 0,
                          n_frames=n_frames,
                          dtype=np.dtype(dtype or (specs[0].dtype if specs else np.float16)))
        for k, s in enumerate(specs):
            store.put(k, 0, s)
        return store

    @classmethod
    def empty(cls, lengths: Sequence[int], *, n_bins: int, n_frames: int, dtype: np.dtype,
              zero: bool = True) -> SpecStore:
        """Room for spectrograms of ``lengths`` frames; ``zero=False``: see :meth:`clear`."""
        lengths = np.asarray(lengths, np.int64).reshape(-1)
        frame0 = n_frames + np.concatenate([[0], np.cumsum(lengths + n_frames)[:-1]]
                                           ).astype(np.int64)
        shape = (int(lengths.sum()) + n_frames * (len(lengths) + 1), n_bins)
        array = np.zeros(shape, dtype) if zero or not len(lengths) else np.empty(shape, dtype)
        return cls(array, frame0, lengths, n_frames)

    def clear(self, k: int) -> None:
        """Zero spectrogram ``k``'s frames and the zero frames before it (and after the last)."""
        first = 0 if k == 0 else int(self.frame0[k]) - self.pad
        last = len(self.array) if k + 1 == len(self.frame0) else int(self.frame0[k + 1]) - self.pad
        self.array[first:last] = 0

    def put(self, k: int, first: int, block: np.ndarray) -> None:
        """Frames ``first ..`` of spectrogram ``k`` [shape=(F, n)] into the store."""
        f = int(self.frame0[k]) + first
        if first < 0 or first + block.shape[1] > self.n_frames[k]:
            raise ValueError(f"spectrogram {k}: frames {first}.. {block.shape} exceed its length")
        dst = self.array[f:f + block.shape[1]]
        if block.dtype == dst.dtype and dst.dtype.itemsize in (1, 2, 4) and block.size:
            # OpenCV's transpose (no GIL) of the bits: float16 is not one of its types.
            bits = np.dtype(f"u{dst.dtype.itemsize}") if dst.dtype.itemsize < 4 else np.float32
            cv2.transpose(block.view(bits), dst=dst.view(bits))
        else:
            dst[...] = block.T


def cut_specs(store: SpecStore, which: np.ndarray, *, starts: np.ndarray,
              n_frames: int, out: np.ndarray | None = None) -> np.ndarray:
    """Frames ``start .. start + T - 1`` of each sample's spectrogram [shape=(n, F, T)].

    Zeros outside the spectrogram; ``which`` [shape=(n,)] picks the
    spectrogram of each sample, ``starts`` [shape=(n,)] its first frame.
    Returns ``out`` (any memory layout, fastest frames-major) or a new
    frames-major array: a view of a C-ordered (n, T, F) array (one gather
    of contiguous frames, measured 2x faster than (n, F, T)).
    """
    T = n_frames
    which = np.asarray(which, np.int64)
    starts = np.asarray(starts, np.int64)
    first, inside = spec_windows(store, which, starts=starts, n_frames=T)
    if out is None:
        out = new_specs(len(first), n_bins=store.array.shape[1], n_frames=T,
                        dtype=store.array.dtype)
    frames = out.transpose(0, 2, 1)
    # The indices are in range: "clip" lets np.take write into ``out`` unbuffered.
    np.take(store.array, np.where(inside, first, 0)[:, None] + np.arange(T), axis=0,
            out=frames, mode="clip")
    for k in np.flatnonzero(~inside).tolist():
        f0, length, start = (int(store.frame0[which[k]]), int(store.n_frames[which[k]]),
                             int(starts[k]))
        lo, hi = max(start, 0), min(start + T, length)
        frames[k] = 0
        if lo < hi:
            frames[k, lo - start:hi - start] = store.array[f0 + lo:f0 + hi]
    return out


def new_specs(n: int, *, n_bins: int, n_frames: int, dtype: np.dtype) -> np.ndarray:
    """An uninitialised frames-major batch of spectrogram excerpts [shape=(n, F, T)]."""
    return np.empty((n, n_frames, n_bins), dtype).transpose(0, 2, 1)


def spec_windows(store: SpecStore, which: np.ndarray, *, starts: np.ndarray, n_frames: int,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Where the excerpts of :func:`cut_specs` are: ``store.array[first[k]:first[k] + T].T``.

    Returns ``first`` and ``inside`` [shape=(n,)]: where ``inside`` is false
    the excerpt would reach beyond the zero frames around its spectrogram.
    """
    first = store.frame0[which] + starts
    inside = ((starts >= -store.pad) & (starts + n_frames <= store.n_frames[which] + store.pad)
              & (store.pad >= n_frames))
    return first, inside


def extract_spec(spec: np.ndarray, *, start: int, n_frames: int) -> np.ndarray:
    """Frames ``start .. start + n_frames - 1`` of ``spec`` [shape=(F, total)], zeros outside it."""
    out = np.zeros((spec.shape[0], n_frames), dtype=spec.dtype)
    first, last = max(start, 0), min(start + n_frames, spec.shape[1])
    if first < last:
        out[:, first - start:last - start] = spec[:, first:last]
    return out
