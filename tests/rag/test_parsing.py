"""document_parse: content sniffing, decoding and normalisation, structure, and PDFs parsed in a
guarded child process (hostile files fail with a code; the test process lives on).

No database: these tests exercise pure functions.
"""

from __future__ import annotations

import os
import time
import zlib

import pytest

from rag.parsing import (
    APPLICATION_PDF,
    CODES,
    TEXT_HTML,
    TEXT_MARKDOWN,
    TEXT_PLAIN,
    Block,
    NoText,
    ParseError,
    UnsupportedType,
    document_parse,
    parse_pdf_guarded,
)
from tests.rag.fixtures.pdf_builder import build_pdf

HOSTILE_TIMEOUT_S = 5
HOSTILE_MEMORY_MB = 512


def texts(blocks: list[Block]) -> list[str]:
    return [block.text for block in blocks]


# --- sniffing: the content decides, never the filename ---------------------------------------

HTML_PAGE = b"""<!DOCTYPE html>
<html><head><title>Tenantry  Guide</title><style>body { color: red }</style>
<script>alert("x")</script></head>
<body><nav><a href="/">Home</a> <a href="/docs">Docs</a></nav>
<h1>Install</h1><p>Tenantry runs
   on   <b>PostgreSQL</b>.</p>
<h2>Linux</h2><ul><li>Install the package.</li><li>Start the service.</li></ul>
<pre>make run
  --port 8000</pre>
<script>document.write("tracking")</script>
</body></html>"""


def test_html_named_pdf_is_parsed_as_html():
    parsed = document_parse(data=HTML_PAGE, filename="report.pdf")

    assert parsed.mime_type == TEXT_HTML
    assert parsed.title == "Tenantry Guide"
    assert parsed.blocks == [
        Block("heading", "Install", 1),
        Block("paragraph", "Tenantry runs on PostgreSQL.", 0),
        Block("heading", "Linux", 2),
        Block("paragraph", "Install the package.", 0),
        Block("paragraph", "Start the service.", 0),
        Block("paragraph", "make run\n  --port 8000", 0),
    ]
    assert "alert" not in parsed.text and "Home" not in parsed.text and "color" not in parsed.text


def test_html_without_title_takes_first_h1():
    parsed = document_parse(data=b"<div><h1>Release notes</h1><p>Fixed things.</p></div>")

    assert parsed.mime_type == TEXT_HTML
    assert parsed.title == "Release notes"


def test_deeply_nested_html_does_not_exhaust_the_stack():
    nested = b"<html><body>" + b"<div>" * 5_000 + b"deep text" + b"</div>" * 5_000

    assert texts(document_parse(data=nested).blocks) == ["deep text"]


def test_pdf_named_txt_is_parsed_as_pdf():
    data = build_pdf(["Hello from page one.", "Page two says goodbye."], title="Tiny Report")

    parsed = document_parse(data=data, filename="notes.txt")

    assert parsed.mime_type == APPLICATION_PDF
    assert parsed.title == "Tiny Report"
    assert texts(parsed.blocks) == ["Hello from page one.", "Page two says goodbye."]


def test_png_is_unsupported_whatever_its_name():
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)

    with pytest.raises(UnsupportedType) as caught:
        document_parse(data=png, filename="readme.md")

    assert caught.value.code == "unsupported_type"
    assert caught.value.mime_guess == "image/png"


