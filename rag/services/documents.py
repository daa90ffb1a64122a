"""Accepting documents: validate, deduplicate, store the bytes, enqueue ingestion on commit.

The document is not parsed here: the request sniffs its type and a provisional title from a
bounded prefix (415 for a type we cannot read, 422 for an empty upload, at once) and the worker
parses the whole document, under its limits, failing it with the parser's reason. Parsing in
the request made its cost the document's: 40 KB of hostile Markdown held a web thread for
6.8 s, a 5 MB page for 15 s.

What the client names the document with is checked here, for every caller (API, console,
`ingest`): metadata must be storable JSON (no NaN or infinity, no NUL, no lone surrogate, at
most METADATA_MAX_DEPTH levels: 422 `invalid_metadata`) of at most RAG_MAX_METADATA_BYTES
(413 `metadata_too_large`), and is charged to the storage quota with the document's bytes.
Titles and file names lose control characters and bidirectional overrides (clean_label) and
are cut to their columns' widths.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError

from tenants.context import data_alias, tenant_context
from tenants.models import Tenant
from tenants.services.provisioning import TenantNotActive, tenant_require_active
from tenants.services.quotas import QuotaExceeded, quota_get, storage_admit

from ..filters import number_problem, text_problem
from ..handoff import INGEST_DOCUMENT, after_commit
from ..models import Document, DocumentSource, DocumentStatus
from ..parsing import ParseError, Sniffed, clean_label, clip_title, document_sniff

METADATA_MAX_DEPTH = 32  # levels of objects and arrays; filters read only the first
FILENAME_MAX_CHARS = 255  # DocumentSource.filename's column width
# Past a few thousand digits an integer is no JSON number Python will print (and no metadata).
_MAX_INT_BITS = 10_000


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
    sniffed = _validate(data, filename)
    metadata = metadata if metadata is not None else {}
    metadata_bytes = metadata_check(metadata)
    filename = clean_filename(filename)
    content_hash = hashlib.sha256(data).hexdigest()
    fields = {
        # PDFs are named by the worker (their parsed title, else the file's).
        "title": clip_title(title)
        or sniffed.title
        or (title_from_filename(filename) if sniffed.title is not None else ""),
        "content_hash": content_hash,
        "mime_type": sniffed.mime_type,
        "size_bytes": len(data),
        "metadata": metadata,
        "status": DocumentStatus.QUEUED,
        "error": "",
        "chunks_total": 0,
        "chunks_embedded": 0,
        "attempts": 0,
    }
    # Read before the store's transaction opens (storage_admit says why).
    quota = quota_get(tenant=tenant)
    try:
        return _store(
            tenant, quota, data, filename, external_id, fields, metadata_bytes, enqueue=enqueue
        )
    except QuotaExceeded as exc:
        raise DocumentRejected(exc.status, exc.code, exc.detail) from exc
    except IntegrityError:
        # A concurrent upload of the same content won the race: answer with its document.
        with tenant_context(tenant):
            return Submission(Document.objects.get(content_hash=content_hash), "duplicate")


def _store(
    tenant, quota, data, filename, external_id, fields, metadata_bytes: int, *, enqueue: bool
) -> Submission:
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
        # tenant are counted one after another. A duplicate (above) is not charged. Metadata is
        # stored bytes too (RagConfig.stored counts it the same way).
        replacing = current.size_bytes + current.metadata_bytes if current is not None else 0
        storage_admit(
            tenant=tenant,
            quota=quota,
            size_bytes=fields["size_bytes"] + metadata_bytes,
            replacing_bytes=replacing,
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
    """Delete a document and all its chunks; False if the tenant has no such document.

    The document row is locked first: a worker storing its chunks holds that lock until it
    commits, so the delete then sees (and deletes) those chunks too. Without it the delete
    collected the chunks before the worker's commit and failed at its own commit, on the
    foreign key of chunks it had not seen (a 500).
    """
    with tenant_context(tenant):
        if not Document.objects.select_for_update().filter(pk=document_id).exists():
            return False
        deleted, _ = Document.objects.filter(pk=document_id).delete()
    return deleted > 0


def _validate(data: bytes, filename: str) -> Sniffed:
    """Type and provisional title from the upload's prefix (the module docstring says why)."""
    if len(data) > settings.RAG_MAX_UPLOAD_BYTES:
        raise DocumentRejected(
            413,
            "payload_too_large",
            f"Documents are limited to {settings.RAG_MAX_UPLOAD_BYTES} bytes.",
        )
    try:
        return document_sniff(data=data, filename=filename)
    except ParseError as exc:
        status = 415 if exc.code == "unsupported_type" else 422
        raise DocumentRejected(status, exc.code, str(exc)) from exc


