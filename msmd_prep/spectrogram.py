"""The spectrogram stage: log-filterbank magnitude spectrograms of the synthesized audio.

The construction follows madmom's ``LogarithmicFilteredSpectrogram`` as the
MSMD dataset used it, written here with numpy because madmom does not
install on current Python and because the frame rate needs a fractional hop:

* Framing.  Frame ``i`` has the reference sample ``r_i = round(i * sr / fps)``
  (halves round up), computed exactly in integers, so positions never drift.
  With ``frame_origin="start"`` (MSMD's ``origin='future'``) the frame covers
  samples ``r_i .. r_i + frame_size - 1``; with ``"center"`` it is centred on
  ``r_i``.  Samples outside the audio are zeros.  There are
  ``ceil(n_samples * fps / sr)`` frames: one per reference sample inside the audio.
* STFT.  A symmetric Hann window (``numpy.hanning``, as madmom), the magnitude
  of the ``frame_size // 2`` lowest FFT bins (no Nyquist bin, as madmom).
* Filterbank.  Triangular filters centred on a logarithmic frequency axis,
  ``bands_per_octave`` per octave from ``fmin_hz`` to ``fmax_hz``, tuned to
  ``fref_hz``; each centre is mapped to its nearest FFT bin, duplicate bins
  are dropped, and each filter is normalised to unit area.
* Magnitude compression: ``log10(1 + x)`` (madmom's default, used by MSMD),
  or ``ln(1 + x)``.

The default preset gives 136 bins: 24 bands per octave from 30 Hz to 8 kHz.
The first audio-sheet retrieval papers quote "80 Hz - 8 kHz, 136 bins", but
madmom's construction gives 132 bins from 80 Hz and 136 from 30 Hz; 136 is
the published input size, so 30 Hz it is.  The ``msmd`` preset (20 fps,
16 bands per octave, 30 - 6000 Hz) gives MSMD's 92 bins.

Frame convention: an onset at ``t`` seconds belongs to frame ``ceil(t * fps)``,
the first frame whose reference sample is at or after the onset (MSMD's rule);
see :func:`time_to_frames`.
"""
from __future__ import annotations

import functools
import io
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from fractions import Fraction
from pathlib import Path

import numpy as np
import scipy.fft
import scipy.sparse
import soundfile
import yaml
from tqdm import tqdm

from .errors import ConfigError, InputError, MsmdPrepError
from .stage_versions import stage_version
from .synth import AUDIO_NAME, PERFORMANCE_JSON
from .workdir import (PieceResult, performance_dirs, read_json, rendered_pieces, sha256_json,
                      write_atomic, write_json_atomic)

FRAME_ORIGINS = ("start", "center")
LOG_FUNCTIONS = ("log10", "ln")
FRAMES_PER_CHUNK = 1024
ONSET_TOLERANCE_FRAMES = 1e-6


