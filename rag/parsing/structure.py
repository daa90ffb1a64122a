"""The parser's output shapes, shared by every format."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

BlockKind = Literal["heading", "paragraph"]

TEXT_PLAIN = "text/plain"
TEXT_MARKDOWN = "text/markdown"
TEXT_HTML = "text/html"
APPLICATION_PDF = "application/pdf"

TITLE_MAX_CHARS = 500  # Document.title's column width

_WHITESPACE = re.compile(r"\s+")
# What a title or file name must not carry: controls (NUL among them: PostgreSQL text cannot
# hold it), lone surrogates, the BOM, and the bidirectional embeddings, overrides and isolates
# (U+202A-U+202E, U+2066-U+2069), which reorder what a reader sees: "invoice\u202efdp.exe"
# shows as "invoiceexe.pdf". Directional marks (U+200E, U+200F) stay: mixed right-to-left
# titles need them, and they cannot reorder text.
_LABEL_UNWANTED = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufeff]")
_LINE_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


@dataclass(frozen=True, slots=True)
class Block:
    """A heading (level 1-6) or a paragraph (level 0) in document order."""

    kind: BlockKind
    text: str
    level: int = 0


@dataclass(slots=True)
class ParsedDocument:
    """Normalised text of a document, kept in blocks so chunking can follow its structure.

    `truncated` is True when a page or character cap cut the document short.
    """

    mime_type: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    truncated: bool = False

    @property
    def text(self) -> str:
        return "\n\n".join(block.text for block in self.blocks)


def collapse_whitespace(text: str) -> str:
    """One space for every run of whitespace: paragraphs re-wrapped by editors or PDF line
    breaks read and tokenize the same."""
    return _WHITESPACE.sub(" ", text).strip()


def tidy_preformatted(text: str) -> str:
    """Code keeps its lines (they carry meaning) but loses trailing spaces and blank runs."""
    lines = []
    for line in text.split("\n"):
        body = line.lstrip(" \t")
        lines.append(line[: len(line) - len(body)] + _LINE_SPACES.sub(" ", body).rstrip())
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n").strip()


def paragraph(text: str) -> Block | None:
    text = collapse_whitespace(text)
    return Block("paragraph", text, 0) if text else None


def preformatted(text: str) -> Block | None:
    text = tidy_preformatted(text)
    return Block("paragraph", text, 0) if text else None


def heading(text: str, level: int) -> Block | None:
    text = collapse_whitespace(text)
    return Block("heading", text, max(1, min(6, level))) if text else None


def clean_label(text: str) -> str:
    """A title or file name as people will read it: without the characters of _LABEL_UNWANTED
    (tabs and line breaks become spaces, so the words they separated stay apart), whitespace
    collapsed, NFC."""
    text = _LABEL_UNWANTED.sub(lambda m: " " if m.group() in "\t\n\r\x0b\x0c" else "", text)
    return unicodedata.normalize("NFC", collapse_whitespace(text))


def clip_title(title: str) -> str:
    return clean_label(title)[:TITLE_MAX_CHARS].strip()


def split_paragraphs(text: str) -> list[Block]:
    """Blank lines separate paragraphs (plain text, PDF pages)."""
    return [block for chunk in _BLANK_LINES.split(text) if (block := paragraph(chunk))]
