"""The command line's many-valued options, spread before click parses them."""
from __future__ import annotations

import pytest

from msmd_prep.cli import spread_many_values

NAMES = {"--tempo", "--soundfont"}


@pytest.mark.parametrize("args, spread", [
    (["w", "--tempo", "0.8", "1.0", "1.2", "--gain", "0.3"],
     ["w", "--tempo", "0.8", "--tempo", "1.0", "--tempo", "1.2", "--gain", "0.3"]),
    (["--tempo", "0.8", "--soundfont", "a", "b.sf2", "w"],
     ["--tempo", "0.8", "--soundfont", "a", "--soundfont", "b.sf2", "--soundfont", "w"]),
    (["--tempo=0.8", "1.0"], ["--tempo=0.8", "--tempo", "1.0"]),
    (["--tempo", "-1", "2"], ["--tempo", "-1", "--tempo", "2"]),       # first word is the value
    (["--gain", "0.8", "1.0"], ["--gain", "0.8", "1.0"]),              # not many-valued
    (["--tempo", "0.8", "--", "1.0"], ["--tempo", "0.8", "--", "1.0"]),
])
def test_spread_many_values(args, spread):
    assert spread_many_values(args, NAMES) == spread
