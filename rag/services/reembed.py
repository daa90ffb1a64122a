"""Re-embedding: move a tenant's chunks to another embedding backend while it keeps serving.

Why this shape: vectors of two backends are close but not equal, so a tenant's query and its
chunks must come from one backend (Tenant.embedding_backend). Re-embedding one document at a
time would leave the tenant half in each, searched with one. Instead, like a live move
(tenants/services/moves): copy, catch up, block writes briefly, switch.

1. Fill: each chunk's vector from the new backend goes into `embedding_next`, in batches,
   each written in its own short transaction (no transaction waits on the model). Searches
   go on with `embedding` and the tenant's current backend.
2. Catch up: chunks that ingestion stored meanwhile (with the current backend) have no
   `embedding_next` yet; the fill repeats until none are left.
3. Switch: one data-plane transaction that holds the tenant's ingestion lock (SWAP_LOCK,
   which every chunk-set swap takes shared) copies `embedding_next` into `embedding` and marks
   every document with the new backend; then the tenant row says the new backend, so its
   next queries use it. Chunks that slipped in between the last fill and the lock make the
   switch give up and fill again, so the lock is held for a copy, never for the model.

An ingestion that embedded with the old backend and finds, at its swap, documents of another
backend (the switch happened while it embedded) embeds again with the tenant's backend
(rag.services.ingest): a tenant's chunks are never silently of two backends.

Running it again after an interruption resumes: filled vectors stay filled. Only one
re-embedding of a tenant runs at a time (a lock in the cache, Redis).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from django.core.cache import cache
from django.db import connections

from tenants.context import data_alias, tenant_context
from tenants.models import Tenant

from .. import embedders
from ..chunking import embedding_text
from ..embedding import embed_texts
from .cache import vector_literal

logger = logging.getLogger(__name__)

BATCH = 256
SWITCH_ATTEMPTS = 5
# pg_advisory_xact_lock(class, tenant): the class names this lock among the platform's.
SWAP_LOCK_CLASS = 18_0001
LOCK_SECONDS = 6 * 3600

Progress = Callable[[int, int], None]  # (chunks re-embedded, chunks in all)


class ReembedBusy(RuntimeError):
    """Another re-embedding of this tenant is running, or ingestion kept the switch from
    ever finding every chunk filled."""


@dataclass(frozen=True)
class ReembedResult:
    tenant: str
    source: str
    target: str
    chunks: int
    switched: bool


def swap_lock_sql(tenant: Tenant, *, shared: bool) -> tuple[str, list[int]]:
    """The statement that takes the tenant's ingestion lock for this transaction."""
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    key = zlib.crc32(tenant.id.bytes) - 2**31  # an int4
    return f"SELECT {function}(%s, %s)", [SWAP_LOCK_CLASS, key]


def tenant_reembed(
    *, tenant: Tenant, target: str, progress: Progress | None = None
) -> ReembedResult:
    """Move `tenant` to `target` (a rag.embedders backend). A tenant already wholly on it is
    left alone (switched=False)."""
    embedders.check(target)
    tenant = Tenant.objects.get(pk=tenant.pk)  # its backend as of now, not as of a caller's read
    source = tenant.embedding_backend
    if source == target and not _other_backends(tenant, target):
        return ReembedResult(tenant.slug, source, target, 0, switched=False)
    lock = f"tenantry:reembed:{tenant.id}"
    if not cache.add(lock, "1", timeout=LOCK_SECONDS):
        raise ReembedBusy(f"a re-embedding of {tenant.slug} is already running")
    try:
        total = _count(tenant, "TRUE")
        done = total - _count(tenant, "embedding_next IS NULL")
        for _attempt in range(SWITCH_ATTEMPTS):
            done = _fill(tenant, target, done=done, total=total, progress=progress)
            if _switch(tenant, target):
                Tenant.objects.filter(pk=tenant.pk).update(embedding_backend=target)
                logger.info("tenant %s re-embedded: %s -> %s", tenant.slug, source, target)
                if progress:
                    progress(total, total)
                return ReembedResult(tenant.slug, source, target, total, switched=True)
            total = _count(tenant, "TRUE")
        raise ReembedBusy(
            f"ingestion into {tenant.slug} kept adding chunks; run reembed again when it is "
            "quieter (what was filled stays filled)"
        )
    finally:
        cache.delete(lock)


def _count(tenant: Tenant, condition: str) -> int:
    with tenant_context(tenant), connections[data_alias()].cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM rag_chunk WHERE {condition}")  # noqa: S608
        return cursor.fetchone()[0]


def _other_backends(tenant: Tenant, target: str) -> bool:
    with tenant_context(tenant), connections[data_alias()].cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM rag_document WHERE embedding_backend <> %s "
            "AND status = 'ready')",
            [target],
        )
        return cursor.fetchone()[0]


def _fill(tenant: Tenant, target: str, *, done: int, total: int, progress) -> int:
    """Give every chunk without one its `embedding_next`; returns chunks filled so far."""
    while True:
        with tenant_context(tenant), connections[data_alias()].cursor() as cursor:
            cursor.execute(
                "SELECT c.id, d.title, c.heading_path, c.text FROM rag_chunk c "
                "JOIN rag_document d ON d.id = c.document_id "
                "WHERE c.embedding_next IS NULL ORDER BY c.id LIMIT %s",
                [BATCH],
            )
            rows = cursor.fetchall()
        if not rows:
            return done
        vectors = embed_texts(
            [embedding_text(title=t, heading_path=h, text=x) for _, t, h, x in rows],
            backend=target,
        )
        with tenant_context(tenant), connections[data_alias()].cursor() as cursor:
            # A chunk deleted meanwhile is simply not updated; a replaced one has a new id.
            cursor.execute(
                "UPDATE rag_chunk c SET embedding_next = v.vector::vector "
                "FROM unnest(%s::bigint[], %s::text[]) AS v(id, vector) WHERE c.id = v.id",
                [[row[0] for row in rows], [vector_literal(v) for v in vectors]],
            )
        done += len(rows)
        if progress:
            progress(min(done, total), max(total, done))


def _switch(tenant: Tenant, target: str) -> bool:
    """Swap every chunk's vector in one transaction, if every chunk has its new one."""
    with tenant_context(tenant), connections[data_alias()].cursor() as cursor:
        cursor.execute(*swap_lock_sql(tenant, shared=False))
        cursor.execute("SELECT EXISTS (SELECT 1 FROM rag_chunk WHERE embedding_next IS NULL)")
        if cursor.fetchone()[0]:
            return False
        cursor.execute(
            "UPDATE rag_chunk SET embedding = embedding_next, embedding_next = NULL "
            "WHERE embedding_next IS NOT NULL"
        )
        cursor.execute(
            "UPDATE rag_document SET embedding_backend = %s WHERE embedding_backend <> %s",
            [target, target],
        )
    return True
