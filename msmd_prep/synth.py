"""The synth stage: play a performance with FluidSynth into mono audio.

FluidSynth runs in-process through pyfluidsynth, one loaded synth per
SoundFont, reused for every piece and tempo (loading an sf3 takes seconds).

How the audio is made, and why:

* FluidSynth renders at ``synth_rate_hz``, by default the rate of the
  written audio (``sample_rate_hz``, 22.05 kHz), so the mono mix (mean of
  left and right) is written as rendered.  Measured
  (``benchmarks/bench_synth_rate.py``): 1.8 to 3.2 times faster than
  rendering at 44.1 kHz and resampling (polyphase filter), which is still
  available (``synth_rate_hz=44100``); note starts within 0.32 ms of the
  44.1 kHz ones; spectrograms about 5 % of their mean level apart (the
  sample interpolation folds some content above 11 kHz into the band).
* FluidSynth computes audio in blocks of 64 samples and applies a note-on
  or note-off at the start of a block.  Every event is therefore placed on
  the nearest block boundary, and the onset table records those placed
  times: they are where the notes sound in the audio, within 32 samples
  (1.45 ms at 22.05 kHz, 0.73 ms at 44.1 kHz) of the performance's times,
  against frames of 32 to 50 ms.
* The audio depends only on the performance, the SoundFont and the config,
  not on what the synth played before: reverb and chorus (which carry state
  from one piece to the next) are off; the float output is used (the 16-bit
  output is dithered with a per-synth running index); every voice is sounded
  once when the synth is built (a voice's very first note starts slightly
  differently); and the synth is silenced and reset after each performance.
* Release tail: after the last note-off the synth renders on, in blocks of
  2048 samples, until no voice sounds or a block's peak falls below
  ``tail_threshold_dbfs``, but for at most ``max_tail_s``.
* One performance at a time per process (:data:`FLUIDSYNTH_LOCK`), so
  that threads (a Dask worker runs several) cannot change each other's audio.
* Notes of the same pitch that overlap share the key: a second onset
  re-strikes it, and the key is released when the last of them ends.
  Notes of the same pitch placed at the same time (a unison of two voices:
  two printed heads, two events) strike the key once, at the louder
  velocity, as a pianist and LilyPond's MIDI do.
"""
from __future__ import annotations

import csv
import functools
import importlib.metadata
import io
import math
import threading
from collections.abc import Callable, Sequence
from ctypes import byref, c_int, c_void_p
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import numpy as np
import scipy.signal
import soundfile
from tqdm import tqdm

from ._version import __version__
from .errors import ConfigError, InputError, MsmdPrepError, ToolError
from .score import NoteEvent, Performance, read_performance_csv
from .soundfonts import SoundFont
from .stage_versions import stage_version
from .workdir import (PERFORMANCES_DIR, PieceResult, read_json, rendered_pieces, sha256_file,
                      sha256_json, write_atomic, write_json_atomic)

BLOCK_SAMPLES = 64
TAIL_BLOCK_SAMPLES = 2048
MAX_DRAIN_BLOCKS = 1000
CHANNEL = 0
VELOCITY_POLICIES = ("score", "fixed")
AUDIO_NAME = "audio.flac"
ONSETS_NAME = "onsets.csv"
PERFORMANCE_JSON = "performance.json"
#: Held by every synth while it loads, plays or is freed.  Two FluidSynth
#: synths of one process that play at the same time are not independent
#: (libfluidsynth 2.3: the release tails of one change with what the other
#: plays, measured in a Dask worker with two threads), so a process plays
#: one performance at a time; its other threads go on with other stages.
FLUIDSYNTH_LOCK = threading.RLock()
#: ``synth.dynamic-sample-loading``: only the samples of the presets in use are
#: loaded (and decoded, for an sf3) instead of the whole SoundFont:
#: musescore_general loads in 2.5 instead of 5.8 CPU s, fluidr3_gm in 0.24
#: instead of 0.43, with the same audio (9 performances compared sample for sample).
FLUIDSYNTH_SETTINGS = {
    "synth.reverb.active": 0,
    "synth.chorus.active": 0,
    "synth.cpu-cores": 1,
    "synth.dynamic-sample-loading": 1,
}


