"""Parse errors. Every failure carries a stable machine-readable `code`.

Why one base class: the ingestion task records `code` on the Document and the API shows it as
the problem `code`, so callers catch `ParseError` once and never parse messages.
"""

from __future__ import annotations

UNSUPPORTED_TYPE = "unsupported_type"
EMPTY_DOCUMENT = "empty_document"
NO_TEXT = "no_text"
PDF_MALFORMED = "pdf_malformed"
PDF_TIMEOUT = "pdf_timeout"
PDF_MEMORY = "pdf_memory"

CODES = frozenset(
    {UNSUPPORTED_TYPE, EMPTY_DOCUMENT, NO_TEXT, PDF_MALFORMED, PDF_TIMEOUT, PDF_MEMORY}
)


class ParseError(Exception):
    """A document could not be turned into text; `code` is one of CODES."""

    def __init__(self, code: str, message: str = "") -> None:
        if code not in CODES:
            raise ValueError(f"unknown parse error code {code!r}")
        self.code = code
        self.message = message or code.replace("_", " ")
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class UnsupportedType(ParseError):
    """The content is not one of the types we parse; `mime_guess` says what it looks like."""

    def __init__(self, mime_guess: str, message: str = "") -> None:
        self.mime_guess = mime_guess
        super().__init__(UNSUPPORTED_TYPE, message or f"unsupported content type {mime_guess}")


class NoText(ParseError):
    """Nothing to index: `reason` is `empty_document` (no content at all, or only whitespace)
    or `no_text` (content without extractable text, e.g. a scanned PDF)."""

    def __init__(self, reason: str = NO_TEXT, message: str = "") -> None:
        if reason not in (EMPTY_DOCUMENT, NO_TEXT):
            raise ValueError(f"NoText reason must be {EMPTY_DOCUMENT} or {NO_TEXT}, not {reason!r}")
        self.reason = reason
        super().__init__(reason, message)