@pytest.mark.parametrize(
    ("data", "mime_guess"),
    [
        (
            b"PK\x03\x04\x14\x00\x06\x00" + b"[Content_Types].xml" + b"word/document.xml",
            "wordprocessingml",
        ),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg"),
        (b"\x1f\x8b\x08\x00" + bytes(32), "application/gzip"),
        (bytes(range(256)) * 4, "application/octet-stream"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', "image/svg+xml"),
    ],
)
def test_other_binary_and_markup_formats_are_unsupported(data, mime_guess):
    with pytest.raises(UnsupportedType) as caught:
        document_parse(data=data, filename="document.txt")

    assert mime_guess in caught.value.mime_guess


def test_markdown_is_detected_from_content_and_extension_only_breaks_ties():
    markdown = b"# Title\n\nSome [linked](https://example.com) text."
    prose = b"Just a sentence.\n\nAnd another one."

    assert document_parse(data=markdown, filename="notes.txt").mime_type == TEXT_MARKDOWN
    assert document_parse(data=prose, filename="notes.txt").mime_type == TEXT_PLAIN
    assert document_parse(data=prose, filename="notes.md").mime_type == TEXT_MARKDOWN
    assert document_parse(data=prose).mime_type == TEXT_PLAIN


# --- decoding and normalisation ---------------------------------------------------------------


def test_nul_and_control_characters_are_stripped():
    data = b"Hello\x00 wor\x00ld\x07!\r\n\r\nSecond\x1b paragraph\twith tab."

    parsed = document_parse(data=data)

    assert parsed.mime_type == TEXT_PLAIN
    assert texts(parsed.blocks) == ["Hello world!", "Second paragraph with tab."]


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Café crème brûlée — naïve façade. Déjà vu in Zürich; “quoted” for 50€.", "cp1252"),
        ("Les élèves ont été reçus à l'école. Ça coûte très cher à Noël.", "latin-1"),
        ("Grüße aus München, die Straße ist schön. Übermäßig große Bäume.", "cp1252"),
    ],
)
def test_legacy_western_encodings_are_decoded(text, encoding):
    parsed = document_parse(data=text.encode(encoding), filename="legacy.txt")

    assert texts(parsed.blocks) == [text]


def test_utf16_with_bom_is_text_not_binary():
    parsed = document_parse(data="Hello wörld.\n\nSecond.".encode("utf-16"))

    assert texts(parsed.blocks) == ["Hello wörld.", "Second."]


def test_mojibake_is_repaired_and_text_is_nfc():
    mojibake = "The cafÃ© serves crÃ¨me brÃ»lÃ©e.".encode()
    decomposed = "Cafe\u0301 and re\u0301sume\u0301.".encode()

    assert texts(document_parse(data=mojibake).blocks) == ["The café serves crème brûlée."]
    assert texts(document_parse(data=decomposed).blocks) == ["Caf\u00e9 and r\u00e9sum\u00e9."]


def test_whitespace_inside_paragraphs_is_collapsed():
    data = "A  paragraph\nwrapped\u00a0by\t\tan editor.\n\n\n\nNext one.".encode()

    assert texts(document_parse(data=data).blocks) == [
        "A paragraph wrapped by an editor.",
        "Next one.",
    ]


# --- Markdown structure -----------------------------------------------------------------------

MARKDOWN = b"""---
title: Front matter title
---
# User Guide

Intro paragraph with a [link](https://example.com/x) and **bold** text.

## Install

- First step
- Second step
  continues here

```bash
pip install tenantry

tenantry --help
```

Configuration
-------------

| key | value |
|-----|-------|
| a   | b     |
"""


def test_markdown_headings_lists_and_code_become_blocks():
    parsed = document_parse(data=MARKDOWN, filename="guide.md")

    assert parsed.mime_type == TEXT_MARKDOWN
    assert parsed.title == "User Guide"
    assert parsed.blocks == [
        Block("heading", "User Guide", 1),
        Block("paragraph", "Intro paragraph with a link and bold text.", 0),
        Block("heading", "Install", 2),
        Block("paragraph", "- First step", 0),
        Block("paragraph", "- Second step continues here", 0),
        Block("paragraph", "pip install tenantry\n\ntenantry --help", 0),
        Block("heading", "Configuration", 2),
        Block("paragraph", "| key | value | | a | b |", 0),
    ]


# --- nothing to index -------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"   \n\t\r\n ", "\u3000 \u00a0\n".encode(), b"\x00\x00 "])
def test_empty_or_whitespace_only_is_empty_document(data):
    with pytest.raises(NoText) as caught:
        document_parse(data=data, filename="empty.txt")

    assert caught.value.code == "empty_document"


def test_markup_without_text_is_no_text():
    with pytest.raises(NoText) as caught:
        document_parse(data=b"<html><body><script>var x = 1;</script></body></html>")

    assert caught.value.code == "no_text"


