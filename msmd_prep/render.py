"""The render stage: LilyPond scores to page images with every note head.

For each score, :func:`render_score` writes one piece folder (see
``docs/FORMAT.md``): page PNGs, ``noteheads.csv``, ``systems.csv``, the
performance (``performance.csv`` and ``.mid``), ``score.pdf`` and
``piece.json``.  The alignment comes from LilyPond itself: every head's id,
pitch and musical time are exported by ``msmd_prep/resources/lilypond/msmd.ily`` and its box by a
PDF link on the head, so nothing is guessed.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from ._version import __version__
from .confine import check_references
from .errors import ConfigError, InputError, MsmdPrepError, OutputError, ToolError
from . import fixes as _fixes
from . import formats as _formats
from .formats.abc import abc_tune_ids
from .checks import (Check, check_columns, check_ink, check_moments, check_performance,
                     summarize)
from .export import (Export, build_performance, merged_head_aliases, parse_export,
                     printed_plays)
from .lilypond import CRASH_CODES, EXPORT_ILY, lilypond_version, run_lilypond
from .midi_check import CHECK_ILY, EXPORT_CHECK_ILY, midi_self_check, remove_check_outputs
from .normalize import INCLUDE_RE, normalize_source
from .parts import closure_text, is_part
from .pages import Box, boxes_to_pixels, load_gray, page_images
from .parallel import map_pieces
from .stage_versions import stage_version
from .score import (NoteHead, System, write_heads_csv, write_performance_csv,
                    write_performance_midi, write_systems_csv)
from .workdir import (NO_SPACE, describe_os_error, make_temp_dir, no_space_left,
                      stale_temp_dirs)

SCORE_SUFFIXES = (".ly", *_formats.FORMATS)


@dataclass(frozen=True)
class RenderConfig:
    """Options of the render stage.

    Attributes
    ----------
    dpi : float
        Resolution of the page images, pixels per inch (MSMD: about 100).
    timeout_s : float
        Wall-clock limit of one LilyPond run, seconds.
    default_qpm : float
        Quarter notes per minute for scores that name no tempo (LilyPond's
        own MIDI default is 60).
    gap_s : float
        Silence between two movements (``\\score`` blocks) of one file, seconds.
    sandbox : bool
        Run LilyPond under bubblewrap; turn off only for trusted scores.
    upgrade : bool
        Run ``convert-ly`` on the normalized copy.
    fixes : bool
        Apply the text fixes of :mod:`msmd_prep.fixes` to the normalized copy
        after ``convert-ly`` (old syntax that ``convert-ly`` misses).
    midi_check : bool
        Compare the performance with LilyPond's own MIDI of the source
        (performed in the export's LilyPond run, or in a MIDI-only run of its
        own where that run fails; see :mod:`msmd_prep.midi_check`).
    """

    dpi: float = 150.0
    timeout_s: float = 300.0
    default_qpm: float = 60.0
    gap_s: float = 1.0
    sandbox: bool = True
    upgrade: bool = True
    fixes: bool = True
    midi_check: bool = True

    def __post_init__(self) -> None:
        if not 20 <= self.dpi <= 1200:
            raise ConfigError(f"dpi must be in 20..1200, got {self.dpi!r}")
        if not self.timeout_s > 0:
            raise ConfigError(f"timeout_s must be > 0, got {self.timeout_s!r}")
        if not 1 <= self.default_qpm <= 1000:
            raise ConfigError(f"default_qpm must be in 1..1000, got {self.default_qpm!r}")
        if not self.gap_s >= 0:
            raise ConfigError(f"gap_s must be >= 0, got {self.gap_s!r}")


@dataclass
class RenderResult:
    """What became of one score: its piece folder, or the error."""

    source: Path
    piece_dir: Path
    error: str = ""
    skipped: bool = False
    stats: dict = field(default_factory=dict)


def find_scores(paths: list[Path], *, roots: dict[Path, Path] | None = None) -> list[Path]:
    """The scores named by ``paths``: files as given, folders searched.

    ``roots``, when given, gets every score's input root: the folder of
    ``paths`` it was found under, or its own folder for a file named as such
    (its piece id is its path under that root, see :func:`piece_ids`).

    In a folder, every ``.ly`` file is a score except those that another
    ``.ly`` file of the folder includes, the other parts of multi-file pieces
    (files that, with what they include, only define music or only write
    MIDI: :func:`msmd_prep.parts.is_part`) and the US letter copies of A4
    scores (see :func:`drop_paper_variants`).  MIDI,
    MusicXML and ABC files are scores too, unless a ``.ly`` file of the same
    name lies beside them (see :func:`msmd_prep.formats.drop_lilypond_outputs`).
    Files in ``<stem>.performances/`` folders are performances, not scores.
    """
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            # A <stem>.performances/ folder holds performances of a score, not scores.
            files = sorted(p for p in path.rglob("*") if p.suffix in SCORE_SUFFIXES and p.is_file()
                           and not any(d.endswith(".performances")
                                       for d in p.relative_to(path).parts[:-1]))
            texts = {f.resolve(): f.read_bytes().decode("utf-8", "replace") for f in files}
            included = set()
            for f in files:
                included.update((f.parent / name).resolve()
                                for name in INCLUDE_RE.findall(texts[f.resolve()]))

            def read(p: Path) -> str:
                return texts.get(p) or p.read_bytes().decode("utf-8", "replace")

            mains = [f for f in files if f.resolve() not in included
                     and not (f.suffix == ".ly" and is_part(closure_text(f, read, root=path)))]
            here = drop_paper_variants(_formats.drop_lilypond_outputs(mains))
        else:
            here = [path]
        found += here
        if roots is not None:
            roots.update((f, path if path.is_dir() else path.parent) for f in here)
    return found


_LETTER_RE = re.compile(r"(?<![A-Za-z0-9])(?:letter|let)(?![A-Za-z0-9])", re.IGNORECASE)


def drop_paper_variants(scores: list[Path]) -> list[Path]:
    """``scores`` without the US letter copies of A4 scores.

    Mutopia's multi-file pieces often ship one main file per paper size
    (``chp-10-05-a4.ly`` and ``chp-10-05-let.ly``, ``letter-X.ly`` and
    ``a4-X.ly``) around the same music; a dataset wants the piece once.  A
    file is dropped when its name with ``letter``/``let`` replaced by ``a4``
    names another of ``scores``.
    """
    present = {p.resolve() for p in scores}
    return [p for p in scores
            if not (_LETTER_RE.search(p.name)
                    and (p.parent / _LETTER_RE.sub("a4", p.name)).resolve() in present)]


#: Longest piece id, bytes: it goes into the packed metadata's fixed-length strings.
MAX_ID_BYTES = 64


def piece_id(score: Path, root: Path) -> str:
    """The id of ``score`` found under ``root``: its path there, without suffix.

    Folders are joined by ``__``, characters other than ``A-Za-z0-9._-``
    become ``_``, and Mutopia's repetitions are dropped: a folder named like
    the file or like the file plus ``-lys``, and a folder followed by its own
    ``-lys`` folder (``bach/minuet/minuet.ly`` under ``corpus/`` is
    ``bach__minuet``).  Nothing else enters, so an id never changes when other
    scores come or go.  See :func:`short_id` for long ones.
    """
    try:
        parts = list(score.resolve().relative_to(root.resolve()).with_suffix("").parts)
    except ValueError:
        parts = [score.stem]
    stem, folders = parts[-1], parts[:-1]
    kept = [p for i, p in enumerate(folders)
            if p not in (stem, f"{stem}-lys")
            and (folders[i + 1] if i + 1 < len(folders) else stem) != f"{p}-lys"]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "__".join([*kept, stem]))


def short_id(name: str) -> str:
    """``name``, or when longer than :data:`MAX_ID_BYTES` its start and a hash of all of it."""
    if len(name.encode()) <= MAX_ID_BYTES:
        return name
    return f"{name[:MAX_ID_BYTES - 9]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def piece_ids(scores: list[Path], *, roots: dict[Path, Path] | None = None) -> dict[Path, str]:
    """A folder name for every score: :func:`piece_id` under its root.

    ``roots`` maps scores to the input root they were found under (see
    :func:`find_scores`); a score without one is under its own folder.  Two
    scores with one id (the same path under two roots) both get the first 8
    hex digits of their absolute path's SHA-256 appended.
    """
    ids = {s: piece_id(s, (roots or {}).get(s, s.parent)) for s in scores}
    count: dict[str, int] = {}
    for name in ids.values():
        count[name] = count.get(name, 0) + 1
    return {s: name if count[name] == 1 else
            f"{name}-{hashlib.sha256(str(s.resolve()).encode()).hexdigest()[:8]}"
            for s, name in ids.items()}


def sha256_files(paths: list[Path]) -> str:
    """SHA-256 over the contents of ``paths`` in the given order."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()


