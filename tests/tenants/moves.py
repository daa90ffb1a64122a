"""Helpers of the tenant-move tests: seed a tenant's data plane without the model, and read
back every row of it to compare before and after a move."""

from __future__ import annotations

import hashlib
import random

from django.db import connections
from psycopg import sql

from rag.models import Chunk, Document, DocumentSource, EvalQuestion, EvalSet, QueryLog
from tenants.context import tenant_context
from tenants.services.moves import move_run, move_start
from tenants.services.moves.tables import move_tables


def seed(tenant, *, documents: int = 3, chunks: int = 4, tag: str = "") -> list[str]:
    """Documents with sources and chunks (random unit embeddings), an eval set and a query log
    row, written through the ORM in the tenant's binding. Returns the document ids."""
    rng = random.Random(f"{tenant.slug}{tag}")  # noqa: S311 - test data
    ids = []
    with tenant_context(tenant):
        for d in range(documents):
            text = f"{tenant.slug} {tag} document {d}"
            doc = Document.objects.create(
                title=f"{tag}doc {d}",
                content_hash=hashlib.sha256(text.encode()).hexdigest(),
                status="ready",
                metadata={"n": d},
                chunks_total=chunks,
                chunks_embedded=chunks,
            )
            DocumentSource.objects.create(document=doc, filename=f"{d}.txt", data=text.encode())
            for c in range(chunks):
                vector = [rng.uniform(-1, 1) for _ in range(384)]
                norm = sum(x * x for x in vector) ** 0.5
                Chunk.objects.create(
                    document=doc,
                    ordinal=c,
                    text=f"{text} chunk {c} about topic{rng.randint(0, 9)}",
                    token_count=8,
                    embedding=[x / norm for x in vector],
                )
            ids.append(str(doc.pk))
        evalset = EvalSet.objects.create(name=f"set{tag}")
        EvalQuestion.objects.create(eval_set=evalset, question="q?", relevant_document_ids=ids[:1])
        QueryLog.objects.create(kind="search", question="q", question_sha256="0" * 64)
    return ids


def rows(tenant) -> dict[str, list[tuple]]:
    """Every row of every data-plane table of the tenant, as text, sorted."""
    from tenants import placement

    result = {}
    with tenant_context(tenant), connections[placement.alias_for(tenant)].cursor() as cursor:
        for table in move_tables():
            statement = sql.SQL("SELECT ROW({})::text FROM {} ORDER BY 1").format(
                sql.SQL(table.column_list), sql.Identifier(table.name)
            )
            cursor.execute(statement.as_string(cursor.connection))
            result[table.name] = [r[0] for r in cursor.fetchall()]
    return result


def move(tenant, to: str, server: str | None = None, **kwargs):
    """Start and run a move to the end; returns the move and the reloaded tenant."""
    record = move_start(tenant=tenant, to=to, server=server, **kwargs)
    record = move_run(record)
    tenant.refresh_from_db()
    return record, tenant
