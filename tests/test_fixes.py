"""The text fixes of msmd_prep.fixes on small examples from real scores."""
from __future__ import annotations

import json

import pytest

from msmd_prep.errors import MsmdPrepError
from msmd_prep.fixes import FIXES, PRE_FIXES, apply_fixes, apply_pre_fixes, wrap_context_property
from msmd_prep.render import RenderConfig, render_score

CASES = [
    ("deprecated-dynamics", r"s^\deprecatedcresc s-\deprecateddim", r"s^\cresc s-\dim"),
    ("deprecated-dynamics", r'deprecatedcresc = \markup "x"', r'deprecatedcresc = \markup "x"'),
    ("set-octavation", "A = { #(set-octavation 1) c }", r"A = { \ottava #1 c }"),
    ("auto-beam-setting", "{ #(override-auto-beam-setting '(end * * * *) 1 8 'Staff) c }",
     "{ #(if #f #f) c }"),
    ("scheme-number-glued", r"b) \ottava #0| c", r"b) \ottava #0 | c"),
    ("scheme-number-glued", r"<g' b'>4 \ottava #1\tuplet 3/2 { c }",
     r"<g' b'>4 \ottava #1 \tuplet 3/2 { c }"),
    ("scheme-number-glued", r"\ottava #1<b'' d'''>4 \ottava #0}", r"\ottava #1 <b'' d'''>4 \ottava #0 }"),
    ("articulation-type-symbol", "(make-music 'ArticulationEvent 'articulation-type \"tenuto\")",
     "(make-music 'ArticulationEvent 'articulation-type "
     "(let ((a \"tenuto\")) (if (string? a) (string->symbol a) a)))"),
    ("apply-music-unfold-repeats", r"{ \applyMusic #unfold-repeats \theScore }",
     r"{ \unfoldRepeats \theScore }"),
    ("unset-beat-structure", r"\unset Timing.beatStructure c8", " c8"),
    ("define-in-if", "#(if (equal? paper-width (* 8.5 in))\n\t(define system-count 12)) }",
     "#(if (equal? paper-width (* 8.5 in))\n\t(module-define! (current-module) 'system-count 12)) }"),
    ("define-in-if", "#(define (f x) (if x 1 2))", "#(define (f x) (if x 1 2))"),
    ("define-in-if", "#(if (equal? w (* 8.5 in)) (define letter #t) (define n 19))",
     "#(if (equal? w (* 8.5 in)) (module-define! (current-module) 'letter #t) "
     "(module-define! (current-module) 'n 19))"),
    ("octave-after-duration", "f8'-5_\\p ( d c4.'' b c'4 e,8", "f'8-5_\\p ( d c''4. b c'4 e,8"),
    ("layout-context-property", "\\layout {\n  \\context Staff\n  \\override TextScript #'x = #1\n}",
     "\\layout {\n  \\context { \\Staff \\override TextScript #'x = #1 }\n}"),
    ("layout-context-property", "{ \\context Staff \\override A.b = #1 }",
     "{ \\context Staff \\override A.b = #1 }"),
    ("mark-event", "(make-music 'MarkEvent\n 'direction DOWN\n 'label text))",
     "(make-music 'AdHocMarkEvent\n 'direction DOWN\n 'text text))"),
    ("unquoted-empty-list", "\\override Flag.stroke-style = #() b", "\\override Flag.stroke-style = #'() b"),
    ("make-moment-grace-zero", "tempoWholesPerMinute = #(ly:make-moment 56 4 0 0)",
     "tempoWholesPerMinute = #(ly:make-moment 56 4)"),
    ("make-moment-grace-zero", "#(ly:make-moment 1 4 1 8)", "#(ly:make-moment 1 4 1 8)"),
    ("gettext-underscore", '(ly:warning (_ "bad ~a") x)', '(ly:warning (G_ "bad ~a") x)'),
    ("tweak-of-a-variable", "#{ \\tweak control-points #shape-curve #item #})",
     "#{ \\propertyTweak control-points #shape-curve #item #})"),
    ("tweak-of-a-variable", "\\tweak color #red c4 \\tweak color #(x-color 1) #itemB",
     "\\tweak color #red c4 \\propertyTweak color #(x-color 1) #itemB"),
]


@pytest.mark.parametrize("name, before, after", CASES)
def test_fix(name, before, after):
    fix = next(f for f in FIXES if f.name == name)
    assert fix(before) == after


def test_names_unique_and_documented():
    assert len({f.name for f in FIXES}) == len(FIXES)
    assert all(len(f.problem) > 40 for f in FIXES)


