"""Score-following data: bucket targets, staff images, excerpts ending at the onset, the reader."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from msmd_prep.cli import main
from msmd_prep.data import ScoreFollowingDataset, SnippetDataset
from msmd_prep.errors import ConfigError, InputError
from msmd_prep.packing.core import SPLITS
from msmd_prep.score import System
from msmd_prep.packing.score_following import (ScoreFollowingConfig, bucket_centres,
                                               bucket_edges, bucket_of, soft_targets,
                                               spec_ending_at, staff_crop, staff_image)


@pytest.fixture(scope="module")
def sf_dataset(fixture_ds, tmp_path_factory):
    """The fixture work folder packed for score following by the CLI (msmd spectrogram)."""
    out = tmp_path_factory.mktemp("sf") / "dataset"
    result = CliRunner().invoke(main, ["pack", str(fixture_ds.work), "--out", str(out),
                                       "--task", "score-following", "--spectrogram-preset",
                                       "msmd", "--seed", "6"])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("n_buckets", [39, 7, 1])
@pytest.mark.parametrize("weights", [(0.5,), (0.5, 0.25), ()])
def test_soft_targets_sum_to_one_and_peak_at_the_head(n_buckets, weights):
    xs = np.array([0.0, 0.2, 5.0, 9.999, 10.0, 55.7, 195.0, 384.0, 389.99])
    targets = soft_targets(xs, n_buckets=n_buckets, width_px=390, neighbour_weights=weights)
    assert targets.shape == (len(xs), n_buckets) and targets.dtype == np.float32
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-6)
    edges = bucket_edges(n_buckets, width_px=390)
    best = targets.argmax(axis=1)
    assert ((edges[best] <= xs) & (xs < edges[best + 1])).all()
    np.testing.assert_array_equal(best, bucket_of(xs, n_buckets=n_buckets, width_px=390))


def test_documented_weights():
    t = soft_targets([195.0, 1.0, 389.0], n_buckets=39, width_px=390)
    np.testing.assert_allclose(t[0, 18:21], [0.25, 0.5, 0.25])
    np.testing.assert_allclose(t[1, :2], [2 / 3, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(t[2, -2:], [1 / 3, 2 / 3], rtol=1e-6)
    np.testing.assert_allclose(bucket_centres(39, width_px=390)[:2], [5.0, 15.0])
    assert ScoreFollowingConfig().n_buckets == 39


@pytest.mark.parametrize("onset", [0, 5, 39, 60, 99])
def test_spec_excerpt_ends_at_the_onset_frame(onset):
    spec = np.arange(3 * 100, dtype=np.float32).reshape(3, 100) + 1
    excerpt, start = spec_ending_at(spec, onset, n_frames=40)
    assert excerpt.shape == (3, 40) and start == onset - 39
    np.testing.assert_array_equal(excerpt[:, -1], spec[:, onset])
    assert (excerpt[:, :max(0, -start)] == 0).all()


def test_staff_image_fills_the_height_with_the_system():
    page = np.full((400, 600), 255, np.uint8)
    page[100:181:20, 50:551] = 0                  # five staff lines, box y 100..181
    system = System(0, 1, 50.0, 100.0, 551.0, 181.0, 1)
    crop = staff_crop(system, image_height_px=40, image_width_px=390, staff_height_px=40)
    image = staff_image(page, crop, image_height_px=40, image_width_px=390)
    assert image.shape == (40, 390)
    dark_rows = np.nonzero((image < 200).any(axis=1))[0]
    assert dark_rows.min() <= 1 and dark_rows.max() >= 38
    x, _ = crop.to_image(551.0, 0.0)
    assert float(x) == pytest.approx(390.0)


@pytest.mark.parametrize("kwargs", [
    {"image_height_px": 0}, {"staff_height_px": 41}, {"bucket_width_px": 0},
    {"neighbour_weights": (1.5,)}, {"spec_frames": 2.5}, {"spec_dtype": "int8"},
    {"split_fractions": (0.2, 0.2, 0.2)}, {"spectrogram_preset": ""}])
def test_config_rejects(kwargs):
    with pytest.raises(ConfigError):
        ScoreFollowingConfig(**kwargs)


@pytest.mark.parametrize("split", SPLITS)
def test_packed_samples(fixture_ds, sf_dataset, split):
    ds = ScoreFollowingDataset(sf_dataset, split)
    index = json.loads((sf_dataset / "index.json").read_text())
    assert index["task"] == "score-following" and index["staff_shape"] == [40, 390]
    assert len(ds) == index["splits"][split]["count"] > 0
    for entry in index["splits"][split]["shards"]:     # compressed like snippet shards
        with h5py.File(sf_dataset / entry["path"], "r") as f:
            assert json.loads(f.attrs["codecs"])["staff"]["name"] == "blosc-lz4hc"
            assert f["staff"].chunks[0] == 1 and f["staff"].compression is not None
            assert "spec_frames" in f and f["target"].shape[1] == 39
    full = {}
    for i in range(len(ds)):
        staff, spec, target, meta = ds[i]
        assert staff.shape == (40, 390) and staff.dtype == np.uint8 and staff.std() > 10
        assert spec.shape == (92, 40) and target.shape == (39,)
        assert target.sum() == pytest.approx(1.0, abs=1e-5)
        b = int(target.argmax())
        assert b == meta["bucket"]
        assert ds.bucket_edges[b] <= meta["head_x"] < ds.bucket_edges[b + 1]
        assert abs(ds.bucket_centres[b] - meta["head_x"]) <= 5.0
        assert meta["spec_start_frame"] + 39 == meta["onset_frame"]
        key = (meta["piece"], meta["performance"])
        if key not in full:
            full[key] = np.load(fixture_ds.work / meta["piece"] / "performances"
                                / meta["performance"] / "spec-msmd.npy").astype(np.float16)
        np.testing.assert_array_equal(spec[:, -1], full[key][:, meta["onset_frame"]])
        start = meta["spec_start_frame"]
        np.testing.assert_array_equal(spec[:, max(start, 0) - start:],
                                      full[key][:, max(start, 0):meta["onset_frame"] + 1])
        if 2 <= meta["head_y"] < 38:   # the head is inked where head_x, head_y say
            x, y = int(meta["head_x"]), int(meta["head_y"])
            assert (staff[y - 2:y + 3, max(x - 3, 0):x + 4] < 160).any()
    staff, spec, target, meta = ds[[0, len(ds) - 1]]
    assert staff.shape == (2, 40, 390) and target.shape == (2, 39)
    np.testing.assert_array_equal(target[1], ds[-1][2])


def test_readers_refuse_the_other_task(fixture_ds, sf_dataset):
    with pytest.raises(InputError, match="ScoreFollowingDataset"):
        SnippetDataset(sf_dataset, "train")
    with pytest.raises(InputError, match="SnippetDataset"):
        ScoreFollowingDataset(fixture_ds.dataset, "train")


def test_missing_spectrogram_names_the_command(fixture_ds, tmp_path):
    result = CliRunner().invoke(main, ["pack", str(fixture_ds.work), "--out",
                                       str(tmp_path / "ds"), "--task", "score-following"])
    assert result.exit_code == 1
    assert "msmd-prep spectrogram" in result.output
