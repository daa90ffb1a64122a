"""The tool a user would otherwise pick: langchain-postgres `PGVectorStore` on the same
PostgreSQL server, with the same embedding model (ours, wrapped as a LangChain `Embeddings`).

Optional: installed by `make bench` (the `bench` extra). `available()` says whether it is.
"""

from __future__ import annotations

import contextlib
import time
import uuid

import numpy as np
from django.conf import settings


def available() -> tuple[bool, str]:
    try:
        import langchain_postgres  # noqa: F401
    except ImportError as exc:
        return False, f"langchain-postgres is not installed ({exc}); `make bench` installs it"
    return True, ""


def _embeddings():
    from langchain_core.embeddings import Embeddings

    from rag.embedding import embed_texts

    class PlatformModel(Embeddings):
        """all-MiniLM-L6-v2 exactly as the platform loads it (rag.embedding.get_model)."""

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return embed_texts(list(texts)).tolist()

        def embed_query(self, text: str) -> list[float]:
            return embed_texts([text])[0].tolist()

    return PlatformModel()


def _engine():
    from langchain_postgres import PGEngine

    # The owner role's URL (the peer creates its own tables); a unix-socket server is named by
    # the `?host=` query, which SQLAlchemy's psycopg dialect passes through.
    url = settings.OWNER_DATABASE_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    return PGEngine.from_connection_string(url=url)


class PeerStore:
    """One langchain-postgres table (created fresh) and the operations the benchmark times."""

    def __init__(self, table: str):
        from langchain_postgres import PGVectorStore
        from langchain_postgres.v2.indexes import HNSWQueryOptions

        self.table = table
        self.engine = _engine()
        self.engine.init_vectorstore_table(
            table_name=table, vector_size=384, overwrite_existing=True
        )
        self.store = PGVectorStore.create_sync(
            engine=self.engine,
            embedding_service=_embeddings(),
            table_name=table,
            k=10,
            # The platform's setting (HNSW_EF_SEARCH), so both walk the index alike.
            index_query_options=HNSWQueryOptions(ef_search=settings.HNSW_EF_SEARCH),
        )

    def add_texts(self, texts: list[str]) -> float:
        """Seconds to embed and store `texts`, as a LangChain user would (`add_texts`)."""
        started = time.perf_counter()
        self.store.add_texts(texts)
        return time.perf_counter() - started

    def add_vectors(self, texts: list[str], vectors: np.ndarray, first: int) -> None:
        """Store pre-computed vectors; ids are the row numbers (as UUIDs) to measure recall."""
        for start in range(0, len(texts), 5000):
            part = slice(start, start + 5000)
            self.store.add_embeddings(
                texts[part],
                vectors[part].tolist(),
                ids=[str(uuid.UUID(int=first + start + i)) for i in range(len(texts[part]))],
            )

    def drop_index(self) -> None:
        self.store.drop_vector_index()

    def build_index(self) -> None:
        from langchain_postgres.v2.indexes import HNSWIndex

        self.store.apply_vector_index(HNSWIndex(m=16, ef_construction=64))

    def search(self, vector: np.ndarray, k: int = 10) -> tuple[list[int], float]:
        """Row numbers of the k nearest, and the milliseconds the call took."""
        started = time.perf_counter()
        docs = self.store.similarity_search_by_vector(vector.tolist(), k=k)
        elapsed = (time.perf_counter() - started) * 1000
        return [uuid.UUID(d.id).int for d in docs], elapsed

    def close(self) -> None:
        with contextlib.suppress(Exception):  # best effort at the end of a benchmark
            self.engine._run_as_sync(self.engine._pool.dispose())