@dataclass(frozen=True)
class SynthConfig:
    """How performances are played.

    Attributes
    ----------
    sample_rate_hz : int
        Sample rate of the written audio.
    synth_rate_hz : int
        Sample rate FluidSynth renders at, >= ``sample_rate_hz``; above it,
        the audio is resampled to ``sample_rate_hz``.
    velocity_policy : {"score", "fixed"}
        ``"score"`` plays each note's velocity from the performance (the
        score's dynamics); ``"fixed"`` plays every note at ``fixed_velocity``.
    fixed_velocity : int
        MIDI velocity 1..127 for the ``"fixed"`` policy (MSMD used 64).
    gain : float
        FluidSynth's master gain (``synth.gain``), 0 < gain <= 10.
    tail_threshold_dbfs : float
        The release tail ends at the first 2048-sample block whose peak is
        below this level, dB relative to full scale, < 0.
    max_tail_s : float
        Longest release tail after the last note-off, seconds, >= 0.
    """

    sample_rate_hz: int = 22050
    synth_rate_hz: int = 22050
    velocity_policy: str = "score"
    fixed_velocity: int = 64
    gain: float = 0.2
    tail_threshold_dbfs: float = -80.0
    max_tail_s: float = 5.0

    def __post_init__(self) -> None:
        if not 8000 <= self.sample_rate_hz <= self.synth_rate_hz <= 96000:
            raise ConfigError(
                f"need 8000 <= sample_rate_hz <= synth_rate_hz <= 96000, got "
                f"sample_rate_hz={self.sample_rate_hz!r}, synth_rate_hz={self.synth_rate_hz!r}")
        if self.velocity_policy not in VELOCITY_POLICIES:
            raise ConfigError(f"velocity_policy must be one of {VELOCITY_POLICIES}, "
                              f"got {self.velocity_policy!r}")
        if not 1 <= self.fixed_velocity <= 127:
            raise ConfigError(f"fixed_velocity must be in 1..127, got {self.fixed_velocity!r}")
        if not 0 < self.gain <= 10:
            raise ConfigError(f"gain must be in (0, 10], got {self.gain!r}")
        if not self.tail_threshold_dbfs < 0:
            raise ConfigError(f"tail_threshold_dbfs must be < 0, got {self.tail_threshold_dbfs!r}")
        if not 0 <= self.max_tail_s <= 60:
            raise ConfigError(f"max_tail_s must be in [0, 60], got {self.max_tail_s!r}")

    @classmethod
    def from_velocity(cls, velocity: str,
                      **fields) -> "SynthConfig":  # type: ignore[no-untyped-def]
        """A config with the velocity ``"score"`` (the score's dynamics) or a number 1..127.

        ``fields`` are the other attributes.

        Raises
        ------
        ConfigError
            ``velocity`` is neither.
        """
        if velocity == "score":
            return cls(velocity_policy="score", **fields)
        try:
            fixed = int(velocity)
        except ValueError:
            raise ConfigError(f"--velocity must be 'score' or 1..127, got {velocity!r}") from None
        return cls(velocity_policy="fixed", fixed_velocity=fixed, **fields)

    def velocity(self, event: NoteEvent) -> int:
        """The MIDI velocity ``event`` is played with under this policy."""
        return event.velocity if self.velocity_policy == "score" else self.fixed_velocity


@dataclass(frozen=True)
class Rendering:
    """Audio of one performance and where its notes start in it.

    Attributes
    ----------
    audio : np.ndarray [shape=(n_samples,), dtype=float32]
        Mono audio, full scale +-1.
    sample_rate_hz : int
        Sample rate of ``audio``.
    onsets : tuple of (str, float)
        ``(notehead_id, onset_s)`` per note event, in performance order;
        seconds from the start of ``audio``.
    tail_s : float
        Length of the release tail after the last note-off, seconds.
    """

    audio: np.ndarray
    sample_rate_hz: int
    onsets: tuple[tuple[str, float], ...]
    tail_s: float

    @property
    def duration_s(self) -> float:
        """Length of the audio in seconds."""
        return len(self.audio) / self.sample_rate_hz