@dataclass(frozen=True)
class SpectrogramConfig:
    """Parameters of a log-filterbank spectrogram.

    Attributes
    ----------
    sample_rate_hz : int
        Sample rate the audio must have.
    frame_size_samples : int
        Window and FFT length, even.
    frame_rate_fps : float
        Frames per second; ``sample_rate_hz / frame_rate_fps`` may be
        fractional.  Taken as a fraction with denominator <= 1000.
    bands_per_octave : int
        Filter bands per octave.
    fmin_hz, fmax_hz : float
        Lowest and highest filter centre frequency, ``fmax_hz <= sample_rate_hz / 2``.
    fref_hz : float
        Tuning: one filter centre sits on this frequency's logarithmic grid.
    frame_origin : {"start", "center"}
        Whether a frame starts or is centred at its reference sample.
    log : {"log10", "ln"}
        Compression ``log10(1 + x)`` or ``ln(1 + x)``.
    """

    sample_rate_hz: int = 22050
    frame_size_samples: int = 2048
    frame_rate_fps: float = 31.25
    bands_per_octave: int = 24
    fmin_hz: float = 30.0
    fmax_hz: float = 8000.0
    fref_hz: float = 440.0
    frame_origin: str = "start"
    log: str = "log10"

    def __post_init__(self) -> None:
        if not (isinstance(self.sample_rate_hz, int) and self.sample_rate_hz > 0):
            raise ConfigError(f"sample_rate_hz must be a positive integer, got {self.sample_rate_hz!r}")
        if not (isinstance(self.frame_size_samples, int) and self.frame_size_samples >= 16
                and self.frame_size_samples % 2 == 0):
            raise ConfigError(f"frame_size_samples must be an even integer >= 16, "
                              f"got {self.frame_size_samples!r}")
        if not 0 < self.frame_rate_fps <= self.sample_rate_hz:
            raise ConfigError(f"frame_rate_fps must be in (0, sample_rate_hz], "
                              f"got {self.frame_rate_fps!r}")
        if abs(float(self.frame_rate_fraction) - self.frame_rate_fps) > 1e-9 * self.frame_rate_fps:
            raise ConfigError(f"frame_rate_fps {self.frame_rate_fps!r} is not a fraction with "
                              "denominator <= 1000")
        if not (isinstance(self.bands_per_octave, int) and self.bands_per_octave > 0):
            raise ConfigError(f"bands_per_octave must be a positive integer, "
                              f"got {self.bands_per_octave!r}")
        if not 0 < self.fmin_hz < self.fmax_hz <= self.sample_rate_hz / 2:
            raise ConfigError(f"need 0 < fmin_hz < fmax_hz <= sample_rate_hz / 2, got "
                              f"fmin_hz={self.fmin_hz!r}, fmax_hz={self.fmax_hz!r}")
        if not self.fref_hz > 0:
            raise ConfigError(f"fref_hz must be > 0, got {self.fref_hz!r}")
        if self.frame_origin not in FRAME_ORIGINS:
            raise ConfigError(f"frame_origin must be one of {FRAME_ORIGINS}, "
                              f"got {self.frame_origin!r}")
        if self.log not in LOG_FUNCTIONS:
            raise ConfigError(f"log must be one of {LOG_FUNCTIONS}, got {self.log!r}")
        if self.filterbank().shape[1] < 1:
            raise ConfigError(f"the filterbank of {self} has no bands")

    @property
    def frame_rate_fraction(self) -> Fraction:
        """``frame_rate_fps`` as an exact fraction."""
        return Fraction(self.frame_rate_fps).limit_denominator(1000)

    @property
    def n_bins(self) -> int:
        """Number of filterbank bands, the spectrogram's first dimension."""
        return self.filterbank().shape[1]

    def filterbank(self) -> np.ndarray:
        """The filterbank matrix of this config, see :func:`logarithmic_filterbank`.

        Read-only, and made once per set of filter parameters in a process
        (:func:`_shared_filterbank`): pack validates one config per
        performance, and building the filters took 8 ms each time.
        """
        return _shared_filterbank(self.sample_rate_hz, self.frame_size_samples,
                                  self.bands_per_octave, self.fmin_hz, self.fmax_hz,
                                  self.fref_hz)

    @classmethod
    def from_mapping(cls, values: Mapping) -> "SpectrogramConfig":
        """Build a config from a mapping of field names, refusing unknown names."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown spectrogram parameters {unknown}; known: {sorted(known)}")
        return cls(**values)


def log_frequencies(bands_per_octave: int, fmin_hz: float, fmax_hz: float,
                    fref_hz: float = 440.0) -> np.ndarray:
    """Frequencies ``fref_hz * 2 ** (k / bands_per_octave)`` within ``[fmin_hz, fmax_hz]``.

    As in madmom, ``k`` stops below ``ceil(log2(fmax_hz / fref_hz) * bands_per_octave)``,
    so an ``fmax_hz`` exactly on the grid is left out.

    Returns
    -------
    frequencies : np.ndarray [shape=(n,)]
        Ascending, in Hz.
    """
    lo = math.floor(math.log2(fmin_hz / fref_hz) * bands_per_octave)
    hi = math.ceil(math.log2(fmax_hz / fref_hz) * bands_per_octave)
    freqs = fref_hz * 2.0 ** (np.arange(lo, hi) / bands_per_octave)
    return freqs[(freqs >= fmin_hz) & (freqs <= fmax_hz)]


def fft_frequencies(*, sample_rate_hz: int, frame_size_samples: int) -> np.ndarray:
    """Centre frequencies of the ``frame_size_samples // 2`` FFT bins kept, in Hz."""
    return np.arange(frame_size_samples // 2) * (sample_rate_hz / frame_size_samples)


def logarithmic_filterbank(*, sample_rate_hz: int, frame_size_samples: int,
                           bands_per_octave: int, fmin_hz: float, fmax_hz: float,
                           fref_hz: float = 440.0) -> np.ndarray:
    """Triangular filters on a logarithmic frequency axis, unique and unit-area.

    Each frequency of :func:`log_frequencies` is mapped to the nearest FFT bin
    (the upper one on a tie); repeated bins are dropped.  Every three
    consecutive bins ``(start, centre, stop)`` make one filter rising from 0
    at ``start`` to 1 at ``centre`` and falling to 0 at ``stop`` (exclusive);
    a filter narrower than two bins becomes the single bin ``start``.  Each
    filter is divided by its sum.

    Returns
    -------
    filterbank : np.ndarray [shape=(frame_size_samples // 2, n_bands), dtype=float32]
        Multiply a magnitude spectrum ``(n_frames, n_fft_bins)`` by it.
    """
    bin_freqs = fft_frequencies(sample_rate_hz=sample_rate_hz,
                                frame_size_samples=frame_size_samples)
    freqs = log_frequencies(bands_per_octave, fmin_hz, fmax_hz, fref_hz)
    idx = np.clip(np.searchsorted(bin_freqs, freqs), 1, len(bin_freqs) - 1)
    closer_left = freqs - bin_freqs[idx - 1] < bin_freqs[idx] - freqs
    bins = np.unique(idx - closer_left)
    fb = np.zeros((len(bin_freqs), max(len(bins) - 2, 0)))
    for band, (start, centre, stop) in enumerate(zip(bins[:-2], bins[1:-1], bins[2:])):
        if stop - start < 2:
            fb[start, band] = 1.0
            continue
        fb[start:centre, band] = np.linspace(0.0, 1.0, centre - start, endpoint=False)
        fb[centre:stop, band] = np.linspace(1.0, 0.0, stop - centre, endpoint=False)
        fb[:, band] /= fb[:, band].sum()
    return fb.astype(np.float32)


@functools.lru_cache(maxsize=32)
def _shared_filterbank(sample_rate_hz: int, frame_size_samples: int, bands_per_octave: int,
                       fmin_hz: float, fmax_hz: float, fref_hz: float) -> np.ndarray:
    """:func:`logarithmic_filterbank` of these parameters, made read-only to be shared."""
    fb = logarithmic_filterbank(sample_rate_hz=sample_rate_hz,
                                frame_size_samples=frame_size_samples,
                                bands_per_octave=bands_per_octave, fmin_hz=fmin_hz,
                                fmax_hz=fmax_hz, fref_hz=fref_hz)
    fb.flags.writeable = False
    return fb


def n_frames(n_samples: int, *, sample_rate_hz: int, frame_rate_fps: float) -> int:
    """Number of frames of ``n_samples`` samples: ``ceil(n_samples * fps / sr)``."""
    fps = Fraction(frame_rate_fps).limit_denominator(1000)
    return -(-n_samples * fps.numerator // (sample_rate_hz * fps.denominator))


def frame_positions(count: int, *, sample_rate_hz: int, frame_rate_fps: float) -> np.ndarray:
    """Reference samples of frames ``0 .. count - 1``: ``floor(i * sr / fps + 1/2)``, exact.

    Returns
    -------
    positions : np.ndarray [shape=(count,), dtype=int64]
    """
    fps = Fraction(frame_rate_fps).limit_denominator(1000)
    i = np.arange(count, dtype=np.int64)
    return (2 * i * sample_rate_hz * fps.denominator + fps.numerator) // (2 * fps.numerator)


def time_to_frames(times_s: np.ndarray | float, *, frame_rate_fps: float) -> np.ndarray:
    """The frame an onset at ``times_s`` belongs to: ``ceil(t * fps)``.

    That is the first frame whose reference time ``i / fps`` is at or after
    the onset (MSMD's rule).  Products within 1e-6 frames of an integer count
    as that integer, so that ``k / fps`` maps back to ``k`` despite rounding.

    Returns
    -------
    frames : np.ndarray [dtype=int64]
    """
    x = np.asarray(times_s, dtype=np.float64) * frame_rate_fps
    return np.ceil(x - ONSET_TOLERANCE_FRAMES).astype(np.int64)


def last_frame_before(times_s: np.ndarray | float, config: SpectrogramConfig) -> np.ndarray:
    """The last frame whose window ends at or before ``times_s``: it hears nothing after.

    Frame ``i``'s window ends at ``i / fps + size / sr`` seconds (``frame_origin
    "start"``) or ``i / fps + size / (2 sr)`` (``"center"``); the result is
    ``floor((t - that extent) * fps)``, within the tolerance of
    :func:`time_to_frames`, and may be negative.
    """
    extent = config.frame_size_samples / config.sample_rate_hz
    if config.frame_origin == "center":
        extent /= 2
    x = (np.asarray(times_s, dtype=np.float64) - extent) * config.frame_rate_fps
    return np.floor(x + ONSET_TOLERANCE_FRAMES).astype(np.int64)


def frames_to_time(frames: np.ndarray | int, *, frame_rate_fps: float) -> np.ndarray:
    """Reference time of frames, ``i / fps`` seconds."""
    return np.asarray(frames, dtype=np.float64) / frame_rate_fps


def log_spectrogram(audio: np.ndarray, config: SpectrogramConfig = SpectrogramConfig(),
                    ) -> np.ndarray:
    """Log-filterbank magnitude spectrogram of mono audio.

    Parameters
    ----------
    audio : np.ndarray [shape=(n_samples,)]
        Mono audio at ``config.sample_rate_hz``, full scale +-1.
    config : SpectrogramConfig

    Returns
    -------
    spec : np.ndarray [shape=(n_bins, n_frames), dtype=float32]
        ``n_frames = ceil(n_samples * fps / sr)``.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise InputError(f"audio must be mono (1-d), got shape {audio.shape}")
    size = config.frame_size_samples
    count = n_frames(len(audio), sample_rate_hz=config.sample_rate_hz,
                     frame_rate_fps=config.frame_rate_fps)
    starts = frame_positions(count, sample_rate_hz=config.sample_rate_hz,
                             frame_rate_fps=config.frame_rate_fps)
    if config.frame_origin == "center":
        starts -= size // 2
    # The hop is a fraction a/b of samples, so frames i, i+b, i+2b, ... start
    # exactly a samples apart: each such phase is a strided view of the audio.
    hop = Fraction(config.sample_rate_hz) / config.frame_rate_fraction
    stride, period = hop.numerator, hop.denominator
    pad = size  # zeros before and after, so that every frame lies in the buffer
    padded = np.zeros(pad + len(audio) + size + pad, dtype=np.float32)
    padded[pad:pad + len(audio)] = audio
    windows = np.lib.stride_tricks.sliding_window_view(padded, size)
    window = np.hanning(size).astype(np.float32)
    # Sparse: the filters are narrow, and unlike BLAS the product does not
    # change in its last bits with the number of threads (Dask workers use one).
    fb = scipy.sparse.csr_matrix(config.filterbank().astype(np.float32))
    out = np.empty((count, fb.shape[1]), dtype=np.float32)
    frames = np.empty((min(FRAMES_PER_CHUNK, count), size), dtype=np.float32)
    for lo in range(0, count, FRAMES_PER_CHUNK):
        hi = min(lo + FRAMES_PER_CHUNK, count)
        for phase in range(min(period, hi - lo)):
            n = len(range(lo + phase, hi, period))
            first = starts[lo + phase] + pad
            np.multiply(windows[first:first + (n - 1) * stride + 1:stride], window,
                        out=frames[phase:hi - lo:period])
        mag = np.abs(scipy.fft.rfft(frames[:hi - lo], axis=1)[:, :size // 2])
        out[lo:hi] = mag @ fb
    out = np.log1p(out, out=out)
    if config.log == "log10":
        out *= np.float32(1.0 / math.log(10.0))
    return np.ascontiguousarray(out.T)


PRESETS: dict[str, SpectrogramConfig] = {
    "default": SpectrogramConfig(),
    "msmd": SpectrogramConfig(frame_rate_fps=20.0, bands_per_octave=16, fmax_hz=6000.0),
}


def load_preset(name_or_path: str) -> tuple[str, SpectrogramConfig]:
    """A preset by name (``default``, ``msmd``) or from a YAML file of config fields.

    Returns
    -------
    name : str
        The preset name (the file's stem for a YAML file), used in ``spec-<name>.npy``.
    config : SpectrogramConfig
    """
    if name_or_path in PRESETS:
        return name_or_path, PRESETS[name_or_path]
    path = Path(name_or_path)
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise ConfigError(f"unknown spectrogram preset {name_or_path!r}: use one of "
                          f"{', '.join(PRESETS)} or a .yaml file of SpectrogramConfig fields")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"spectrogram preset {path} is unreadable: {e}") from e
    if not isinstance(values, dict):
        raise ConfigError(f"spectrogram preset {path} must be a mapping of config fields")
    return path.stem, SpectrogramConfig.from_mapping(values)


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` in the ``.npy`` format, as bytes.

    Written to a file with one ``write``, a failure (a full disk) is an
    ``OSError`` with the system's cause, which ``np.save`` does not give.
    """
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def spectrogram_config_hash(config: SpectrogramConfig) -> str:
    """Hash of a spectrogram's parameters and the spectrogram stage's code version."""
    return sha256_json({"config": asdict(config), "stage_version": stage_version("spectrogram")})


def spectrogram_is_complete(perf_dir: Path, preset: str, input_hash: str,
                            config_hash: str) -> bool:
    """Whether ``spec-<preset>.npy`` in ``perf_dir`` is up to date."""
    meta = read_json(perf_dir / f"spec-{preset}.json")
    return (meta is not None and meta.get("status") == "complete"
            and meta.get("input_hash") == input_hash and meta.get("config_hash") == config_hash
            and (perf_dir / f"spec-{preset}.npy").is_file())


def needs_audio(perf_dir: Path, presets: Mapping[str, SpectrogramConfig]) -> bool:
    """Whether a synthesized performance lacks the audio that one of ``presets`` needs.

    True when a spectrogram is not up to date and the audio was removed (by
    an earlier spectrogram run without ``keep_audio``): synth must make it again.
    """
    meta = read_json(perf_dir / PERFORMANCE_JSON)
    if meta is None or meta.get("status") != "complete" or (perf_dir / AUDIO_NAME).is_file():
        return False
    input_hash = sha256_json([meta.get("input_hash"), meta.get("config_hash")])
    return any(not spectrogram_is_complete(perf_dir, name, input_hash,
                                           spectrogram_config_hash(cfg))
               for name, cfg in presets.items())


def spectrogram_input_hash(synth_manifest: Mapping) -> str:
    """The input hash of a performance's spectrograms, from its ``performance.json``.

    The spectrogram depends on the audio, which is fixed by the synth's
    input and config hashes; hashing those avoids reading the audio.
    """
    return sha256_json([synth_manifest["input_hash"], synth_manifest["config_hash"]])


def write_spectrogram(perf_dir: Path, name: str, cfg: SpectrogramConfig, audio: np.ndarray, *,
                      input_hash: str) -> None:
    """Compute preset ``name``'s spectrogram of ``audio`` (mono, float32) and write it.

    Writes ``spec-<name>.npy`` and then ``spec-<name>.json`` into ``perf_dir``.
    """
    spec = log_spectrogram(audio, cfg)
    npy = perf_dir / f"spec-{name}.npy"
    # The manifest goes first, so that no reader takes the old one for the new data.
    (perf_dir / f"spec-{name}.json").unlink(missing_ok=True)
    write_atomic(npy, lambda tmp: tmp.write_bytes(npy_bytes(spec)))
    write_json_atomic(perf_dir / f"spec-{name}.json", {
        "stage": "spectrogram", "status": "complete", "preset": name,
        "input_hash": input_hash, "config_hash": spectrogram_config_hash(cfg),
        "stage_version": stage_version("spectrogram"),
        "config": asdict(cfg), "shape": list(spec.shape), "dtype": "float32",
        "n_bins": spec.shape[0], "n_frames": spec.shape[1],
        "axes": ["bin", "frame"], "frame_rule": "onset t -> frame ceil(t * fps)",
        "audio_duration_s": len(audio) / cfg.sample_rate_hz,
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__},
    })


def spectrogram_performance(perf_dir: Path, presets: Mapping[str, SpectrogramConfig], *,
                            keep_audio: bool) -> tuple[int, int]:
    """Compute the missing spectrograms of one synthesized performance.

    Writes ``spec-<preset>.npy`` and then ``spec-<preset>.json`` per preset.
    Without ``keep_audio`` the audio is deleted once every preset's
    spectrogram exists, and ``performance.json`` records that.

    Parameters
    ----------
    perf_dir : Path
        ``PIECE/performances/<perf_id>`` with a complete ``performance.json``.
    presets : mapping of str to SpectrogramConfig
    keep_audio : bool

    Returns
    -------
    done, skipped : int
        Spectrograms computed and spectrograms already up to date.

    Raises
    ------
    InputError
        The audio is needed but missing, unreadable or at another sample rate.
    """
    meta = read_json(perf_dir / PERFORMANCE_JSON)
    if meta is None or meta.get("status") != "complete":
        raise InputError(f"{perf_dir / PERFORMANCE_JSON}: synthesis is not complete; "
                         "run `msmd-prep synth` first")
    input_hash = spectrogram_input_hash(meta)
    todo = {name: cfg for name, cfg in presets.items()
            if not spectrogram_is_complete(perf_dir, name, input_hash,
                                           spectrogram_config_hash(cfg))}
    audio_path = perf_dir / AUDIO_NAME
    if todo:
        if not audio_path.is_file():
            raise InputError(
                f"{audio_path} is missing (removed after earlier spectrograms); delete "
                f"{perf_dir / PERFORMANCE_JSON} and rerun `msmd-prep synth` to make it again")
        try:
            audio, sr = soundfile.read(audio_path, dtype="float32", always_2d=False)
        except (soundfile.LibsndfileError, RuntimeError) as e:
            raise InputError(f"{audio_path}: unreadable audio ({e})") from e
        for name, cfg in todo.items():
            if sr != cfg.sample_rate_hz:
                raise InputError(f"{audio_path} has {sr} Hz, preset {name!r} needs "
                                 f"{cfg.sample_rate_hz} Hz")
            write_spectrogram(perf_dir, name, cfg, audio, input_hash=input_hash)
    if not keep_audio and audio_path.is_file():
        write_json_atomic(perf_dir / PERFORMANCE_JSON, meta | {"audio_removed": True})
        audio_path.unlink()
    return len(todo), len(presets) - len(todo)


def spectrogram_workdir(workdir: Path, *, presets: Mapping[str, SpectrogramConfig],
                        keep_audio: bool = False, progress: bool = False) -> list[PieceResult]:
    """Compute spectrograms of every synthesized performance in ``workdir``.

    Parameters
    ----------
    workdir : Path
        Work folder with one sub-folder per piece.
    presets : mapping of str to SpectrogramConfig
        By preset name (see :func:`load_preset`); at least one.
    keep_audio : bool
        Keep ``audio.flac`` after its spectrograms exist (MSMD kept none).
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    results : list of PieceResult
        One per rendered piece, in name order; a piece with no synthesized
        performance is an error.
    """
    if not presets:
        raise ConfigError("need at least one spectrogram preset")
    results = []
    for piece in tqdm(rendered_pieces(workdir), desc="spectrogram", unit="piece",
                      disable=not progress):
        done = skipped = 0
        try:
            perf_dirs = [d for d in performance_dirs(piece) if (d / PERFORMANCE_JSON).is_file()]
            if not perf_dirs:
                raise InputError(f"{piece}: no synthesized performance; run `msmd-prep synth` first")
            for perf_dir in perf_dirs:
                d, s = spectrogram_performance(perf_dir, presets, keep_audio=keep_audio)
                done, skipped = done + d, skipped + s
        except MsmdPrepError as e:
            results.append(PieceResult(piece, done, skipped, str(e)))
            continue
        results.append(PieceResult(piece, done, skipped))
    return results
