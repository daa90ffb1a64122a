"""Data-plane console URLs, mounted in the `console` namespace by tenants/console/urls.py."""

from django.urls import path

from .views import documents, evaluation, playground, queries, usage

urlpatterns = [
    path("playground/", playground.playground, name="playground"),
    path("playground/<slug:slug>/ask/", playground.ask, name="playground-ask"),
    path("tenants/<slug:slug>/documents/", documents.documents, name="tenant-documents"),
    path(
        "tenants/<slug:slug>/documents/upload/",
        documents.document_upload,
        name="tenant-document-upload",
    ),
    path(
        "tenants/<slug:slug>/documents/<uuid:document_id>/row/",
        documents.document_row,
        name="tenant-document-row",
    ),
    path(
        "tenants/<slug:slug>/documents/<uuid:document_id>/delete/",
        documents.document_remove,
        name="tenant-document-delete",
    ),
    path("tenants/<slug:slug>/usage/", usage.usage, name="tenant-usage"),
    path("tenants/<slug:slug>/queries/", queries.queries, name="tenant-queries"),
    path("tenants/<slug:slug>/chunks/<int:chunk_id>/", queries.chunk, name="tenant-chunk"),
    path("tenants/<slug:slug>/evaluation/", evaluation.evaluation, name="tenant-evaluation"),
    path(
        "tenants/<slug:slug>/evaluation/import/",
        evaluation.evaluation_import,
        name="tenant-evaluation-import",
    ),
    path(
        "tenants/<slug:slug>/evaluation/sets/<int:set_id>/run/",
        evaluation.evaluation_run,
        name="tenant-evaluation-run",
    ),
    path(
        "tenants/<slug:slug>/evaluation/runs/<int:run_id>/row/",
        evaluation.evaluation_run_row,
        name="tenant-evaluation-run-row",
    ),
]
