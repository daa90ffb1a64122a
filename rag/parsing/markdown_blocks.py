"""Markdown to blocks with a small line-based reader (CommonMark's block structure, roughly).

Why not a Markdown library: we need blocks, not HTML, and only the structure that matters for
chunking: ATX and setext headings, fenced code, list items, paragraphs. Inline syntax is
reduced to its text (links keep their label, images their alt text).
"""

from __future__ import annotations

import html
import re

from .structure import Block, heading, paragraph, preformatted

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_THEMATIC_BREAK = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_TABLE_CELL_RULE = r"[ \t]*:?-{2,}:?[ \t]*"
_TABLE_DELIMITER = re.compile(rf"^[ \t]*\|?{_TABLE_CELL_RULE}(?:\|{_TABLE_CELL_RULE})*\|?[ \t]*$")
_REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]+\S+")
_LIST_ITEM = re.compile(r"^[ \t]*([-*+]|\d{1,9}[.)])[ \t]+(.*)$")
_BLOCKQUOTE = re.compile(r"^(?: {0,3}>[ \t]?)+")
_FRONT_MATTER_TITLE = re.compile(r"^title:[ \t]*[\"']?(.*?)[\"']?[ \t]*$", re.MULTILINE)

_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_REFERENCE_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")


def markdown_blocks(text: str) -> tuple[list[Block], str]:
    """Return (blocks, title); the title is the first level-1 heading, else front matter's."""
    text, front_title = _strip_front_matter(_HTML_COMMENT.sub("", text))
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
    return text[end + 5 :], match.group(1) if match else ""


def inline_text(text: str) -> str:
    """Reduce inline Markdown and stray HTML tags to the text a reader sees."""
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _REFERENCE_LINK.sub(r"\1", text)
    text = _AUTOLINK.sub(r"\1", text)
    text = _HTML_TAG.sub("", text)
    text = _STRONG.sub(r"\2", text)
    return html.unescape(text)


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
            self.emit(heading(inline_text(match.group(2) or ""), len(match.group(1))))
        elif self.lines and not self.in_list_item and (match := _SETEXT_UNDERLINE.match(line)):
            text = inline_text("\n".join(self.lines))
            self.lines = []
            self.emit(heading(text, 1 if match.group(1)[0] == "=" else 2))
        elif _THEMATIC_BREAK.match(line):
            self.flush()
        elif _TABLE_DELIMITER.match(line) and "-" in line and ("|" in line or self.lines):
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