def config_hash(cfg: RenderConfig) -> str:
    """Hash of the options that change the output, with the exporter's code and the
    render stage's version (:mod:`msmd_prep.stage_versions`)."""
    h = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode())
    h.update(EXPORT_ILY.read_bytes())
    h.update(CHECK_ILY.read_bytes())
    h.update(EXPORT_CHECK_ILY.read_bytes())
    h.update(EXPORT_ILY.with_name("msmd-compat.ily").read_bytes())
    h.update(Path(_fixes.__file__).read_bytes())
    h.update(f"render stage {stage_version('render')}".encode())
    return h.hexdigest()[:16]


def build_tables(ex: Export, links: list[Box], *, default_qpm: float, gap_s: float):
    """Join the export with the page boxes into heads, systems and performance.

    Returns
    -------
    heads : list of NoteHead
        Printed heads with a box on a page, in page and reading order.
    systems : list of System
        Staff systems in reading order.
    perf : PerformanceResult
        The performance (see :func:`msmd_prep.export.build_performance`).
    unplaced : list of str
        Ids of drawn heads that lie in no staff system and are never played
        (a score inside a ``\\markup``); not in ``heads``.
    """
    staff_boxes: dict[tuple[int, str], list[Box]] = {}
    head_boxes: dict[int, list[Box]] = {}
    for link in links:
        kind, _, rest = link.link.partition(":")
        if kind == "l":
            _, _, sys_key = rest.partition(":")
            staff_boxes.setdefault((link.page, sys_key), []).append(link)
        elif kind == "h":
            head_boxes.setdefault(int(rest), []).append(link)
    perf = build_performance(ex, default_qpm=default_qpm, gap_s=gap_s,
                             aliases=merged_head_aliases(ex, set(head_boxes)))
    order = sorted(staff_boxes, key=lambda k: (k[0], min(b.y0 for b in staff_boxes[k]),
                                               min(b.x0 for b in staff_boxes[k])))
    systems, index_of = [], {}
    for i, key in enumerate(order):
        boxes = staff_boxes[key]
        systems.append(System(i, key[0], min(b.x0 for b in boxes), min(b.y0 for b in boxes),
                              max(b.x1 for b in boxes), max(b.y1 for b in boxes), len(boxes)))
        index_of[key] = i
    heads, unplaced = [], []
    played = set(perf.onsets) | perf.tie_continuations | set(perf.held)
    for hid, boxes in head_boxes.items():
        rec = ex.heads.get(hid)
        if rec is None:
            raise InputError(f"PDF names note head {hid}, which LilyPond did not export")
        if len(boxes) != 1:
            raise InputError(f"note head {hid} was drawn {len(boxes)} times")
        b = boxes[0]
        system = index_of.get((b.page, ex.head_systems.get(hid, "")))
        if system is None and hid not in played:
            # A head of a score in a \markup (a chord drawn in an annotation:
            # Chopin's Ballade Op. 23): no staff system of the music, never played.
            unplaced.append(f"h{hid}")
            continue
        if system is None:
            raise InputError(f"note head {hid} on page {b.page} lies in no staff system")
        heads.append(NoteHead(
            f"h{hid}", b.page, b.x0, b.y0, b.x1, b.y1, system, rec.staff, rec.voice, rec.pitch,
            rec.grace != 0, hid in perf.tie_continuations,
            tuple(perf.onsets.get(hid, ())), rec.moment + rec.grace, rec.source))
    heads.sort(key=lambda h: (h.system, h.x0, h.y0))
    return heads, systems, perf, unplaced


