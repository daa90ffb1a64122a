"""Parse stage of ingestion: bytes of an upload to normalised text blocks.

`document_parse` sniffs the type from the content, decodes and normalises the text and
returns its structure (headings and paragraphs) for chunking; the worker runs it.
`document_sniff` is what an upload request may afford: the type and a provisional title, from
a bounded prefix, so a client hears "unsupported type" or "empty" at once (and the console can
show a title) while a document of any size or shape costs the request the same. Neither
touches a database or settings: limits are plain arguments the caller fills from settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import (
    CODES,
    EMPTY_DOCUMENT,
    NO_TEXT,
    PDF_MALFORMED,
    PDF_MEMORY,
    PDF_TIMEOUT,
    UNSUPPORTED_TYPE,
    NoText,
    ParseError,
    UnsupportedType,
)
from .html_blocks import html_blocks
from .markdown_blocks import markdown_blocks
from .normalise import clean_text, decode_bytes, is_blank, looks_binary
from .pdf import (
    DEFAULT_MAX_CHARS,
    DEFAULT_MAX_PAGES,
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT_S,
    PdfText,
    is_pdf,
    parse_pdf_guarded,
    pdf_document,
)
from .sniff import binary_mime, text_mime
from .structure import (
    APPLICATION_PDF,
    TEXT_HTML,
    TEXT_MARKDOWN,
    TEXT_PLAIN,
    Block,
    ParsedDocument,
    clean_label,
    clip_title,
    split_paragraphs,
)

# What a request reads of an upload to name its type: enough for the magic numbers, a
# declared charset, charset statistics and the Markdown signals, and a fixed cost per upload.
SNIFF_BYTES = 64 * 1024

__all__ = [
    "APPLICATION_PDF",
    "CODES",
    "EMPTY_DOCUMENT",
    "NO_TEXT",
    "PDF_MALFORMED",
    "PDF_MEMORY",
    "PDF_TIMEOUT",
    "TEXT_HTML",
    "TEXT_MARKDOWN",
    "TEXT_PLAIN",
    "UNSUPPORTED_TYPE",
    "Block",
    "NoText",
    "ParseError",
    "ParsedDocument",
    "PdfText",
    "Sniffed",
    "UnsupportedType",
    "clean_label",
    "document_parse",
    "document_sniff",
    "parse_pdf_guarded",
]


@dataclass(frozen=True, slots=True)
class Sniffed:
    """What a request learns of an upload. `title` is that of the prefix ("" if it has none);
    None for a PDF, which only the worker opens."""

    mime_type: str
    title: str | None


def document_sniff(*, data: bytes, filename: str = "") -> Sniffed:
    """The type and provisional title of an upload, from its first SNIFF_BYTES only.

    Raises UnsupportedType for content we cannot parse, and NoText (`empty_document`) for an
    empty or blank upload (blank past the prefix only when all of it is whitespace). Anything
    else, a document without text among them, is found by `document_parse` in the worker.
    The prefix is read by the same (linear) readers as the whole document, so its title is
    the document's unless the heading that names it lies past the prefix.
    """
    if not data or data.isspace():
        raise NoText(EMPTY_DOCUMENT, "the document is empty")
    if is_pdf(data):
        return Sniffed(APPLICATION_PDF, None)
    head = _head(data)
    mime_guess = binary_mime(head)
    if mime_guess:
        raise UnsupportedType(mime_guess)
    text, encoding = decode_bytes(head)
    if looks_binary(head, text, encoding):
        raise UnsupportedType("application/octet-stream")
    if len(head) == len(data) and is_blank(text):
        raise NoText(EMPTY_DOCUMENT, "the document contains only whitespace")
    mime_type = text_mime(text, filename=filename)
    if mime_type == TEXT_HTML:
        title = html_blocks(clean_text(text))[1]
    elif mime_type == TEXT_MARKDOWN:
        title = markdown_blocks(clean_text(text))[1]
    else:
        title = ""
    return Sniffed(mime_type, clip_title(title))


def _head(data: bytes) -> bytes:
    """The first SNIFF_BYTES, not cut inside a UTF-8 sequence (a cut one would fail UTF-8
    and send the prefix to a legacy-charset guess)."""
    if len(data) <= SNIFF_BYTES:
        return data
    cut = SNIFF_BYTES
    while cut > SNIFF_BYTES - 3 and data[cut] & 0xC0 == 0x80:
        cut -= 1
    return data[:cut]


def document_parse(
    *,
    data: bytes,
    filename: str = "",
    pdf_timeout_s: float = DEFAULT_TIMEOUT_S,
    pdf_memory_mb: int = DEFAULT_MEMORY_MB,
    pdf_max_pages: int = DEFAULT_MAX_PAGES,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> ParsedDocument:
    """Sniff, decode, normalise and structure a document.

    The type comes from the bytes, never from `filename`, whose extension only tells plain
    text from Markdown when the content could be either. PDFs are parsed in a child process
    under `pdf_timeout_s` and `pdf_memory_mb`. Text past `max_chars` is dropped and the
    result marked `truncated`.

    Raises UnsupportedType, NoText (`empty_document` or `no_text`) or ParseError (pdf_*).
    """
    if not data.strip():
        raise NoText(EMPTY_DOCUMENT, "the document is empty")
    if is_pdf(data):
        return pdf_document(
            data,
            timeout_s=pdf_timeout_s,
            memory_mb=pdf_memory_mb,
            max_pages=pdf_max_pages,
            max_chars=max_chars,
        )
    mime_guess = binary_mime(data)
    if mime_guess:
        raise UnsupportedType(mime_guess)
    text, encoding = decode_bytes(data)
    if looks_binary(data, text, encoding):
        raise UnsupportedType("application/octet-stream")
    truncated = len(text) > max_chars
    text = clean_text(text[:max_chars])
    if not text.strip():
        raise NoText(EMPTY_DOCUMENT, "the document contains only whitespace")
    mime_type = text_mime(text, filename=filename)
    if mime_type == TEXT_HTML:
        blocks, title = html_blocks(text)
    elif mime_type == TEXT_MARKDOWN:
        blocks, title = markdown_blocks(text)
    else:
        blocks, title = split_paragraphs(text), ""
    if not blocks:
        raise NoText(NO_TEXT, f"no text found in the {mime_type} document")
    return ParsedDocument(
        mime_type=mime_type, title=clip_title(title), blocks=blocks, truncated=truncated
    )
