"""The perform stage: real performances of a rendered piece, aligned to it note head by note head.

For every :class:`~msmd_prep.performed.manifest.PerformanceSource` of a piece
it writes performance folders that the later stages (spectrogram, align,
pack, inspect, stats) read like synthesized ones:

* a **MIDI performance** gives one folder per SoundFont,
  ``performances/<id>_<soundfont>/``: the human notes played by FluidSynth
  (the human timing and dynamics, another timbre) and every aligned head's
  onset in that audio;
* a **recording** gives ``performances/<id>/``: the recording itself at
  22.05 kHz mono and every aligned head's onset in it.

Each folder holds ``audio.flac``, ``onsets.csv``, ``warping.csv`` (the DTW
path, score seconds against performance seconds, in the chosen unfolding) and
``performance.json`` (``kind``, source and its sha256, method, repeat choice,
cost, confidence, the heads left out, flags).  A performance whose
confidence is below ``min_confidence`` (the wrong piece) or whose recording
is mostly silent is ``flagged``: its folder is written for inspection, and
pack leaves it out.
"""
from __future__ import annotations

import csv
import importlib.metadata
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import scipy
import soundfile

from .._version import __version__
from ..errors import ConfigError, InputError, MsmdPrepError
from ..score import NoteEvent, Performance, read_performance_csv, sort_events
from ..stage_versions import stage_version
from ..synth import AUDIO_NAME, ONSETS_NAME, PERFORMANCE_JSON, Synthesizer, write_onsets_csv
from ..workdir import (PERFORMANCES_DIR, read_json, sha256_file, sha256_json, write_atomic,
                       write_json_atomic)
from .audio_align import align_audio
from .dtw import Warping
from .features import Notes, audio_features
from .manifest import PerformanceSource
from .midi_align import match_notes
from .reference import reference_features, reference_synth
from .repeats import Unfolding, unfoldings

SAMPLE_RATE_HZ = 22050
WARPING_NAME = "warping.csv"
KIND_MIDI = "performed_midi"
KIND_AUDIO = "recorded_audio"
KIND_SYNTH = "synthesized"
SILENCE_FRAME_S = 0.05
# The score side of recordings' alignments: the score played by the reference
# SoundFont put more ASAP beats within 50 and 100 ms than the score's note list
# (benchmarks/bench_performed.py; the note of issue 15, session 3).
REFERENCE = "timgm6mb"


@dataclass(frozen=True)
class PerformConfig:
    """How real performances are aligned and judged.

    Attributes
    ----------
    min_confidence : float
        A performance whose confidence is lower is flagged (0..1).
    min_sounding_share : float
        A recording whose share of sounding 50 ms frames is lower is flagged.
    silence_dbfs : float
        A frame sounds when its RMS is above this level and above the
        recording's loudest frame minus 50 dB.
    try_repeats : bool
        Try the score's unfoldings (all repeats, none, first time only);
        else align to the rendered performance (all repeats).
    reference : str
        The score side of a recording's alignment: ``"notes"`` (the score's
        note list) or a SoundFont (a name in the SoundFont manifest, or a path) that
        plays the score deadpan, its audio features against the recording's
        (:mod:`.reference`).
    """

    min_confidence: float = 0.3
    min_sounding_share: float = 0.5
    silence_dbfs: float = -60.0
    try_repeats: bool = True
    reference: str = REFERENCE

    def __post_init__(self) -> None:
        if not 0 <= self.min_confidence <= 1:
            raise ConfigError(f"min_confidence must be in [0, 1], got {self.min_confidence!r}")
        if not 0 <= self.min_sounding_share <= 1:
            raise ConfigError(f"min_sounding_share must be in [0, 1], "
                              f"got {self.min_sounding_share!r}")
        if not self.reference:
            raise ConfigError("reference must be 'notes' or a SoundFont name")


@dataclass(frozen=True)
class ScoreEvents:
    """The rendered piece's note events, as the score side of an alignment.

    Attributes
    ----------
    notes : Notes
        One per event of ``performance.csv`` (seconds at tempo 1.0).
    heads : list of str
        The head each event sounds.
    moments : list of Fraction
        The printed moment of each event's head.
    """

    notes: Notes
    heads: list[str]
    moments: list[Fraction]