def _book_stems(build: Path, stem: str) -> list[str]:
    """Output names of the books of one run in order: ``stem``, ``stem-1`` ..."""
    def key(p: Path) -> int:
        m = re.fullmatch(re.escape(stem) + r"(?:-(\d+))?", p.stem)
        return int(m.group(1) or 0) if m else -1
    return [p.stem for p in sorted(build.glob("*.pdf"), key=key) if key(p) >= 0]


def render_score(source: Path, piece_dir: Path, cfg: RenderConfig, *,
                 tune: str = "") -> RenderResult:
    """Render one score into ``piece_dir``.

    MIDI, MusicXML and ABC inputs are converted to LilyPond first (see
    :mod:`msmd_prep.formats`); ``tune`` picks one tune of an ABC book.

    The folder is built under a temporary name beside ``piece_dir`` and
    renamed when complete, so a killed run never leaves a half piece.  A
    piece whose inputs and options are unchanged is skipped.

    Raises
    ------
    MsmdPrepError
        The score cannot be rendered; the message names the cause.
    """
    source = Path(source)
    if not source.is_file():
        raise InputError(f"{source}: no such file")
    t0 = time.perf_counter()
    chash = config_hash(cfg)
    done = _finished_piece(piece_dir, chash)
    if done is not None and done.get("inputs_sha256") == _inputs_hash(done, source):
        return RenderResult(source, piece_dir, skipped=True, stats=done.get("counts", {}))
    piece_dir.parent.mkdir(parents=True, exist_ok=True)
    # Builds of this piece (never of another: see stale_temp_dirs) that a
    # killed run left behind; only one run renders a piece.
    prefix = f".{piece_dir.name}.build-"
    for stale in stale_temp_dirs(piece_dir.parent, prefix):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = make_temp_dir(piece_dir.parent, prefix)
    try:
        info = _render_into(source, tmp, cfg, tune=tune)
        info["config_hash"] = chash
        info["render_seconds"] = round(time.perf_counter() - t0, 3)
        _write_json(tmp / "piece.json", info)
        _replace_dir(tmp, piece_dir)
    except (OSError, MsmdPrepError) as e:
        # LilyPond and Python fail on a full disk in many words; say it plainly.
        if no_space_left(piece_dir.parent, e):
            raise OutputError(f"cannot write {piece_dir}: {NO_SPACE}") from e
        if isinstance(e, MsmdPrepError):
            e.build_dir = _keep_build(tmp / "build", piece_dir)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return RenderResult(source, piece_dir, stats=info["counts"])


