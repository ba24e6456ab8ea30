"""Pictures of a piece for people: are the heads, systems and onsets right?

``msmd-prep inspect PIECE_DIR`` draws every page with its system boxes and
its note-head boxes coloured by alignment state, the unrolled score with the
onset-to-x mapping over it, and a strip of packed sample pairs, and writes
them as PNGs plus one self-contained HTML page (images embedded).
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import h5py
import numpy as np

from .align import (ALIGNMENT_NAME, UNROLLED_JSON, UNROLLED_PNG, AlignConfig, AlignmentRow,
                    read_alignment_csv, unroll_piece)
from .data import INDEX_NAME, ScoreFollowingDataset, SnippetDataset
from .reader import SnippetReader
from .dataset import DATASET_DIR, WORK_DIR
from .errors import InputError
from .pages import load_gray
from .score import NoteHead, System, read_heads_csv, read_systems_csv
from .workdir import performance_dirs, read_json

#: BGR colours of the alignment states and of the system boxes.
COLOURS = {"aligned": (40, 160, 40), "tie": (0, 140, 255), "unaligned": (40, 40, 220),
           "system": (200, 90, 0)}


@dataclass(frozen=True)
class Figure:
    """A picture for the report: a name, a caption and PNG bytes."""

    name: str
    caption: str
    png: bytes


def head_state(head: NoteHead, onsets_s: list[float] | None) -> str:
    """``aligned``, ``tie`` (a tie continuation) or ``unaligned`` (no onset)."""
    if head.tied:
        return "tie"
    return "aligned" if (onsets_s if onsets_s is not None else head.onsets_s) else "unaligned"


def draw_page(image: np.ndarray, heads: list[NoteHead], systems: list[System], *,
              onsets: dict[str, list[float]] | None = None, labels: bool = False) -> np.ndarray:
    """A page with its system boxes and note-head boxes.

    Parameters
    ----------
    image : np.ndarray [shape=(height, width), dtype=uint8]
        The grayscale page.
    heads, systems : list
        The page's heads and systems.
    onsets : dict of str to list of float, optional
        Head id -> onsets of one performance; default the score's own.
    labels : bool
        Write each head's onsets (seconds; the first two, ``+`` for more) under its box.

    Returns
    -------
    np.ndarray [shape=(height, width, 3), dtype=uint8]
        BGR picture.
    """
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    for s in systems:
        cv2.rectangle(out, (int(s.x0), int(s.y0)), (int(round(s.x1)), int(round(s.y1))),
                      COLOURS["system"], 1)
    for h in heads:
        own = None if onsets is None else onsets.get(h.id, [])
        colour = COLOURS[head_state(h, own)]
        cv2.rectangle(out, (int(h.x0), int(h.y0)), (int(round(h.x1)), int(round(h.y1))),
                      colour, 1)
        times = own if own is not None else list(h.onsets_s)
        if labels and times:
            text = "/".join(f"{t:.2f}" for t in sorted(times)[:2]) + ("+" if len(times) > 2
                                                                      else "")
            cv2.putText(out, text, (int(h.x0), int(h.y1) + 10),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.28, colour, 1, cv2.LINE_AA)
    return out


def page_figures(piece: Path, *, onsets: dict[str, list[float]] | None = None,
                 labels: bool = False) -> list[Figure]:
    """One figure per page of a rendered piece."""
    heads = read_heads_csv(piece / "noteheads.csv")
    systems = read_systems_csv(piece / "systems.csv")
    figures = []
    for path in sorted((piece / "pages").glob("page-*.png")):
        number = int(path.stem.split("-")[1])
        picture = draw_page(load_gray(path), [h for h in heads if h.page == number],
                            [s for s in systems if s.page == number], onsets=onsets,
                            labels=labels)
        counts = {state: sum(1 for h in heads if h.page == number
                             and head_state(h, None if onsets is None else onsets.get(h.id, []))
                             == state) for state in ("aligned", "tie", "unaligned")}
        caption = (f"Page {number}: {counts['aligned']} aligned heads (green), "
                   f"{counts['tie']} tie continuations (orange), {counts['unaligned']} "
                   f"unaligned (red); staff systems in blue.")
        figures.append(Figure(path.stem, caption, encode_png(picture)))
    return figures


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an image (grayscale or BGR)."""
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("cannot encode image as PNG")
    return data.tobytes()


