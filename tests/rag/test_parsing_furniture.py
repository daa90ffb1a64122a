"""HTML page furniture (menus, banners, footers, hidden widgets, permalink marks, link bars) is
not the page's text: it repeated on every page of a generated site and crowded real passages
out of search results (issue 15). A sentence that carries a link keeps its text.

No database: pure functions.
"""

from __future__ import annotations

import pytest

from rag.parsing import Block, document_parse

pytestmark = pytest.mark.unit

SPHINX_PAGE = """<!DOCTYPE html><html><head>
<title>How to use sessions — Example 3.2 documentation</title></head><body>
<div id="hd"><h1><a href="../index.html">Example 3.2 documentation</a></h1>
  <div id="global-nav"><a href="index.html">Home</a> | <a href="contents.html">Table of
  contents</a> | <a href="genindex.html">Index</a></div>
  <div class="nav">&laquo; <a href="a.html">previous</a> | <a href="b.html">up</a> |
  <a href="c.html">next</a> &raquo;</div></div>
<div class="section"><h1>How to use sessions<a class="headerlink" href="#s">¶</a></h1>
<p>Sessions are implemented by a <a href="mw.html">middleware</a> that you enable in the
settings.</p>
<h2>Cached sessions<a class="headerlink" href="#c">¶</a></h2>
<p>Use the cache backend for speed.</p></div>
<div class="sphinxsidebar" role="navigation"><h3>Table of contents</h3>
  <ul><li><a href="#s">How to use sessions</a></li></ul><h4>Previous topic</h4></div>
<div id="searchbox" style="display: none"><h3>Quick search</h3></div>
<div id="ft"><div class="nav">&laquo; <a href="a.html">previous</a> | <a href="c.html">next</a>
&raquo;</div></div></body></html>"""


def test_a_generated_page_keeps_its_content_and_drops_its_furniture():
    parsed = document_parse(data=SPHINX_PAGE.encode(), filename="sessions.html")

    assert parsed.title == "How to use sessions"
    assert parsed.blocks == [
        Block("heading", "How to use sessions", 1),
        Block(
            "paragraph",
            "Sessions are implemented by a middleware that you enable in the settings.",
            0,
        ),
        Block("heading", "Cached sessions", 2),
        Block("paragraph", "Use the cache backend for speed.", 0),
    ]


@pytest.mark.parametrize(
    "furniture",
    [
        '<div role="navigation"><p>Menu text</p></div>',
        '<div role="search"><p>Menu text</p></div>',
        '<div role="banner"><p>Menu text</p></div>',
        '<div role="contentinfo"><p>Menu text</p></div>',
        "<header><p>Menu text</p></header>",
        "<footer><p>Menu text</p></footer>",
        "<div hidden><p>Menu text</p></div>",
        '<div aria-hidden="true"><p>Menu text</p></div>',
        '<div style="color: red; display:none"><p>Menu text</p></div>',
        '<div style="VISIBILITY: hidden"><p>Menu text</p></div>',
        '<p><a href="/a">Menu</a> <a href="/b">text</a></p>',
        '<ul><li><a href="/a">Menu text</a></li></ul>',
        '<h2><a href="/">Menu text</a></h2>',
    ],
)
def test_furniture_is_dropped_whatever_marks_it(furniture):
    page = f"<html><body><h1>Title</h1>{furniture}<p>Body text stays.</p></body></html>"

    text = document_parse(data=page.encode()).text

    assert "Menu" not in text
    assert "Body text stays." in text


def test_a_header_inside_an_article_is_content_and_its_end_tag_ends_the_drop():
    page = (
        "<html><body><nav><div><p>Menu</p></div></nav><article><header><h1>Release 2.0</h1>"
        "</header><p>Faster ingestion.</p><footer><p>Posted in March.</p></footer></article>"
        "<p>After the article.</p></body></html>"
    )

    blocks = document_parse(data=page.encode()).blocks

    assert [b.text for b in blocks] == [
        "Release 2.0",
        "Faster ingestion.",
        "Posted in March.",
        "After the article.",
    ]


def test_a_sentence_with_a_link_or_a_lone_symbol_keeps_its_text():
    page = (
        "<html><body><p>See <a href='/x'>the settings reference</a> for every option and "
        "its default value.</p><p>Rate: 5 # per hour</p></body></html>"
    )

    assert document_parse(data=page.encode()).text == (
        "See the settings reference for every option and its default value.\n\nRate: 5 # per hour"
    )


def test_a_title_unlike_the_first_heading_is_kept():
    page = "<html><head><title>Tenantry Guide</title></head><body><h1>Install</h1></body></html>"

    assert document_parse(data=page.encode()).title == "Tenantry Guide"