def _keep_build(build: Path, piece_dir: Path) -> Path | None:
    """Move a failed piece's build folder (sources, converted score, logs) to ``piece_dir/build``."""
    if not build.is_dir():
        return None
    target = piece_dir / "build"
    try:
        piece_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(build, target)
    except OSError:
        return None
    return target


def _render_into(source: Path, out: Path, cfg: RenderConfig, *, tune: str = "") -> dict:
    build = out / "build"
    conv = None
    fmt = _formats.input_format(source)
    if fmt in ("musicxml", "abc"):
        check_references(source, _formats.read_musicxml_text(source) if fmt == "musicxml"
                         else source.read_bytes().decode("utf-8", "replace"), fmt)
    if fmt is not None:
        conv = _formats.convert_source(source, build / "converted", tune=tune,
                                       default_qpm=cfg.default_qpm)
    # The music21 writer's text is current LilyPond, and its columns pair heads with notes.
    ours = conv is not None and conv.written is not None
    norm = normalize_source(conv.ly if conv else source, build, upgrade=cfg.upgrade and not ours,
                            fixes=_fixes.apply_fixes if cfg.fixes and not ours else None,
                            pre_fixes=_fixes.apply_pre_fixes if cfg.fixes and not ours else None)
    def args(include: Path) -> list[str]:
        return [f"-dinclude-settings={include}", "-dbackend=cairo", "-dno-point-and-click",
                "--pdf", "--png", f"-dresolution={cfg.dpi:g}", "--loglevel=WARNING",
                norm.main.name]
    # Converted inputs play their own performance and have the ``input`` check.
    midi_check = cfg.midi_check and conv is None
    # The check's LilyPond performance runs in the export's run, which writes
    # the same files as two runs would.  Where that run fails, the export runs
    # alone and the check in a run of its own, as two runs did: a failure of
    # the check's part fails the check, not the piece.
    check_in_export = False
    if midi_check:
        try:
            run_lilypond(args(EXPORT_CHECK_ILY), cwd=build, timeout_s=cfg.timeout_s,
                         sandbox=cfg.sandbox)
            check_in_export = True
        except ToolError:
            remove_check_outputs(build)
    crash_fallback = []
    try:
        if not check_in_export:
            run_lilypond(args(EXPORT_ILY), cwd=build, timeout_s=cfg.timeout_s,
                         sandbox=cfg.sandbox)
    except ToolError as e:
        if ours or not (cfg.fixes and e.returncode in CRASH_CODES):
            raise
        # A score LilyPond keeps crashing on, without the constructs known to crash it.
        norm = normalize_source(conv.ly if conv else source, build, upgrade=cfg.upgrade,
                                fixes=lambda t: _fixes.apply_fixes(
                                    _fixes.apply_fixes(t), _fixes.CRASH_FIXES),
                                pre_fixes=_fixes.apply_pre_fixes)
        run_lilypond(args(EXPORT_ILY), cwd=build, timeout_s=cfg.timeout_s, sandbox=cfg.sandbox)
        crash_fallback = [f.name for f in _fixes.CRASH_FIXES]
    # Fontconfig's cache of the sandboxed run: not an output (and made private by its tool).
    shutil.rmtree(build / ".cache", ignore_errors=True)
    export_file = build / "msmd-export.tsv"
    if not export_file.is_file():
        raise InputError(f"{source}: LilyPond wrote no export (is it a score?)")
    ex = parse_export(export_file.read_text())
    stems = _book_stems(build, norm.main.stem)
    pngs = page_images(build, stems)
    if not ex.heads or not ex.boxes:
        raise InputError(f"{source}: the score has no printed notes")
    if len(pngs) < max(b[0] for b in ex.boxes):
        raise InputError(f"{source}: LilyPond wrote {len(pngs)} page images for "
                         f"{max(b[0] for b in ex.boxes)} pages")
    heads, systems, perf, unplaced = build_tables(ex, boxes_to_pixels(ex.boxes, cfg.dpi),
                                        default_qpm=cfg.default_qpm, gap_s=cfg.gap_s)
    if not heads:
        raise InputError(f"{source}: no note head was drawn")
    report = {}
    if conv is not None:
        heads, performance, report = conv.finish(heads, perf.performance)
        perf = replace(perf, performance=performance,
                       tempo_source=conv.tempo_source or perf.tempo_source)
    images = {i: load_gray(png) for i, png in enumerate(pngs, 1)}
    midi = None
    if midi_check:
        t_check = time.perf_counter()
        midi = midi_self_check(norm.main, build, perf.movements, perf.performance.events,
                               {f"h{i}": h.source for i, h in ex.heads.items()},
                               timeout_s=cfg.timeout_s,
                               sandbox=cfg.sandbox, in_export_run=check_in_export)
        report["midi_check_seconds"] = round(time.perf_counter() - t_check, 3)
        report["midi_check_run"] = "export" if check_in_export else "own"
    plays = printed_plays(ex, merged_head_aliases(ex, {int(h.id[1:]) for h in heads}))
    report |= _self_checks(heads, images, perf.performance, report, midi,
                           {f"h{i}": ms for i, ms in plays.items()},
                           # A converted input plays its own performance.
                           {f"h{i}": ts for i, ts in perf.held.items()} if conv is None else {})
    (out / "pages").mkdir()
    for i, image in images.items():
        ok, png = cv2.imencode(".png", image)
        if not ok:
            raise MsmdPrepError(f"cannot encode the image of page {i}")
        # Written by Python, so that a full disk says so (cv2.imwrite only returns False).
        (out / "pages" / f"page-{i:03d}.png").write_bytes(png.tobytes())
    write_heads_csv(heads, out / "noteheads.csv")
    write_systems_csv(systems, out / "systems.csv")
    write_performance_csv(perf.performance, out / "performance.csv")
    write_performance_midi(perf.performance, out / "performance.mid")
    for i, stem in enumerate(stems):
        shutil.copyfile(build / f"{stem}.pdf", out / ("score.pdf" if i == 0 else f"score-{i}.pdf"))
    inputs = [source.resolve()] if conv else list(norm.files)
    return report | {
        "status": "ok",
        "source": str(source.resolve()),
        "inputs": [str(p) for p in inputs],
        "inputs_sha256": sha256_files(inputs),
        "declared_version": norm.version,
        "lilypond_version": lilypond_version(),
        "msmd_prep_version": __version__,
        "stage_version": stage_version("render"),
        "config": asdict(cfg),
        "tempo_source": perf.tempo_source,
        "crash_fallback": crash_fallback,
        "repeat_mode": perf.repeat_mode,
        "undrawn_heads": [f"h{i}" for i in sorted(set(ex.heads) - {int(h.id[1:]) for h in heads})],
        "unplaced_heads": sorted(unplaced, key=lambda i: int(i[1:])),
        "counts": {
            "pages": len(pngs),
            "systems": len(systems),
            "noteheads": len(heads),
            "noteheads_not_drawn": len(set(ex.heads) - {int(h.id[1:]) for h in heads}),
            "noteheads_merged": perf.merged_heads,
            "tie_continuations": sum(h.tied for h in heads),
            "events": len(perf.performance.events),
            "unprinted_notes": perf.unprinted_notes,
            "scores": sum(ex.scores.values()),
            "duration_s": round(perf.performance.duration_s, 3),
        },
    }