def metadata_check(metadata) -> int:
    """The bytes `metadata` is charged, or DocumentRejected: 422 `invalid_metadata` for what
    jsonb cannot hold or what nests deeper than METADATA_MAX_DEPTH, 413 `metadata_too_large`
    past RAG_MAX_METADATA_BYTES.

    The charge is what rag.models.MetadataBytes counts once it is stored: json.dumps prints
    JSON as PostgreSQL does (but for floats it writes with an exponent, a few bytes apart).

    Read without recursion, and given up as soon as its text alone passes the limit, so a
    huge or deep value costs no more than a small one before it is refused.
    """
    limit = settings.RAG_MAX_METADATA_BYTES
    if not isinstance(metadata, dict):
        raise _invalid_metadata("Metadata must be a JSON object.")
    seen = 0  # characters of keys and strings: fewer than the bytes they will take
    stack: list[tuple[object, int, str]] = [(metadata, 1, "")]
    while stack:
        value, depth, where = stack.pop()
        if isinstance(value, dict | list) and depth > METADATA_MAX_DEPTH:
            raise _invalid_metadata(
                f"Metadata{where} nests deeper than {METADATA_MAX_DEPTH} levels."
            )
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise _invalid_metadata(f"Metadata{where} has a key that is not a string.")
                if problem := text_problem(key):
                    raise _invalid_metadata(f"A key of metadata{where} {problem}.")
                seen += len(key)
                stack.append((item, depth + 1, where or f"[{key[:40]!r}]"))
        elif isinstance(value, list):
            stack.extend((item, depth + 1, where) for item in value)
        elif problem := _scalar_problem(value):
            raise _invalid_metadata(f"A value in metadata{where} {problem}.")
        elif isinstance(value, str):
            seen += len(value)
        if seen > limit:
            raise _metadata_too_large(limit)
    size = len(json.dumps(metadata, ensure_ascii=False).encode()) if metadata else 0
    if size > limit:
        raise _metadata_too_large(limit)
    return size


def _scalar_problem(value) -> str | None:
    if isinstance(value, str):
        return text_problem(value)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return "is too large a number" if value.bit_length() > _MAX_INT_BITS else None
    if isinstance(value, float):
        return number_problem(value)
    return f"is a {type(value).__name__}, not a JSON value"


def _invalid_metadata(detail: str) -> DocumentRejected:
    return DocumentRejected(422, "invalid_metadata", detail)


def _metadata_too_large(limit: int) -> DocumentRejected:
    return DocumentRejected(
        413, "metadata_too_large", f"Document metadata is limited to {limit} bytes of JSON."
    )


def clean_filename(filename: str) -> str:
    """The base name of an upload as people will read it (clean_label), at most
    FILENAME_MAX_CHARS characters, keeping a short extension as Django cuts uploaded names."""
    name = clean_label(filename.replace("\\", "/").rsplit("/", 1)[-1])
    if len(name) <= FILENAME_MAX_CHARS:
        return name
    stem, dot, extension = name.rpartition(".")
    if dot and stem and len(extension) <= 16:
        return stem[: FILENAME_MAX_CHARS - len(extension) - 1] + "." + extension
    return name[:FILENAME_MAX_CHARS]


def title_from_filename(filename: str) -> str:
    return filename.rsplit("/", 1)[-1].rsplit(".", 1)[0] if filename else ""
