"""Write a document's chunks in one transaction: binary COPY into a staging table, then INSERT.

Why the staging table: PostgreSQL refuses `COPY FROM` into a table with row-level security, and
every data-plane table has it (forced). Binary COPY into a temporary table is the fast path for
the bytes; the `INSERT ... SELECT` that follows is checked by the RLS policy like any write.

Chunk ids are random (rag.models.RANDOM_CHUNK_ID_SQL), drawn by the column default. A new id
equals an existing one with probability (chunks in the table) / 2**52, so an ingestion must
not fail for it: the INSERT runs in a savepoint and, on a primary-key violation, runs again,
which draws fresh ids for every row.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from uuid import UUID

import numpy as np
from django.db import connections, transaction
from pgvector.psycopg.vector import register_vector_info
from psycopg.errors import UniqueViolation
from psycopg.types import TypeInfo

logger = logging.getLogger(__name__)

_vector_ready: weakref.WeakSet = weakref.WeakSet()

COLUMNS = ("ordinal", "heading_path", "text", "token_count", "embedding")
TYPES = ["int4", "text", "text", "int4", "vector"]
INSERT_SQL = (
    f"INSERT INTO rag_chunk (document_id, {', '.join(COLUMNS)}) "  # noqa: S608 - constants
    f"SELECT %s, {', '.join(COLUMNS)} FROM chunk_staging ORDER BY ordinal"
)
PRIMARY_KEY = "rag_chunk_pkey"
# Five collisions in a row happen with probability (rows / 2**52) ** 5: a failure after that is
# a bug (a constant default, say), not bad luck, and is raised.
ID_ATTEMPTS = 5


def chunks_replace(
    *,
    alias: str,
    document_id: UUID,
    chunks: Sequence,
    vectors: np.ndarray,
) -> int:
    """Replace the document's chunks with `chunks` (ChunkDrafts) and their vectors (the
    document's metadata stays on the document: search reads it from there).

    Must run inside the tenant context's transaction: readers see the old set or the new one,
    never both or neither. The document row is locked first so two runs of the same task
    serialise instead of both inserting.
    """
    connection = connections[alias]
    connection.ensure_connection()
    raw = connection.connection
    if raw not in _vector_ready:  # once per connection: the type lookup is a round trip
        register_vector_info(raw, TypeInfo.fetch(raw, "vector"))
        _vector_ready.add(raw)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM rag_document WHERE id = %s FOR UPDATE", [document_id])
        cursor.execute("DELETE FROM rag_chunk WHERE document_id = %s", [document_id])
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS chunk_staging "
            "(ordinal int, heading_path text, text text, token_count int, embedding vector(384)) "
            "ON COMMIT DROP"
        )
    with raw.cursor() as cur:
        with cur.copy(
            f"COPY chunk_staging ({', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(TYPES)
            for chunk, vector in zip(chunks, vectors, strict=True):
                copy.write_row(
                    (chunk.ordinal, chunk.heading_path, chunk.text, chunk.token_count, vector)
                )
        inserted = _insert_staged(alias, cur, document_id)
        cur.execute("DROP TABLE chunk_staging")
    return inserted


def _insert_staged(alias: str, cur, document_id: UUID) -> int:
    """INSERT the staged rows, again with fresh ids if one collided with an existing chunk's."""
    attempt = 1
    while True:
        try:
            # The savepoint undoes only this INSERT: the staged rows and the DELETE stay.
            with transaction.atomic(using=alias):
                cur.execute(INSERT_SQL, [document_id])
                return cur.rowcount
        except UniqueViolation as error:
            if error.diag.constraint_name != PRIMARY_KEY or attempt == ID_ATTEMPTS:
                raise
            logger.info("chunk id collision in document %s, attempt %d", document_id, attempt)
            attempt += 1
