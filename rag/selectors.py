"""Reads of the data plane. Every one takes `tenant=` and binds it for its own short
transaction (Zulip's `access_stream_by_id`: every lookup names the tenant, and another
tenant's id finds nothing, exactly as a missing one does)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import BooleanField, Count, QuerySet
from django.db.models.expressions import RawSQL

from tenants.context import tenant_context
from tenants.models import Tenant

from .filters import compile_filters
from .models import Chunk, Document, EvalRun, EvalSet, QueryLog


@dataclass(frozen=True)
class DocumentPage:
    total: int
    documents: list[Document]


def document_list(
    *,
    tenant: Tenant,
    status: str | None = None,
    metadata: dict | None = None,
    offset: int = 0,
    limit: int = 50,
    with_metadata: bool = True,
) -> DocumentPage:
    """A page of the tenant's documents, newest first, with the number matching in all.
    Raises FilterError for a bad filter."""
    with tenant_context(tenant):
        documents = _documents(status=status, metadata=metadata)
        if not with_metadata:
            documents = documents.defer("metadata")
        return DocumentPage(
            total=documents.count(), documents=list(documents[offset : offset + limit])
        )


def document_get(*, tenant: Tenant, document_id) -> Document | None:
    """The tenant's document, or None (another tenant's id finds nothing)."""
    with tenant_context(tenant):
        return Document.objects.filter(pk=document_id).first()


def document_states(*, tenant: Tenant, document_ids) -> list[dict]:
    """`id`, `status` and `error` of those of the tenant's documents among `document_ids`."""
    with tenant_context(tenant):
        return list(
            Document.objects.filter(pk__in=list(document_ids)).values("id", "status", "error")
        )


def _documents(*, status: str | None, metadata: dict | None) -> QuerySet:
    documents = Document.objects.all()
    if status:
        documents = documents.filter(status=status)
    if metadata:
        clauses, params = compile_filters(metadata, column="rag_document.metadata")
        condition = " AND ".join(["TRUE", *clauses])
        # compile_filters emits only its own SQL fragments; every value is a bound parameter.
        documents = documents.filter(RawSQL(condition, params, output_field=BooleanField()))  # noqa: S611
    return documents


def chunk_get(*, tenant: Tenant, chunk_id: int) -> Chunk | None:
    """The tenant's chunk with its document, or None (another tenant's id finds nothing)."""
    with tenant_context(tenant):
        return (
            Chunk.objects.select_related("document")
            .defer("embedding", "search_vector")
            .filter(pk=chunk_id)
            .first()
        )


def querylog_list(*, tenant: Tenant, limit: int = 100, kind: str | None = None) -> list[QueryLog]:
    """The tenant's most recent queries, newest first."""
    with tenant_context(tenant):
        logs = QueryLog.objects.all()
        if kind:
            logs = logs.filter(kind=kind)
        return list(logs[:limit])


def evalset_list(*, tenant: Tenant) -> list[EvalSet]:
    """The tenant's evaluation sets by name, each with `question_count`."""
    with tenant_context(tenant):
        return list(EvalSet.objects.annotate(question_count=Count("questions")).order_by("name"))


def evalset_get(*, tenant: Tenant, set_id=None, name: str | None = None) -> EvalSet | None:
    """The tenant's set by id or name, or None (another tenant's finds nothing)."""
    with tenant_context(tenant):
        sets = EvalSet.objects.annotate(question_count=Count("questions"))
        sets = sets.filter(pk=set_id) if set_id is not None else sets.filter(name=name)
        return sets.first()


def evalrun_list(
    *, tenant: Tenant, eval_set: EvalSet | None = None, limit: int = 20
) -> list[EvalRun]:
    """The tenant's most recent evaluation runs (of one set, if given), newest first."""
    with tenant_context(tenant):
        runs = EvalRun.objects.select_related("eval_set").order_by("-created_at", "-id")
        if eval_set is not None:
            runs = runs.filter(eval_set_id=eval_set.pk)
        return list(runs[:limit])


def evalrun_get(*, tenant: Tenant, run_id: int) -> EvalRun | None:
    """The tenant's run with its set, or None (another tenant's id finds nothing)."""
    with tenant_context(tenant):
        return EvalRun.objects.select_related("eval_set").filter(pk=run_id).first()
