"""Content sniffing. The filename is never trusted: an upload named `.pdf` may be HTML and an
attachment named `.txt` may be a PDF or an image. The extension only breaks the tie between
plain text and Markdown, where both readings are valid."""

from __future__ import annotations

import re
from pathlib import PurePath

from .errors import UnsupportedType
from .structure import TEXT_HTML, TEXT_MARKDOWN, TEXT_PLAIN

# (offset, magic, mime guess) for common binary formats we do not parse.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (0, b"\x00\x00\x01\x00", "image/vnd.microsoft.icon"),
    (0, b"8BPS", "image/vnd.adobe.photoshop"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole-storage"),  # .doc .xls .ppt
    (0, b"\x1f\x8b", "application/gzip"),
    (0, b"\xfd7zXZ\x00", "application/x-xz"),
    (0, b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (0, b"Rar!\x1a\x07", "application/vnd.rar"),
    (0, b"\x28\xb5\x2f\xfd", "application/zstd"),
    (0, b"\x7fELF", "application/x-executable"),
    (0, b"\xca\xfe\xba\xbe", "application/java-vm"),
    (0, b"\x00asm", "application/wasm"),
    (0, b"SQLite format 3\x00", "application/vnd.sqlite3"),
    (0, b"OggS", "audio/ogg"),
    (0, b"fLaC", "audio/flac"),
    (0, b"\x1aE\xdf\xa3", "video/webm"),
    (0, b"wOFF", "font/woff"),
    (0, b"wOF2", "font/woff2"),
    (0, b"{\\rtf", "application/rtf"),
    (0, b"%!PS", "application/postscript"),
    (4, b"ftyp", "video/mp4"),
)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_BZIP2 = re.compile(rb"\ABZh[1-9]1AY&SY")
_ID3 = re.compile(rb"\AID3[\x02-\x04]\x00")
_RIFF_KINDS = {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}

_MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown", ".mdown", ".mkd", ".mkdn", ".mdx"})
_LEADING_NOISE = re.compile(r"\A(?:\s+|<!--.*?-->)+", re.DOTALL)
_HTML_START = re.compile(r"<!doctype\s+html|<html[\s>]", re.IGNORECASE)
_HTML_BLOCK_START = re.compile(
    r"<(?:head|body|div|p|h[1-6]|table|ul|ol|dl|article|section|main|header|footer|aside|"
    r"title|meta|link|nav|form|pre|blockquote|figure|center|span|a|img|br|hr|script|style)"
    r"[\s/>]",
    re.IGNORECASE,
)
_SIGNAL_SAMPLE = 200_000
_MD_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+\S", re.MULTILINE)
_MD_SETEXT = re.compile(r"^[ \t]{0,3}\S[^\n]*\n {0,3}(?:=+|-{2,})[ \t]*$", re.MULTILINE)
_MD_FENCE = re.compile(r"^ {0,3}(?:```|~~~)", re.MULTILINE)
# Labels and destinations exclude their opening bracket, so a failed attempt stops where the
# next one starts (`[` repeated on one line was quadratic; see markdown_blocks).
_MD_LINK = re.compile(
    r"!?\[[^\[\]\n]+\]\([^()\s]+(?:\s+\"[^\"\n]*\")?\)|^ {0,3}\[[^\[\]\n]+\]:\s+\S",
    re.MULTILINE,
)
_MD_LIST_ITEM = re.compile(r"^ {0,3}(?:[-*+]|\d{1,9}[.)])[ \t]+\S", re.MULTILINE)


def binary_mime(data: bytes) -> str | None:
    """The MIME type of a known binary format we cannot parse, or None."""
    for offset, magic, mime in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return mime
    if data.startswith(_ZIP_MAGIC):
        return _zip_mime(data)
    if data.startswith(b"RIFF") and data[8:12] in _RIFF_KINDS:
        return _RIFF_KINDS[data[8:12]]
    if _BZIP2.match(data):
        return "application/x-bzip2"
    if _ID3.match(data):
        return "audio/mpeg"
    return None


def _zip_mime(data: bytes) -> str:
    """Office documents and EPUB are zip files; name them so the error is useful."""
    head = data[:4096]
    if b"mimetype" in head[:64]:
        match = re.search(rb"mimetype(application/[\w.+-]+)", head)
        if match:
            return match.group(1).decode("ascii")
    for folder, mime in (
        (b"word/", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        (b"xl/", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (b"ppt/", "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
    ):
        if folder in head:
            return mime
    return "application/zip"


def text_mime(text: str, *, filename: str = "") -> str:
    """text/html, text/markdown or text/plain for decoded text; other markup is refused."""
    head = _LEADING_NOISE.sub("", text[:8192], count=1)
    lowered = head[:1024].lower()
    if lowered.startswith("<?xml"):
        if "<html" in lowered or "<!doctype html" in lowered:
            return TEXT_HTML
        raise UnsupportedType("image/svg+xml" if "<svg" in lowered else "application/xml")
    if lowered.startswith(("<svg", "<!doctype svg")):
        raise UnsupportedType("image/svg+xml")
    if _HTML_START.match(head):
        return TEXT_HTML
    sample = text[:_SIGNAL_SAMPLE]
    if _HTML_BLOCK_START.match(head) and not _MD_HEADING.search(sample):
        # A README may open with `<p align="center">` and still be Markdown; HTML proper
        # has no `# ` lines.
        return TEXT_HTML
    if _markdown_signals(sample):
        return TEXT_MARKDOWN
    if PurePath(filename).suffix.lower() in _MARKDOWN_EXTENSIONS:
        return TEXT_MARKDOWN
    return TEXT_PLAIN


def _markdown_signals(text: str) -> bool:
    """Heading, fenced code, link or list syntax (two list items: one dash is prose)."""
    if any(p.search(text) for p in (_MD_HEADING, _MD_FENCE, _MD_LINK, _MD_SETEXT)):
        return True
    return len(_MD_LIST_ITEM.findall(text)) >= 2