@functools.cache
def _fluidsynth() -> tuple[ModuleType, Callable[..., int]]:
    """pyfluidsynth, imported on first use, and ``fluid_synth_write_float``.

    pyfluidsynth only wraps the 16-bit output, whose dither makes the samples
    depend on everything the synth played before; the float output does not.
    """
    import fluidsynth

    write_float = fluidsynth.cfunc(
        "fluid_synth_write_float", c_int, ("synth", c_void_p, 1), ("len", c_int, 1),
        ("lout", c_void_p, 1), ("loff", c_int, 1), ("lincr", c_int, 1),
        ("rout", c_void_p, 1), ("roff", c_int, 1), ("rincr", c_int, 1))
    return fluidsynth, write_float


def fluidsynth_version() -> str:
    """Version of the libfluidsynth that pyfluidsynth loaded, ``"major.minor.micro"``."""
    fluidsynth, _ = _fluidsynth()
    parts = [c_int(), c_int(), c_int()]
    fluidsynth.fluid_version(*(byref(p) for p in parts))
    return ".".join(str(p.value) for p in parts)


class Synthesizer:
    """A FluidSynth instance with one SoundFont loaded, reused across performances.

    Parameters
    ----------
    soundfont : SoundFont
        The SoundFont to load; its bank and preset are played on channel 0.
    config : SynthConfig
        Sample rates, velocity policy, gain and release tail.

    Raises
    ------
    ConfigError
        FluidSynth cannot load the SoundFont or it lacks the bank/preset.

    Notes
    -----
    Use it as a context manager, or call :meth:`close`, to free the synth.
    """

    def __init__(self, soundfont: SoundFont, config: SynthConfig = SynthConfig()) -> None:
        fluidsynth, self._write_float = _fluidsynth()
        self.soundfont = soundfont
        self.config = config
        with FLUIDSYNTH_LOCK:
            self._load(fluidsynth, soundfont, config)

    def _load(self, fluidsynth: ModuleType, soundfont: SoundFont, config: SynthConfig) -> None:
        self._fs = fluidsynth.Synth(gain=config.gain, samplerate=config.synth_rate_hz,
                                    **FLUIDSYNTH_SETTINGS)
        self._sfid = self._fs.sfload(str(soundfont.path))
        if self._sfid < 0:
            self._fs.delete()
            raise ConfigError(f"FluidSynth cannot load SoundFont {soundfont.path}")
        if self._fs.program_select(CHANNEL, self._sfid, soundfont.bank, soundfont.preset) < 0:
            self._fs.delete()
            raise ConfigError(f"SoundFont {soundfont.path} has no bank {soundfont.bank} "
                              f"preset {soundfont.preset}")
        self._prime()
        self.settings = {k: self._fs.get_setting(k) for k in
                         (*FLUIDSYNTH_SETTINGS, "synth.gain", "synth.sample-rate",
                          "synth.polyphony")}

    def __enter__(self) -> "Synthesizer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Free the FluidSynth instance; the object is unusable afterwards."""
        if self._fs is not None:
            with FLUIDSYNTH_LOCK:
                self._fs.delete()
            self._fs = None

    def render(self, performance: Performance) -> Rendering:
        """Play ``performance`` and return its audio and onset table.

        Parameters
        ----------
        performance : Performance
            Note events with times in seconds (already at the wanted tempo).

        Returns
        -------
        rendering : Rendering

        Raises
        ------
        InputError
            The performance has no notes, or its audio would clip (peak >= 1).
        """
        if not performance.events:
            raise InputError("the performance has no notes")
        with FLUIDSYNTH_LOCK:
            try:
                stereo, placed_on, tail_samples = self._play(performance)
            finally:
                self._reset()
        cfg = self.config
        ratio = Fraction(cfg.sample_rate_hz, cfg.synth_rate_hz)
        mono = stereo[0]
        mono += stereo[1]
        mono *= 0.5
        audio = mono if ratio == 1 else scipy.signal.resample_poly(
            mono, ratio.numerator, ratio.denominator)
        audio = audio.astype(np.float32)
        peak = float(np.max(np.abs(audio)))
        if peak >= 1.0:
            raise InputError(f"the audio would clip (peak {peak:.2f} at gain {cfg.gain}); "
                             "lower the gain")
        onsets = tuple((e.notehead_id, int(s) / cfg.synth_rate_hz)
                       for e, s in zip(performance.events, placed_on))
        return Rendering(audio, cfg.sample_rate_hz, onsets, tail_samples / cfg.synth_rate_hz)

    def _play(self, performance: Performance) -> tuple[np.ndarray, np.ndarray, int]:
        """Run the synth; return left and right audio, placed onsets and tail length (samples).

        The audio is float32 of shape (2, n_samples), each channel contiguous.
        """
        rate = self.config.synth_rate_hz
        onset_s = np.array([e.onset_s for e in performance.events])
        offset_s = onset_s + np.array([e.duration_s for e in performance.events])
        on = np.rint(onset_s * rate / BLOCK_SAMPLES).astype(np.int64) * BLOCK_SAMPLES
        off = np.rint(offset_s * rate / BLOCK_SAMPLES).astype(np.int64) * BLOCK_SAMPLES
        off = np.maximum(off, on + BLOCK_SAMPLES)
        if on.min() < 0:
            raise InputError(f"a note starts before time 0 ({onset_s.min():.3f} s)")
        # At equal times note-offs go first, so that a repeated note is not
        # released right after it is struck again.
        strikes: dict[tuple[int, int], list[int]] = {}
        for t, e in zip(on, performance.events):
            strikes.setdefault((int(t), e.pitch), []).append(self.config.velocity(e))
        events = sorted([(t, 1, pitch, max(v), len(v)) for (t, pitch), v in strikes.items()]
                        + [(int(t), 0, e.pitch, 0, 1) for t, e in zip(off, performance.events)])
        last_off = int(off.max())
        max_tail = math.ceil(self.config.max_tail_s * rate / BLOCK_SAMPLES) * BLOCK_SAMPLES
        out = np.zeros((2, last_off + max_tail), dtype=np.float32)
        pos = 0
        held = np.zeros(128, dtype=np.int64)
        for t, is_on, pitch, velocity, count in events:
            pos = self._write(out, pos, t)
            if is_on:
                self._fs.noteon(CHANNEL, pitch, velocity)
                held[pitch] += count
            else:
                held[pitch] -= 1
                if held[pitch] == 0:
                    self._fs.noteoff(CHANNEL, pitch)
        threshold = 10.0 ** (self.config.tail_threshold_dbfs / 20.0)
        end = out.shape[1]
        while pos < end:
            start = pos
            pos = self._write(out, pos, min(pos + TAIL_BLOCK_SAMPLES, end))
            if (self._fs.get_active_voice_count() == 0
                    or np.max(np.abs(out[:, start:pos])) < threshold):
                break
        return out[:, :pos], on, pos - last_off

    def _write(self, out: np.ndarray, start: int, stop: int) -> int:
        """Render samples ``start:stop`` into ``out`` (C-contiguous, shape (2, n)); return ``stop``."""
        if stop > start:
            base = out.ctypes.data
            self._write_float(self._fs.synth, stop - start, base, start, 1,
                              base, out.shape[1] + start, 1)
        return stop

    def _prime(self) -> None:
        """Sound every voice of the synth once, then reset.

        A voice object that has never sounded starts its first note slightly
        differently (about 100 samples) from one that has; priming them all
        makes a performance sound the same whatever the synth played before.
        """
        polyphony = self._fs.get_setting("synth.polyphony")
        for channel in range(16):
            for key in range(128):
                if self._fs.get_active_voice_count() >= polyphony:
                    break
                self._fs.noteon(channel, key, 127)
        scratch = np.zeros((2, BLOCK_SAMPLES), dtype=np.float32)
        self._write(scratch, 0, BLOCK_SAMPLES)
        for channel in range(16):
            self._fs.all_sounds_off(channel)
        self._reset()

    def _reset(self) -> None:
        """Silence every voice and reset the channels, ready for the next performance.

        FluidSynth stops voices at its next rendered block, and a system reset
        in the same block undoes the stop, so the synth renders (and drops)
        blocks until it is silent before the reset and again after it.
        """
        self._fs.all_sounds_off(CHANNEL)
        self._drain()
        self._fs.system_reset()
        self._fs.program_select(CHANNEL, self._sfid, self.soundfont.bank, self.soundfont.preset)
        self._drain()

    def _drain(self) -> None:
        """Render and drop blocks until no voice sounds and a block is silent."""
        scratch = np.zeros((2, BLOCK_SAMPLES), dtype=np.float32)
        for _ in range(MAX_DRAIN_BLOCKS):
            self._write(scratch, 0, BLOCK_SAMPLES)
            if self._fs.get_active_voice_count() == 0 and not scratch.any():
                return
        raise ToolError("fluidsynth", [], None, "",
                        cause=f"voices still sound {MAX_DRAIN_BLOCKS} blocks after all sounds off")


