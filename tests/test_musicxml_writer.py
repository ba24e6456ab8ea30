"""MusicXML through our own writer: every note paired with its head, the input played.

The fixture is written here: a piano score (two staves, one part) with a
pickup, a tempo mark, dynamics, a triplet, a grace note, two voices in the
upper staff (``<backup>``), a chord, a repeat with first and second endings,
a tie over a bar line and a hidden note.  Real LilyPond, no mocks.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest

from msmd_prep.formats.musicxml import musicxml_to_ly
from msmd_prep.formats.input_checks import pair_heads
from msmd_prep.formats.score_performance import GRACE_S
from msmd_prep.render import RenderConfig, render_many
from msmd_prep.score import read_heads_csv

DIV = 6  # divisions per quarter


def note(step: str, octave: int, dur: int, kind: str, *, staff: int = 1, voice: int = 1,
         alter: int = 0, chord: bool = False, tie: str = "", tuplet: str = "",
         grace: bool = False, hidden: bool = False, dot: bool = False) -> str:
    ties = "".join(f'<tie type="{t}"/>' for t in tie.split())
    tied = "".join(f'<tied type="{t}"/>' for t in tie.split())
    tm = ("<time-modification><actual-notes>3</actual-notes><normal-notes>2</normal-notes>"
          "</time-modification>") if tuplet else ""
    tup = f'<tuplet type="{tuplet}"/>' if tuplet in ("start", "stop") else ""
    notations = f"<notations>{tied}{tup}</notations>" if tied or tup else ""
    hide = ' print-object="no"' if hidden else ""
    slash = '<grace slash="yes"/>' if grace else ""
    return (f"<note{hide}>{slash}{'<chord/>' if chord else ''}"
            f"<pitch><step>{step}</step>{f'<alter>{alter}</alter>' if alter else ''}"
            f"<octave>{octave}</octave></pitch>{'' if grace else f'<duration>{dur}</duration>'}"
            f"{ties}<voice>{voice}</voice><type>{kind}</type>{'<dot/>' if dot else ''}{tm}"
            f"<staff>{staff}</staff>{notations}</note>")


def rest(dur: int, kind: str, *, staff: int = 1, voice: int = 1) -> str:
    return (f"<note><rest/><duration>{dur}</duration><voice>{voice}</voice><type>{kind}</type>"
            f"<staff>{staff}</staff></note>")


def backup(dur: int) -> str:
    return f"<backup><duration>{dur}</duration></backup>"


def direction(inner: str, sound: str = "") -> str:
    return (f"<direction><direction-type>{inner}</direction-type>"
            f"{f'<sound {sound}/>' if sound else ''}</direction>")


def dynamic(mark: str) -> str:
    return direction(f"<dynamics><{mark}/></dynamics>")


def measure(number: str, body: str, *, left: str = "", right: str = "") -> str:
    return f'<measure number="{number}">{left}{body}{right}</measure>'


def repeat_bar(location: str, direction_: str, ending: str = "", ending_type: str = "") -> str:
    end = f'<ending number="{ending}" type="{ending_type}"/>' if ending else ""
    rep = f'<repeat direction="{direction_}"/>' if direction_ else ""
    return f'<barline location="{location}">{end}{rep}</barline>'


Q, H, E = DIV, 2 * DIV, DIV // 2
ATTRIBUTES = (f"<attributes><divisions>{DIV}</divisions><key><fifths>0</fifths></key>"
              "<time><beats>3</beats><beat-type>4</beat-type></time><staves>2</staves>"
              "<clef number=\"1\"><sign>G</sign><line>2</line></clef>"
              "<clef number=\"2\"><sign>F</sign><line>4</line></clef></attributes>")
MEASURES = [
    # Pickup: a quarter, tempo 90, piano.
    measure("0", ATTRIBUTES + direction("<metronome><beat-unit>quarter</beat-unit>"
                                        "<per-minute>90</per-minute></metronome>", 'tempo="90"')
            + dynamic("p") + note("D", 5, Q, "quarter") + backup(Q)
            + rest(Q, "quarter", staff=2, voice=5)),
    # Start of the repeat: triplet, grace note, and a second voice; a chord below.
    measure("1", note("C", 5, 2, "eighth", tuplet="start") + note("D", 5, 2, "eighth", tuplet="mid")
            + note("E", 5, 2, "eighth", tuplet="stop") + note("A", 4, 0, "eighth", grace=True)
            + note("F", 5, Q, "quarter") + note("G", 5, Q, "quarter")
            + backup(3 * Q) + note("E", 4, H, "half", voice=2) + note("E", 4, Q, "quarter", voice=2)
            + backup(3 * Q) + note("C", 3, H, "half", staff=2, voice=5)
            + note("G", 3, H, "half", staff=2, voice=5, chord=True)
            + rest(Q, "quarter", staff=2, voice=5),
            left=repeat_bar("left", "forward")),
    # First ending.
    measure("2", note("A", 5, 3 * Q, "half", dot=True) + backup(3 * Q)
            + note("F", 3, 3 * Q, "half", staff=2, voice=5, dot=True),
            left=repeat_bar("left", "", "1", "start"),
            right=repeat_bar("right", "backward", "1", "stop")),
    # Second ending: B5 tied over the bar line.
    measure("3", note("B", 5, 3 * Q, "half", dot=True, tie="start") + backup(3 * Q)
            + note("G", 2, 3 * Q, "half", staff=2, voice=5, dot=True),
            left=repeat_bar("left", "", "2", "start"),
            right=repeat_bar("right", "", "2", "discontinue")),
    # Forte; the tie ends; C6 under an 8va bracket; a hidden note (an ornament
    # spelled out for playback).
    measure("4", dynamic("f") + note("B", 5, H, "half", tie="stop")
            + direction('<octave-shift type="down" size="8"/>') + note("C", 6, Q, "quarter")
            + direction('<octave-shift type="stop" size="8"/>') + backup(Q) + note("D", 6, E, "eighth", hidden=True,
                                                            voice=2)
            + backup(3 * Q - Q + E) + note("C", 3, 3 * Q, "half", staff=2, voice=5, dot=True)),
]
MUSICXML = ('<?xml version="1.0" encoding="UTF-8"?>\n<score-partwise version="3.1">'
            # A title and composer over two lines (as in some ASAP scores).
            '<work><work-title>Piano\npiece</work-title></work><identification>'
            '<creator type="composer">Joseph Haydn\nHob. XVI:50</creator></identification>'
            '<part-list><score-part id="P1"><part-name>Piano</part-name></score-part>'
            '</part-list><part id="P1">' + "".join(MEASURES) + "</part></score-partwise>\n")
QUARTER_S = 60 / 90


@pytest.fixture(scope="module")
def piece(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("xml")
    (src / "piano.musicxml").write_text(MUSICXML)
    out = tmp_path_factory.mktemp("work")
    [result] = render_many([src / "piano.musicxml"], out, RenderConfig(dpi=100))
    assert not result.error, result.error
    return result.piece_dir


def _info(piece: Path) -> dict:
    return json.loads((piece / "piece.json").read_text())


def _heads(piece: Path) -> dict:
    """(staff, moment, pitch) -> head, for the heads with an onset."""
    return {(h.staff, Fraction(h.moment), h.pitch): h
            for h in read_heads_csv(piece / "noteheads.csv") if not h.tied}


def test_every_note_pairs_with_its_head(piece):
    info = _info(piece)
    checks = info["input_checks"]
    assert info["aligned_well"] is True, checks
    # Every printed pitch with an onset: 1 + 10 + 2 + 2 + 2 (the tied B5 once).
    assert checks["input_notes"] == checks["score_notes"] == checks["matched"] == 17
    assert checks["mismatches"] == 0 and checks["hidden_notes_not_printed"] == 1
    assert info["counts"]["tie_continuations"] == 1
    ly = next((piece / "build" / "converted").glob("*.ly")).read_text()
    assert "\\tuplet 3/2 { c''8 d''8 e''8 }" in ly and "\\slashedGrace a'8" in ly
    assert "\\partial 4" in ly
    assert "start-repeat" in ly and '(volta "1.")' in ly
    assert "\\ottava #1 c'''4 \\ottava #0" in ly   # printed an octave lower, pitch kept


def test_moments_of_pickup_triplet_and_voices(piece):
    heads = _heads(piece)
    q = Fraction(1, 4)
    assert (0, Fraction(0), 74) in heads                       # pickup D5
    assert (0, q, 72) in heads and (0, q + Fraction(1, 12), 74) in heads  # triplet
    assert (0, q + 2 * Fraction(1, 12), 76) in heads
    assert (0, q + q, 77) in heads and (0, q, 64) in heads     # F5 after the grace; voice 2
    assert (1, q, 48) in heads and (1, q, 55) in heads         # the chord below


def test_repeat_tempo_grace_and_dynamics_are_played(piece):
    info = _info(piece)
    assert info["input_checks"]["measures_played"] == 6        # 0 1 2 1 3 4
    assert info["tempo_source"] == ["score"]
    heads = _heads(piece)
    q = Fraction(1, 4)
    pickup = heads[(0, Fraction(0), 74)]
    c5 = heads[(0, q, 72)]
    assert pickup.onsets_s == (0.0,)
    # Measure 1 is played twice: after the pickup, and after measures 1 and 2.
    assert c5.onsets_s == pytest.approx((QUARTER_S, QUARTER_S * (1 + 3 + 3)))
    d5 = heads[(0, q + Fraction(1, 12), 74)]
    assert d5.onsets_s[0] - c5.onsets_s[0] == pytest.approx(QUARTER_S / 3)
    f5 = heads[(0, q + q, 77)]
    grace = next(h for h in read_heads_csv(piece / "noteheads.csv") if h.grace)
    assert grace.pitch == 69
    assert [f - g for f, g in zip(f5.onsets_s, grace.onsets_s)] == pytest.approx(
        [GRACE_S, GRACE_S])
    # The second ending, then the tie: B5 sounds once, for a dotted half and a half.
    b5 = heads[(0, Fraction(7, 4), 83)]
    assert len(b5.onsets_s) == 1
    import csv
    with open(piece / "performance.csv", newline="") as f:
        events = {e["notehead_id"]: e for e in csv.DictReader(f)}
    assert float(events[b5.id]["duration_s"]) == pytest.approx(5 * QUARTER_S)
    from music21 import dynamics
    piano = round(127 * dynamics.Dynamic("p").volumeScalar)
    forte = round(127 * dynamics.Dynamic("f").volumeScalar)
    assert int(events[pickup.id]["velocity"]) == piano
    c6 = heads[(0, Fraction(3), 84)]
    assert int(events[c6.id]["velocity"]) == forte


def test_a_mismatch_names_measure_staff_and_note(piece, tmp_path):
    written = musicxml_to_ly(MUSICXML, tmp_path / "piano.ly", title="piano")
    heads = read_heads_csv(piece / "noteheads.csv")
    assert pair_heads(heads, written).checks["ok"]
    f5 = next(h for h in heads if h.pitch == 77)
    wrong = [replace(h, pitch=78) if h is f5 else h for h in heads]
    checks = pair_heads(wrong, written).checks
    assert not checks["ok"] and checks["mismatches"] == 1
    assert checks["mismatch"][0].startswith("measure 1 (staff 1, voice 1")
    assert "F5" in checks["mismatch"][0] and "78" in checks["mismatch"][0]
    missing = [h for h in heads if h is not f5]
    assert "F5 has no head" in pair_heads(missing, written).checks["mismatch"][0]


def test_compressed_musicxml(tmp_path):
    mxl = tmp_path / "piano.mxl"
    with zipfile.ZipFile(mxl, "w") as z:
        z.writestr("META-INF/container.xml",
                   '<container><rootfiles><rootfile full-path="score.xml"/></rootfiles>'
                   "</container>")
        z.writestr("score.xml", MUSICXML)
    [result] = render_many([mxl], tmp_path / "work", RenderConfig(dpi=100))
    assert not result.error, result.error
    assert _info(result.piece_dir)["input_checks"]["matched"] == 17


def _jump_score(measures: list[str]) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<score-partwise version="3.1">'
            '<part-list><score-part id="P1"><part-name>V</part-name></score-part></part-list>'
            '<part id="P1">' + "".join(measures) + "</part></score-partwise>\n")


def test_da_capo_al_fine_from_sound_and_words(tmp_path):
    from msmd_prep.formats.unfold import playing_order

    attrs = (f"<attributes><divisions>{DIV}</divisions><time><beats>1</beats>"
             "<beat-type>4</beat-type></time></attributes>")
    for fine, dc in ((direction("<words>Fine</words>", 'fine="yes"'),
                      direction("<words>D.C. al Fine</words>", 'dacapo="yes"')),
                     ("", direction("<words>D.C.</words>", 'dacapo="yes"'))):
        xml = _jump_score([measure("1", attrs + note("C", 5, Q, "quarter")),
                           measure("2", note("D", 5, Q, "quarter") + fine),
                           measure("3", note("E", 5, Q, "quarter") + dc)])
        written = musicxml_to_ly(xml, tmp_path / "j.ly")
        want = [0, 1, 2, 0, 1] if fine else [0, 1, 2, 0, 1, 2]
        assert playing_order(written.flags) == want


def test_dal_segno_al_coda_from_sound(tmp_path):
    from msmd_prep.formats.unfold import playing_order

    attrs = (f"<attributes><divisions>{DIV}</divisions><time><beats>1</beats>"
             "<beat-type>4</beat-type></time></attributes>")
    xml = _jump_score([
        measure("1", attrs + note("C", 5, Q, "quarter")),
        measure("2", direction("<segno/>", 'segno="s1"') + note("D", 5, Q, "quarter")),
        measure("3", note("E", 5, Q, "quarter") + direction("<words>To Coda</words>",
                                                            'tocoda="c1"')),
        measure("4", note("F", 5, Q, "quarter") + direction("<words>D.S. al Coda</words>",
                                                            'dalsegno="s1"')),
        measure("5", direction("<coda/>", 'coda="c1"') + note("G", 5, Q, "quarter"))])
    written = musicxml_to_ly(xml, tmp_path / "s.ly")
    assert playing_order(written.flags) == [0, 1, 2, 3, 1, 2, 4]


def test_transposing_instrument_is_printed_and_played_at_concert_pitch(tmp_path):
    attrs = (f"<attributes><divisions>{DIV}</divisions><key><fifths>2</fifths></key>"
             "<time><beats>1</beats><beat-type>4</beat-type></time>"
             "<transpose><diatonic>-1</diatonic><chromatic>-2</chromatic></transpose>"
             "</attributes>")
    xml = _jump_score([measure("1", attrs + note("D", 5, Q, "quarter"))])
    written = musicxml_to_ly(xml, tmp_path / "c.ly")
    assert [n.pitch for n in written.notes] == [72]         # written D5 sounds C5
    assert "\\key c \\major" in (tmp_path / "c.ly").read_text()


def test_utf16_musicxml_is_read(tmp_path):
    from msmd_prep.formats.musicxml import read_musicxml_text

    path = tmp_path / "utf16.musicxml"
    path.write_bytes(MUSICXML.replace('encoding="UTF-8"', "encoding='UTF-16'").encode("utf-16"))
    text = read_musicxml_text(path)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    written = musicxml_to_ly(text, tmp_path / "u.ly")
    assert sum(1 for n in written.notes if not n.tied) == 17