def figure_png(fig) -> bytes:  # type: ignore[no-untyped-def]
    """PNG bytes of a matplotlib figure (made without pyplot, so nothing to close)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def _new_figure(width_in: float, height_in: float):  # type: ignore[no-untyped-def]
    """A matplotlib figure outside pyplot: no global state, no GUI backend."""
    from matplotlib.figure import Figure as MplFigure

    return MplFigure(figsize=(width_in, height_in), layout="constrained")


def write_report(figures: list[Figure], out_dir: Path, title: str, *,
                 notes: list[str] = ()) -> Path:
    """Write each figure as ``<name>.png`` and all of them in ``index.html``.

    The HTML embeds the images (base64), so it opens anywhere without a server.
    ``notes`` are listed under the title.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             "</title><style>body{font-family:sans-serif;margin:1em}img{max-width:100%;"
             "border:1px solid #ccc}figure{margin:1.5em 0}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             *(f"<p><em>{html.escape(note)}</em></p>" for note in notes)]
    for fig in figures:
        (out_dir / f"{fig.name}.png").write_bytes(fig.png)
        data = base64.b64encode(fig.png).decode("ascii")
        parts.append(f"<figure><img src='data:image/png;base64,{data}' alt='{fig.name}'>"
                     f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>")
    parts.append("</body></html>")
    page = out_dir / "index.html"
    page.write_text("\n".join(parts), encoding="utf-8")
    return page


def choose_performance(piece: Path, name: str | None) -> Path | None:
    """The performance folder to show: ``name``, else the first aligned one (by id).

    Returns None when the piece has no aligned performance and none was asked for.

    Raises
    ------
    InputError
        ``name`` is not an aligned performance of the piece.
    """
    aligned = [d for d in performance_dirs(piece) if (d / ALIGNMENT_NAME).is_file()]
    if name is None:
        return aligned[0] if aligned else None
    for d in aligned:
        if d.name == name:
            return d
    raise InputError(f"{piece}: no aligned performance {name!r}; aligned: "
                     f"{[d.name for d in aligned] or 'none (run msmd-prep align)'}")


def find_dataset(piece: Path) -> Path | None:
    """The dataset ``msmd-prep dataset`` built next to the piece's work folder.

    A piece ``DIR/work/PIECE`` made by ``msmd-prep dataset ... --out DIR``
    has its packed samples in ``DIR/dataset``; None when that is not there
    or does not hold the piece.
    """
    piece = Path(piece).resolve()
    if piece.parent.name != WORK_DIR:
        return None
    root = piece.parent.parent / DATASET_DIR
    try:
        index = json.loads((root / INDEX_NAME).read_text())
    except (OSError, ValueError):
        return None
    return root if piece.name in index.get("pieces", {}) else None


def _onsets_by_head(rows: list[AlignmentRow]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for r in rows:
        out.setdefault(r.notehead_id, []).append(r.onset_s)
    return out


def _unrolled(piece: Path) -> tuple[np.ndarray, dict]:
    """The unrolled score and its layout: ``unrolled.png``/``.json`` of align, else made anew."""
    png, meta = piece / UNROLLED_PNG, read_json(piece / UNROLLED_JSON)
    if png.is_file() and meta is not None:
        return load_gray(png), meta
    unrolled = unroll_piece(piece, AlignConfig().unroll_config())
    return unrolled.image, unrolled.layout()


def unrolled_figure(image: np.ndarray, layout: dict, rows: list[AlignmentRow], *,
                    row_width_px: int = 2400) -> Figure:
    """The unrolled score in strips, every onset's head dotted on it (coloured by onset
    time) and the onset time over x drawn as a line on a second axis.

    Parameters
    ----------
    image : np.ndarray [shape=(band_height, width), dtype=uint8]
        The unrolled score.
    layout : dict
        Its bands (``unrolled.json``).
    rows : list of AlignmentRow
        One performance's alignment.
    row_width_px : int
        Width of one strip of the figure, pixels of the unrolled score.
    """
    bands = {b["system"]: b for b in layout["systems"]}
    xs = np.array([r.unrolled_x for r in rows], dtype=np.float64)
    ys = np.array([(r.y - bands[r.system]["source_rows"][0]) * bands[r.system]["scale_y"]
                   for r in rows], dtype=np.float64)
    ts = np.array([r.onset_s for r in rows], dtype=np.float64)
    height, width = image.shape
    row_width_px = min(row_width_px, width)
    n_strips = max(1, math.ceil(width / row_width_px))
    width_in = max(6.0, 16.0 * row_width_px / 2400)
    fig = _new_figure(width_in, (width_in * height / row_width_px + 0.5) * n_strips + 0.6)
    axes = fig.subplots(n_strips, 1, squeeze=False)[:, 0]
    t_max = float(ts.max()) if len(ts) else 1.0
    for k, ax in enumerate(axes):
        x0, x1 = k * row_width_px, min((k + 1) * row_width_px, width)
        ax.imshow(image[:, x0:x1], cmap="gray", vmin=0, vmax=255,
                  extent=(x0, x1, height, 0), interpolation="antialiased")
        ax.set_xlim(x0, x0 + row_width_px)
        ax.set_yticks([])
        for b in layout["systems"]:
            if x0 <= b["x_offset"] < x1:
                ax.axvline(b["x_offset"], color="tab:blue", lw=0.8, ls="--")
                ax.text(b["x_offset"] + 4, 12, f"system {b['system']}", color="tab:blue",
                        fontsize=7, va="top")
        inside = (xs >= x0) & (xs < x1)
        ax.scatter(xs[inside], ys[inside], c=ts[inside], cmap="viridis", vmin=0, vmax=t_max,
                   s=9, edgecolors="none")
        twin = ax.twinx()
        order = np.argsort(ts, kind="stable")
        line_x, line_t = xs[order].copy(), ts[order].copy()
        # No segment across a strip edge or a jump back (a repeat).
        breaks = np.r_[False, np.diff(line_x) < 0] | ~((line_x >= x0) & (line_x < x1))
        line_x[breaks], line_t[breaks] = np.nan, np.nan
        twin.plot(line_x, line_t, color="tab:red", lw=0.8, marker=".", ms=2)
        twin.set_ylim(t_max * 1.02 + 0.01, 0)
        twin.set_ylabel("onset (s)", fontsize=7, color="tab:red")
        twin.tick_params(labelsize=7, colors="tab:red")
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("x in the unrolled score (px)")
    caption = (f"The unrolled score ({width} x {height} px, {len(layout['systems'])} systems, "
               f"blue dashes at system starts), every onset's head dotted (colour = onset "
               f"time) and onset time over x in red (right axis, time downwards): "
               f"{len(rows)} onsets.")
    return Figure("unrolled", caption, figure_png(fig))


def mapping_figure(rows: list[AlignmentRow]) -> Figure:
    """The onset <-> x map (MSMD's ``o2c``): x in the unrolled score over onset time."""
    ts = np.array([r.onset_s for r in rows], dtype=np.float64)
    xs = np.array([r.unrolled_x for r in rows], dtype=np.float64)
    systems = np.array([r.system for r in rows])
    fig = _new_figure(8.0, 4.0)
    ax = fig.subplots()
    points = ax.scatter(ts, xs, c=systems, cmap="tab20", s=6, edgecolors="none")
    order = np.argsort(ts, kind="stable")
    ax.plot(ts[order], xs[order], color="0.6", lw=0.5, zorder=0)
    ax.set_xlabel("onset (s)")
    ax.set_ylabel("x in the unrolled score (px)")
    fig.colorbar(points, ax=ax, label="system")
    caption = (f"The onset-to-x map: each of the {len(rows)} onsets at its time and its head's "
               f"x in the unrolled score, coloured by system; a repeat shows as a jump back.")
    return Figure("mapping", caption, figure_png(fig))


def _piece_samples(root: Path, index: dict, piece: str, performance: str,
                   ) -> tuple[str, np.ndarray]:
    """The split of ``piece`` and the sample indices of ``performance`` in it."""
    split = index["pieces"][piece]["split"]
    if not index["splits"][split]["shards"] and index.get("task", "snippets") == "snippets":
        return split, SnippetReader(root, split).indices_of(piece, performance)
    found, offset = [], 0
    for shard in index["splits"][split]["shards"]:
        with h5py.File(root / shard["path"], "r") as f:
            meta = f["meta"].fields(["piece", "performance"])[:]
        hit = (meta["piece"] == piece.encode()) & (meta["performance"] == performance.encode())
        found.append(np.nonzero(hit)[0] + offset)
        offset += int(shard["count"])
    return split, np.concatenate(found) if found else np.zeros(0, np.int64)


def sample_strip(root: Path, piece: str, performance: str, *, n_samples: int = 8,
                 ) -> Figure | None:
    """Packed sample pairs of one performance, spread evenly over the piece.

    A snippet dataset shows each sheet excerpt (head column red, head centre
    a red ring) beside its spectrogram excerpt (onset frame between red
    lines); a score-following dataset shows the staff image with the head's
    x (red) and the soft target (orange bars), beside the spectrogram
    excerpt, whose last column is the onset frame.  None when the dataset
    does not hold the performance.
    """
    index = json.loads((root / INDEX_NAME).read_text())
    if piece not in index.get("pieces", {}):
        return None
    split, found = _piece_samples(root, index, piece, performance)
    if not len(found):
        return None
    picks = found[np.unique(np.linspace(0, len(found) - 1, min(n_samples, len(found)))
                            .round().astype(int))]
    if index.get("task", "snippets") == "score-following":
        return _score_following_strip(ScoreFollowingDataset(root, split), picks, split)
    if index["splits"][split]["shards"]:
        ds = SnippetDataset(root, split)
        sheets, specs, meta = ds[picks]
        ds.close()
    else:
        sheets, specs, meta = SnippetReader(root, split)[picks]
    n = len(picks)
    cols = min(n, 4)
    n_rows = math.ceil(n / cols)
    H, W = sheets.shape[1:]
    F, T = specs.shape[1:]
    fig = _new_figure(4.2 * cols, 2.4 * n_rows)
    grid = fig.add_gridspec(n_rows, 2 * cols, width_ratios=[W / H, 0.55] * cols)
    for k in range(n):
        r, c = divmod(k, cols)
        ax, bx = fig.add_subplot(grid[r, 2 * c]), fig.add_subplot(grid[r, 2 * c + 1])
        ax.imshow(sheets[k], cmap="gray", vmin=0, vmax=255, extent=(0, W, H, 0))
        ax.axvline(meta["head_col"][k], color="red", lw=0.8, alpha=0.7)
        ax.scatter([meta["head_col"][k]], [meta["head_row"][k]], s=60, facecolors="none",
                   edgecolors="red", lw=0.8)
        ax.set_xlim(0, W)
        ax.set_ylim(H, 0)
        ax.set_title(f"{meta['notehead_id'][k]} pitch {meta['pitch'][k]} "
                     f"t={meta['onset_s'][k]:.2f}s", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
        bx.imshow(specs[k].astype(np.float32), origin="lower", aspect="auto",
                  cmap="magma", extent=(0, T, 0, F), interpolation="nearest")
        col = int(meta["onset_col"][k])
        for edge in (col, col + 1):
            bx.axvline(edge, color="red", lw=0.6)
        bx.set_title(f"frame {meta['onset_frame'][k]}", fontsize=7)
        bx.set_xticks([])
        bx.set_yticks([])
    caption = (f"{n} of the {len(found)} packed samples of {performance} ({split} split of "
               f"{root}): sheet excerpt {H}x{W} with the head's column (red line) and centre "
               f"(red ring), spectrogram excerpt {F}x{T} with the onset frame between red "
               f"lines.")
    return Figure("samples", caption, figure_png(fig))


def _score_following_strip(ds: ScoreFollowingDataset, picks: np.ndarray, split: str,
                           ) -> Figure:
    staff, specs, targets, meta = ds[picks]
    ds.close()
    n = len(picks)
    H, W = staff.shape[1:]
    F, T = specs.shape[1:]
    fig = _new_figure(12.0, 1.1 * n + 0.3)
    grid = fig.add_gridspec(n, 2, width_ratios=[W / H, 2.0])
    for k in range(n):
        ax, bx = fig.add_subplot(grid[k, 0]), fig.add_subplot(grid[k, 1])
        ax.imshow(staff[k], cmap="gray", vmin=0, vmax=255, extent=(0, W, H, 0))
        ax.bar(ds.bucket_centres, -targets[k] * H, bottom=H,
               width=ds.bucket_edges[1] - ds.bucket_edges[0], color="orange", alpha=0.45)
        ax.axvline(meta["head_x"][k], color="red", lw=1.0)
        ax.set_xlim(0, W)
        ax.set_ylim(H, 0)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{meta['notehead_id'][k]} pitch {meta['pitch'][k]} "
                     f"t={meta['onset_s'][k]:.2f}s bucket {meta['bucket'][k]}", fontsize=7)
        bx.imshow(specs[k].astype(np.float32), origin="lower", aspect="auto", cmap="magma",
                  extent=(0, T, 0, F), interpolation="nearest")
        bx.axvline(T - 1, color="red", lw=0.6)
        bx.set_xticks([])
        bx.set_yticks([])
    caption = (f"{n} score-following samples ({split} split): staff image {H}x{W} with the "
               f"head's x (red) and the soft target over {ds.n_buckets} buckets (orange), "
               f"and the spectrogram excerpt {F}x{T} ending at the onset frame (right of the "
               f"red line).")
    return Figure("samples", caption, figure_png(fig))


@dataclass
class InspectResult:
    """What ``inspect`` wrote.

    Attributes
    ----------
    html : Path
        The report page.
    pictures : list of Path
        The PNGs, in report order.
    performance : str or None
        The performance shown.
    dataset : Path or None
        The dataset the sample strip came from.
    notes : list of str
        What could not be shown, and why.
    """

    html: Path
    pictures: list[Path]
    performance: str | None
    dataset: Path | None
    notes: list[str]


def inspect_piece(piece: Path, out: Path | None = None, *, performance: str | None = None,
                  dataset: Path | None = None, labels: bool = False,
                  n_samples: int = 8) -> InspectResult:
    """Draw a rendered (and, for the later pictures, aligned and packed) piece.

    Parameters
    ----------
    piece : Path
        A piece folder of a work folder.
    out : Path, optional
        Output folder; default ``piece / "inspect"``.
    performance : str, optional
        Performance id; default the first aligned performance.  Its onsets
        decide which heads count as aligned.
    dataset : Path, optional
        The packed dataset for the sample strip; default the one
        :func:`find_dataset` finds next to the work folder.
    labels : bool
        Write each head's onset times under its box.
    n_samples : int
        Sample pairs in the strip.

    Returns
    -------
    result : InspectResult
    """
    piece = Path(piece)
    meta = read_json(piece / "piece.json")
    if meta is None or meta.get("status") != "ok" or not (piece / "noteheads.csv").is_file():
        raise InputError(f"{piece}: not a rendered piece (no piece.json with status ok and "
                         "noteheads.csv); run `msmd-prep render` first")
    out = Path(out) if out is not None else piece / "inspect"
    notes: list[str] = []
    perf_dir = choose_performance(piece, performance)
    rows = read_alignment_csv(perf_dir / ALIGNMENT_NAME) if perf_dir is not None else None
    onsets = _onsets_by_head(rows) if rows is not None else None
    figures = page_figures(piece, onsets=onsets, labels=labels)
    if rows is None:
        notes.append("no aligned performance: heads are coloured by the score's own onsets; "
                     "run synth, spectrogram and align for the unrolled score and samples")
    else:
        image, layout = _unrolled(piece)
        figures += [unrolled_figure(image, layout, rows), mapping_figure(rows)]
        root = Path(dataset) if dataset is not None else find_dataset(piece)
        if root is None:
            notes.append("no packed dataset found next to the work folder (give --dataset): "
                         "no sample strip")
        else:
            if not (root / INDEX_NAME).is_file():
                raise InputError(f"{root}: no {INDEX_NAME}; not a packed dataset")
            strip = sample_strip(root, piece.name, perf_dir.name, n_samples=n_samples)
            if strip is None:
                notes.append(f"{root} holds no samples of {piece.name} / {perf_dir.name}: "
                             "no sample strip")
            else:
                figures.append(strip)
        dataset = root
    if perf_dir is not None and (read_json(perf_dir / "performance.json") or {}).get(
            "kind", "synthesized") != "synthesized":
        from .performed.listen import listening_outputs
        png, text = listening_outputs(perf_dir, out)
        if png is None:
            notes.append(text)
        else:
            figures.append(Figure("onsets", text, png))
    title = f"{piece.name}" + (f" — {perf_dir.name}" if perf_dir is not None else "")
    page = write_report(figures, out, title, notes=notes)
    return InspectResult(html=page, pictures=[out / f"{f.name}.png" for f in figures],
                         performance=perf_dir.name if perf_dir is not None else None,
                         dataset=dataset if rows is not None else None, notes=notes)
