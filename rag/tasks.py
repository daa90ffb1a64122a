"""Celery tasks of the data plane. Thin: they reload rows by id and call services.

Importing this module must not import torch, sentence-transformers or llama_cpp (a test checks):
the web process imports it to enqueue.
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from tenants.models import Tenant


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=1800,
    time_limit=1900,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=5,
)
def ingest_document(tenant_id: str, document_id: str) -> str:
    """Ingest one document of one tenant.

    A repeated run is harmless: the service claims the document with a conditional UPDATE,
    leaves a ready or replaced document alone, and swaps the chunk set in one transaction
    under a row lock, so chunks are never duplicated. Returns quietly if the tenant is gone.
    """
    from .services.ingest import document_ingest

    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return "skipped"
    return document_ingest(tenant=tenant, document_id=document_id)


@shared_task(acks_late=True, time_limit=300)
def requeue_stuck_documents() -> dict:
    """Periodic (beat): requeue or fail stalled documents. Repeating it only re-checks rows."""
    from .services.recovery import documents_requeue_stuck_everywhere

    return documents_requeue_stuck_everywhere()
