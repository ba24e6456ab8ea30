"""Check a real performance's alignment by ear and by eye.

* ``listen.wav``: stereo, the performance's audio on the left and a click at
  every aligned onset on the right, at 22.05 kHz;
* a spectrogram picture with every aligned onset drawn on it.

The audio is the performance folder's ``audio.flac``, or, once the
spectrogram stage removed it, the source recording itself (recorded audio
only; a MIDI performance's rendering needs ``--keep-audio``).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile

from ..spectrogram import PRESETS, log_spectrogram
from ..synth import AUDIO_NAME, ONSETS_NAME, read_onsets_csv
from ..workdir import read_json, write_atomic
from .perform import KIND_AUDIO, SAMPLE_RATE_HZ, read_recording

LISTEN_NAME = "listen.wav"
CLICK_HZ = 2000.0
CLICK_S = 0.015
STRIP_S = 15.0
MAX_STRIPS = 4


def click_track(onsets_s: np.ndarray, n_samples: int,
                sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """A click (15 ms decaying 2 kHz tone) at every distinct onset; float32, peak 0.5.

    Parameters
    ----------
    onsets_s : np.ndarray
        Onsets in seconds; several notes at one time give one click.
    n_samples : int
        Length of the track.
    """
    n = int(CLICK_S * sample_rate_hz)
    t = np.arange(n) / sample_rate_hz
    click = (np.sin(2 * np.pi * CLICK_HZ * t) * np.exp(-t / (CLICK_S / 5))).astype(np.float32)
    out = np.zeros(n_samples, dtype=np.float32)
    for start in np.unique(np.rint(np.asarray(onsets_s) * sample_rate_hz).astype(np.int64)):
        if 0 <= start < n_samples:
            stop = min(start + n, n_samples)
            out[start:stop] += click[: stop - start]
    peak = float(np.max(np.abs(out))) if n_samples else 0.0
    return out * (0.5 / peak) if peak > 0 else out


def performance_audio(perf_dir: Path) -> np.ndarray | None:
    """The performance's audio at 22.05 kHz mono, or ``None`` when it is gone."""
    if (perf_dir / AUDIO_NAME).is_file():
        audio, _ = soundfile.read(perf_dir / AUDIO_NAME, dtype="float32")
        return audio
    meta = read_json(perf_dir / "performance.json") or {}
    source = Path(meta.get("source", {}).get("path", ""))
    if meta.get("kind") == KIND_AUDIO and source.is_file():
        return read_recording(source)
    return None


def write_listening(audio: np.ndarray, onsets_s: np.ndarray, path: Path) -> None:
    """Write ``listen.wav``: music left, clicks right (16-bit WAV, 22.05 kHz)."""
    peak = max(float(np.max(np.abs(audio))), 1e-9)
    stereo = np.stack([0.9 * audio / peak, click_track(onsets_s, len(audio))], axis=1)
    write_atomic(path, lambda tmp: soundfile.write(tmp, stereo, SAMPLE_RATE_HZ,
                                                   subtype="PCM_16"))


def onsets_picture(audio: np.ndarray, onsets_s: np.ndarray, title: str) -> bytes:
    """PNG bytes: the log spectrogram (preset ``default``) in 15 s strips, onsets as red lines.

    At most the first four strips (one minute) are drawn.
    """
    from matplotlib.figure import Figure as MplFigure

    cfg = PRESETS["default"]
    spec = log_spectrogram(audio, cfg)
    fps = cfg.frame_rate_fps
    duration = len(audio) / SAMPLE_RATE_HZ
    n_strips = max(1, min(MAX_STRIPS, int(np.ceil(duration / STRIP_S))))
    fig = MplFigure(figsize=(14, 2.4 * n_strips), layout="constrained")
    axes = fig.subplots(n_strips, 1, squeeze=False)[:, 0]
    for k, ax in enumerate(axes):
        t0, t1 = k * STRIP_S, (k + 1) * STRIP_S
        f0, f1 = int(t0 * fps), min(int(t1 * fps), spec.shape[1])
        ax.imshow(spec[:, f0:f1], origin="lower", aspect="auto", cmap="magma",
                  extent=(t0, t0 + (f1 - f0) / fps, 0, spec.shape[0]))
        shown = onsets_s[(onsets_s >= t0) & (onsets_s < t1)]
        ax.vlines(np.unique(shown), 0, spec.shape[0], colors="cyan", linewidth=0.6, alpha=0.8)
        ax.set_xlim(t0, t1)
        ax.set_ylabel("bin")
    axes[0].set_title(title)
    axes[-1].set_xlabel("time (s)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


def listening_outputs(perf_dir: Path, out: Path) -> tuple[bytes | None, str]:
    """Write ``out/listen.wav`` of a real performance; return the picture and a caption or a note.

    Returns
    -------
    png, text : bytes or None, str
        The spectrogram picture and its caption, or ``None`` and why nothing was written.
    """
    audio = performance_audio(perf_dir)
    if audio is None:
        return None, (f"{perf_dir.name}: its audio was removed after the spectrogram; rerun "
                      "with --keep-audio to listen to it")
    onsets = np.array([t for _, t in read_onsets_csv(perf_dir / ONSETS_NAME)])
    out.mkdir(parents=True, exist_ok=True)
    write_listening(audio, onsets, out / LISTEN_NAME)
    meta = read_json(perf_dir / "performance.json") or {}
    png = onsets_picture(audio, onsets, f"{perf_dir.name}: aligned onsets")
    caption = (f"{perf_dir.name} ({meta.get('kind')}, confidence {meta.get('confidence', 0):.2f}, "
               f"repeats {meta.get('repeats', {}).get('choice')}): the spectrogram with its "
               f"{len(onsets)} aligned onsets (cyan), first {MAX_STRIPS * STRIP_S:.0f} s; "
               f"{LISTEN_NAME} plays the music left and a click at every onset right")
    return png, caption
