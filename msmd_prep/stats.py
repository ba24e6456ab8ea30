"""What a packed dataset holds: counts, and histograms for a look.

``msmd-prep stats DATASET`` reads ``index.json`` and the metadata of every
shard (snippet or score-following dataset alike) and reports samples per
split, piece, performance, tempo factor and SoundFont.  It draws three
histograms into one PNG: samples per piece, note onsets per second (the
samples whose onset falls in each one-second window of each performance),
and the pitches of all samples.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from .data import INDEX_NAME, _read_index
from .errors import InputError

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def pitch_name(pitch: int) -> str:
    """Scientific pitch name of a MIDI pitch (60 -> ``C4``)."""
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


@dataclass
class DatasetStats:
    """Counts of a packed dataset.

    Attributes
    ----------
    root : Path
    task : str
        ``snippets`` or ``score-following``.
    splits : dict of str to (int, int)
        Split -> (pieces, samples).
    pieces : dict of str to (str, int)
        Piece -> (split, samples).
    performances, tempos, soundfonts : dict of str to int
        Samples per performance id, tempo factor (formatted ``1.00``) and SoundFont.
    samples_per_piece : np.ndarray [shape=(n_pieces,)]
    onsets_per_second : np.ndarray
        Samples in every one-second window ``[k, k+1)`` of every packed
        performance, from 0 to its last onset.
    pitches : np.ndarray [shape=(n_samples,)]
        MIDI pitch of every sample.
    failed_pieces, flagged_pieces : dict of str to str
        As ``index.json``.
    """

    root: Path
    task: str
    splits: dict[str, tuple[int, int]] = field(default_factory=dict)
    pieces: dict[str, tuple[str, int]] = field(default_factory=dict)
    performances: dict[str, int] = field(default_factory=dict)
    tempos: dict[str, int] = field(default_factory=dict)
    soundfonts: dict[str, int] = field(default_factory=dict)
    samples_per_piece: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    onsets_per_second: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    pitches: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    failed_pieces: dict[str, str] = field(default_factory=dict)
    flagged_pieces: dict[str, str] = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        """All samples."""
        return int(sum(n for _, n in self.splits.values()))


def _shard_meta(root: Path, index: dict) -> dict[str, np.ndarray]:
    """The metadata columns stats needs, of every shard of every split."""
    names = ("piece", "performance", "soundfont", "tempo_factor", "onset_s", "pitch")
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for entry in index["splits"].values():
        if entry["count"] and not entry["shards"]:
            for n, column in _piece_meta(root, index, entry["pieces"]).items():
                parts[n].append(column)
        for shard in entry["shards"]:
            path = root / shard["path"]
            try:
                with h5py.File(path, "r") as f:
                    meta = f["meta"][:]
            except (OSError, KeyError) as e:
                raise InputError(f"{path}: unreadable shard ({e})") from e
            for n in names:
                parts[n].append(meta[n])
    return {n: (np.concatenate(p) if p else np.zeros(0)) for n, p in parts.items()}


def _piece_meta(root: Path, index: dict, pieces: list[str]) -> dict[str, np.ndarray]:
    """The same columns from the piece files of ``pieces`` (a dataset without shards)."""
    from .packing.pieces import fixed_bytes, read_piece_file

    cols: dict[str, list] = {n: [] for n in ("piece", "performance", "soundfont",
                                             "tempo_factor", "onset_s", "pitch")}
    for name in pieces:
        stored = read_piece_file(root / index["pieces"][name]["file"])
        for perf in stored.performances:
            n = len(perf.onsets)
            cols["piece"].append(np.full(n, fixed_bytes(name)))
            cols["performance"].append(np.full(n, fixed_bytes(perf.performance)))
            cols["soundfont"].append(np.full(n, fixed_bytes(perf.soundfont["name"])))
            cols["tempo_factor"].append(np.full(n, perf.tempo_factor, np.float32))
            cols["onset_s"].append(perf.onsets["onset_s"])
            cols["pitch"].append(perf.onsets["pitch"])
    return {n: np.concatenate(v) if v else np.zeros(0) for n, v in cols.items()}


def dataset_stats(root: Path) -> DatasetStats:
    """Count the samples of the dataset at ``root`` (see :class:`DatasetStats`)."""
    root = Path(root)
    index = _read_index(root)
    stats = DatasetStats(root=root, task=index.get("task", "snippets"),
                         failed_pieces=dict(index.get("failed_pieces", {})),
                         flagged_pieces=dict(index.get("flagged_pieces", {})))
    for split, entry in index["splits"].items():
        stats.splits[split] = (len(entry["pieces"]), int(entry["count"]))
    for name in sorted(index["pieces"]):
        entry = index["pieces"][name]
        stats.pieces[name] = (entry["split"], int(entry["samples"]))
    stats.samples_per_piece = np.array([n for _, n in stats.pieces.values()], dtype=np.int64)
    meta = _shard_meta(root, index)
    if len(meta["piece"]) != stats.n_samples:
        raise InputError(f"{root / INDEX_NAME}: {stats.n_samples} samples listed, "
                         f"{len(meta['piece'])} in the shards")
    decode = lambda col: [v.decode("utf-8") for v in col.tolist()]  # noqa: E731
    stats.performances = dict(sorted(Counter(decode(meta["performance"])).items()))
    stats.soundfonts = dict(sorted(Counter(decode(meta["soundfont"])).items()))
    stats.tempos = dict(sorted(Counter(f"{t:.2f}" for t in meta["tempo_factor"].tolist())
                               .items()))
    stats.pitches = meta["pitch"].astype(np.int64)
    keys = np.char.add(np.char.add(meta["piece"], b"\0"), meta["performance"])
    windows = []
    for key in np.unique(keys):
        onsets = meta["onset_s"][keys == key]
        windows.append(np.bincount(np.floor(onsets).astype(np.int64)))
    stats.onsets_per_second = (np.concatenate(windows) if windows
                               else np.zeros(0, np.int64))
    return stats


def format_stats(stats: DatasetStats) -> str:
    """The counts as text, one table per grouping."""
    lines = [f"dataset {stats.root} ({stats.task}): {stats.n_samples} samples, "
             f"{len(stats.pieces)} piece{'s' * (len(stats.pieces) != 1)}"]

    def table(title: str, rows: list[tuple[str, str]]) -> None:
        lines.append("")
        lines.append(title)
        width = max((len(k) for k, _ in rows), default=0)
        lines.extend(f"  {k:<{width}}  {v}" for k, v in rows)

    table("split: pieces, samples", [(s, f"{p} pieces, {n} samples")
                                     for s, (p, n) in stats.splits.items()])
    table("piece (split): samples", [(p, f"({s}) {n}") for p, (s, n) in stats.pieces.items()])
    table("performance: samples", [(k, str(v)) for k, v in stats.performances.items()])
    table("tempo factor: samples", [(k, str(v)) for k, v in stats.tempos.items()])
    table("SoundFont: samples", [(k, str(v)) for k, v in stats.soundfonts.items()])
    if len(stats.pitches):
        lo, hi = int(stats.pitches.min()), int(stats.pitches.max())
        lines += ["", f"pitch range {pitch_name(lo)} ({lo}) .. {pitch_name(hi)} ({hi})"]
    if len(stats.onsets_per_second):
        rate = stats.onsets_per_second
        lines.append(f"onsets per second: median {np.median(rate):g}, max {rate.max()}")
    if stats.failed_pieces:
        table("failed pieces (left out)", list(stats.failed_pieces.items()))
    if stats.flagged_pieces:
        table("flagged pieces (failed self-checks)", list(stats.flagged_pieces.items()))
    return "\n".join(lines)


def histogram_png(stats: DatasetStats) -> bytes:
    """Samples per piece, onsets per second and pitches as three histograms, PNG bytes."""
    from matplotlib.figure import Figure

    from .inspect import figure_png

    fig = Figure(figsize=(15, 4), layout="constrained")
    a, b, c = fig.subplots(1, 3)
    per_piece = stats.samples_per_piece
    a.hist(per_piece, bins=min(30, max(1, len(per_piece))), color="tab:blue")
    a.set_xlabel("samples per piece")
    a.set_ylabel("pieces")
    a.set_title(f"{len(per_piece)} piece{'s' * (len(per_piece) != 1)}, "
                f"{stats.n_samples} samples")
    a.yaxis.get_major_locator().set_params(integer=True)
    rate = stats.onsets_per_second
    if len(rate):
        b.hist(rate, bins=np.arange(rate.max() + 2) - 0.5, color="tab:green")
    b.set_xlabel("note onsets in a 1-s window")
    b.set_ylabel("windows")
    b.set_title("onsets per second")
    pitches = stats.pitches
    if len(pitches):
        c.hist(pitches, bins=np.arange(pitches.min(), pitches.max() + 2) - 0.5,
               color="tab:purple")
        ticks = [p for p in range(int(pitches.min()), int(pitches.max()) + 1) if p % 12 == 0]
        c.set_xticks(ticks, [pitch_name(p) for p in ticks])
        c.set_title(f"pitch range {pitch_name(int(pitches.min()))} .. "
                    f"{pitch_name(int(pitches.max()))}")
    c.set_xlabel("pitch (MIDI; ticks at C)")
    c.set_ylabel("samples")
    return figure_png(fig)


def write_stats(root: Path, out: Path | None = None) -> tuple[DatasetStats, Path, Path]:
    """Count the dataset; write ``stats.txt`` and ``histograms.png`` into ``out``.

    Parameters
    ----------
    root : Path
        The dataset folder.
    out : Path, optional
        Output folder; default ``root / "stats"``.

    Returns
    -------
    stats, text_path, png_path
    """
    stats = dataset_stats(root)
    out = Path(out) if out is not None else Path(root) / "stats"
    out.mkdir(parents=True, exist_ok=True)
    text = out / "stats.txt"
    text.write_text(format_stats(stats) + "\n", encoding="utf-8")
    png = out / "histograms.png"
    png.write_bytes(histogram_png(stats))
    return stats, text, png