def performance_id(soundfont_name: str, tempo_factor: float) -> str:
    """Folder name of a performance: ``<soundfont-name>_t<tempo:.2f>``, e.g. ``timgm6mb_t1.00``."""
    return f"{soundfont_name}_t{tempo_factor:.2f}"


def synth_settings(soundfont: SoundFont, tempo_factor: float, config: SynthConfig) -> dict:
    """Everything that decides the audio of one performance besides its notes.

    Its hash is the performance's config hash.  The SoundFont enters by
    checksum, bank and preset, not by path, so a moved file does not redo work.
    """
    return {"tempo_factor": tempo_factor,
            "soundfont": {"sha256": soundfont.sha256, "bank": soundfont.bank,
                          "preset": soundfont.preset},
            "synth": asdict(config),
            "block_samples": BLOCK_SAMPLES,
            "stage_version": stage_version("synth")}


def synth_is_complete(perf_dir: Path, input_hash: str, config_hash: str) -> bool:
    """Whether ``perf_dir`` holds a finished synthesis of these inputs and settings.

    The audio counts as present when the file exists or when the spectrogram
    stage recorded that it removed it (``"audio_removed": true``).
    """
    meta = read_json(perf_dir / PERFORMANCE_JSON)
    return (meta is not None and meta.get("status") == "complete"
            and meta.get("input_hash") == input_hash and meta.get("config_hash") == config_hash
            and (perf_dir / ONSETS_NAME).is_file()
            and ((perf_dir / AUDIO_NAME).is_file() or meta.get("audio_removed") is True))


