"""The naive baselines the platform's ranking is measured against, computed in this process on
the same pages: 250-word chunks, the same MiniLM model, exact cosine with numpy; and that
ranking fused by RRF (k=60) with PostgreSQL full-text search over the same chunks.

The page text comes from the platform's own parser, so what differs is the chunking and the
ranking, not the HTML extraction.
"""

from __future__ import annotations

import time

import numpy as np
from django.db import connection

from rag.embedding import embed_texts
from rag.parsing import document_parse

from .quality_metrics import rrf

CHUNK_WORDS = 250
DEPTH = 50  # chunks taken from each side before fusing
HITS = 20  # chunks kept after ranking, as many as the platform's search is asked for


def word_chunks(text: str, size: int = CHUNK_WORDS) -> list[str]:
    words = text.split()
    return [" ".join(words[i : i + size]) for i in range(0, len(words), size)]


def baseline_rankings(pages: dict[str, bytes], questions: list[str]) -> dict:
    """For each question, the pages of the best 20 chunks, by cosine and by cosine + full text
    (each side's best 50 fused)."""
    texts, owners = [], []
    for path, data in pages.items():
        parsed = document_parse(data=data, filename=path.rsplit("/", 1)[-1])
        for chunk in word_chunks("\n".join(block.text for block in parsed.blocks)):
            texts.append(chunk)
            owners.append(path)
    started = time.perf_counter()
    vectors = embed_texts(texts)
    embed_seconds = time.perf_counter() - started
    similarity = embed_texts(questions) @ vectors.T
    nearest = [list(np.argsort(-row, kind="stable")[:DEPTH]) for row in similarity]
    lexical = _full_text(texts, questions)
    return {
        "chunks": len(texts),
        "embed_seconds": round(embed_seconds, 1),
        "vector": [[owners[i] for i in ranked[:HITS]] for ranked in nearest],
        "rrf": [
            [owners[i] for i in rrf([[int(i) for i in v], t])[:HITS]]
            for v, t in zip(nearest, lexical, strict=True)
        ],
    }


def _full_text(texts: list[str], questions: list[str]) -> list[list[int]]:
    """Chunk indexes by ts_rank for a query of any of the question's words (english config)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS bench_quality_naive "
            "(id integer PRIMARY KEY, tsv tsvector NOT NULL)"
        )
        cursor.execute("TRUNCATE bench_quality_naive")
        cursor.executemany(
            "INSERT INTO bench_quality_naive VALUES (%s, to_tsvector('english', %s))",
            list(enumerate(texts)),
        )
        ranked = []
        for question in questions:
            cursor.execute(
                "SELECT id FROM bench_quality_naive, "
                "CAST(replace(plainto_tsquery('english', %s)::text, ' & ', ' | ') AS tsquery) AS q "
                "WHERE tsv @@ q ORDER BY ts_rank(tsv, q, 1) DESC, id LIMIT %s",
                [question, DEPTH],
            )
            ranked.append([row[0] for row in cursor.fetchall()])
        cursor.execute("DROP TABLE bench_quality_naive")
    return ranked
