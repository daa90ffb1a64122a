"""Reads of the data plane. Call inside a tenant context (the API view binds it)."""

from __future__ import annotations

from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL

from .filters import compile_filters
from .models import Document


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
