"""Parts of multi-file pieces are not scores (msmd_prep.parts, render.find_scores)."""
from __future__ import annotations

from msmd_prep.parts import defines_only, is_midi_only, is_part
from msmd_prep.render import find_scores

NOTES = 'upper = \\relative c\'\' { c4 d e f }\nlower =\n\\relative c { c1 }\nx = 3\n'


def test_a_file_of_definitions_is_a_part():
    assert defines_only(NOTES)
    assert defines_only('\\header { title = "{" }\n' + NOTES + "#(define y 2)\n")
    assert not defines_only(NOTES + "{ \\upper }\n")
    assert not defines_only("x = 3\n{ c'4 }\n")
    assert not defines_only("") and not defines_only("\\markup { words }\n")
    assert not defines_only("a = 1\0")
    assert not defines_only(NOTES + "\\score { \\upper }\n")


def test_a_file_that_only_writes_midi_is_a_part():
    assert is_midi_only("\\score { \\music \\midi { \\tempo 4 = 110 } }")
    assert not is_midi_only("\\score { \\music \\layout { } \\midi { } }")
    assert not is_midi_only("\\score { \\music }  % \\midi")
    assert not is_part("\\score { { c'4 } }")


def test_books_of_midi_only_scores_are_a_part():
    """One \\book per MIDI file, its score included or written out (Mutopia's
    ``hanon-book-midi.ly``, ``clementi-op42-midi.ly``)."""
    midi = "\\score { \\music \\midi { } }"
    assert is_midi_only('\\version "2.18.2"\nx = 1\n\\book { \\bookOutputName "a"\n'
                        f'\\include "m.ily"\n}}\n\\book {{ \\bookpart {{ {midi} }} }}\n{midi}')
    assert not is_midi_only(f"\\book {{ {midi} \\score {{ \\music }} }}")
    assert not is_midi_only(f"\\book {{ {midi} {{ c'4 }} }}")
    assert not is_midi_only(f"\\book {{ {midi} }} {{ c'4 }}")


def test_find_scores_leaves_parts_out(tmp_path):
    (tmp_path / "notes.ly").write_text(NOTES)
    (tmp_path / "main.ly").write_text('\\include "notes.ly"\n\\score { << \\upper \\lower >> }\n')
    (tmp_path / "midi.ly").write_text('\\include "notes.ly"\n'
                                      "\\score { << \\upper \\lower >> \\midi { } }\n")
    (tmp_path / "other.ly").write_text("{ c'4 }\n")
    (tmp_path / "books.ly").write_text('\\include "notes.ly"\n\\book { \\bookOutputName "b"\n'
                                       "\\score { << \\upper \\lower >> \\midi { } } }\n")
    (tmp_path / "spare-notes.ly").write_text(NOTES)
    assert sorted(p.name for p in find_scores([tmp_path])) == ["main.ly", "other.ly"]
    assert [p.name for p in find_scores([tmp_path / "midi.ly"])] == ["midi.ly"]
