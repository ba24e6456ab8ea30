"""SoundFont manifest, lookup by name and path, checksums, and the Debian SoundFonts."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from msmd_prep.errors import ConfigError
from msmd_prep.score import NoteEvent, Performance
from msmd_prep.soundfonts import load_manifest, resolve_soundfont
from msmd_prep.synth import Synthesizer
from msmd_prep.workdir import sha256_file

MANIFEST_TEMPLATE = """\
default: {name}
soundfonts:
  {name}:
    file: {file}
    bank: 0
    preset: 0
    licence: test
    sha256: "{sha256}"
    paths: [{path}]
    get: "apt-get install some-package"
"""


def write_manifest(tmp_path: Path, *, name: str, path: Path, sha256: str) -> Path:
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(MANIFEST_TEMPLATE.format(name=name, file=path.name, sha256=sha256,
                                                 path=path))
    return manifest


def test_manifest_lists_default_first_with_checksums():
    entries = load_manifest()
    assert list(entries)[0] == "timgm6mb"
    assert {"timgm6mb", "fluidr3_gm", "musescore_general"} <= set(entries)
    for entry in entries.values():
        assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256), entry.name
        assert entry.licence and entry.get


@pytest.mark.parametrize("name", ["timgm6mb", "TimGM6mb"])
def test_default_soundfont_is_found_inside_pretty_midi(name):
    sf = resolve_soundfont(name)
    assert sf.name == "timgm6mb"
    assert sf.path.is_file() and sf.path.parent.name == "pretty_midi"
    assert sf.sha256 == sha256_file(sf.path) == load_manifest()["timgm6mb"].sha256
    assert sf.provenance()["sha256"] == sf.sha256


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown SoundFont 'nosuch'.*timgm6mb"):
        resolve_soundfont("nosuch")


def test_missing_file_says_how_to_get_it(tmp_path):
    manifest = load_manifest(write_manifest(tmp_path, name="gone", path=tmp_path / "gone.sf2",
                                            sha256="0" * 64))
    with pytest.raises(ConfigError, match="not installed; get it with: apt-get install"):
        resolve_soundfont("gone", manifest=manifest)


def test_checksum_mismatch_is_an_error(tmp_path):
    copy = tmp_path / "copy.sf2"
    shutil.copy(resolve_soundfont("timgm6mb").path, copy)
    manifest = load_manifest(write_manifest(tmp_path, name="copy", path=copy, sha256="0" * 64))
    with pytest.raises(ConfigError, match="has sha256 .* expects 0000"):
        resolve_soundfont("copy", manifest=manifest)


def test_a_path_plays_bank_0_preset_0_and_records_its_checksum(tmp_path):
    copy = tmp_path / "My Piano.SF2"
    shutil.copy(resolve_soundfont("timgm6mb").path, copy)
    sf = resolve_soundfont(str(copy))
    assert (sf.name, sf.bank, sf.preset, sf.licence) == ("my_piano", 0, 0, None)
    assert sf.sha256 == sha256_file(copy)


@pytest.mark.parametrize("path", ["/nonexistent/x.sf2", "missing.sf3"])
def test_a_missing_path_is_an_error(path):
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_soundfont(path)


@pytest.mark.parametrize("name", ["fluidr3_gm", "musescore_general"])
def test_debian_soundfont_plays(name):
    entry = load_manifest()[name]
    if entry.locate() is None:
        pytest.skip(f"{entry.file} not installed ({entry.get})")
    sf = resolve_soundfont(name)
    perf = Performance((NoteEvent(0.0, 0.3, 69, 100, "a"),))
    with Synthesizer(sf) as synth:
        audio = synth.render(perf).audio
    assert np.max(np.abs(audio)) > 1e-3
