"""A dataset is exactly what its command asked for, whatever ran before (issue 11)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from msmd_prep import stage_versions
from msmd_prep.align import AlignConfig, align_piece
from msmd_prep.dataset import build_dataset
from msmd_prep.errors import AlignmentError, InputError
from msmd_prep.packing.snippets import PackConfig, pack_workdir
from msmd_prep.render import RenderConfig, render_score
from msmd_prep.soundfonts import load_manifest
from msmd_prep.synth import SynthConfig

SCORES = Path(__file__).parent / "fixtures" / "scores"
PIECES = [SCORES / "melody.ly", SCORES / "ties.ly"]
SEED = 6


def _build(out: Path, scores=PIECES, *, tempos=(1.0,), soundfonts=("timgm6mb",),
           preset="msmd", velocity=None, **kwargs):
    synth = SynthConfig() if velocity is None else SynthConfig(velocity_policy="fixed",
                                                               fixed_velocity=velocity)
    return build_dataset(list(scores), out, render_config=RenderConfig(dpi=100),
                         tempo_factors=list(tempos), soundfonts=list(soundfonts),
                         synth_config=synth, pack_config=PackConfig(preset=preset, seed=SEED),
                         **kwargs)


def _index(dataset: Path) -> dict:
    return json.loads((dataset / "index.json").read_text())


def _shards(dataset: Path) -> list[tuple[str, str]]:
    return [(s["path"], s["sha256"]) for split in _index(dataset)["splits"].values()
            for s in split["shards"]]


def _performances(dataset: Path) -> set[str]:
    return {p for piece in _index(dataset)["pieces"].values() for p in piece["performances"]}


def test_a_rerun_with_another_tempo_set_packs_only_that_set(tmp_path):
    assert not _build(tmp_path, tempos=[1.0]).failures
    result = _build(tmp_path, tempos=[0.8])
    assert not result.failures, result.failures
    index = _index(tmp_path / "dataset")
    assert _performances(tmp_path / "dataset") == {"timgm6mb_t0.80"}
    assert index["request"]["tempo_factors"] == [0.8]
    assert index["request"]["performances"] == ["timgm6mb_t0.80"]
    assert index["request"]["seed"] == SEED and index["request"]["pack_preset"] == "msmd"
    assert set(index["request"]["soundfonts"]) == {"timgm6mb"}
    for name, piece in index["pieces"].items():
        assert piece["performance_samples"] == {"timgm6mb_t0.80": piece["samples"]}, name
    # A piece of an earlier run that is not in this run's input is not packed either.
    assert not _build(tmp_path, scores=PIECES[:1], tempos=[0.8]).failures
    assert set(_index(tmp_path / "dataset")["pieces"]) == {"melody"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("built")
    assert not _build(out, tempos=[1.0, 1.2], keep_audio=True).failures
    return out / "work"


@pytest.fixture
def work(built, tmp_path) -> Path:
    """A copy of a work folder of two pieces at two tempos, packed once."""
    shutil.copytree(built, tmp_path / "work")
    return tmp_path / "work"


def _pack(work: Path, **config) -> dict:
    pack_workdir(work, work.parent / "again", PackConfig(seed=SEED, **config))
    return _index(work.parent / "again")


def test_a_failed_align_after_a_successful_one_leaves_the_old_alignment_out(work):
    perf = work / "ties" / "performances" / "timgm6mb_t1.00"
    rows = (perf / "onsets.csv").read_text().splitlines()
    (perf / "onsets.csv").write_text("\n".join(rows + ["h999999,0.5"]) + "\n")
    with pytest.raises(AlignmentError, match="h999999"):
        align_piece(work / "ties", AlignConfig(spectrogram_preset="msmd"))
    index = _pack(work)
    assert index["left_out"]["ties/timgm6mb_t1.00"]["reason"] == "stale"
    assert index["pieces"]["ties"]["performances"] == ["timgm6mb_t1.20"]
    assert "timgm6mb_t1.00" in index["pieces"]["melody"]["performances"]


@pytest.mark.parametrize("stage", ["synth", "spectrogram", "align"])
def test_a_bumped_stage_version_redoes_that_stage_and_later(work, monkeypatch, stage):
    manifests = {"render": "piece.json", "synth": "performances/timgm6mb_t1.00/performance.json",
                 "spectrogram": "performances/timgm6mb_t1.00/spec-msmd.json",
                 "align": "performances/timgm6mb_t1.00/alignment.json"}
    before = {s: (work / "melody" / m).read_bytes() for s, m in manifests.items()}
    monkeypatch.setitem(stage_versions.STAGE_VERSIONS, stage,
                        stage_versions.STAGE_VERSIONS[stage] + 1)
    with pytest.raises(InputError, match="no piece to pack .*stale"):
        _pack(work)
    assert not _build(work.parent, tempos=[1.0, 1.2], keep_audio=True).failures
    after = {s: (work / "melody" / m).read_bytes() for s, m in manifests.items()}
    order = list(manifests)
    for s in order:
        redone = order.index(s) >= order.index(stage)
        assert (before[s] != after[s]) == redone, (s, redone)


def test_an_unreadable_alignment_json_is_never_taken_as_good(work):
    (work / "melody" / "performances" / "timgm6mb_t1.00" / "alignment.json").write_text("{")
    checks = work / "ties" / "performances" / "timgm6mb_t1.20" / "alignment.json"
    info = json.loads(checks.read_text())
    del info["aligned_well"]
    checks.write_text(json.dumps(info))
    (work / "ties" / "performances" / "timgm6mb_t1.00" / "alignment.json").unlink()
    left_out = _pack(work)["left_out"]
    assert left_out["melody/timgm6mb_t1.00"]["reason"] == "unreadable"
    assert left_out["ties/timgm6mb_t1.20"]["reason"] == "unreadable"
    assert left_out["ties/timgm6mb_t1.00"]["reason"] == "missing"
    assert left_out["ties"]["reason"] == "unreadable"


def test_a_flag_of_one_performance_leaves_out_that_performance_only(work):
    path = work / "melody" / "performances" / "timgm6mb_t1.20" / "alignment.json"
    info = json.loads(path.read_text())
    info["aligned_well"] = False
    info["checks"]["energy"]["passed"] = False
    path.write_text(json.dumps(info))
    index = _pack(work)
    assert index["pieces"]["melody"]["performances"] == ["timgm6mb_t1.00"]
    assert index["left_out"]["melody/timgm6mb_t1.20"] == {
        "reason": "flagged", "detail": "failed self-checks: energy"}
    assert _pack(work, include_flagged=True)["pieces"]["melody"]["performances"] == [
        "timgm6mb_t1.00", "timgm6mb_t1.20"]
    # A check of the score leaves out the piece.
    piece = work / "ties" / "piece.json"
    info = json.loads(piece.read_text())
    info["aligned_well"] = False
    info["checks"]["ink"]["passed"] = False
    piece.write_text(json.dumps(info))
    index = _pack(work)
    assert "ties" not in index["pieces"]
    assert index["left_out"]["ties"] == {"reason": "flagged", "detail": "failed self-checks: ink"}


def test_a_bad_piece_is_left_out_with_its_reason_and_the_others_are_packed(work):
    long_name = "x" * 100
    shutil.copytree(work / "melody", work / long_name)
    (work / "ties" / "performances" / "timgm6mb_t1.00" / "spec-msmd.npy").write_bytes(b"junk")
    index = _pack(work)
    assert index["left_out"][long_name]["reason"] == "unreadable"
    assert "longer than 64 bytes" in index["left_out"][long_name]["detail"]
    assert index["left_out"]["ties/timgm6mb_t1.00"]["reason"] == "unreadable"
    assert set(index["pieces"]) == {"melody", "ties"}
    assert index["pieces"]["ties"]["performances"] == ["timgm6mb_t1.20"]


def test_a_score_changed_since_render_is_stale(tmp_path):
    score = tmp_path / "melody.ly"
    score.write_text((SCORES / "melody.ly").read_text())
    assert not _build(tmp_path / "out", scores=[score]).failures
    score.write_text((SCORES / "melody.ly").read_text().replace("g2 g", "g2 a"))
    with pytest.raises(InputError, match="stale: its score changed"):
        pack_workdir(tmp_path / "out" / "work", tmp_path / "again", PackConfig(seed=SEED))


def test_a_render_that_made_the_same_piece_redoes_no_later_stage(tmp_path):
    piece = tmp_path / "work" / "melody"
    assert not _build(tmp_path, scores=PIECES[:1]).failures
    perf = piece / "performances" / "timgm6mb_t1.00"
    before = {n: (perf / n).read_bytes() for n in ("performance.json", "alignment.json")}
    info = json.loads((piece / "piece.json").read_text())
    # Another time limit: a new render (its config differs), the same piece.
    result = render_score(SCORES / "melody.ly", piece, RenderConfig(dpi=100, timeout_s=99))
    assert not result.skipped
    assert json.loads((piece / "piece.json").read_text())["config"]["timeout_s"] == 99
    assert info["config"]["timeout_s"] != 99
    assert align_piece(piece, AlignConfig(spectrogram_preset="msmd")) == (0, 1)
    assert {n: (perf / n).read_bytes() for n in before} == before


def test_undrawn_heads_and_an_onset_of_an_unknown_head(tmp_path):
    score = tmp_path / "hidden.ly"
    score.write_text('\\version "2.24.0"\n{ c\'4 \\hideNotes d\'4 \\unHideNotes e\'4 f\'4 }\n')
    assert not _build(tmp_path / "out", scores=[score]).failures
    piece = tmp_path / "out" / "work" / "hidden"
    info = json.loads((piece / "piece.json").read_text())
    assert len(info["undrawn_heads"]) == info["counts"]["noteheads_not_drawn"] == 1
    perf = piece / "performances" / "timgm6mb_t1.00"
    assert json.loads((perf / "alignment.json").read_text())["onsets_of_hidden_heads"] == 1
    rows = (perf / "onsets.csv").read_text().splitlines()
    (perf / "onsets.csv").write_text("\n".join(rows + ["h424242,0.25"]) + "\n")
    with pytest.raises(AlignmentError, match="h424242"):
        align_piece(piece, AlignConfig(spectrogram_preset="msmd"))


def test_reruns_end_where_a_fresh_build_starts(tmp_path):
    """Done when: a dataset built once with the final options is byte-identical to one built
    through reruns with other options, tempos, SoundFonts and presets."""
    extra = [n for n in ("fluidr3_gm",) if load_manifest()[n].locate() is not None]
    final = dict(tempos=[1.0, 1.2], soundfonts=["timgm6mb"])
    steps = [dict(tempos=[1.0]),
             dict(tempos=[0.8, 1.2], soundfonts=["timgm6mb", *extra], velocity=64),
             dict(tempos=[1.0], preset="dorfer2016"),
             dict(tempos=[1.2, 1.5], keep_audio=True),
             final]
    for step in steps:
        assert not _build(tmp_path / "reruns", **step).failures, step
    assert not _build(tmp_path / "fresh", **final).failures
    assert _shards(tmp_path / "reruns" / "dataset") == _shards(tmp_path / "fresh" / "dataset")
    assert _performances(tmp_path / "reruns" / "dataset") == {"timgm6mb_t1.00",
                                                              "timgm6mb_t1.20"}
