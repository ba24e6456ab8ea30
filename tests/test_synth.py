"""The synth stage with the real FluidSynth and the default SoundFont."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner

from msmd_prep.cli import main
from msmd_prep.errors import ConfigError, InputError
from msmd_prep.score import NoteEvent, Performance, write_performance_csv
from msmd_prep.soundfonts import resolve_soundfont
from msmd_prep.spectrogram import (PRESETS, fft_frequencies, log_spectrogram, spectrogram_workdir,
                                   time_to_frames)
from msmd_prep.stage_versions import stage_version
from msmd_prep.synth import (BLOCK_SAMPLES, SynthConfig, Synthesizer, read_onsets_csv,
                             synthesize_workdir)

SR = 22050


@pytest.fixture(scope="module")
def soundfont():
    return resolve_soundfont("timgm6mb")


@pytest.fixture(scope="module")
def synth(soundfont):
    with Synthesizer(soundfont) as s:
        yield s


def melody(pitches, *, step_s=0.6, duration_s=0.4, start_s=0.3, velocity=90) -> Performance:
    return Performance(tuple(NoteEvent(start_s + step_s * i, duration_s, p, velocity, f"h{i}")
                             for i, p in enumerate(pitches)))


def sounding_onset_s(audio: np.ndarray) -> float:
    """Time of the first sample above 1/1000 of the peak."""
    return int(np.argmax(np.abs(audio) > 1e-3 * np.abs(audio).max())) / SR


def write_piece(workdir: Path, name: str, perf: Performance, status: str = "ok") -> Path:
    piece = workdir / name
    piece.mkdir(parents=True)
    write_performance_csv(perf, piece / "performance.csv")
    (piece / "piece.json").write_text(json.dumps({"status": status}))
    return piece


@pytest.mark.parametrize("factor", [0.8, 1.2])
@pytest.mark.parametrize("t", [0.0, 0.5, 1.23, 7.777])
def test_tempo_factor_scales_onsets(synth, t, factor):
    perf = Performance((NoteEvent(t, 0.5, 60, 100, "x"),))
    at_one = synth.render(perf)
    scaled = synth.render(perf.at_tempo(factor))
    half_block = BLOCK_SAMPLES / (2 * synth.config.synth_rate_hz) + 1e-9
    assert at_one.onsets[0][1] == pytest.approx(t, abs=half_block)
    assert scaled.onsets[0][1] == pytest.approx(t / factor, abs=half_block)
    # The table is where the note sounds: the audio is silent before it.
    assert sounding_onset_s(scaled.audio) == pytest.approx(scaled.onsets[0][1], abs=1e-3)


def test_onsets_lie_on_the_block_grid(synth):
    rendering = synth.render(melody([60, 62, 64], step_s=0.3333))
    for _, onset_s in rendering.onsets:
        assert (onset_s * synth.config.synth_rate_hz) % BLOCK_SAMPLES == 0


@pytest.mark.parametrize("preset", ["default", "msmd"])
def test_energy_at_the_pitch_in_each_onset_frame(synth, preset):
    pitches = [48, 55, 60, 64, 67, 72, 76, 79, 84, 91, 96]
    rendering = synth.render(melody(pitches))
    cfg = PRESETS[preset]
    spec = log_spectrogram(rendering.audio, cfg)
    fb = cfg.filterbank()
    bin_hz = fft_frequencies(sample_rate_hz=SR, frame_size_samples=cfg.frame_size_samples)
    for (_, onset_s), pitch in zip(rendering.onsets, pitches):
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        bands = np.nonzero(fb[np.argmin(np.abs(bin_hz - f0))])[0]
        frame = spec[:, time_to_frames(onset_s, frame_rate_fps=cfg.frame_rate_fps)]
        # The last frame whose window ends before the onset.
        before = spec[:, time_to_frames(onset_s - cfg.frame_size_samples / SR,
                                        frame_rate_fps=cfg.frame_rate_fps) - 1]
        rank = min(int((frame > frame[b]).sum()) for b in bands)
        assert rank < 4, (pitch, rank)
        assert max(frame[b] / max(before[b], 1e-12) for b in bands) > 100, pitch


def test_same_audio_whatever_the_synth_played_before(soundfont, synth):
    target = melody([60, 67, 72, 79])
    others = [Performance((NoteEvent(0.0, 0.1, 100, 10, "c"),)),
              Performance(tuple(NoteEvent(0.05 * i, 1.0, 30 + i % 60, 127, f"b{i}")
                                for i in range(120)))]
    with Synthesizer(soundfont) as fresh:
        reference = fresh.render(target).audio
    for other in others:
        synth.render(other)
        assert np.array_equal(synth.render(target).audio, reference)


def test_release_tail_is_bounded(soundfont):
    perf = Performance((NoteEvent(0.0, 1.0, 60, 100, "x"),))
    with Synthesizer(soundfont, SynthConfig(max_tail_s=0.0)) as cut:
        none = cut.render(perf)
    assert none.tail_s == 0.0
    assert abs(len(none.audio) - SR * 1.0) <= BLOCK_SAMPLES / 2  # ends at the note-off
    with Synthesizer(soundfont, SynthConfig(tail_threshold_dbfs=-200.0, max_tail_s=0.5)) as s:
        longest = s.render(perf)
    assert longest.tail_s <= 0.5 + 2048 / s.config.synth_rate_hz
    with Synthesizer(soundfont) as s:
        default = s.render(perf)
    assert 0 < default.tail_s <= 5.0
    end = default.audio[-int(0.01 * SR):]
    assert np.max(np.abs(end)) < 10 ** (-60 / 20)


def test_fixed_velocity_ignores_the_score(soundfont):
    soft = Performance((NoteEvent(0.0, 0.5, 60, 20, "x"),))
    loud = Performance((NoteEvent(0.0, 0.5, 60, 120, "x"),))
    with Synthesizer(soundfont) as s:
        assert np.abs(s.render(loud).audio).max() > 2 * np.abs(s.render(soft).audio).max()
    with Synthesizer(soundfont, SynthConfig(velocity_policy="fixed", fixed_velocity=64)) as s:
        assert np.array_equal(s.render(loud).audio, s.render(soft).audio)


def test_overlapping_notes_of_one_pitch_hold_the_key(synth):
    long_and_short = Performance((NoteEvent(0.0, 2.0, 60, 90, "a"),
                                  NoteEvent(0.5, 0.5, 60, 90, "b")))
    short_only = Performance((NoteEvent(0.0, 1.0, 60, 90, "a"),))
    held = synth.render(long_and_short).audio
    released = np.zeros_like(held)
    audio = synth.render(short_only).audio
    released[:len(audio)] = audio
    window = slice(int(1.4 * SR), int(1.9 * SR))
    rms_held = np.sqrt(np.mean(held[window] ** 2))
    assert rms_held > 1e-4
    assert rms_held > 10 * np.sqrt(np.mean(released[window] ** 2))


def test_a_unison_of_two_heads_strikes_the_key_once(synth):
    # Two voices' heads at one onset and pitch: two events, one strike, as loud as one note.
    unison = Performance((NoteEvent(0.2, 1.0, 60, 90, "a"), NoteEvent(0.2, 0.5, 60, 70, "b")))
    single = Performance((NoteEvent(0.2, 1.0, 60, 90, "a"),))
    both, one = synth.render(unison), synth.render(single)
    assert [h for h, _ in both.onsets] == ["a", "b"]
    assert np.array_equal(both.audio, one.audio)


def test_clipping_and_empty_performances_are_input_errors(soundfont):
    chord = Performance(tuple(NoteEvent(0.0, 1.0, 40 + 3 * i, 127, f"c{i}") for i in range(20)))
    with Synthesizer(soundfont, SynthConfig(gain=10.0)) as s, pytest.raises(InputError, match="clip"):
        s.render(chord)
    with Synthesizer(soundfont) as s, pytest.raises(InputError, match="no notes"):
        s.render(Performance(()))


@pytest.mark.parametrize("kwargs", [
    {"sample_rate_hz": 44100, "synth_rate_hz": 22050}, {"velocity_policy": "loud"},
    {"fixed_velocity": 0}, {"gain": 0.0}, {"tail_threshold_dbfs": 3.0}, {"max_tail_s": -1.0},
])
def test_config_is_validated(kwargs):
    with pytest.raises(ConfigError, match=repr(next(iter(kwargs.values())))):
        SynthConfig(**kwargs)


def test_stage_writes_resumes_and_reports_failures(tmp_path, soundfont):
    good = write_piece(tmp_path, "good", melody([60, 64, 67, 60]))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "performance.csv").write_text("onset_s,duration_s,pitch,velocity,notehead_id\n"
                                         "0,1,200,64,x\n")
    (bad / "piece.json").write_text('{"status": "ok"}')
    write_piece(tmp_path, "unrendered", melody([60]), status="failed")

    results = synthesize_workdir(tmp_path, tempo_factors=[1.0, 1.2], soundfonts=[soundfont])
    by_name = {r.piece.name: r for r in results}
    assert set(by_name) == {"bad", "good"}
    assert by_name["good"].error is None and by_name["good"].done == 2
    assert "bad/performance.csv" in by_name["bad"].error and "pitch 200" in by_name["bad"].error

    perf_dir = good / "performances" / "timgm6mb_t1.20"
    info = soundfile.info(perf_dir / "audio.flac")
    assert (info.samplerate, info.channels, info.format) == (SR, 1, "FLAC")
    meta = json.loads((perf_dir / "performance.json").read_text())
    assert meta["tempo_factor"] == 1.2 and meta["soundfont"]["sha256"] == soundfont.sha256
    assert meta["velocity_policy"] == "score" and meta["sample_rate_hz"] == SR
    # Rendered at the audio's rate (no resampling), and recorded so.
    assert meta["synth_rate_hz"] == SR and meta["event_quantum_s"] == BLOCK_SAMPLES / SR
    assert meta["stage_version"] == stage_version("synth")
    assert meta["fluidsynth_settings"]["synth.reverb.active"] == 0
    onsets = read_onsets_csv(perf_dir / "onsets.csv")
    assert [h for h, _ in onsets] == ["h0", "h1", "h2", "h3"]
    assert onsets[1][1] == pytest.approx(0.9 / 1.2, abs=BLOCK_SAMPLES / (2 * SR) + 1e-6)
    assert not list(tmp_path.rglob(".*tmp*"))

    again = synthesize_workdir(tmp_path, tempo_factors=[1.0, 1.2], soundfonts=[soundfont])
    assert {r.piece.name: (r.done, r.skipped) for r in again}["good"] == (0, 2)

    # Without --keep-audio the audio goes once its spectrogram exists; reruns still skip.
    spectrogram_workdir(tmp_path, presets={"msmd": PRESETS["msmd"]}, keep_audio=False)
    assert not (perf_dir / "audio.flac").exists()
    assert (perf_dir / "spec-msmd.npy").is_file()
    rerun = synthesize_workdir(tmp_path, tempo_factors=[1.0, 1.2], soundfonts=[soundfont])
    assert {r.piece.name: (r.done, r.skipped) for r in rerun}["good"] == (0, 2)
    spec_rerun = spectrogram_workdir(tmp_path, presets={"msmd": PRESETS["msmd"]})
    assert {r.piece.name: (r.done, r.skipped) for r in spec_rerun}["good"] == (0, 2)
    with pytest.raises(InputError, match="audio.flac is missing"):
        from msmd_prep.spectrogram import spectrogram_performance
        spectrogram_performance(perf_dir, {"default": PRESETS["default"]}, keep_audio=False)

    # A changed performance is synthesized again.
    write_performance_csv(melody([62, 65]), good / "performance.csv")
    changed = synthesize_workdir(tmp_path, tempo_factors=[1.0, 1.2], soundfonts=[soundfont])
    assert {r.piece.name: r.done for r in changed}["good"] == 2
    assert (perf_dir / "audio.flac").is_file()


def test_stage_refuses_colliding_performance_ids(tmp_path, soundfont):
    with pytest.raises(ConfigError, match="repeat a performance id"):
        synthesize_workdir(tmp_path, tempo_factors=[1.0, 1.001], soundfonts=[soundfont])


def test_cli_synth_then_spectrogram(tmp_path):
    write_piece(tmp_path, "piece", melody([60, 64, 67]))
    runner = CliRunner()
    result = runner.invoke(main, ["synth", str(tmp_path), "--tempo", "0.8", "1.0",
                                  "--soundfont", "timgm6mb", "--velocity", "64"])
    assert result.exit_code == 0, result.output
    perf_root = tmp_path / "piece" / "performances"
    assert sorted(p.name for p in perf_root.iterdir()) == ["timgm6mb_t0.80", "timgm6mb_t1.00"]
    meta = json.loads((perf_root / "timgm6mb_t0.80" / "performance.json").read_text())
    assert (meta["velocity_policy"], meta["fixed_velocity"]) == ("fixed", 64)

    result = runner.invoke(main, ["spectrogram", str(tmp_path), "--preset", "default", "msmd",
                                  "--keep-audio"])
    assert result.exit_code == 0, result.output
    for perf in perf_root.iterdir():
        assert (perf / "audio.flac").is_file()
        assert np.load(perf / "spec-default.npy").shape[0] == 136
        assert np.load(perf / "spec-msmd.npy").shape[0] == 92

    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "performance.csv").write_text("nonsense\n1\n")
    (tmp_path / "broken" / "piece.json").write_text('{"status": "ok"}')
    result = runner.invoke(main, ["synth", str(tmp_path)])
    assert result.exit_code == 1
    assert "FAILED" in result.output and "broken/performance.csv" in result.output

    result = runner.invoke(main, ["synth", str(tmp_path), "--soundfont", "nosuch"])
    assert result.exit_code == 2 and "unknown SoundFont 'nosuch'" in result.output
