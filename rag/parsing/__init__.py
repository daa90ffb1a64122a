"""Parse stage of ingestion: bytes of an upload to normalised text blocks.

`document_parse` sniffs the type from the content, decodes and normalises the text and
returns its structure (headings and paragraphs) for chunking. It touches no database and no
settings: limits are plain arguments the caller fills from settings.
"""

from __future__ import annotations

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
from .normalise import clean_text, decode_bytes, looks_binary
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
    clip_title,
    split_paragraphs,
)

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
    "UnsupportedType",
    "document_parse",
    "parse_pdf_guarded",
]


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
