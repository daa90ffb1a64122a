"""The ingestion pipeline for one document: parse, chunk, embed in batches, store, mark ready.

Parsing happens here, never in the upload request (which only sniffs a bounded prefix, see
rag.services.documents): a document that cannot be parsed fails here with the parser's code
as its reason. The type the full parse finds replaces the sniffed one (Markdown signals may lie
past the prefix), and its title names a document the upload left untitled (a PDF, say).

Transactions stay short (claim, progress, final swap) so no connection is held while the model
works. Running it twice for the same document is harmless: the claim is a conditional UPDATE,
a ready document is left alone, and the final swap replaces the chunk set under a row lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import connections
from django.db.models import F
from django.db.models.functions import Now

from observability.genai import observe_chunks_embedded, stage
from tenants.context import data_alias, tenant_context
from tenants.models import Tenant
from tenants.services.usage import usage_record

from ..chunking import document_chunk, embedding_text
from ..embedders import BACKENDS
from ..embedding import model_id as embedding_model_id
from ..models import EMBEDDING_DIMENSIONS, IN_PROGRESS, Document, DocumentSource, DocumentStatus
from ..parsing import ParseError, document_parse
from .cache import embeddings_cached
from .chunk_store import chunks_replace
from .documents import title_from_filename
from .reembed import swap_lock_sql

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    content_hash: str
    data: bytes
    filename: str
    title: str


def document_ingest(*, tenant: Tenant, document_id) -> str:
    """Ingest the document if it is waiting; returns the status it ends in (or "skipped")."""
    claim = _claim(tenant, document_id)
    if claim is None:
        return "skipped"
    try:
        parsed = document_parse(
            data=claim.data,
            filename=claim.filename,
            pdf_timeout_s=settings.PDF_PARSE_TIMEOUT_SECONDS,
            pdf_memory_mb=settings.PDF_PARSE_MEMORY_MB,
        )
        drafts = document_chunk(
            blocks=parsed.blocks,
            title=claim.title or parsed.title or title_from_filename(claim.filename),
            max_tokens=settings.CHUNK_MAX_TOKENS,
            overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
            min_tokens=settings.CHUNK_MIN_TOKENS,
        )
    except ParseError as exc:
        return _fail(tenant, document_id, claim, f"{exc.code}: {exc}")
    if not drafts:
        return _fail(tenant, document_id, claim, "no_text: the document has no extractable text")
    title = claim.title or parsed.title or title_from_filename(claim.filename)
    _progress(
        tenant,
        document_id,
        claim,
        total=len(drafts),
        embedded=0,
        title=title,
        mime_type=parsed.mime_type,
    )
    texts = [embedding_text(title=title, heading_path=d.heading_path, text=d.text) for d in drafts]
    vectors = _embed(tenant, document_id, claim, drafts, texts, tenant.embedding_backend)
    if vectors is None:
        return "skipped"  # deleted or replaced meanwhile: the newer task takes over
    status = _finish(tenant, document_id, claim, drafts, vectors, tenant.embedding_backend)
    for _retry in range(2):
        if status not in BACKENDS:
            break
        # The tenant moved to another backend while this ran (rag.services.reembed): its
        # chunks are all of that one now, so this document's must be too.
        vectors = _embed(tenant, document_id, claim, drafts, texts, status)
        if vectors is None:
            return "skipped"
        status = _finish(tenant, document_id, claim, drafts, vectors, status)
    if status in BACKENDS:
        return "skipped"  # switched twice while this ran: the stuck-document sweep retries it
    if status == DocumentStatus.READY:
        _meter(tenant, drafts)
        observe_chunks_embedded(tenant=tenant, chunks=len(drafts))
    return status


def _embed(tenant, document_id, claim, drafts, texts, backend: str):
    """The drafts' vectors from `backend`, in batches of similar token length (a batch is
    padded to its longest text) with progress after each; None if the document was deleted or
    replaced meanwhile."""
    batch = settings.EMBEDDING_BATCH_SIZE
    order = sorted(range(len(drafts)), key=lambda i: drafts[i].token_count)
    vectors = np.empty((len(drafts), EMBEDDING_DIMENSIONS), dtype=np.float32)
    attributes = {"tenantry.tenant": tenant.slug, "tenantry.chunks": batch}
    for start in range(0, len(order), batch):
        picked = order[start : start + batch]
        # Chunks this tenant has embedded before (a re-upload, a replaced document's unchanged
        # sections) come from its embedding cache; only the rest go to the model.
        with stage("embed", model=embedding_model_id(backend), **attributes):
            vectors[picked] = embeddings_cached(
                tenant=tenant, texts=[texts[i] for i in picked], purpose="ingest", backend=backend
            )
        embedded = start + len(picked)
        if not _progress(tenant, document_id, claim, total=len(drafts), embedded=embedded):
            return None
    return vectors


def _meter(tenant: Tenant, drafts) -> None:
    """Embedding work goes on the tenant's ledger (the upload request was counted by the API;
    the worker knows no key). Metering never fails an ingestion."""
    try:
        usage_record(
            tenant=tenant,
            kind="ingest",
            requests=0,
            embedding_tokens=sum(d.token_count + 2 for d in drafts),  # with [CLS] and [SEP]
        )
    except Exception:
        logger.exception("could not record ingestion usage for %s", tenant.slug)


def _claim(tenant: Tenant, document_id) -> Claim | None:
    with tenant_context(tenant):
        claimed = Document.objects.filter(pk=document_id, status__in=IN_PROGRESS).update(
            status=DocumentStatus.PROCESSING, attempts=F("attempts") + 1, updated_at=Now()
        )
        if not claimed:
            return None
        document = Document.objects.only("content_hash", "title").get(pk=document_id)
        source = DocumentSource.objects.filter(document_id=document_id).first()
        if source is None:  # cannot happen through document_submit; never leave it processing
            Document.objects.filter(pk=document_id).update(
                status=DocumentStatus.FAILED, error="source_missing: the upload is gone"
            )
            return None
        return Claim(
            content_hash=document.content_hash,
            data=bytes(source.data),
            filename=source.filename,
            title=document.title,
        )


def _current(document_id, claim: Claim):
    """The document, still processing the content this run claimed (else an empty queryset)."""
    return Document.objects.filter(
        pk=document_id, content_hash=claim.content_hash, status=DocumentStatus.PROCESSING
    )


def _progress(
    tenant,
    document_id,
    claim,
    *,
    total: int,
    embedded: int,
    title: str | None = None,
    mime_type: str | None = None,
) -> bool:
    values = {"chunks_total": total, "chunks_embedded": embedded, "updated_at": Now()}
    if title is not None:
        values["title"] = title
    if mime_type is not None:
        values["mime_type"] = mime_type
    with tenant_context(tenant):
        return _current(document_id, claim).update(**values) > 0


def _fail(tenant, document_id, claim, reason: str) -> str:
    with tenant_context(tenant):
        _current(document_id, claim).update(
            status=DocumentStatus.FAILED, error=reason[:2000], updated_at=Now()
        )
    logger.info("document %s failed: %s", document_id, reason)
    return DocumentStatus.FAILED


def _finish(tenant, document_id, claim, drafts, vectors, backend: str) -> str:
    """Swap the chunk set in and mark the document ready; or the backend the tenant's other
    documents have if it is not `backend` (a re-embedding switched meanwhile), to embed again.
    The shared swap lock keeps a re-embedding's switch from running between that check and
    the swap."""
    with tenant_context(tenant), connections[data_alias()].cursor() as cursor:
        if not _current(document_id, claim).select_for_update().exists():
            return "skipped"
        cursor.execute(*swap_lock_sql(tenant, shared=True))
        cursor.execute(
            "SELECT embedding_backend FROM rag_document WHERE status = 'ready' AND id <> %s "
            "AND embedding_backend NOT IN (%s, '') LIMIT 1",
            [document_id, backend],
        )
        other = cursor.fetchone()
        if other is not None:
            return other[0]
        chunks_replace(
            alias=data_alias(),
            document_id=document_id,
            chunks=drafts,
            vectors=vectors,
        )
        _current(document_id, claim).update(
            status=DocumentStatus.READY,
            embedding_backend=backend,
            chunks_total=len(drafts),
            chunks_embedded=len(drafts),
            error="",
            updated_at=Now(),
        )
    return DocumentStatus.READY
