"""MIDI, MusicXML and ABC inputs: converted, rendered and checked.

The inputs are written here: a melody in 3/4 with a pickup, a triplet, a
note tied over a bar line and a tempo change, over a chord accompaniment.
Real LilyPond, no mocks.
"""
from __future__ import annotations

import csv
import json
from fractions import Fraction
from pathlib import Path

import mido
import pytest

from msmd_prep.formats.abc import abc_to_ly, abc_tune_ids
from msmd_prep.formats.midi import MidiNote
from msmd_prep.formats.midi_to_ly import QuantizedNote, align_midi_heads
from msmd_prep.render import RenderConfig, find_scores, render_many
from msmd_prep.score import NoteHead, read_heads_csv

TPB = 480
#: Melody: (start tick, end tick, pitch, velocity); the first bar (1440 ticks)
#: holds only the pickup eighth.  The D5 at 3360 is tied over the bar line.
MELODY = [(1200, 1440, 62, 70), (1440, 1920, 67, 80), (1920, 2400, 71, 81),
          (2400, 2880, 74, 82), (2880, 3040, 69, 90), (3040, 3200, 71, 91),
          (3200, 3360, 72, 92), (3360, 4800, 74, 100), (4800, 5280, 76, 60),
          (5280, 5760, 78, 61), (5760, 7200, 79, 62)]
CHORDS = [(1440, 2880, (43, 47, 50)), (2880, 4320, (50, 54, 57)), (4320, 5760, (48, 52, 55)),
          (5760, 7200, (43, 47, 50))]
TEMPO_CHANGE_TICK = 4320  # quarter = 120, then 90 from bar 3


def midi_seconds(tick: int) -> float:
    if tick <= TEMPO_CHANGE_TICK:
        return tick / TPB * 0.5
    return TEMPO_CHANGE_TICK / TPB * 0.5 + (tick - TEMPO_CHANGE_TICK) / TPB * 60 / 90


def _track(events: list[tuple[int, mido.Message]]) -> mido.MidiTrack:
    track, now = mido.MidiTrack(), 0
    for tick, msg in sorted(events, key=lambda e: (e[0], e[1].type == "note_on")):
        track.append(msg.copy(time=tick - now))
        now = tick
    return track


def write_midi(path: Path) -> None:
    mf = mido.MidiFile(type=1, ticks_per_beat=TPB)
    mf.tracks.append(_track([
        (0, mido.MetaMessage("set_tempo", tempo=500000)),
        (0, mido.MetaMessage("time_signature", numerator=3, denominator=4)),
        (0, mido.MetaMessage("key_signature", key="G")),
        (TEMPO_CHANGE_TICK, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(90)))]))
    mel = []
    for start, end, pitch, vel in MELODY:
        mel += [(start, mido.Message("note_on", note=pitch, velocity=vel)),
                (end, mido.Message("note_off", note=pitch))]
    mf.tracks.append(_track(mel))
    acc = []
    for start, end, pitches in CHORDS:
        for p in pitches:
            acc += [(start, mido.Message("note_on", channel=1, note=p, velocity=50)),
                    (end, mido.Message("note_off", channel=1, note=p))]
    mf.tracks.append(_track(acc))
    mf.save(str(path))


def _note(step: str, octave: int, duration: int, kind: str, *, alter: int = 0,
          chord: bool = False, tie: str = "", triplet: str = "") -> str:
    ties = "".join(f'<tie type="{t}"/>' for t in tie.split())
    tied = "".join(f'<tied type="{t}"/>' for t in tie.split())
    tm = ("<time-modification><actual-notes>3</actual-notes><normal-notes>2</normal-notes>"
          "</time-modification>") if triplet else ""
    tup = f'<tuplet type="{triplet}"/>' if triplet in ("start", "stop") else ""
    notations = f"<notations>{tied}{tup}</notations>" if tied or tup else ""
    return (f"<note>{'<chord/>' if chord else ''}<pitch><step>{step}</step>"
            f"{f'<alter>{alter}</alter>' if alter else ''}<octave>{octave}</octave></pitch>"
            f"<duration>{duration}</duration>{ties}<type>{kind}</type>{tm}{notations}</note>")


def _tempo(qpm: int) -> str:
    return ('<direction placement="above"><direction-type><metronome><beat-unit>quarter'
            f'</beat-unit><per-minute>{qpm}</per-minute></metronome></direction-type>'
            f'<sound tempo="{qpm}"/></direction>')


