"""A task's patch as the dashboard shows it: file by file, each line with its old and new
numbers and its code split into highlighted tokens.

A patch is the output of an agent that ran arbitrary commands, so it is read as text and
never trusted: tokens are plain strings with a class name (the page sets them as text,
never as markup), a patch unidiff cannot parse is shown as plain lines, and the work is
bounded (a large patch is shown without highlighting rather than slowly).
"""

from __future__ import annotations

from typing import Any

from pygments import lex
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_for_filename
from pygments.token import STANDARD_TYPES, _TokenType
from pygments.util import ClassNotFound
from unidiff.errors import UnidiffParseError
from unidiff.patch import PatchSet

#: Beyond this many lines in a patch, its code is not highlighted (it is still shown).
MAX_HIGHLIGHTED_LINES = 20_000
#: A longer line (minified code, data) is not highlighted: lexers can be slow on it.
MAX_HIGHLIGHTED_LINE = 2_000

Token = list[str]  # [class, text]; class "" is plain
Line = dict[str, Any]


def diff_files(patch: str) -> list[dict[str, Any]]:
    """Each file of ``patch``: ``name``, ``old_name``, ``status`` (added, deleted,
    renamed, modified), ``binary``, ``added``, ``removed`` and ``hunks``, each hunk a
    ``header`` and ``lines`` (``kind`` one of ``+``, ``-``, `` ``, ``\\``; ``old`` and
    ``new`` line numbers; ``tokens``)."""
    if not patch.strip():
        return []
    try:
        parsed = PatchSet(patch)
    except (UnidiffParseError, ValueError, IndexError):
        return [_plain(patch)]
    highlight = sum(f.added + f.removed for f in parsed) <= MAX_HIGHLIGHTED_LINES
    files = []
    for found in parsed:
        name = _path(found.target_file) or _path(found.source_file) or found.path
        old = _path(found.source_file) or name
        status = ("added" if found.is_added_file else "deleted" if found.is_removed_file
                  else "renamed" if old != name else "modified")
        lexer = _lexer(name) if highlight and not found.is_binary_file else None
        hunks = [{"header": str(hunk).split("\n", 1)[0], "lines": _lines(hunk, lexer)}
                 for hunk in found]
        files.append({"name": name, "old_name": old, "status": status,
                      "binary": bool(found.is_binary_file), "added": found.added,
                      "removed": found.removed, "hunks": hunks})
    return files


def _path(header: str | None) -> str:
    if not header or header == "/dev/null":
        return ""
    return header[2:] if header[:2] in ("a/", "b/") else header


def _plain(patch: str) -> dict[str, Any]:
    lines = [{"kind": " ", "old": None, "new": None, "tokens": [["", text]]}
             for text in patch.splitlines()]
    return {"name": "(patch)", "old_name": "(patch)", "status": "modified", "binary": False,
            "added": 0, "removed": 0, "hunks": [{"header": "", "lines": lines}]}


def _lexer(name: str) -> Lexer | None:
    try:
        return get_lexer_for_filename(name, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None


def _lines(hunk: Any, lexer: Lexer | None) -> list[Line]:
    """The hunk's lines; the old side (context and removed) and the new side (context
    and added) are each highlighted as one text, so a string or comment that spans lines
    is coloured as the file has it."""
    rows = [{"kind": line.line_type, "old": line.source_line_no,
             "new": line.target_line_no, "text": line.value.rstrip("\n")} for line in hunk]
    tokens: dict[int, list[Token]] = {}
    if lexer is not None:
        for side in ("-", "+"):
            picked = [n for n, row in enumerate(rows) if row["kind"] in (side, " ")]
            for n, found in zip(picked, _highlight([rows[n]["text"] for n in picked], lexer),
                                strict=True):
                if found:
                    tokens.setdefault(n, found)
    return [{"kind": row["kind"], "old": row["old"], "new": row["new"],
             "tokens": tokens.get(n) or [["", row["text"]]]} for n, row in enumerate(rows)]


def _highlight(texts: list[str], lexer: Lexer) -> list[list[Token]]:
    """``texts`` lexed as consecutive lines of one file: each line's tokens."""
    out: list[list[Token]] = [[] for _ in texts]
    if any(len(text) > MAX_HIGHLIGHTED_LINE for text in texts):
        return out
    row = 0
    for kind, value in lex("\n".join(texts) + "\n", lexer):
        for n, piece in enumerate(value.split("\n")):
            if n:
                row += 1
            if piece and row < len(out):
                _append(out[row], _css_class(kind), piece)
    return out


def _append(tokens: list[Token], css: str, text: str) -> None:
    if tokens and tokens[-1][0] == css:
        tokens[-1][1] += text
    else:
        tokens.append([css, text])


def _css_class(kind: _TokenType) -> str:
    """Pygments' short class for ``kind`` or its nearest parent's (``k``, ``s2``, ``c1``)."""
    while kind not in STANDARD_TYPES and kind.parent is not None:
        kind = kind.parent
    return STANDARD_TYPES.get(kind, "")
