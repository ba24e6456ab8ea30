"""msmd-prep inspect on the fixture dataset: pictures and a self-contained HTML page."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from msmd_prep.cli import main
from msmd_prep.inspect import COLOURS, find_dataset, head_state
from msmd_prep.score import NoteHead


def _head(tied=False, onsets=(1.0,)):
    return NoteHead("h1", 1, 0, 0, 1, 1, 0, 0, 0, 60, False, tied, onsets, "0", "a:1:1")


def test_head_state():
    assert head_state(_head(), None) == "aligned"
    assert head_state(_head(), []) == "unaligned"
    assert head_state(_head(tied=True, onsets=()), None) == "tie"
    assert head_state(_head(onsets=()), [2.0]) == "aligned"


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])


@pytest.mark.parametrize("piece,pages", [("multipage", 2), ("volta", 1)])
def test_inspect_writes_pictures_and_html(fixture_ds, tmp_path, piece, pages):
    assert find_dataset(fixture_ds.work / piece) == fixture_ds.dataset.resolve()
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["inspect", str(fixture_ds.work / piece), "--out",
                                       str(out), "--labels", "--samples", "4"])
    assert result.exit_code == 0, result.output
    names = [f"page-{k:03d}" for k in range(1, pages + 1)] + ["unrolled", "mapping", "samples"]
    for name in names:
        image = cv2.imread(str(out / f"{name}.png"))
        assert image is not None, name
        assert image.shape[0] > 100 and image.shape[1] > 300 and image.std() > 10, name
    page = cv2.imread(str(out / "page-001.png"))
    green = np.all(page == COLOURS["aligned"], axis=2).sum()
    blue = np.all(page == COLOURS["system"], axis=2).sum()
    assert green > 50 and blue > 100
    text = (out / "index.html").read_text()
    assert text.startswith("<!doctype html>") and text.rstrip().endswith("</html>")
    parser = _Tags()
    parser.feed(text)
    assert len(parser.srcs) == len(names)
    assert all(s.startswith("data:image/png;base64,") for s in parser.srcs)
    assert not re.search(r"src=['\"](?!data:)", text)


def test_inspect_with_dataset_option_and_bad_performance(fixture_ds, tmp_path):
    result = CliRunner().invoke(main, ["inspect", str(fixture_ds.work / "ties"), "--out",
                                       str(tmp_path), "--dataset", str(fixture_ds.again)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "samples.png").is_file()
    result = CliRunner().invoke(main, ["inspect", str(fixture_ds.work / "ties"),
                                       "--performance", "nosuch_t1.00"])
    assert result.exit_code == 1 and "timgm6mb_t1.00" in result.output