MUSICXML = f"""<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1">
<part-list><score-part id="P1"><part-name>Melody</part-name></score-part></part-list>
<part id="P1">
<measure number="0" implicit="yes"><attributes><divisions>6</divisions><key><fifths>1</fifths>
</key><time><beats>3</beats><beat-type>4</beat-type></time><clef><sign>G</sign><line>2</line>
</clef></attributes>{_tempo(100)}{_note("D", 4, 3, "eighth")}</measure>
<measure number="1">{_note("G", 4, 6, "quarter")}{_note("B", 4, 6, "quarter", chord=True)}
{_note("A", 4, 2, "eighth", triplet="start")}{_note("B", 4, 2, "eighth", triplet="mid")}
{_note("C", 5, 2, "eighth", triplet="stop")}{_note("D", 5, 6, "quarter", tie="start")}</measure>
<measure number="2">{_tempo(60)}{_note("D", 5, 6, "quarter", tie="stop")}
{_note("F", 5, 12, "half", alter=1)}</measure>
</part></score-partwise>
"""

ABC_BOOK = """%abc-2.1
X:1
T:Pickup tune
M:3/4
L:1/8
Q:1/4=100
K:G
D|G2 B2 d2-|d2 (3ABc [GBd]2|e6|]

X:3
T:Second tune
M:2/4
L:1/8
Q:1/4=80
K:F
A>B c2|B4|]
"""


@pytest.fixture(scope="module")
def pieces(tmp_path_factory) -> dict[str, Path]:
    """The three inputs rendered into one work folder: piece id -> folder."""
    src = tmp_path_factory.mktemp("inputs")
    write_midi(src / "tune.mid")
    (src / "tune.musicxml").write_text(MUSICXML)
    (src / "book.abc").write_text(ABC_BOOK)
    out = tmp_path_factory.mktemp("work")
    results = render_many(find_scores([src]), out, RenderConfig(dpi=100))
    failed = {r.piece_dir.name: r.error for r in results if r.error}
    assert not failed, failed
    return {r.piece_dir.name: r.piece_dir for r in results}


def _info(piece: Path) -> dict:
    return json.loads((piece / "piece.json").read_text())


def _sounding(piece: Path) -> list[NoteHead]:
    heads = read_heads_csv(piece / "noteheads.csv")
    return sorted((h for h in heads if not h.tied), key=lambda h: (Fraction(h.moment), h.pitch))


def test_one_piece_per_input_and_tune(pieces):
    assert len(pieces) == 4 and {"book__tune-1", "book__tune-3"} <= set(pieces)
    assert sorted(_info(p)["input_format"] for p in pieces.values()) == [
        "abc", "abc", "midi", "musicxml"]


def test_midi_heads_and_onsets_come_from_the_midi_file(pieces):
    piece = next(p for p in pieces.values() if _info(p)["input_format"] == "midi")
    info = _info(piece)
    assert info["aligned_well"] is True
    assert info["input_checks"]["input_notes"] == info["input_checks"]["score_notes"] == 23
    assert info["input_checks"]["matched"] == 23
    assert info["counts"]["tie_continuations"] == 1
    assert info["tempo_source"] == ["midi"]
    ly = next((piece / "build" / "converted").glob("*.ly")).read_text()
    assert "\\partial 1*1/8" in ly and "\\tuplet 3/2" in ly
    heads = read_heads_csv(piece / "noteheads.csv")
    assert {h.staff for h in heads} == {0, 1}
    melody = sorted((h for h in heads if h.staff == 0 and not h.tied),
                    key=lambda h: Fraction(h.moment))
    assert [h.pitch for h in melody] == [n[2] for n in MELODY]
    assert [h.onsets_s[0] for h in melody] == pytest.approx(
        [midi_seconds(n[0]) for n in MELODY], abs=1e-5)
    assert Fraction(melody[0].moment) == 0 and Fraction(melody[1].moment) == Fraction(1, 8)
    assert Fraction(melody[5].moment) - Fraction(melody[4].moment) == Fraction(1, 12)
    with open(piece / "performance.csv", newline="") as f:
        events = list(csv.DictReader(f))
    by_head = {h.id: h for h in heads}
    played = sorted((float(e["onset_s"]), int(e["pitch"]), int(e["velocity"]),
                     float(e["duration_s"])) for e in events if by_head[e["notehead_id"]].staff == 0)
    want = sorted((midi_seconds(s), p, v, midi_seconds(e) - midi_seconds(s))
                  for s, e, p, v in MELODY)
    assert [(p, v) for _, p, v, _ in played] == [(p, v) for _, p, v, _ in want]
    assert [x for t, _, _, d in played for x in (t, d)] == pytest.approx(
        [x for t, _, _, d in want for x in (t, d)], abs=1e-5)
    assert len(events) == 23


def test_musicxml_checks_and_tempo(pieces):
    piece = next(p for p in pieces.values() if _info(p)["input_format"] == "musicxml")
    info = _info(piece)
    assert info["aligned_well"] is True, info["input_checks"]
    assert info["input_checks"]["input_notes"] == info["input_checks"]["score_notes"] == 8
    assert info["counts"]["tie_continuations"] == 1
    assert info["tempo_source"] == ["score"]
    heads = _sounding(piece)
    assert [h.pitch for h in heads] == [62, 67, 71, 69, 71, 72, 74, 78]
    # quarter = 100: the pickup eighth lasts 0.3 s, a triplet eighth 0.2 s.
    assert heads[1].onsets_s[0] == pytest.approx(0.3)
    assert heads[4].onsets_s[0] - heads[3].onsets_s[0] == pytest.approx(0.2)
    # quarter = 60 from bar 2: the tied D5 (from 1.5 s in bar 1) ends at 3.0 s.
    assert heads[7].onsets_s[0] == pytest.approx(0.3 + 1.2 + 0.6 + 1.0)
    assert info["input_checks"]["mismatches"] == 0


