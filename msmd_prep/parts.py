"""Which ``.ly`` files of a folder are scores, and which are parts of a piece.

Mutopia's multi-file pieces keep, beside the file that prints the piece,
files that only define its music for a score elsewhere, and files that only
write a MIDI file of it.  LilyPond prints nothing for either, so neither is
a score of its own.  The rules read the text only (comments and strings
left out); LilyPond never runs on these files for this.
"""
from __future__ import annotations

import re
from pathlib import Path

_COMMENT_OR_STRING = re.compile(r'%\{.*?%\}|%[^\n]*|"(?:[^"\\]|\\.)*"', re.DOTALL)
_OUTPUT_BLOCKS = ("header", "paper", "layout", "midi")


def strip_comments_and_strings(text: str) -> str:
    """``text`` with ``%`` comments removed and every string emptied to ``""``."""
    return _COMMENT_OR_STRING.sub(lambda m: '""' if m.group(0).startswith('"') else " ", text)


def _block_end(text: str, start: int) -> int:
    """Index just after the ``{ }`` or ``<< >>`` block that opens at ``start``."""
    depth, i = 0, start
    while i < len(text):
        if text.startswith("<<", i) or text[i] == "{":
            depth += 1
            i += 2 if text[i] == "<" else 1
        elif text.startswith(">>", i) or text[i] == "}":
            depth -= 1
            i += 2 if text[i] == ">" else 1
            if depth == 0:
                return i
        else:
            i += 1
    return len(text)


def _score_blocks(text: str) -> list[str]:
    """The text of every ``\\score { ... }`` block."""
    blocks = []
    for m in re.finditer(r"\\score\s*\{", text):
        blocks.append(text[m.end() - 1:_block_end(text, m.end() - 1)])
    return blocks


def is_midi_only(text: str) -> bool:
    """Every ``\\score`` of the file has a ``\\midi`` block and none a ``\\layout``,
    and nothing else in it is music: LilyPond writes MIDI files only
    (``rectus.ly`` of Bach's BWV 1080/17).  ``\\book`` and ``\\bookpart``
    blocks around the scores count as their contents (Mutopia's
    ``clementi-op42-midi.ly``, ``hanon-book-midi.ly``: one ``\\book`` of one
    MIDI-only score per lesson, to name each MIDI file)."""
    text = strip_comments_and_strings(text)
    blocks = _score_blocks(text)
    if not blocks or not all(re.search(r"\\midi\b", b) and not re.search(r"\\layout\b", b)
                             for b in blocks):
        return False
    rest = _without_books(_without_blocks(text, r"\\score\s*\{"))
    return not re.search(r"\\(?:score|book|bookpart)\b", rest) and _only_definitions(rest)


def _without_blocks(text: str, opening: str) -> str:
    """``text`` without the blocks that ``opening`` (a regex ending in ``{``) opens."""
    out, pos = [], 0
    for m in re.finditer(opening, text):
        if m.start() < pos:
            continue
        out.append(text[pos:m.start()])
        pos = _block_end(text, m.end() - 1)
    return "".join(out) + text[pos:]


def _without_books(text: str) -> str:
    """``text`` with every ``\\book { ... }`` and ``\\bookpart { ... }`` replaced by
    its contents, and the statements naming a book's output dropped."""
    text = re.sub(r"\\bookOutput(?:Name|Suffix)\s*\"\"", " ", text)
    while m := re.search(r"\\book(?:part)?\s*\{", text):
        end = _block_end(text, m.end() - 1)
        text = text[:m.start()] + " " + text[m.end():end - 1] + " " + text[end:]
    return text


def defines_only(text: str) -> bool:
    """The file defines something (``upper = \\relative c'' { ... }``) and
    holds no ``\\score``, no ``\\book`` and no music outside assignments: it
    defines music for a score elsewhere.  An empty or binary file is not a
    part (it fails as a score, with its cause)."""
    if "\0" in text:
        return False
    text = strip_comments_and_strings(text)
    if (re.search(r"\\(?:score|book|bookpart)\b", text)
            or not re.search(r"(?m)^\s*[A-Za-z][\w-]*\s*=", text)):
        return False
    return _only_definitions(text)


def _only_definitions(text: str) -> bool:
    """``text`` (comments and strings stripped) holds no music outside
    assignments and output blocks (``\\header``, ``\\paper`` ...)."""
    i, statement_start = 0, 0
    while i < len(text):
        if text.startswith("<<", i) or text[i] == "{":
            head = text[statement_start:i]
            if not (re.search(r"=", head)
                    or re.search(r"\\(?:%s)\s*$" % "|".join(_OUTPUT_BLOCKS), head)):
                return False
            i = statement_start = _block_end(text, i)
        elif text[i] == "#" and text.startswith("#(", i):
            i = statement_start = _scheme_end(text, i + 1)
        elif text[i] == "\n" and _complete(text[statement_start:i]):
            i += 1
            statement_start = i
        else:
            i += 1
    return True


_SINGLE_VALUE = re.compile(r'\s*(?:#\S+|""|-?[\d.]+|\\[A-Za-z]+)\s*$')


def _complete(statement: str) -> bool:
    """A line ends the statement: it holds no assignment, or one whose value
    is a single token (``x = 3``, ``y = \\foo``); ``z =`` and
    ``z = \\relative c'`` go on with the next line."""
    head, eq, value = statement.partition("=")
    return not eq or bool(_SINGLE_VALUE.match(value))


def _scheme_end(text: str, start: int) -> int:
    """Index just after the Scheme expression in parentheses at ``start``."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i + 1
    return len(text)


def is_part(text: str) -> bool:
    """``text`` is not a score of its own (see :func:`is_midi_only`, :func:`defines_only`)."""
    return is_midi_only(text) or defines_only(text)


def closure_text(path: Path, read, *, root: Path | None = None) -> str:
    """The text of ``path`` followed by that of every file it includes from
    beside it, recursively; ``read(path) -> str``.  Files outside ``root``
    (the folder searched) are not read."""
    from .normalize import INCLUDE_RE

    top = (root or path.parent).resolve()
    seen, texts, queue = set(), [], [path.resolve()]
    while queue:
        f = queue.pop(0)
        if f in seen or not f.is_relative_to(top) or not f.is_file():
            continue
        seen.add(f)
        text = read(f)
        texts.append(text)
        queue += [(f.parent / name).resolve() for name in INCLUDE_RE.findall(text)]
    return "\n".join(texts)