def test_pdf_without_text_layer_is_no_text():
    drawing_only = build_pdf(streams=[b"0 0 m 200 200 l S"])

    with pytest.raises(NoText) as caught:
        document_parse(data=drawing_only)

    assert caught.value.code == "no_text"


# --- PDFs in the guarded child process ----------------------------------------------------------


def test_compressed_pdf_parses_and_pages_are_capped():
    data = build_pdf([f"Page {n} text." for n in range(1, 6)], compress=True)

    full = parse_pdf_guarded(data, timeout_s=HOSTILE_TIMEOUT_S, memory_mb=HOSTILE_MEMORY_MB)
    capped = document_parse(data=data, pdf_max_pages=2)

    assert [page.strip() for page in full.pages] == [f"Page {n} text." for n in range(1, 6)]
    assert not full.truncated
    assert texts(capped.blocks) == ["Page 1 text.", "Page 2 text."]
    assert capped.truncated


@pytest.mark.parametrize(
    "data", [b"%PDF-1.7\nthis is not a PDF at all", b"%PDF-", b"%PDF-1.4\n" + os.urandom(512)]
)
def test_garbage_after_pdf_magic_is_pdf_malformed(data):
    with pytest.raises(ParseError) as caught:
        document_parse(data=data, filename="x.pdf")

    assert caught.value.code == "pdf_malformed"


def _flate_bomb(megabytes: int) -> bytes:
    """`megabytes` MiB of zeros deflated to about 1/1000 of that."""
    compressor = zlib.compressobj(1)
    zeros = bytes(1 << 20)
    return b"".join(compressor.compress(zeros) for _ in range(megabytes)) + compressor.flush()


@pytest.fixture(scope="module")
def bomb_pdf() -> bytes:
    stream = _flate_bomb(100)
    placeholder = build_pdf(streams=[b"@@"])
    return placeholder.replace(
        b"<< /Length 2 >>\nstream\n@@",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s" % (len(stream), stream),
    )


def test_decompression_bomb_fails_with_pdf_memory(bomb_pdf):
    assert len(bomb_pdf) < 1_000_000  # 100 MiB once inflated
    started = time.monotonic()

    with pytest.raises(ParseError) as caught:
        document_parse(
            data=bomb_pdf, pdf_timeout_s=HOSTILE_TIMEOUT_S, pdf_memory_mb=HOSTILE_MEMORY_MB
        )

    assert caught.value.code == "pdf_memory"
    assert time.monotonic() - started < HOSTILE_TIMEOUT_S


def test_address_space_limit_kills_parsing_not_the_caller(bomb_pdf):
    # 96 MiB of address space cannot hold the inflated stream: the child's MemoryError is
    # reported as pdf_memory, and this process carries on.
    with pytest.raises(ParseError) as caught:
        parse_pdf_guarded(bomb_pdf, timeout_s=HOSTILE_TIMEOUT_S, memory_mb=96)

    assert caught.value.code == "pdf_memory"
    assert texts(document_parse(data=build_pdf(["Still alive."])).blocks) == ["Still alive."]


def test_pathological_content_stream_hits_the_time_limit():
    busy = build_pdf(streams=[b"BT /F1 12 Tf " + b"(a) Tj " * 300_000 + b"ET"], compress=True)
    started = time.monotonic()

    with pytest.raises(ParseError) as caught:
        parse_pdf_guarded(busy, timeout_s=1, memory_mb=HOSTILE_MEMORY_MB)

    assert caught.value.code == "pdf_timeout"
    assert time.monotonic() - started < 3


def test_cyclic_page_tree_is_pdf_malformed():
    cyclic = build_pdf(["x"]).replace(b"/Kids [", b"/Kids [2 0 R ")

    with pytest.raises(ParseError) as caught:
        parse_pdf_guarded(cyclic, timeout_s=HOSTILE_TIMEOUT_S, memory_mb=HOSTILE_MEMORY_MB)

    assert caught.value.code == "pdf_malformed"


def test_every_error_code_is_stable_and_known():
    assert {"unsupported_type", "empty_document", "no_text"} <= CODES
    assert {"pdf_malformed", "pdf_timeout", "pdf_memory"} <= CODES
    with pytest.raises(ValueError):
        ParseError("made_up", "")
