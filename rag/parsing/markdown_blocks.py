"""Markdown to blocks with a small line-based reader (CommonMark's block structure, roughly).

Why not a Markdown library: we need blocks, not HTML, and only the structure that matters for
chunking: ATX and setext headings, fenced code, list items, paragraphs. Inline syntax is
reduced to its text (links keep their label, images their alt text).

Every pattern here runs in time linear in its input, because an upload is hostile until
parsed: `**a ` repeated over 40 KB once took 6.8 s through a lazy `(.+?)` that rescanned the
rest of the line from every `**`. The rules that keep it linear:

- a repeated class excludes what opens the construct (no bracket inside a link label, no `**`
  inside `**...**`, no `<` inside a tag), so an attempt that fails stops at the next place
  another attempt would start, and all attempts together read the text about once;
- no two adjacent quantifiers can match the same characters (`[ \t]*` next to `[ \t]*`), so
  a failing match cannot try every way of splitting a run between them; what such patterns
  did (a heading's closing `#`s, table delimiter rows, an HTML comment) is done with string
  methods instead.

Inline spans therefore do not nest (`[a [b] c](u)` keeps its brackets, `**a __b__ c**` its
inner underscores): a small loss of fidelity in the indexed text, against a parser a document
cannot stall. tests/rag/test_parsing_linear.py holds the hostile inputs.
"""

from __future__ import annotations

import html
import re

from .structure import Block, heading, paragraph, preformatted

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t](.*))?$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_THEMATIC_BREAK = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_TABLE_CELL_RULE = re.compile(r":?-{2,}:?")
_REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\[\]]+\]:[ \t]+\S")
_LIST_ITEM = re.compile(r"^[ \t]*([-*+]|\d{1,9}[.)])[ \t]+(.*)$")
_BLOCKQUOTE = re.compile(r"^(?: {0,3}>[ \t]?)+")
_FRONT_MATTER_TITLE = re.compile(r"^title:(.*)$", re.MULTILINE)

# A destination may hold balanced parentheses one level deep (`wiki/Owl_(bird)`); each step of
# it is one character or one such group, never two ways of reading the same characters.
_DESTINATION = r"\((?:[^()]|\([^()]*\))*\)"
_IMAGE = re.compile(r"!\[([^\[\]]*)\]" + _DESTINATION)
_LINK = re.compile(r"\[([^\[\]]+)\]" + _DESTINATION)
_REFERENCE_LINK = re.compile(r"\[([^\[\]]+)\]\[[^\[\]]*\]")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^<>\s]+)>")
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
# Content starts and ends with a character that is neither space nor the delimiter's own, and
# may hold a single `*` (`**the *first* one**`) but never the delimiter itself.
_STRONG = re.compile(
    r"\*\*(?=[^*\s])((?:[^*\n]|\*(?!\*))*?[^*\s])\*\*|__(?=[^_\s])((?:[^_\n]|_(?!_))*?[^_\s])__"
)


def markdown_blocks(text: str) -> tuple[list[Block], str]:
    """Return (blocks, title); the title is the first level-1 heading, else front matter's."""
    text, front_title = _strip_front_matter(_strip_comments(text))
    reader = _Reader()
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        index = reader.feed(lines, index)
    reader.flush()
    title = next((b.text for b in reader.blocks if b.kind == "heading" and b.level == 1), "")
    return reader.blocks, title or front_title


def _strip_front_matter(text: str) -> tuple[str, str]:
    if not text.startswith("---\n"):
        return text, ""
    end = text.find("\n---\n", 4)
    if end == -1 or ":" not in text[4:end]:
        return text, ""
    match = _FRONT_MATTER_TITLE.search(text, 4, end)
    return text[end + 5 :], _unquote(match.group(1)) if match else ""


def _unquote(value: str) -> str:
    """`title: "A title"` -> `A title` (one quote off each end, if there)."""
    value = value.strip(" \t")
    if value[:1] in ("'", '"'):
        value = value[1:]
    if value[-1:] in ("'", '"'):
        value = value[:-1]
    return value.strip(" \t")


