"""HTML to blocks, read as a stream of tags by the standard library's html.parser.

Why a stream and not a tree (BeautifulSoup, which this replaces): the blocks need only the
open elements on the way down, and a tree of a hostile page is large: 1 MB of nested `<div>`
made 160 MB of objects and 5 s of work, and an upload may be 20 times that. Here memory is the
text and a list of open tag names, and each tag costs a few dictionary operations whatever the
nesting (5 MB of nested `<div>`: 8 s, 100 MB), so deep markup exhausts neither stack nor heap.

Why the text is made to close what it opens (`_closed_constructs`): html.parser before CPython
3.12.11 / 3.13.5 rescans the rest of the text from every `<!--`, `<?`, `</` or `<a` that is
never closed (CVE-2025-6069): `<!--` repeated over 256 KB took 55 s. HTML5 ends such a
construct at the end of the file, which is what a `-->` or `>` added at the end does: the
first unclosed construct then runs to it in one scan, and what it swallows was never text.
Marked sections (`<![...`) are read as the bogus comments HTML5 makes of them: html.parser
raises on most of them (`<![x` is an AssertionError).

Why boilerplate is dropped here: a generated site (Sphinx, a CMS) repeats its banner, menus,
breadcrumbs and previous/next links on every page, and each became a short chunk that matched
every question a little: on Django's documentation (make bench, quality section) such chunks
were half of the first five hits. What is dropped is what a reader skips: elements marked as
navigation, search, banner or footer (ARIA roles; <nav>; a <header> or <footer> outside an
article or section), hidden elements, permalink markers (the "¶" after Sphinx headings), and
blocks whose letters are nearly all link text (a menu, a "« previous | up | next »" bar, a
table of contents). A sentence that carries a link keeps it: the rule looks at the share.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from .structure import Block, collapse_whitespace, heading, paragraph, preformatted

# Content that is not the document's text: code, styling, navigation, metadata, widgets.
_DROPPED = frozenset({
    "script", "style", "nav", "head", "noscript", "template", "svg", "math", "iframe",
    "object", "embed", "canvas", "select", "button",
})  # fmt: skip
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "body", "caption", "center", "dd",
    "details", "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer",
    "form", "header", "hgroup", "hr", "html", "legend", "li", "main", "menu", "ol", "p",
    "section", "summary", "table", "tbody", "tfoot", "thead", "tr", "ul",
})  # fmt: skip
# ARIA landmarks of page furniture: menus, search boxes, the site's banner and footer.
_FURNITURE_ROLES = frozenset({"navigation", "search", "banner", "contentinfo"})
# A <header> or <footer> belongs to its nearest sectioning element; outside any, to the page.
_SECTIONING = ("article", "section", "aside", "main")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
# Link text that only marks a permalink (Sphinx's "¶", "#" and "§" elsewhere).
_PERMALINK_MARKS = frozenset({"¶", "#", "§", "🔗"})
# A block whose letters and digits are at least this share link text is navigation.
LINK_DENSITY_MAX = 0.8
# Elements that never have content or an end tag: never pushed as open.
_VOID = frozenset({
    "area", "base", "basefont", "bgsound", "br", "col", "command", "embed", "frame", "hr",
    "image", "img", "input", "isindex", "keygen", "link", "menuitem", "meta", "nextid",
    "param", "source", "spacer", "track", "wbr",
})  # fmt: skip
# `<` opening a tag, an end tag, a declaration or a processing instruction.
_MARKUP_START = re.compile(r"<[A-Za-z/?!]")


def html_blocks(text: str) -> tuple[list[Block], str]:
    """Return (blocks, title); the title is the first <title>, else the first <h1>."""
    reader = _BlockReader()
    reader.feed(_closed_constructs(text))
    reader.close()
    title = collapse_whitespace(reader.title or "")
    first_h1 = next((b.text for b in reader.blocks if b.kind == "heading" and b.level == 1), "")
    # "How to use sessions — Django 3.2.25 documentation": the page's own heading, without the
    # site's name that every page's <title> repeats.
    if not title or (first_h1 and title.startswith(first_h1)):
        title = first_h1 or title
    return reader.blocks, title


def _closed_constructs(text: str) -> str:
    """`text` with its marked sections made bogus comments and, if a comment or tag is left
    open, the `-->` or `>` that closes it appended (see the module docstring).

    A comment at i is closed if a `-->` starts at i + 4 or later; any other construct if a `>`
    follows it. Both are decided from the last `-->` and the last `>`, each found once.
    """
    text = text.replace("<![", "<! [")
    if text.find("<!--", max(0, text.rfind("-->") - 3)) != -1:
        return text + "-->"
    if _MARKUP_START.search(text, text.rfind(">") + 1):
        return text + ">"
    return text


class _BlockReader(HTMLParser):
    """Blocks from parser events: a block element flushes the inline text around it on entry
    and exit; a heading or <pre> collects all the text inside it into one block; the text of
    dropped elements is skipped.

    Misnested end tags close back to the element they name, as a tree builder would; an end
    tag naming no open element is ignored (found by a count, not a search of the stack).
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.title: str | None = None
        self._inline: list[str] = []
        # Letters and digits of the inline text, and of those, inside links.
        self._inline_chars = 0
        self._inline_linked = 0
        self._open: list[str] = []
        self._open_count: dict[str, int] = {}
        self._dropped = 0  # open dropped elements
        self._dropped_at: list[int] = []  # their depths in _open, innermost last
        # The heading (level 1-6) or <pre> (level 0) being read: (level, depth in _open, text,
        # [its letters and digits, those inside links]).
        self._capture: tuple[int, int, list[str], list[int]] | None = None
        # The first <title>: (depth in _open, dropped elements open outside it, its text).
        self._title: tuple[int, int, list[str]] | None = None

    # --- parser events ---------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in _VOID:
            if self._dropped or self._capture is not None:
                return
            if tag == "br":
                self._inline.append("\n")
            elif tag in _BLOCKS:  # <hr>
                self._flush()
            return
        self._open.append(tag)
        self._open_count[tag] = self._open_count.get(tag, 0) + 1
        depth = len(self._open)
        if tag == "title" and self.title is None and self._title is None:
            self._title = (depth, self._dropped, [])
        if tag in _DROPPED or self._is_furniture(tag, attrs):
            self._dropped += 1
            self._dropped_at.append(depth)
        if self._dropped or self._capture is not None:
            return
        if tag in _HEADINGS or tag == "pre":
            self._flush()
            self._capture = (_HEADINGS.get(tag, 0), depth, [], [0, 0])
        elif tag in _BLOCKS:
            self._flush()
        elif tag in ("td", "th"):
            self._inline.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if not self._open_count.get(tag):
            return
        while self._open:
            name = self._close_innermost()
            if name == tag:
                return

    def handle_data(self, data: str) -> None:
        if self._title is not None and self._dropped == self._title[1]:
            self._title[2].append(data)
        if self._dropped:
            return
        linked = self._open_count.get("a", 0) > 0
        if linked and data.strip() in _PERMALINK_MARKS:
            return
        chars = sum(1 for c in data if c.isalnum())
        if self._capture is not None:
            self._capture[2].append(data)
            counts = self._capture[3]
        else:
            self._inline.append(data)
            counts = None
        if counts is None:
            self._inline_chars += chars
            self._inline_linked += chars if linked else 0
        else:
            counts[0] += chars
            counts[1] += chars if linked else 0

    def _is_furniture(self, tag: str, attrs) -> bool:
        """Page furniture and hidden elements, whose text a reader never reads as the page's."""
        values = dict(attrs)
        if (values.get("role") or "").strip().lower() in _FURNITURE_ROLES:
            return True
        if "hidden" in values or (values.get("aria-hidden") or "").strip().lower() == "true":
            return True
        if _HIDDEN_STYLE.search(values.get("style") or ""):
            return True
        if tag in ("header", "footer"):
            return not any(self._open_count.get(name) for name in _SECTIONING)
        return False

    def close(self) -> None:
        super().close()
        while self._open:
            self._close_innermost()
        self._flush()

    # --- structure ---------------------------------------------------------------------------

    def _close_innermost(self) -> str:
        depth = len(self._open)
        name = self._open.pop()
        self._open_count[name] -= 1
        if self._title is not None and self._title[0] == depth:
            self.title = " ".join(self._title[2])
            self._title = None
        if self._dropped_at and self._dropped_at[-1] == depth:
            self._dropped_at.pop()
            self._dropped -= 1
            return name
        if self._dropped:
            return name
        if self._capture is not None:
            level, start, parts, (chars, linked) = self._capture
            if start == depth:
                self._capture = None
                block = heading(" ".join(parts), level) if level else preformatted("".join(parts))
                # A heading that is all link is a site's name or a menu entry, not a section.
                if block is not None and not (level and _mostly_links(chars, linked)):
                    self.blocks.append(block)
            return name
        if name in _BLOCKS:
            self._flush()
        return name

    def _flush(self) -> None:
        block = paragraph("".join(self._inline))
        if block is not None and not _mostly_links(self._inline_chars, self._inline_linked):
            self.blocks.append(block)
        self._inline.clear()
        self._inline_chars = self._inline_linked = 0


def _mostly_links(chars: int, linked: int) -> bool:
    return chars > 0 and linked >= LINK_DENSITY_MAX * chars