def _self_checks(heads: list[NoteHead], images: dict[int, np.ndarray], performance,
                 input_report: dict, midi: tuple[Check, dict] | None = None,
                 plays: dict[str, tuple[Fraction, ...]] | None = None,
                 held: dict[str, list[float]] | None = None) -> dict:
    """``aligned_well`` and ``checks`` for ``piece.json`` (see :mod:`msmd_prep.checks`).

    A converted input's own comparison with the score (``input_report``, from
    :mod:`msmd_prep.formats`) is one more check, ``input``; its numbers stay
    in ``input_checks``.  LilyPond's own MIDI (``midi``, from
    :func:`msmd_prep.midi_check.midi_self_check`) is the check ``midi``; its
    numbers stay in ``midi_check``.
    """
    checks = [check_ink(heads, images), check_columns(heads, plays),
              check_performance(heads, performance)]
    if input_report.get("input_format") != "midi":
        checks.append(check_moments(heads, plays, held))
    extra = {}
    if "checks" in input_report:
        numbers = input_report["checks"]
        checks.append(Check("input", bool(input_report["aligned_well"]),
                            int(numbers.get("input_notes", 0)),
                            0 if input_report["aligned_well"] else 1,
                            json.dumps(numbers, sort_keys=True)))
        extra["input_checks"] = numbers
    if midi is not None:
        checks.append(midi[0])
        extra["midi_check"] = midi[1]
    return summarize(checks) | extra