def is_up_to_date(piece: Path, soundfont: SoundFont, tempo_factor: float,
                  config: SynthConfig) -> bool:
    """Whether the performance of ``piece`` with these settings is already synthesized."""
    perf_dir = piece / PERFORMANCES_DIR / performance_id(soundfont.name, tempo_factor)
    return synth_is_complete(perf_dir, sha256_file(piece / "performance.csv"),
                             sha256_json(synth_settings(soundfont, tempo_factor, config)))


def flac_bytes(audio: np.ndarray, sample_rate_hz: int) -> bytes:
    """``audio`` as a 16-bit FLAC file, in memory.

    The same bytes as :func:`soundfile.write` to a file; written with one
    ``write``, a full disk gives an ``OSError`` with its cause rather than
    libsndfile's "System error".
    """
    buf = io.BytesIO()
    soundfile.write(buf, audio, sample_rate_hz, subtype="PCM_16", format="FLAC")
    return buf.getvalue()


#: Samples that a float-to-16-bit conversion may round either way: halves
#: of a step, both signs, and the ends of the range.
_PCM16_PROBE = np.concatenate([(np.arange(-32768, 32768, 7) + 0.5) / 32768,
                               np.arange(-32768, 32768, 5) / 32768,
                               [-1.0, 1.0 - 2.0 ** -24, 0.99999, -0.99999, 0.0]]
                              ).astype(np.float32)


def _pcm16(audio: np.ndarray) -> np.ndarray:
    scaled = np.rint(audio * np.float32(32768))
    return np.clip(scaled, -32768, 32767).astype(np.int16).astype(np.float32) / np.float32(32768)


@functools.cache
def _pcm16_is_flac() -> bool:
    """Whether :func:`_pcm16` gives what libsndfile's FLAC round trip gives (1.2: x 32768, rint)."""
    decoded, _ = soundfile.read(io.BytesIO(flac_bytes(_PCM16_PROBE, 22050)), dtype="float32")
    return bool(np.array_equal(decoded, _pcm16(_PCM16_PROBE)))


