"""Reads of the data plane. Those without a `tenant` argument run in the caller's tenant
context (the API view binds it); those with one bind it themselves."""

from __future__ import annotations

from django.db.models import BooleanField, Count, QuerySet
from django.db.models.expressions import RawSQL

from tenants.context import tenant_context
from tenants.models import Tenant

from .filters import compile_filters
from .models import Chunk, Document, EvalRun, EvalSet, QueryLog


def document_list(*, status: str | None = None, metadata: dict | None = None) -> QuerySet:
    """The bound tenant's documents, newest first. Raises FilterError for a bad filter."""
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
        runs = EvalRun.objects.select_related("eval_set").order_by("-id")
        if eval_set is not None:
            runs = runs.filter(eval_set_id=eval_set.pk)
        return list(runs[:limit])


def evalrun_get(*, tenant: Tenant, run_id: int) -> EvalRun | None:
    """The tenant's run with its set, or None (another tenant's id finds nothing)."""
    with tenant_context(tenant):
        return EvalRun.objects.select_related("eval_set").filter(pk=run_id).first()