def _inputs_hash(info: dict, source: Path) -> str | None:
    """SHA-256 of the inputs a finished piece recorded, read afresh."""
    paths = [Path(p) for p in info.get("inputs", [])]
    if not paths or Path(info.get("source", "")) != source.resolve():
        return None
    try:
        return sha256_files(paths)
    except OSError:
        return None


def _finished_piece(piece_dir: Path, chash: str) -> dict | None:
    try:
        info = json.loads((piece_dir / "piece.json").read_text())
    except (OSError, ValueError):
        return None
    ok = info.get("status") == "ok" and info.get("config_hash") == chash
    return info if ok else None


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


#: What the later stages write into a piece folder; a new render keeps it.
LATER_OUTPUTS = ("performances", "unrolled.png", "unrolled.json")


def _replace_dir(new: Path, target: Path) -> None:
    """Put ``new`` at ``target``, keeping the later stages' outputs of the old folder.

    They stay only as candidates: every later stage (and pack) checks its
    recorded inputs against the new render and redoes what no longer matches,
    so a render that made the same piece costs no synthesis or alignment.
    """
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.is_dir() and not (target / "piece.json").is_symlink():
        for name in LATER_OUTPUTS:
            if (target / name).exists() and not (new / name).exists():
                os.replace(target / name, new / name)
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


