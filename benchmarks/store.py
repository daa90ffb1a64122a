"""Putting generated data into a tenant's store, and exact search to measure recall against."""

from __future__ import annotations

import numpy as np
from django.db import connections

from rag.chunking import ChunkDraft
from rag.embedding import model_id
from rag.models import Document
from rag.services.cache import text_sha256
from rag.services.chunk_store import chunks_replace
from tenants import placement
from tenants.context import data_alias, tenant_context

from .common import vector_literal

BATCH = 10_000


def load_chunks(tenant, texts: list[str], vectors: np.ndarray, *, first_ordinal: int = 0) -> None:
    """Add chunks (one document per batch of 10k) through the platform's own chunk writer."""
    for start in range(0, len(texts), BATCH):
        part = texts[start : start + BATCH]
        drafts = [ChunkDraft(i, text, "Section", 40) for i, text in enumerate(part)]
        key = f"{tenant.slug}-{first_ordinal + start}"
        with tenant_context(tenant):
            document = Document.objects.create(
                title=f"bulk {first_ordinal + start}",
                content_hash=text_sha256(key),
                metadata={"batch": first_ordinal + start},
                status="ready",
                embedding_backend=tenant.embedding_backend,
                chunks_total=len(part),
                chunks_embedded=len(part),
            )
            chunks_replace(
                alias=data_alias(),
                document_id=document.id,
                chunks=drafts,
                vectors=vectors[start : start + BATCH],
            )


class IndexPaused:
    """Drop the tenant store's HNSW index around a bulk load and rebuild it after (as the
    owner): inserting 100k rows into a live HNSW index one by one takes many minutes."""

    def __init__(self, tenant):
        self.alias = placement.owner_alias_for(tenant)

    def __enter__(self) -> IndexPaused:
        with connections[self.alias].cursor() as cursor:
            cursor.execute("DROP INDEX IF EXISTS chunk_embedding_hnsw")
        return self

    def __exit__(self, *exc) -> None:
        with connections[self.alias].cursor() as cursor:
            cursor.execute("SET maintenance_work_mem = '512MB'")
            cursor.execute(
                "CREATE INDEX IF NOT EXISTS chunk_embedding_hnsw ON rag_chunk "
                "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
            )
            cursor.execute("ANALYZE rag_chunk")
            cursor.execute("ANALYZE rag_document")


def prefill_query_vectors(tenant, queries: list[str], vectors: np.ndarray) -> None:
    """Put generated query vectors into the tenant's embedding cache, so that the platform's
    search uses them (as it would a real question's embedding) and no model time is measured."""
    rows = [
        (model_id(), text_sha256(q), vector_literal(v))
        for q, v in zip(queries, vectors, strict=True)
    ]
    with tenant_context(tenant), connections[data_alias()].cursor() as cursor:
        cursor.executemany(
            "INSERT INTO rag_embeddingcacheentry (model, text_sha256, embedding) "
            "VALUES (%s, %s, %s::vector) ON CONFLICT DO NOTHING",
            rows,
        )


def exact_top(tenant, vector, k: int = 10) -> list[int]:
    """The tenant's true k nearest chunks: `+ 0` hides the expression from the HNSW index."""
    literal = vector_literal(vector)
    with tenant_context(tenant), connections[data_alias()].cursor() as cursor:
        cursor.execute(
            "SELECT id FROM rag_chunk ORDER BY (embedding <=> %s::vector) + 0, id LIMIT %s",
            [literal, k],
        )
        return [row[0] for row in cursor.fetchall()]


def recall(found: list[int], truth: list[int]) -> float:
    return len(set(found) & set(truth)) / max(1, len(truth))
