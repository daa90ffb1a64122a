"""Chunks written straight into a tenant's store, for tests of search and storage."""

import numpy as np

from rag.chunking import ChunkDraft
from rag.models import Document
from rag.services.chunk_store import chunks_replace
from tenants.context import data_alias, tenant_context


def fill_chunks(tenant, n: int, seed: int) -> None:
    """Store n chunks with random unit vectors in one ready document of the tenant, through
    the ingestion's own chunk store (no worker, no model)."""
    rng = np.random.default_rng(seed)
    with tenant_context(tenant):
        doc = Document.objects.create(
            title=f"bulk-{n}", content_hash=f"{seed}".ljust(64, "0"), status="ready", chunks_total=n
        )
        vectors = rng.normal(size=(n, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        drafts = [
            ChunkDraft(
                ordinal=i, text=f"passage {i} of {tenant.slug}", heading_path="", token_count=4
            )
            for i in range(n)
        ]
        chunks_replace(alias=data_alias(), document_id=doc.id, chunks=drafts, vectors=vectors)