def flac_decoded(audio: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """What the FLAC file :func:`flac_bytes` makes of ``audio`` reads back as (float32).

    Computed without the file when this libsndfile's 16-bit rounding is the
    one :func:`_pcm16` does (checked once per process on every rounding
    case), else by a FLAC round trip in memory.  So a spectrogram of these
    samples is the one of the written audio, byte for byte.
    """
    if _pcm16_is_flac():
        return _pcm16(np.asarray(audio, dtype=np.float32))
    decoded, _ = soundfile.read(io.BytesIO(flac_bytes(audio, sample_rate_hz)), dtype="float32",
                                always_2d=False)
    return decoded


def write_onsets_csv(onsets: Sequence[tuple[str, float]], path: Path) -> None:
    """Write the onset table: columns ``notehead_id,onset_s``, one row per onset."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(("notehead_id", "onset_s"))
            w.writerows((head, f"{t:.6f}") for head, t in onsets)
    write_atomic(path, write)


def read_onsets_csv(path: Path) -> list[tuple[str, float]]:
    """Read an onset table written by :func:`write_onsets_csv`."""
    with open(path, newline="") as f:
        return [(r["notehead_id"], float(r["onset_s"])) for r in csv.DictReader(f)]


def _versions() -> dict:
    def dist(name: str) -> str:
        return importlib.metadata.version(name)
    return {"msmd-prep": __version__, "libfluidsynth": fluidsynth_version(),
            "pyfluidsynth": dist("pyfluidsynth"), "numpy": np.__version__,
            "scipy": scipy.__version__, "soundfile": soundfile.__version__,
            "libsndfile": soundfile.__libsndfile_version__}


@dataclass(frozen=True)
class Played:
    """One performance played but not yet written.

    Attributes
    ----------
    out : Path
        Its folder, ``piece/performances/<perf_id>``.
    rendering : Rendering
    manifest : dict
        Its ``performance.json`` (with ``"audio_removed": false``).
    """

    out: Path
    rendering: Rendering
    manifest: dict


def play_performance(synth: Synthesizer, piece: Path, tempo_factor: float) -> Played | None:
    """Play one performance of ``piece`` unless it is already up to date (then ``None``).

    Raises
    ------
    InputError
        ``performance.csv`` is unusable, or the audio would clip.
    """
    if is_up_to_date(piece, synth.soundfont, tempo_factor, synth.config):
        return None
    csv_path = piece / "performance.csv"
    input_hash = sha256_file(csv_path)
    settings = synth_settings(synth.soundfont, tempo_factor, synth.config)
    config_hash = sha256_json(settings)
    perf_id = performance_id(synth.soundfont.name, tempo_factor)
    try:
        performance = read_performance_csv(csv_path).at_tempo(tempo_factor)
    except (ValueError, KeyError) as e:
        raise InputError(f"{csv_path}: unreadable performance ({e!r})") from e
    except InputError as e:
        raise InputError(f"{csv_path}: {e}") from e
    try:
        rendering = synth.render(performance)
    except InputError as e:
        raise InputError(f"{csv_path} at tempo {tempo_factor}: {e}") from e
    cfg = synth.config
    manifest = {
        "stage": "synth", "status": "complete", "perf_id": perf_id,
        "stage_version": stage_version("synth"),
        "input_hash": input_hash, "config_hash": config_hash,
        "input": {"performance_csv": "../../performance.csv", "sha256": input_hash},
        "tempo_factor": tempo_factor,
        "soundfont": synth.soundfont.provenance(),
        "velocity_policy": cfg.velocity_policy,
        "fixed_velocity": cfg.fixed_velocity if cfg.velocity_policy == "fixed" else None,
        "sample_rate_hz": cfg.sample_rate_hz, "synth_rate_hz": cfg.synth_rate_hz,
        "channels": 1, "audio_format": "FLAC PCM_16",
        "event_quantum_s": BLOCK_SAMPLES / cfg.synth_rate_hz,
        "release_tail": {"threshold_dbfs": cfg.tail_threshold_dbfs,
                         "max_s": cfg.max_tail_s, "block_samples": TAIL_BLOCK_SAMPLES,
                         "rendered_s": rendering.tail_s},
        "fluidsynth_settings": synth.settings | {"interpolation": "4th order (default)"},
        "n_samples": len(rendering.audio), "duration_s": rendering.duration_s,
        "n_onsets": len(rendering.onsets),
        "audio": AUDIO_NAME, "audio_removed": False,
        "versions": _versions(),
        "config": settings,
    }
    return Played(piece / PERFORMANCES_DIR / perf_id, rendering, manifest)


def synthesize_performance(synth: Synthesizer, piece: Path, tempo_factor: float) -> bool:
    """Synthesize one performance of ``piece`` unless it is already up to date.

    Writes ``audio.flac``, ``onsets.csv`` and, last, ``performance.json``
    into ``piece/performances/<perf_id>/``.

    Parameters
    ----------
    synth : Synthesizer
        The loaded SoundFont and synth config.
    piece : Path
        A rendered piece folder (with ``performance.csv``).
    tempo_factor : float > 0
        Speed factor: 1.2 plays 20 % faster, every time is divided by 1.2.

    Returns
    -------
    done : bool
        ``True`` if it was synthesized, ``False`` if it was up to date.

    Raises
    ------
    InputError
        ``performance.csv`` is unusable, or the audio would clip.
    """
    played = play_performance(synth, piece, tempo_factor)
    if played is None:
        return False
    out, rendering = played.out, played.rendering
    out.mkdir(parents=True, exist_ok=True)
    # The old manifest goes before its data is replaced; the new one comes last.
    (out / PERFORMANCE_JSON).unlink(missing_ok=True)
    write_atomic(out / AUDIO_NAME, lambda tmp: tmp.write_bytes(
        flac_bytes(rendering.audio, rendering.sample_rate_hz)))
    write_onsets_csv(rendering.onsets, out / ONSETS_NAME)
    write_json_atomic(out / PERFORMANCE_JSON, played.manifest)
    return True


def synthesize_workdir(workdir: Path, *, tempo_factors: Sequence[float],
                       soundfonts: Sequence[SoundFont], config: SynthConfig = SynthConfig(),
                       progress: bool = False) -> list[PieceResult]:
    """Synthesize every rendered piece of ``workdir`` at every tempo with every SoundFont.

    Each SoundFont is loaded once and plays all pieces.  A piece that fails
    (an :class:`~msmd_prep.errors.MsmdPrepError`) is reported and skipped for
    the remaining tempos and SoundFonts; the other pieces go on.

    Parameters
    ----------
    workdir : Path
        Work folder with one sub-folder per piece.
    tempo_factors : sequence of float > 0
        Speed factors; their ids (two decimals) must differ.
    soundfonts : sequence of SoundFont
        From :func:`msmd_prep.soundfonts.resolve_soundfont`; names must differ.
    config : SynthConfig
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    results : list of PieceResult
        One per rendered piece, in name order.
    """
    if not tempo_factors or not soundfonts:
        raise ConfigError("need at least one tempo factor and one SoundFont")
    for factor in tempo_factors:
        if not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor > 0):
            raise ConfigError(f"tempo factor must be a finite number > 0, got {factor!r}")
    ids = [performance_id(sf.name, t) for sf in soundfonts for t in tempo_factors]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"tempo factors or SoundFont names repeat a performance id: {ids}")
    pieces = rendered_pieces(workdir)
    done = dict.fromkeys(pieces, 0)
    skipped = dict.fromkeys(pieces, 0)
    errors: dict[Path, str] = {}
    with tqdm(total=len(pieces) * len(soundfonts), desc="synth", unit="piece",
              disable=not progress) as bar:
        for soundfont in soundfonts:
            todo = []
            for piece in pieces:
                for factor in map(float, tempo_factors):
                    if is_up_to_date(piece, soundfont, factor, config):
                        skipped[piece] += 1
                    else:
                        todo.append((piece, factor))
            if not todo:
                bar.update(len(pieces))
                continue
            # Loading is the slow part (seconds for an sf3): only when needed.
            with Synthesizer(soundfont, config) as synth:
                for piece in pieces:
                    bar.update()
                    try:
                        for factor in (f for p, f in todo if p == piece and p not in errors):
                            synthesize_performance(synth, piece, factor)
                            done[piece] += 1
                    except MsmdPrepError as e:
                        errors[piece] = str(e)
    return [PieceResult(p, done[p], skipped[p], errors.get(p)) for p in pieces]
