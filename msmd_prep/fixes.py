"""Text fixes for old LilyPond sources that ``convert-ly`` leaves broken.

Each fix is a :class:`Fix`: a name, the real-world problem it solves and a
regular-expression rewrite.  :func:`apply_fixes` runs them all, in order, on
the normalized copy of every file after ``convert-ly`` (see
:func:`msmd_prep.normalize.normalize_source`); the user's files are never
touched.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Fix:
    """One named rewrite of LilyPond source text.

    Attributes
    ----------
    name : str
        Short identifier, used in logs and tests.
    problem : str
        The real-world problem it fixes, with an example.
    pattern : re.Pattern or None
        What to find; ``None`` when ``replace`` rewrites the whole text.
    replace : str or callable
        Replacement, as for :meth:`re.Pattern.sub`; with no ``pattern``, a
        function from the whole text to the fixed text.
    """

    name: str
    problem: str
    pattern: re.Pattern | None
    replace: str | Callable

    def __call__(self, text: str) -> str:
        if self.pattern is None:
            return self.replace(text)
        return self.pattern.sub(self.replace, text)


_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"')


def _close_of_block(text: str, start: int) -> int:
    """Index of the ``}`` or ``>>`` that closes the block holding ``start``.

    Skips strings and ``%`` / ``%{ %}`` comments; returns ``len(text)`` when
    the block is not closed.
    """
    depth, i, n = 0, start, len(text)
    while i < n:
        c = text[i]
        if text.startswith("%{", i):
            end = text.find("%}", i + 2)
            i = n if end < 0 else end + 2
            continue
        if c == "%":
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if c == '"':
            m = _STRING_RE.match(text, i)
            i = i + 1 if m is None else m.end()
            continue
        if c == "{" or text.startswith("<<", i):
            depth += 1
            i += 1 if c == "{" else 2
            continue
        if c == "}" or text.startswith(">>", i):
            if depth == 0:
                return i
            depth -= 1
            i += 1 if c == "}" else 2
            continue
        i += 1
    return n


_CONTEXT_THEN_PROPERTY = re.compile(
    r'(\\(?:context|new)\s+[A-Za-z]+\s*=\s*(?:"[^"]*"|[A-Za-z]+))'
    r'(?=\s*\\(?:override|set|once|revert|unset)\b)')


def wrap_context_property(text: str) -> str:
    """Wrap the rest of the block after ``\\context Voice = "x"`` (or
    ``\\new Voice = "x"``) in braces when a property command follows it.

    Until 2.12, ``\\context Voice = "rechts" \\override ...`` was valid: the
    context took the override as its music and the notes after it went into
    that voice too.  Current LilyPond refuses a property command there
    (``syntax error, unexpected \\override``).  ``{ ... }`` around the rest of
    the enclosing block keeps the meaning.  Example (Chopin Op. 10/5)::

        rechts = \\relative c'{ \\context Voice = "rechts" \\override X.y = 1 c d }
        rechts = \\relative c'{ \\context Voice = "rechts" { \\override X.y = 1 c d } }
    """
    for m in reversed(list(_CONTEXT_THEN_PROPERTY.finditer(text))):
        close = _close_of_block(text, m.end())
        text = text[:m.end()] + " {" + text[m.end():close] + "} " + text[close:]
    return text


_LAYOUT_RE = re.compile(r"\\(?:layout|midi)\s*\{")
_LAYOUT_CONTEXT_PROPERTY = re.compile(
    r"\\context\s+([A-Z][A-Za-z]*)\s+(\\(?:override|set|remove|consists)\b[^\n{}]*)")


def layout_context_property(text: str) -> str:
    """``\\layout { \\context Staff \\override X.y = z }`` (<= 2.8) as
    ``\\layout { \\context { \\Staff \\override X.y = z } }``."""
    out, pos = [], 0
    for m in _LAYOUT_RE.finditer(text):
        if m.start() < pos:
            continue
        close = _close_of_block(text, m.end())
        out.append(text[pos:m.end()])
        out.append(_LAYOUT_CONTEXT_PROPERTY.sub(r"\\context { \\\1 \2 }", text[m.end():close]))
        pos = close
    return "".join(out) + text[pos:]


_DEFINE_THEN = re.compile(r"(\(\s*if\s+\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\)\s*)"
                          r"\(\s*define\s+([A-Za-z][\w!?*<>=/+.:-]*)\s")
_DEFINE_ELSE = re.compile(r"(\(module-define! \(current-module\) '[^\s()]+\s+"
                          r"(?:[^()]|\([^()]*\))*\)\s*)\(\s*define\s+([A-Za-z][\w!?*<>=/+.:-]*)\s")
_MODULE_DEFINE = r"\1(module-define! (current-module) '\2 "


def _scheme_close(text: str, start: int) -> int:
    """Index just after the Scheme expression whose ``(`` is at ``start``
    (strings, ``;`` comments and ``#\\x`` characters skipped)."""
    depth, i, n = 0, start, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            m = _STRING_RE.match(text, i)
            i = n if m is None else m.end()
            continue
        if c == ";":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if text.startswith("#\\", i):
            i += 3
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


_MARKUP_COMMAND_DEF = re.compile(r"(?m)^#\(\s*define-markup-command\s*\(\s*([A-Za-z][\w-]*)\s")


def markup_commands_before_use(text: str) -> str:
    """Move a file's ``#(define-markup-command (name ...))`` above the first
    ``(markup ... #:name ...)`` that comes before it.

    Guile 1.8 expanded the ``markup`` macro in a function's body when the
    function ran; Guile 3 expands it when the function is defined, so a
    markup command defined further down is not one yet: 'Not a markup
    command: chapter-title' (Clementi Op. 42's ``book-titling.ily`` uses it
    in ``\\chapter`` and defines it 30 lines below).  The definitions move,
    in their order, to the start of the top-level statement (a line that
    starts in column 0 and is not the value of a ``name =`` above it)
    holding the first such use.
    """
    defs = []
    for m in _MARKUP_COMMAND_DEF.finditer(text):
        use = re.search(r"#:%s(?![\w-])" % re.escape(m.group(1)), text[:m.start()])
        if use:
            defs.append((m.start(), _scheme_close(text, m.start() + 1), use.start()))
    if not defs:
        return text
    first_use = min(u for _, _, u in defs)
    # A statement starts in column 0, unless it is the value of 'name =' above it.
    starts = [m.start() for m in re.finditer(r"(?m)^[^\s%]", text[:first_use + 1])
              if not text[:m.start()].rstrip().endswith("=")]
    at = starts[-1] if starts else 0
    moved = "".join(text[a:b] + "\n\n" for a, b, _ in defs)
    for a, b, _ in reversed(defs):
        text = text[:a] + text[b:]
    return text[:at] + moved + text[at:]


FIXES: tuple[Fix, ...] = (
    Fix("deprecated-dynamics",
        "convert-ly renames \\cresc, \\dim, \\endcresc, \\enddim to \\deprecated..., "
        "which 2.25 defines as music, not post-events: 's^\\deprecatedcresc' fails with "
        "'unexpected MUSIC_IDENTIFIER'.  The current names are post-events with the old "
        "meaning, and a score's own definitions of them (Beethoven Op. 129: "
        "'deprecatedcresc = \\markup {...}') keep shadowing the built-ins.",
        re.compile(r"\\deprecated(cresc|dim|endcresc|enddim)\b"), r"\\\1"),
    Fix("set-octavation",
        "'#(set-octavation 1)' (LilyPond <= 2.10) was removed: 'Unbound variable: "
        "set-octavation' (Schubert D 899/2).  It is '\\ottava #1' now.",
        re.compile(r"#\s*\(\s*set-octavation\s+(-?\d+)\s*\)"), r"\\ottava #\1"),
    Fix("auto-beam-setting",
        "'#(override-auto-beam-setting '(end * * * *) 1 8 'Staff)' and its 'revert-' twin "
        "(<= 2.12) were removed: 'Unbound variable: override-auto-beam-setting' (Chopin "
        "Op. 10/5, Op. 28/4).  They only change beaming; dropped, the default beaming is "
        "used.",
        re.compile(r"#\s*\(\s*(?:override|revert)-auto-beam-setting\b[^()]*"
                   r"(?:\([^()]*\)[^()]*)*\)"), "#(if #f #f)"),
    Fix("scheme-number-glued",
        "A Scheme number glued to a bar check, '\\ottava #0|', was read as the number by "
        "old Guile, as the symbol '0|' by Guile 2 ('Unbound variable: #{0|}#', "
        "Mendelssohn Op. 16/2).  Glued to a command or a chord likewise: convert-ly writes "
        "'#(set-octavation 1)\\times' as '\\ottava #1\\tuplet' ('Unbound variable: "
        "#{1\\tuplet}#', Gottschalk's The Dying Swan, which has '#1<si'' too).  A space "
        "separates them.",
        re.compile(r"(#-?\d+(?:\.\d+)?)([|\\<>{}\[\]~])"), r"\1 \2"),
    Fix("articulation-type-symbol",
        "Since 2.23.6 'articulation-type' must be a symbol; a score's own Scheme that builds "
        "'(make-music 'ArticulationEvent 'articulation-type articulation)' from a string "
        "(Rachmaninoff Op. 23/3: '\\addArticulation \"staccato\"') makes LilyPond crash.  "
        "The value is turned into a symbol where it is a string.",
        re.compile(r"'articulation-type\s+(\"[^\"]*\"|[A-Za-z][\w!?*<>=/+-]*)"),
        lambda m: f"'articulation-type (let ((a {m.group(1)})) "
                  f"(if (string? a) (string->symbol a) a))"),
    Fix("make-moment-grace-zero",
        "'#(ly:make-moment 56 4 0 0)' (LilyPond <= 2.18: numerator, denominator, grace "
        "numerator, grace denominator) divides by the grace denominator 0 in 2.25: 'Throw to "
        "key numerical-overflow' (Rachmaninoff Op. 23/5, 'tempoWholesPerMinute').  A zero "
        "grace part is dropped.",
        re.compile(r"(\(\s*ly:make-moment\s+-?\d+\s+\d+)\s+0\s+0\s*\)"), r"\1)"),
    Fix("apply-music-unfold-repeats",
        "'\\applyMusic #unfold-repeats \\music' (<= 2.18) fails since unfold-repeats takes "
        "a list of repeat types: 'Wrong number of arguments to unfold-repeats' (Beethoven "
        "Op. 129).  '\\unfoldRepeats \\music' does the same.",
        re.compile(r"\\applyMusic\s*#\s*unfold-repeats\b"), r"\\unfoldRepeats"),
    Fix("unset-beat-structure",
        "'\\unset Timing.beatStructure' after a custom '\\set Timing.beatStructure = 1,2,2,1' "
        "made the beats follow the time signature again until 2.24; LilyPond 2.25.12 "
        "crashes (SIGSEGV) when it autobeams after it (Rachmaninoff Op. 23/3).  The unset "
        "is dropped: the custom beat grouping holds until the next '\\time'.",
        re.compile(r"\\unset\s+(?:(?:Timing|Score)\s*\.\s*)?beatStructure\b"), ""),
    Fix("define-in-if",
        "'#(if (equal? paper-width (* 210 mm)) (define system-count 19))' (Mutopia's Bach WTC, "
        "<= 2.10): Guile 1.8 took a definition inside 'if' (then or else branch), Guile 3 "
        "rejects it ('Guile signaled an error ... Syntax error').  The definition becomes "
        "'module-define!' of the same name in the current module (the \\paper block's, there).",
        None, lambda text: _DEFINE_ELSE.sub(_MODULE_DEFINE, _DEFINE_THEN.sub(_MODULE_DEFINE, text))),
    Fix("unquoted-empty-list",
        "'\\override Stem #'stroke-style = #()' (Bach invention 3, LilyPond 2.4): old Guile "
        "read an unquoted () as the empty list, Guile 3 rejects it ('Guile signaled an error "
        "... Syntax error').  It becomes #'().",
        re.compile(r"#\(\s*\)"), "#'()"),
    Fix("gettext-underscore",
        "'(_ \"text\")' called LilyPond's gettext in a score's own Scheme (Beethoven Op. 2/1 "
        "'shapeII.ily'); in Guile 3 '_' is a syntactic keyword: \"bad use of '_' syntactic "
        "keyword\".  LilyPond's gettext is 'G_' now.",
        re.compile(r"\(_(\s+\")"), r"(G_\1"),
    Fix("octave-after-duration",
        "'f8'-5' (LilyPond 1.x) put the octave mark after the duration: 'octave marks must "
        "precede duration' (Burgmuller Op. 100/1).  The marks move before the duration.",
        re.compile(r"(?<![\w\\#'\"])([a-g](?:isis|eses|is|es|s)?)(\d+\.*)([',]+)(?![\w'])"),
        r"\1\3\2"),
    Fix("layout-context-property",
        "'\\layout { \\context Staff \\override TextScript ... }' (<= 2.8) is a syntax "
        "error now ('unexpected \\override', Chopin Op. 10/9); see "
        ":func:`layout_context_property`.",
        None, layout_context_property),
    Fix("mark-event",
        "\"(make-music 'MarkEvent 'direction DOWN 'label text)\" (<= 2.22): LilyPond 2.24 split "
        "MarkEvent into RehearsalMarkEvent (numbers) and AdHocMarkEvent (texts): 'cannot find "
        "music object: MarkEvent' (Mussorgsky's Pictures, Mutopia).  A mark with a 'label "
        "becomes an AdHocMarkEvent with that 'text; one without, a RehearsalMarkEvent.",
        re.compile(r"\(\s*make-music\s+'MarkEvent\b((?:[^()]|\((?:[^()]|\([^()]*\))*\))*)\)"),
        lambda m: ("(make-music 'AdHocMarkEvent"
                   + re.sub(r"'label\b", "'text", m.group(1)) + ")")
        if re.search(r"'label\b", m.group(1)) else f"(make-music 'RehearsalMarkEvent{m.group(1)})"),
    Fix("tweak-of-a-variable",
        "A score's own music function that ends in '#{ \\tweak control-points #shape-curve "
        "#item #}' with 'item' a grob name (Mutopia's 'shapeII.ily', Debussy L117 prel. 3, "
        "Beethoven Op. 2/1: '\\shapeII #'((s -1 0)) PhrasingSlur'): until 2.22 '\\tweak' "
        "became '\\once \\override' when given a grob name; since 2.23 it takes music only "
        "('wrong type for argument 3.  Expecting music, found (list 'PhrasingSlur)').  "
        "'\\propertyTweak' has the old meaning, and tweaks music exactly as '\\tweak' does; "
        "it replaces a '\\tweak' whose target is a Scheme variable ('#item').",
        re.compile(r"\\tweak(\s+[A-Za-z][\w.-]*\s+#'?(?:[^\s#{}()]+|\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\))"
                   r"\s+#[A-Za-z][\w!?*<>=/+-]*)(?![\w!?*<>=/+-])"),
        r"\\propertyTweak\1"),
    Fix("markup-command-before-use",
        "Guile 3 expands '(markup #:chapter-title title)' where the function holding it is "
        "defined, so a markup command defined further down fails: 'Not a markup command: "
        "chapter-title' (Clementi Op. 42); see :func:`markup_commands_before_use`.",
        None, markup_commands_before_use),
    Fix("context-then-property",
        "'\\context Voice = \"x\" \\override ...' (<= 2.12) is a syntax error now (Chopin "
        "Op. 10/5, 25/2, 28/4); see :func:`wrap_context_property`.",
        None, wrap_context_property),
)


#: Fixes applied before ``convert-ly``: constructs that stop it.
PRE_FIXES: tuple[Fix, ...] = (
    Fix("old-relative",
        "'#(ly:set-option 'old-relative)' (LilyPond 2.0 to 2.4, for 1.x relative chords) stops "
        "convert-ly: 'Not smart enough to convert #(ly:set-option 'old-relative)' (Mutopia's "
        "Bach inventions 3, 4, 8).  The option is dropped: notes keep their relative octaves; "
        "only the first note of a chord after a chord could take another octave than the "
        "1.x rule gave.",
        re.compile(r"#\s*\(\s*ly:set-option\s+'old-relative(?:\s+#t)?\s*\)"), ""),
)


#: Fixes tried only when LilyPond keeps crashing on a score: constructs that
#: crash LilyPond 2.25.12 itself, each dropped with what it only tunes.
CRASH_FIXES: tuple[Fix, ...] = (
    Fix("notehead-x-offset",
        "'\\once \\override NoteHead.X-offset = #2.0' on a tied chord makes LilyPond 2.25.12 "
        "crash (SIGSEGV) in every run (Beethoven Op. 90/1, Mutopia); without it the score "
        "renders.  The override only moves heads sideways; dropped, the heads stand where "
        "LilyPond puts them.",
        re.compile(r"(?:\\once\s*)?\\override\s+(?:[A-Za-z]+\s*\.\s*)?NoteHead\s*"
                   r"(?:\.\s*|#')X-offset\s*=\s*#?[-+\d.]+"), ""),
)


def apply_pre_fixes(text: str, fixes: tuple[Fix, ...] = PRE_FIXES) -> str:
    """Apply ``fixes`` in order to the text of one LilyPond file, before ``convert-ly``."""
    for fix in fixes:
        text = fix(text)
    return text


def apply_fixes(text: str, fixes: tuple[Fix, ...] = FIXES) -> str:
    """Apply ``fixes`` in order to the text of one LilyPond file."""
    for fix in fixes:
        text = fix(text)
    return text