def _strip_comments(text: str) -> str:
    """Drop `<!-- ... -->`; an unclosed comment and what follows it stay (one pass, where
    `<!--.*?-->` rescanned to the end from every unclosed opening)."""
    parts: list[str] = []
    position = 0
    while (start := text.find("<!--", position)) != -1:
        end = text.find("-->", start + 4)
        if end == -1:
            break
        parts.append(text[position:start])
        position = end + 3
    if not parts:
        return text
    parts.append(text[position:])
    return "".join(parts)


def _atx_text(rest: str | None) -> str:
    """A heading's text without its optional closing sequence (`## Title ##`)."""
    text = (rest or "").strip(" \t")
    bare = text.rstrip("#")
    if bare != text and (not bare or bare[-1] in " \t"):
        text = bare.rstrip(" \t")
    return text


def _is_table_delimiter(line: str) -> bool:
    """`|---|:--:|` (outer pipes optional): the row under a table's header."""
    row = line.strip(" \t")
    row = row[1:] if row.startswith("|") else row
    row = row[:-1] if row.endswith("|") else row
    return all(_TABLE_CELL_RULE.fullmatch(cell.strip(" \t")) for cell in row.split("|"))


def inline_text(text: str) -> str:
    """Reduce inline Markdown and stray HTML tags to the text a reader sees."""
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _REFERENCE_LINK.sub(r"\1", text)
    text = _AUTOLINK.sub(r"\1", text)
    text = _HTML_TAG.sub("", text)
    text = _STRONG.sub(_strong_text, text)
    return html.unescape(text)


def _strong_text(match: re.Match) -> str:
    return match.group(1) or match.group(2)


class _Reader:
    """Accumulates paragraph lines and emits blocks at block boundaries."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.lines: list[str] = []
        self.in_list_item = False

    def emit(self, block: Block | None) -> None:
        if block is not None:
            self.blocks.append(block)

    def flush(self) -> None:
        if self.lines:
            self.emit(paragraph(inline_text("\n".join(self.lines))))
        self.lines = []
        self.in_list_item = False

    def feed(self, lines: list[str], index: int) -> int:
        """Consume the block starting at lines[index]; return the next index."""
        fence = _FENCE.match(lines[index])
        if fence:
            self.flush()
            return self._fenced_code(lines, index, fence.group(1))
        line = _BLOCKQUOTE.sub("", lines[index])
        if not line.strip():
            self.flush()
        elif match := _ATX.match(line):
            self.flush()
            self.emit(heading(inline_text(_atx_text(match.group(2))), len(match.group(1))))
        elif self.lines and not self.in_list_item and (match := _SETEXT_UNDERLINE.match(line)):
            text = inline_text("\n".join(self.lines))
            self.lines = []
            self.emit(heading(text, 1 if match.group(1)[0] == "=" else 2))
        elif _THEMATIC_BREAK.match(line):
            self.flush()
        elif ("|" in line or self.lines) and _is_table_delimiter(line):
            pass  # `|---|---|` carries no text
        elif _REFERENCE_DEFINITION.match(line):
            self.flush()
        elif match := _LIST_ITEM.match(line):
            self.flush()
            marker = "-" if match.group(1) in "-*+" else match.group(1)
            self.lines = [f"{marker} {match.group(2)}"]
            self.in_list_item = True
        else:
            self.lines.append(line)
        return index + 1

    def _fenced_code(self, lines: list[str], index: int, marker: str) -> int:
        closing = re.compile(rf"^ {{0,3}}{re.escape(marker[0])}{{{len(marker)},}}[ \t]*$")
        code: list[str] = []
        index += 1
        while index < len(lines) and not closing.match(lines[index]):
            code.append(lines[index])
            index += 1
        self.emit(preformatted("\n".join(code)))
        return index + 1