def test_abc_book_gives_one_piece_per_tune(pieces):
    first, second = _info(pieces["book__tune-1"]), _info(pieces["book__tune-3"])
    assert first["tune"] == "tune-1" and second["tune"] == "tune-3"
    assert first["aligned_well"] and second["aligned_well"], (first["input_checks"], second["input_checks"])
    heads = _sounding(pieces["book__tune-1"])
    assert [h.pitch for h in heads] == [62, 67, 71, 74, 69, 71, 72, 67, 71, 74, 76]
    assert first["counts"]["tie_continuations"] == 1
    assert Fraction(heads[1].moment) == Fraction(1, 8)          # after the pickup
    assert heads[1].onsets_s[0] == pytest.approx(0.3)           # quarter = 100
    assert [h.pitch for h in _sounding(pieces["book__tune-3"])] == [69, 70, 72, 70]


def test_abc_pickup_tuplet_tie_and_chord_are_written(tmp_path):
    tune = ABC_BOOK.split("\n\n")[0]
    written = abc_to_ly(tune, tmp_path / "t.ly", title="t")
    ly = (tmp_path / "t.ly").read_text()
    assert "\\partial 8" in ly and "\\tuplet 3/2" in ly and "<g' b' d''>" in ly
    assert [n.pitch for n in written.notes if not n.tied] == [
        62, 67, 71, 74, 69, 71, 72, 67, 71, 74, 76]
    assert [n.moment for n in written.notes[:2]] == [0, Fraction(1, 8)]
    assert written.tempi == [(0, Fraction(0), 100.0)]


def test_abc_tune_ids(tmp_path):
    book = tmp_path / "b.abc"
    book.write_text("X:1\nT:a\nK:C\nC|]\n\nX:1\nT:b\nK:C\nD|]\n")
    assert abc_tune_ids(book) == ["tune-1", "tune-1-2"]
    book.write_text("X:1\nT:a\nK:C\nC|]\n")
    assert abc_tune_ids(book) == [""]


def _head(hid: int, staff: int, moment: str, pitch: int, tied: bool = False) -> NoteHead:
    return NoteHead(f"h{hid}", 1, 0, 0, 1, 1, 0, staff, 0, pitch, False, tied,
                    () if tied else (9.0,), moment, "")


def test_align_midi_heads_is_exact():
    notes = [MidiNote(0.5, 1.0, 60, 70, 1, 0, 0, 480),
             MidiNote(1.02, 2.9, 64, 80, 1, 0, 481, 1440),   # played late, tied over
             MidiNote(1.02, 2.0, 64, 90, 2, 0, 481, 960),    # the same note doubled
             MidiNote(3.0, 3.5, 48, 60, 2, 1, 1440, 1920)]
    placed = [QuantizedNote(0, Fraction(1, 2), Fraction(3, 4), 60, 0),
              QuantizedNote(1, Fraction(3, 4), Fraction(3, 2), 64, 0),
              QuantizedNote(2, Fraction(3, 4), Fraction(1), 64, 0),
              QuantizedNote(3, Fraction(5, 4), Fraction(3, 2), 48, 1)]
    heads = [_head(1, 0, "0", 60), _head(2, 0, "1/4", 64), _head(3, 0, "1/2", 64, tied=True),
             _head(4, 1, "3/4", 48), _head(5, 1, "3/4", 52)]
    al = align_midi_heads(heads, notes, placed, Fraction(1, 2))
    onsets = {h.id: h.onsets_s for h in al.heads}
    assert onsets == {"h1": (0.5,), "h2": (1.02,), "h3": (), "h4": (3.0,), "h5": ()}
    assert [(e.notehead_id, e.velocity) for e in al.performance.events] == [
        ("h1", 70), ("h2", 80), ("h2", 90), ("h4", 60)]
    assert al.performance.events[1].duration_s == pytest.approx(1.88)
    assert al.checks["matched"] == 4 and al.checks["duplicate_notes"] == 1
    assert al.checks["unmatched_heads"] == 1 and not al.checks["ok"]


def test_find_scores_prefers_the_lilypond_source(tmp_path):
    for name in ("a.ly", "a.mid", "b.mid", "c.abc"):
        (tmp_path / name).write_text("{ c' }" if name.endswith(".ly") else "x")
    assert [p.name for p in find_scores([tmp_path])] == ["a.ly", "b.mid", "c.abc"]
