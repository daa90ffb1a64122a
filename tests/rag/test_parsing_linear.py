"""Parsing takes time linear in its input, whatever the input: each hostile shape below is
parsed at n and at 4n, and the larger must take about 4 times as long, not 16 (a quadratic
pattern). Times are compared within one test, never against a clock budget; the bound is
generous (8x) and the smaller time has a floor, so a busy machine does not fail it.

Before, `**a ` repeated over 40 KB took 6.8 s (`(.+?)` rescanning the line from every `**`),
10,000 nested `<svg>` 4.4 s (each extracted subtree walked again) and `<!--` repeated over
256 KB 55 s (html.parser rescanning from every unclosed comment). No database.
"""

from __future__ import annotations

import time

import pytest

from rag.parsing import SNIFF_BYTES, TEXT_MARKDOWN, document_parse, document_sniff
from rag.parsing.html_blocks import html_blocks
from rag.parsing.markdown_blocks import markdown_blocks

GROWTH = 4
BOUND = 8  # linear: about 4; quadratic: about 16
FLOOR_S = 0.003  # below this, timer noise would decide the ratio


def _best_seconds(parse, text: str, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        parse(text)
        best = min(best, time.perf_counter() - started)
    return best


def assert_linear(parse, make, n: int) -> None:
    small = _best_seconds(parse, make(n))
    large = _best_seconds(parse, make(GROWTH * n))
    assert large < BOUND * max(small, FLOOR_S), (
        f"{GROWTH}x the input took {large / small:.1f}x the time ({small:.4f}s -> {large:.4f}s)"
    )


MARKDOWN = {
    "strong": lambda n: "**a " * n,
    "underscore-strong": lambda n: "__a " * n,
    "link": lambda n: "[a](" * n,
    "link-parentheses": lambda n: "[a](" + "(b" * n,
    "link-groups": lambda n: "[a](x(y)" * n,
    "strong-stars": lambda n: "**a *" * n,
    "image": lambda n: "![a](" * n,
    "brackets": lambda n: "[" * n,
    "autolink": lambda n: "<http:" * n,
    "unclosed-comment": lambda n: "<!--" * n,
    "heading-spaces": lambda n: "# a" + " " * (4 * n) + "b",
    "front-matter-title": lambda n: "---\ntitle: a" + " " * (4 * n) + "b\n---\ntext",
    "table-row-spaces": lambda n: "a\n" + " " * (4 * n) + "b",
}


@pytest.mark.parametrize("make", MARKDOWN.values(), ids=MARKDOWN.keys())
def test_markdown_parses_in_linear_time(make):
    assert_linear(markdown_blocks, make, 4000)


HTML = {
    "nested-div": lambda n: "<div>" * n + "x",
    "nested-svg": lambda n: "<svg>" * n + "x",
    "nested-heading": lambda n: "<h1>" * n + "x",
    "nested-table": lambda n: "<table><tr><td>" * n + "x",
    "unclosed-comments": lambda n: "<!--" * n,
    "unclosed-attribute": lambda n: '<a href="' * n,
    "unclosed-end-tags": lambda n: "</" * n,
    "unclosed-instructions": lambda n: "<?" * n,
    "stray-end-tags": lambda n: "<div>" * n + "</x>" * n,
}


@pytest.mark.parametrize("make", HTML.values(), ids=HTML.keys())
def test_html_parses_in_linear_time(make):
    assert_linear(html_blocks, lambda n: "<html><body>" + make(n), 4000)


@pytest.mark.parametrize("text", ["<![" * 1000, "<![if x" * 1000, "<![CDATA[" * 1000 + ">"])
def test_marked_sections_never_raise(text):
    # html.parser raises AssertionError on `<![` without a known keyword.
    assert html_blocks("<p>before</p>" + text)[0][0].text == "before"


def test_whole_pipeline_is_linear_for_hostile_markdown_and_html():
    """Decoding, normalisation (ftfy), sniffing and the block reader together."""

    def parse_md(text):
        return document_parse(data=text.encode(), filename="x.md")

    def parse_html(text):
        return document_parse(data=text.encode())

    assert_linear(parse_md, lambda n: "# Title\n\n" + "**é " * n, 4000)
    assert_linear(parse_html, lambda n: "<!DOCTYPE html><p>é</p>" + "<!--" * n, 4000)


def test_the_request_sniff_reads_a_bounded_prefix():
    """The upload request only sniffs: 16 MB costs it what 4 MB does (its prefix read, and one
    C-speed pass for emptiness)."""
    small = ("[a](" * (1 << 20)).encode()
    large = small * 4
    assert document_sniff(data=large, filename="x.md").mime_type == TEXT_MARKDOWN
    first = _best_seconds(lambda d: document_sniff(data=d), small)
    second = _best_seconds(lambda d: document_sniff(data=d), large)
    assert second < 3 * max(first, FLOOR_S), (first, second)
    assert len(small) > 16 * SNIFF_BYTES


def test_linear_patterns_keep_what_they_read():
    """The rewritten patterns read what the old ones did on ordinary Markdown."""
    blocks, title = markdown_blocks(
        "---\ntitle: 'Quoted'\n---\n## Setup ##\n\nSee [the guide](https://x.y/a_(b)) and "
        "![logo](l.png), <https://x.y>, **bold *and* text**, __also__ and `C#`.\n\n"
        "| a | b |\n| :-- | --: |\n| 1 | 2 |\n\n# C#\n<!-- hidden -->shown"
    )
    assert title == "C#"
    assert [b.text for b in blocks] == [
        "Setup",
        "See the guide and logo, https://x.y, bold *and* text, also and `C#`.",
        "| a | b | | 1 | 2 |",
        "C#",
        "shown",
    ]
    assert markdown_blocks("---\ntitle: 'Quoted'\n---\ntext")[1] == "Quoted"
