"""Accepting documents: validate, deduplicate, store the bytes, enqueue ingestion on commit.

Parsing of text formats runs here too, because it is cheap and lets the client hear "no text"
as a 422 at once; PDFs (expensive, possibly hostile) are parsed only by the worker, under limits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError

from tenants.context import data_alias, tenant_context
from tenants.models import Tenant
from tenants.services.provisioning import TenantNotActive, tenant_require_active
from tenants.services.quotas import QuotaExceeded, quota_get, storage_admit

from ..handoff import INGEST_DOCUMENT, after_commit
from ..models import Document, DocumentSource, DocumentStatus
from ..parsing import ParseError, document_parse
from ..parsing.pdf import is_pdf


class DocumentRejected(Exception):
    """The upload cannot become a document; nothing was stored.

    Also raised for the tenant's storage quotas (413 `storage_quota_exceeded`, 429
    `quota_exceeded`), so the API, the `ingest` command and the console report them like any
    other refusal.
    """

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


@dataclass(frozen=True)
class Submission:
    document: Document
    outcome: str  # "created" | "duplicate" | "replaced"


def document_submit(
    *,
    tenant: Tenant,
    data: bytes,
    filename: str = "",
    title: str = "",
    metadata: dict | None = None,
    external_id: str = "",
    enqueue: bool = True,
) -> Submission:
    """Store an upload as a queued document of `tenant` (or return its duplicate).

    With `enqueue` (the API, the console) a worker ingests it once this commits; without
    (`ingest --inline`, tests that ingest in process) the caller runs `document_ingest`
    itself, and no worker races it for the document.
    """
    try:
        tenant_require_active(tenant=tenant)
    except TenantNotActive as exc:
        raise DocumentRejected(403, exc.code, str(exc)) from exc
    mime_type, parsed_title = _validate(data, filename)
    content_hash = hashlib.sha256(data).hexdigest()
    fields = {
        # PDFs are parsed by the worker, which fills in their title.
        "title": title
        or parsed_title
        or (title_from_filename(filename) if parsed_title is not None else ""),
        "content_hash": content_hash,
        "mime_type": mime_type,
        "size_bytes": len(data),
        "metadata": metadata or {},
        "status": DocumentStatus.QUEUED,
        "error": "",
        "chunks_total": 0,
        "chunks_embedded": 0,
        "attempts": 0,
    }
    # Read before the store's transaction opens (storage_admit says why).
    quota = quota_get(tenant=tenant)
    try:
        return _store(tenant, quota, data, filename, external_id, fields, enqueue=enqueue)
    except QuotaExceeded as exc:
        raise DocumentRejected(exc.status, exc.code, exc.detail) from exc
    except IntegrityError:
        # A concurrent upload of the same content won the race: answer with its document.
        with tenant_context(tenant):
            return Submission(Document.objects.get(content_hash=content_hash), "duplicate")


def _store(tenant, quota, data, filename, external_id, fields, *, enqueue: bool) -> Submission:
    with tenant_context(tenant):
        duplicate = Document.objects.filter(content_hash=fields["content_hash"]).first()
        if duplicate is not None:
            return Submission(duplicate, "duplicate")
        current = (
            Document.objects.select_for_update().filter(external_id=external_id).first()
            if external_id
            else None
        )
        # Under a per-tenant lock held to the end of the transaction: concurrent uploads of the
        # tenant are counted one after another. A duplicate (above) is not charged.
        storage_admit(
            tenant=tenant,
            quota=quota,
            size_bytes=fields["size_bytes"],
            replacing_bytes=current.size_bytes if current is not None else 0,
        )
        if current is not None:
            # Old chunks stay searchable until the worker swaps in the new ones atomically.
            for name, value in fields.items():
                setattr(current, name, value)
            current.save()
            DocumentSource.objects.filter(document=current).update(data=data, filename=filename)
            document, outcome = current, "replaced"
        else:
            document = Document.objects.create(external_id=external_id, **fields)
            DocumentSource.objects.create(document=document, data=data, filename=filename)
            outcome = "created"
        if enqueue:
            after_commit(INGEST_DOCUMENT, str(tenant.id), str(document.id), using=data_alias())
    return Submission(document, outcome)


def document_delete(*, tenant: Tenant, document_id) -> bool:
    """Delete a document and all its chunks; False if the tenant has no such document."""
    with tenant_context(tenant):
        deleted, _ = Document.objects.filter(pk=document_id).delete()
    return deleted > 0


def _validate(data: bytes, filename: str) -> tuple[str, str | None]:
    """The sniffed type and the parsed title (None for a PDF: not parsed here)."""
    if len(data) > settings.RAG_MAX_UPLOAD_BYTES:
        raise DocumentRejected(
            413,
            "payload_too_large",
            f"Documents are limited to {settings.RAG_MAX_UPLOAD_BYTES} bytes.",
        )
    if not data.strip():
        raise DocumentRejected(422, "empty_document", "The document is empty.")
    if is_pdf(data):
        return "application/pdf", None  # parsed by the worker only, under limits
    try:
        parsed = document_parse(data=data, filename=filename)
        return parsed.mime_type, parsed.title
    except ParseError as exc:
        status = 415 if exc.code == "unsupported_type" else 422
        raise DocumentRejected(status, exc.code, str(exc)) from exc


def title_from_filename(filename: str) -> str:
    return filename.rsplit("/", 1)[-1].rsplit(".", 1)[0] if filename else ""