@dataclass(frozen=True)
class RenderJob:
    """One piece to render: its source, its folder, and the tune of an ABC book."""

    source: Path
    piece_dir: Path
    tune: str = ""


def render_jobs(scores: list[Path], out: Path, *,
                roots: dict[Path, Path] | None = None) -> list[RenderJob]:
    """The pieces of ``scores`` with their folders in ``out``: one per score,
    one per tune of an ABC book (an unreadable book is one piece, which fails).
    ``roots``: the input root of each score (:func:`piece_ids`)."""
    ids = piece_ids(scores, roots=roots)
    jobs = []
    for score in scores:
        try:
            tunes = abc_tune_ids(score) if score.suffix == ".abc" else [""]
        except (MsmdPrepError, OSError):
            tunes = [""]
        jobs += [RenderJob(score, out / short_id(f"{ids[score]}__{tune}" if tune else ids[score]),
                           tune) for tune in tunes]
    return jobs


def render_job(job: RenderJob, cfg: RenderConfig) -> RenderResult:
    """Render one job; a bad score gives a result with its error, never raises.

    A failed score's folder gets a ``piece.json`` whose status is ``failed``
    and whose ``error`` names the cause.
    """
    try:
        return render_score(job.source, job.piece_dir, cfg, tune=job.tune)
    except MsmdPrepError as e:
        result = RenderResult(job.source, job.piece_dir, error=_with_build(str(e), e))
    except OSError as e:
        result = RenderResult(job.source, job.piece_dir, error=describe_os_error(e))
    _record_failure(job.piece_dir, job.source, result.error)
    return result


def render_many(scores: list[Path], out: Path, cfg: RenderConfig, *, progress: bool = False,
                jobs: int = 1, scheduler: str | None = None,
                roots: dict[Path, Path] | None = None) -> list[RenderResult]:
    """Render ``scores`` into ``out``; one failing score never stops the others.

    ``jobs`` and ``scheduler`` spread the pieces as
    :func:`msmd_prep.parallel.map_pieces` does; results keep the order of
    :func:`render_jobs`.
    """
    return map_pieces(partial(render_job, cfg=cfg), render_jobs(scores, out, roots=roots),
                      jobs=jobs,
                      scheduler=scheduler, desc="render", progress=progress)


def _with_build(error: str, e: MsmdPrepError) -> str:
    """``error`` with the kept build folder named at the end of its first line."""
    build = getattr(e, "build_dir", None)
    if build is None:
        return error
    first, sep, rest = error.partition("\n")
    return f"{first} (build files kept in {build}){sep}{rest}"


def _record_failure(piece_dir: Path, score: Path, error: str) -> None:
    """Mark ``piece_dir`` as failed, where the folder can be written at all."""
    try:
        piece_dir.mkdir(parents=True, exist_ok=True)
        _write_json(piece_dir / "piece.json", {
            "status": "failed", "stage": "render", "source": str(score.resolve()),
            "error": error, "msmd_prep_version": __version__})
    except OSError:
        pass
