"""HTML to blocks with BeautifulSoup on the standard library's html.parser.

Why html.parser: no C extension to build, tolerant of broken markup, and fast enough for
documents; BeautifulSoup gives a tree we walk without recursion, so deeply nested markup
cannot exhaust the stack.
"""

from __future__ import annotations

from bs4 import BeautifulSoup, NavigableString, Tag

from .structure import Block, collapse_whitespace, heading, paragraph, preformatted

# Content that is not the document's text: code, styling, navigation, metadata, widgets.
_DROPPED = (
    "script", "style", "nav", "head", "noscript", "template", "svg", "math", "iframe",
    "object", "embed", "canvas", "select", "button",
)  # fmt: skip
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "body", "caption", "center", "dd",
    "details", "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer",
    "form", "header", "hgroup", "hr", "html", "legend", "li", "main", "menu", "ol", "p",
    "section", "summary", "table", "tbody", "tfoot", "thead", "tr", "ul",
})  # fmt: skip


def html_blocks(text: str) -> tuple[list[Block], str]:
    """Return (blocks, title); the title is <title>, else the first <h1>."""
    soup = BeautifulSoup(text, "html.parser")
    title = collapse_whitespace(soup.title.get_text(" ")) if soup.title else ""
    for tag in soup.find_all(_DROPPED):
        tag.extract()
    blocks = _walk(soup)
    if not title:
        title = next((b.text for b in blocks if b.kind == "heading" and b.level == 1), "")
    return blocks, title


def _walk(root: Tag) -> list[Block]:
    blocks: list[Block] = []
    inline: list[str] = []

    def flush() -> None:
        block = paragraph("".join(inline))
        if block is not None:
            blocks.append(block)
        inline.clear()

    # (node, leaving): a block element flushes the inline text around it on entry and exit.
    stack: list[tuple[object, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            flush()
        elif isinstance(node, NavigableString):
            if type(node) is NavigableString:  # not Comment, Doctype, CData, ...
                inline.append(str(node))
        elif isinstance(node, Tag):
            name = node.name.lower() if node.name else ""
            if name in _HEADINGS:
                flush()
                block = heading(node.get_text(" "), _HEADINGS[name])
                if block is not None:
                    blocks.append(block)
            elif name == "pre":
                flush()
                block = preformatted(node.get_text())
                if block is not None:
                    blocks.append(block)
            elif name == "br":
                inline.append("\n")
            else:
                if name in _BLOCKS or node is root:
                    flush()
                    stack.append((node, True))
                elif name in ("td", "th"):
                    inline.append(" ")
                stack.extend((child, False) for child in reversed(node.contents))
    flush()
    return blocks