def read_score_events(piece: Path) -> ScoreEvents:
    """The events of ``piece/performance.csv`` with their heads' moments (``noteheads.csv``).

    Hidden heads (played, with no row in ``noteheads.csv``) take the moment
    of the event before them.
    """
    perf = read_performance_csv(piece / "performance.csv")
    with open(piece / "noteheads.csv", newline="") as f:
        moment_of = {r["notehead_id"]: Fraction(r["moment"]) for r in csv.DictReader(f)}
    events = perf.events
    if not events:
        raise InputError(f"{piece / 'performance.csv'}: the score has no notes")
    moments, last = [], Fraction(0)
    for e in events:
        last = moment_of.get(e.notehead_id, last)
        moments.append(last)
    notes = Notes(np.array([e.onset_s for e in events]), np.array([e.duration_s for e in events]),
                  np.array([e.pitch for e in events], dtype=np.int64),
                  np.array([e.velocity for e in events], dtype=np.int64))
    return ScoreEvents(notes, [e.notehead_id for e in events], moments)


def read_midi_notes(path: Path) -> Notes:
    """The pitched notes of a MIDI file (all tracks), seconds under its tempo map, sorted."""
    import pretty_midi

    try:
        pm = pretty_midi.PrettyMIDI(str(path))
    except Exception as e:  # pretty_midi/mido raise many types for a broken file
        raise InputError(f"{path}: unreadable MIDI file ({e})") from e
    rows = sorted((n.start, n.end - n.start, n.pitch, n.velocity)
                  for inst in pm.instruments if not inst.is_drum for n in inst.notes)
    if not rows:
        raise InputError(f"{path}: the MIDI file has no pitched notes")
    a = np.array(rows, dtype=np.float64)
    return Notes(a[:, 0], np.maximum(a[:, 1], 1e-3), a[:, 2].astype(np.int64),
                 np.clip(a[:, 3], 1, 127).astype(np.int64))


