"""Celery tasks of the data plane. Thin: they reload rows by id and call services.

Services never import this module: they hand work off by task name (rag.handoff), so the
imports point one way, tasks -> services. Importing it must not import torch,
sentence-transformers or llama_cpp (a test checks): the worker imports it before it forks.
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from tenants.models import Tenant

from . import fair_dispatch
from .selectors import evalrun_get
from .services.evaluation import evaluation_run
from .services.ingest import document_ingest
from .services.querylog import retention_enforce_everywhere
from .services.recovery import documents_requeue_stuck_everywhere

# A database outage, or the tenant moving under the task (its old placement refuses writes
# from the switch on): the retry reloads the tenant and lands in its placement of the moment.
RETRY_ON_DATABASE_ERRORS = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "max_retries": 5,
}


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=1800,
    time_limit=1900,
    **RETRY_ON_DATABASE_ERRORS,
)
def ingest_document(tenant_id: str, document_id: str) -> str:
    """Ingest one document of one tenant.

    A repeated run is harmless: the service claims the document with a conditional UPDATE,
    leaves a ready or replaced document alone, and swaps the chunk set in one transaction
    under a row lock, so chunks are never duplicated. Returns quietly if the tenant is gone.
    """
    try:
        tenant = Tenant.objects.filter(pk=tenant_id).first()
        if tenant is None:
            return "skipped"
        return document_ingest(tenant=tenant, document_id=document_id)
    finally:
        fair_dispatch.finished(tenant_id, document_id)  # the tenant's next document, if any


@shared_task(acks_late=True, time_limit=300)
def requeue_stuck_documents() -> dict:
    """Periodic (beat): requeue or fail stalled documents, then dispatch what a lost hand-over
    left in a tenant's backlog. Repeating it only re-checks rows."""
    outcome = documents_requeue_stuck_everywhere()
    fair_dispatch.dispatch_all()
    return outcome


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=3600,
    time_limit=3700,
    **RETRY_ON_DATABASE_ERRORS,
)
def evaluate_set(tenant_id: str, run_id: int) -> str:
    """Compute one queued evaluation run (started from the console); returns its status.

    A repeated run is harmless: a run already done or failed is left alone (the service claims
    only a queued or running run, with a conditional UPDATE), and a redelivered run whose
    worker died restarts the same run's computation from the first question, overwriting its
    progress and results, never creating a second run. Returns quietly if the tenant or the
    run is gone.
    """
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return "skipped"
    run = evalrun_get(tenant=tenant, run_id=run_id)
    if run is None:
        return "skipped"
    return evaluation_run(tenant=tenant, eval_set=run.eval_set, k=run.k, run=run).status


@shared_task(acks_late=True, soft_time_limit=1800, time_limit=1900)
def prune_query_logs() -> dict:
    """Periodic (beat, RETENTION_SWEEP_INTERVAL_SECONDS): delete query log rows past
    QUERY_LOG_RETENTION_DAYS and stale answer and embedding cache entries, tenant by tenant in
    each one's own context. Repeating it only deletes what is (still) past its retention."""
    return retention_enforce_everywhere()