@pytest.mark.parametrize("before, after", [
    ('r = \\relative { \\context Voice = "r" \\override A.b = #1 c d }',
     'r = \\relative { \\context Voice = "r" { \\override A.b = #1 c d } }'),
    ('r = \\relative { \\new Voice = "r" \\override A.b = #1 c d }',
     'r = \\relative { \\new Voice = "r" { \\override A.b = #1 c d } }'),
    # Braces in comments and strings do not count; << >> nest.
    ('{ \\context Voice = "r" \\set x = #1 %{ } %}\n c^"}" << d >> } e',
     '{ \\context Voice = "r" { \\set x = #1 %{ } %}\n c^"}" << d >> } } e'),
    # A context followed by music is left alone.
    ('{ \\context Voice = "r" c d }', '{ \\context Voice = "r" c d }'),
])
def test_wrap_context_property(before, after):
    assert wrap_context_property(before) == after


def test_current_syntax_unchanged():
    text = "\\version \"2.24.0\"\n{ \\time 3/4 c'4\\cresc d e\\! | \\ottava #1 f2. }\n"
    assert apply_fixes(text) == text


def test_old_relative_is_dropped_before_convert_ly():
    assert apply_pre_fixes("#(ly:set-option 'old-relative)\n\\version \"2.4.0\"") == (
        '\n\\version "2.4.0"')
    assert all(len(f.problem) > 40 for f in PRE_FIXES)


SHAPE_FUNCTION = r"""\version "2.18.2"
shp = #(define-music-function (parser location offsets item) (list? symbol-list-or-music?)
  (define (shape-curve grob)
    (map (lambda (p o) (cons (+ (car p) (car o)) (+ (cdr p) (cdr o))))
         (ly:slur::calc-control-points grob) offsets))
  #{ \tweak control-points #shape-curve #item #})
{ \shp #'((0 . 1) (0 . 2) (0 . 2) (0 . 1)) Slur c'4( d' e' f') }
"""


def test_a_tweak_of_a_grob_name_renders(tmp_path):
    """A score's own \\shape-like function of LilyPond 2.18 fails on 2.25 as
    it is, and renders with the fix (real LilyPond)."""
    (tmp_path / "shape.ly").write_text(SHAPE_FUNCTION)
    piece = render_score(tmp_path / "shape.ly", tmp_path / "fixed", RenderConfig()).piece_dir
    assert json.loads((piece / "piece.json").read_text())["counts"]["noteheads"] == 4
    with pytest.raises(MsmdPrepError, match="Expecting music"):
        render_score(tmp_path / "shape.ly", tmp_path / "as-is", RenderConfig(fixes=False))


MARKUP_COMMAND_BELOW = r"""\version "2.16.1"
chapter =
#(define-music-function (parser location title) (string?)
  (make-music 'TextScriptEvent 'direction UP 'text (markup #:chapter-title title)))

#(define-markup-command (chapter-title layout props title) (markup?)
  "A title in large type; ) in a string and a ; comment )"
  (interpret-markup layout props (markup #:fontsize 3 title)))

{ c'4 \chapter "One" d' e' f' }
"""


def test_a_markup_command_defined_below_its_use_renders(tmp_path):
    """Guile 3 expands (markup #:chapter-title ...) when the function is
    defined: fails as it is, renders with the definition moved up."""
    fixed = next(f for f in FIXES if f.name == "markup-command-before-use")(MARKUP_COMMAND_BELOW)
    assert fixed.index("define-markup-command") < fixed.index("chapter =") < fixed.index("{ c'4")
    (tmp_path / "chapter.ly").write_text(MARKUP_COMMAND_BELOW)
    piece = render_score(tmp_path / "chapter.ly", tmp_path / "fixed", RenderConfig()).piece_dir
    assert json.loads((piece / "piece.json").read_text())["counts"]["noteheads"] == 4
    with pytest.raises(MsmdPrepError, match="Not a markup command: chapter-title"):
        render_score(tmp_path / "chapter.ly", tmp_path / "as-is", RenderConfig(fixes=False))


def test_the_removed_text_markup_command_renders(tmp_path):
    """\\text (removed in 2.25.6) is defined again as \\serif (msmd-compat.ily)."""
    (tmp_path / "text.ly").write_text(
        '\\version "2.24.0"\n'
        'pdolce = #(make-dynamic-script (markup #:dynamic "p" #:text #:italic "dolce"))\n'
        "{ c'4\\pdolce d'^\\markup \\text \"x\" e' f' }\n")
    piece = render_score(tmp_path / "text.ly", tmp_path / "piece", RenderConfig()).piece_dir
    assert json.loads((piece / "piece.json").read_text())["aligned_well"]


def test_a_four_number_moment_with_no_grace_renders(tmp_path):
    """Fails as it is (numerical overflow), renders with the fix (real LilyPond)."""
    (tmp_path / "tempo.ly").write_text(
        '\\version "2.18.2"\n'
        "{ \\set Score.tempoWholesPerMinute = #(ly:make-moment 60 4 0 0) c'4 d' e' f' }\n")
    piece = render_score(tmp_path / "tempo.ly", tmp_path / "fixed", RenderConfig()).piece_dir
    assert json.loads((piece / "piece.json").read_text())["counts"]["noteheads"] == 4
    with pytest.raises(MsmdPrepError, match="lilypond failed"):
        render_score(tmp_path / "tempo.ly", tmp_path / "as-is", RenderConfig(fixes=False))