def read_recording(path: Path, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """A recording as mono float32 at ``sample_rate_hz`` (channels averaged, resampled by soxr)."""
    try:
        audio, sr = soundfile.read(path, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as e:
        raise InputError(f"{path}: unreadable audio ({e})") from e
    if not len(audio):
        raise InputError(f"{path}: the recording is empty")
    mono = audio.mean(axis=1)
    if sr != sample_rate_hz:
        import soxr

        # soxr (its high quality) took a fifth of scipy's resample_poly's time for 44.1 kHz.
        mono = soxr.resample(mono, sr, sample_rate_hz, quality="HQ")
    return np.clip(mono, -1.0, 1.0).astype(np.float32)


def sounding_share(audio: np.ndarray, sample_rate_hz: int, silence_dbfs: float = -60.0) -> float:
    """Share of 50 ms frames whose RMS is above ``silence_dbfs`` and within 50 dB of the loudest."""
    n = max(int(SILENCE_FRAME_S * sample_rate_hz), 1)
    frames = audio[: len(audio) // n * n].reshape(-1, n) if len(audio) >= n else audio[None, :]
    db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-20)
    return float(np.mean(db > max(silence_dbfs, float(db.max()) - 50.0)))


@dataclass(frozen=True)
class Aligned:
    """The alignment of one performance to the chosen unfolding.

    Attributes
    ----------
    unfolding : Unfolding
    onsets : list of (str, float)
        ``(notehead_id, onset_s)`` of every aligned event, sorted by onset.
    left_out : list of (str, float)
        ``(notehead_id, score onset_s)`` of the events no performed note plays
        (MIDI only; a recording gives every event an onset).
    n_extra : int
        Performed notes that play no score event (MIDI only).
    warping : Warping
    costs : dict of str to float
        Normalised cost per tried unfolding.
    confidence : float
    partner : np.ndarray or None
        MIDI: performed note index per event of the unfolding, -1 if left out.
    n_between : int
        MIDI: events paired between their paired neighbours, beyond the map's
        windows (:func:`~msmd_prep.performed.midi_align.pair_between_neighbours`).
    n_kept : int
        MIDI: events that kept their first-pass partner beyond the refinement's
        window (:func:`~msmd_prep.performed.midi_align.keep_first_pairs`).
    """

    unfolding: Unfolding
    onsets: list[tuple[str, float]]
    left_out: list[tuple[str, float]]
    n_extra: int
    warping: Warping
    costs: dict[str, float]
    confidence: float
    partner: np.ndarray | None = None
    n_between: int = 0
    n_kept: int = 0


def _candidates(score: ScoreEvents, config: PerformConfig) -> list[Unfolding]:
    found = unfoldings(score.notes.onset_s, score.heads, score.moments)
    return found if config.try_repeats else found[:1]


def _unfolded(score: ScoreEvents, u: Unfolding) -> Notes:
    n = score.notes.take(u.events)
    return Notes(u.onset_s, n.duration_s, n.pitch, n.velocity)


def align_midi(score: ScoreEvents, performed: Notes, config: PerformConfig) -> Aligned:
    """Align a MIDI performance: the unfolding of lowest normalised cost, its note matching.

    Confidence: the share of score events matched times ``1 - normalised cost``.
    """
    results = {u.name: (u, match_notes(_unfolded(score, u), performed))
               for u in _candidates(score, config)}
    costs = {name: m.warping.normalised_cost for name, (_, m) in results.items()}
    u, m = results[min(costs, key=costs.get)]
    events = u.events
    onsets = [(score.heads[events[i]], float(performed.onset_s[j]))
              for i, j in enumerate(m.partner) if j >= 0]
    left = [(score.heads[events[i]], float(u.onset_s[i]))
            for i, j in enumerate(m.partner) if j < 0]
    matched = 1 - len(left) / max(len(events), 1)
    confidence = matched * min(max(1 - m.warping.normalised_cost, 0.0), 1.0)
    return Aligned(u, sorted(onsets, key=lambda o: (o[1], o[0])), left, m.n_extra, m.warping,
                   costs, confidence, m.partner, m.n_between, m.n_kept)


def align_recording(score: ScoreEvents, audio: np.ndarray, config: PerformConfig,
                    reference: Synthesizer | None = None) -> Aligned:
    """Align a recording: the unfolding of lowest normalised cost, onsets refined by onset peaks.

    ``reference`` plays each unfolding as the score side (else its note list).
    Confidence: ``1 - normalised cost`` (0 for unrelated music).
    """
    feats = audio_features(audio, SAMPLE_RATE_HZ)
    results = {}
    for u in _candidates(score, config):
        notes = _unfolded(score, u)
        ref = reference_features(notes, reference) if reference is not None else None
        results[u.name] = (u, align_audio(notes, audio, SAMPLE_RATE_HZ, feats, ref))
    costs = {name: a.warping.normalised_cost for name, (_, a) in results.items()}
    u, a = results[min(costs, key=costs.get)]
    onsets = sorted(((score.heads[e], float(t)) for e, t in zip(u.events, a.onset_s)),
                    key=lambda o: (o[1], o[0]))
    confidence = min(max(1 - a.warping.normalised_cost, 0.0), 1.0)
    return Aligned(u, onsets, [], 0, a.warping, costs, confidence)


def write_warping_csv(warping: Warping, path: Path) -> None:
    """The warping path: ``score_s,performance_s`` per step, seconds."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(("score_s", "performance_s"))
            w.writerows((f"{s:.4f}", f"{p:.4f}") for s, p in
                        zip(warping.score_s, warping.performance_s))
    write_atomic(path, write)


def _versions() -> dict:
    out = {"msmd-prep": __version__, "numpy": np.__version__, "scipy": scipy.__version__,
           "soundfile": soundfile.__version__}
    for dist in ("synctoolbox", "pretty_midi", "scikit-learn", "soxr"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _is_complete(perf_dir: Path, input_hash: str, config_hash: str) -> bool:
    meta = read_json(perf_dir / PERFORMANCE_JSON)
    return (meta is not None and meta.get("status") == "complete"
            and meta.get("input_hash") == input_hash and meta.get("config_hash") == config_hash
            and (perf_dir / ONSETS_NAME).is_file()
            and ((perf_dir / AUDIO_NAME).is_file() or meta.get("audio_removed") is True))


def _summary(al: Aligned, n_events: int) -> dict:
    return {
        "repeats": {"choice": al.unfolding.name, "normalised_costs": al.costs,
                    "skipped_passages_s": [list(p) for p in al.unfolding.skipped]},
        "cost": al.warping.cost, "null_cost": al.warping.null_cost,
        "normalised_cost": al.warping.normalised_cost, "confidence": al.confidence,
        "notes": {"score_events": n_events, "events_in_unfolding": len(al.unfolding.events),
                  "aligned": len(al.onsets), "left_out": len(al.left_out),
                  "extra_performed": al.n_extra, "paired_between_neighbours": al.n_between,
                  "first_pairs_kept": al.n_kept},
        "left_out": [{"notehead_id": h, "score_onset_s": round(t, 6)} for h, t in al.left_out],
    }


def _write(perf_dir: Path, audio: np.ndarray, onsets: list[tuple[str, float]],
           warping: Warping, meta: dict) -> None:
    perf_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(perf_dir / AUDIO_NAME, lambda tmp: soundfile.write(
        tmp, audio, SAMPLE_RATE_HZ, subtype="PCM_16", format="FLAC"))
    write_onsets_csv(onsets, perf_dir / ONSETS_NAME)
    write_warping_csv(warping, perf_dir / WARPING_NAME)
    write_json_atomic(perf_dir / PERFORMANCE_JSON, meta | {
        "stage": "perform", "status": "complete", "perf_id": perf_dir.name,
        "sample_rate_hz": SAMPLE_RATE_HZ, "channels": 1, "audio_format": "FLAC PCM_16",
        "n_samples": len(audio), "duration_s": len(audio) / SAMPLE_RATE_HZ,
        "n_onsets": len(onsets), "audio": AUDIO_NAME, "audio_removed": False,
        "warping": WARPING_NAME, "tempo_factor": 1.0, "versions": _versions()})


def _flags(confidence: float, config: PerformConfig, share: float | None) -> list[str]:
    flags = []
    if confidence < config.min_confidence:
        flags.append(f"confidence {confidence:.2f} below {config.min_confidence} "
                     "(another piece, or a very different version?)")
    if share is not None and share < config.min_sounding_share:
        flags.append(f"mostly silence: {share:.0%} of the recording sounds")
    return flags


def performance_ids(source: PerformanceSource, synths: Sequence[Synthesizer]) -> list[str]:
    """The folder names ``source`` gives: ``<id>_<soundfont>`` per synth for MIDI, ``<id>`` for audio."""
    if source.kind == "midi":
        return [f"{source.id}_{s.soundfont.name}" for s in synths]
    return [source.id]


def perform_source(piece: Path, source: PerformanceSource, synths: Sequence[Synthesizer],
                   config: PerformConfig = PerformConfig()) -> tuple[int, int]:
    """Align one performance to the rendered ``piece`` and write its folders.

    Parameters
    ----------
    piece : Path
        A rendered piece folder.
    source : PerformanceSource
    synths : sequence of Synthesizer
        The SoundFonts a MIDI performance is played with (at least one for MIDI).
    config : PerformConfig

    Returns
    -------
    done, skipped : int
        Folders written and folders already up to date.

    Raises
    ------
    InputError
        The performance or the piece cannot be read.
    """
    if source.kind == "midi" and not synths:
        raise ConfigError(f"{source.path}: a MIDI performance needs at least one SoundFont")
    for synth in synths:
        if synth.config.velocity_policy != "score":
            raise ConfigError("a performed MIDI file is played with its own velocities: "
                              "the synth's velocity_policy must be 'score'")
    source_sha = sha256_file(source.path)
    input_hash = sha256_json([source_sha, sha256_file(piece / "performance.csv"),
                              sha256_file(piece / "noteheads.csv")])
    ref_synth = (reference_synth(config.reference)
                 if source.kind == "audio" and config.reference != "notes" else None)
    settings = {"perform": asdict(config), "kind": source.kind, "code": __version__,
                "stage_version": stage_version("perform")}
    if ref_synth is not None:
        settings["reference_soundfont"] = {"sha256": ref_synth.soundfont.sha256,
                                           "bank": ref_synth.soundfont.bank,
                                           "preset": ref_synth.soundfont.preset}
    todo = []
    skipped = 0
    for perf_id, synth in zip(performance_ids(source, synths),
                              synths if source.kind == "midi" else [None]):
        cfg = settings | ({"soundfont": {"sha256": synth.soundfont.sha256,
                                         "bank": synth.soundfont.bank,
                                         "preset": synth.soundfont.preset},
                           "synth": asdict(synth.config)} if synth else {})
        config_hash = sha256_json(cfg)
        perf_dir = piece / PERFORMANCES_DIR / perf_id
        if _is_complete(perf_dir, input_hash, config_hash):
            skipped += 1
        else:
            todo.append((perf_dir, synth, cfg, config_hash))
    if not todo:
        return 0, skipped
    score = read_score_events(piece)
    base = {"input_hash": input_hash, "stage_version": stage_version("perform"),
            "source": {"path": str(source.path), "sha256": source_sha, "id": source.id,
                       "score": str(source.score)}}
    if source.kind == "midi":
        performed = read_midi_notes(source.path)
        al = align_midi(score, performed, config)
        flags = _flags(al.confidence, config, None)
        events = sort_events([NoteEvent(float(o), float(d), int(p), int(v), f"p{j}")
                              for j, (o, d, p, v) in enumerate(zip(
                                  performed.onset_s, performed.duration_s, performed.pitch,
                                  performed.velocity))])
        for perf_dir, synth, cfg, config_hash in todo:
            rendering = synth.render(Performance(events))
            placed = {int(h[1:]): t for h, t in rendering.onsets}
            onsets = sorted(((score.heads[al.unfolding.events[i]], placed[int(j)])
                             for i, j in enumerate(al.partner) if j >= 0),
                            key=lambda o: (o[1], o[0]))
            _write(perf_dir, rendering.audio, onsets, al.warping, base | _summary(al, len(
                score.heads)) | {
                "kind": KIND_MIDI, "config_hash": config_hash, "config": cfg,
                "method": "MIDI note matching: chroma+DLNCO MrMsDTW (synctoolbox), then "
                          "per-pitch minimum-cost assignment (scipy) within 1 s, then twice "
                          "within 0.25 s (a note left without a partner keeps its first "
                          "one if no other note took it and it is within 0.5 s of the map), "
                          "each followed by left-out notes paired between their paired "
                          "neighbours",
                "soundfont": synth.soundfont.provenance(),
                "velocity_policy": "performed", "flagged": bool(flags), "flags": flags,
                "onsets_in": "the FluidSynth rendering (performed onsets on its 64-sample "
                             f"block grid at {synth.config.synth_rate_hz} Hz)"})
    else:
        audio = read_recording(source.path)
        share = sounding_share(audio, SAMPLE_RATE_HZ, config.silence_dbfs)
        al = align_recording(score, audio, config, ref_synth)
        flags = _flags(al.confidence, config, share)
        side = ("the score's note list" if ref_synth is None else
                f"the score played by FluidSynth ({ref_synth.soundfont.name}) at "
                f"{ref_synth.config.sample_rate_hz} Hz, same pitch "
                "filterbank, DLNCO and register onsets (DLNRO) from its note list, warped "
                "where its tempo is more than 1.5x off the recording's")
        for perf_dir, _, cfg, config_hash in todo:
            _write(perf_dir, audio, al.onsets, al.warping, base | _summary(al, len(
                score.heads)) | {
                "kind": KIND_AUDIO, "config_hash": config_hash, "config": cfg,
                "method": f"audio: chroma+DLNCO MrMsDTW (synctoolbox; against a synthesized "
                          "reference log pitch + DLNCO + DLNRO, the recording's silence "
                          f"orthogonal to the reference) against {side}, "
                          "onsets refined by onset peaks (wider windows where chords are sparse, "
                          "weighted by the rise of the chord's pitch energies), "
                          "chosen together in score order; chords without one searched "
                          "between their refined neighbours where their pitch energies rise",
                "reference": ({"kind": "notes"} if ref_synth is None else
                              {"kind": "synthesized", **ref_synth.soundfont.provenance()}),
                "soundfont": {"name": "recording", "sha256": source_sha},
                "sounding_share": share, "flagged": bool(flags), "flags": flags})
    return len(todo), skipped


def performance_kind(meta: dict) -> str:
    """``synthesized``, ``performed_midi`` or ``recorded_audio`` from a ``performance.json``."""
    return meta.get("kind", KIND_SYNTH)


def is_flagged(meta: dict) -> bool:
    """Whether a ``performance.json`` says the performance is left out of packing."""
    return bool(meta.get("flagged"))


def perform_piece(piece: Path, sources: Sequence[PerformanceSource],
                  synths: Sequence[Synthesizer],
                  config: PerformConfig = PerformConfig()) -> tuple[int, int]:
    """Align every performance of one rendered piece (see :func:`perform_source`).

    Returns
    -------
    done, skipped : int
        Performance folders written and already up to date.
    """
    done = skipped = 0
    for source in sources:
        try:
            d, s = perform_source(piece, source, synths, config)
        except InputError as e:
            raise InputError(f"{source.path}: {e}" if str(source.path) not in str(e)
                             else str(e)) from e
        done, skipped = done + d, skipped + s
    return done, skipped


def sources_by_piece(workdir: Path, sources: Sequence[PerformanceSource]
                     ) -> tuple[dict[Path, list[PerformanceSource]], list[PerformanceSource]]:
    """The rendered piece of ``workdir`` each performance's score became (by ``piece.json`` source).

    Returns
    -------
    by_piece : dict of Path to list of PerformanceSource
    unmatched : list of PerformanceSource
        Performances whose score is not a rendered piece of ``workdir``.
    """
    from ..workdir import rendered_pieces

    piece_of = {}
    for piece in rendered_pieces(workdir):
        src = (read_json(piece / "piece.json") or {}).get("source")
        if src:
            piece_of.setdefault(Path(src).resolve(), piece)
    by_piece: dict[Path, list[PerformanceSource]] = {}
    unmatched = []
    for s in sources:
        piece = piece_of.get(s.score.resolve())
        if piece is None:
            unmatched.append(s)
        else:
            by_piece.setdefault(piece, []).append(s)
    return by_piece, unmatched


def perform_workdir(workdir: Path, sources: Sequence[PerformanceSource], *,
                    soundfonts: Sequence, config: PerformConfig = PerformConfig(),
                    progress: bool = False) -> list:
    """Align every performance to its rendered piece in ``workdir``.

    Parameters
    ----------
    workdir : Path
    sources : sequence of PerformanceSource
    soundfonts : sequence of SoundFont
        Play the MIDI performances (each SoundFont loaded once).
    config : PerformConfig
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    results : list of PieceResult
        One per piece with performances (and one failure per performance
        whose score is not rendered in ``workdir``).
    """
    from tqdm import tqdm

    from ..synth import SynthConfig
    from ..workdir import PieceResult

    by_piece, unmatched = sources_by_piece(workdir, sources)
    results = [PieceResult(s.score, error=f"{s.path}: its score is not rendered in {workdir}; "
                                          "run `msmd-prep render` on it first")
               for s in unmatched]
    synths = [Synthesizer(sf, SynthConfig()) for sf in soundfonts]
    try:
        for piece, piece_sources in tqdm(sorted(by_piece.items()), desc="perform",
                                         unit="piece", disable=not progress):
            try:
                done, skipped = perform_piece(piece, piece_sources, synths, config)
            except MsmdPrepError as e:
                results.append(PieceResult(piece, error=str(e)))
            else:
                results.append(PieceResult(piece, done, skipped))
    finally:
        for synth in synths:
            synth.close()
    return results
