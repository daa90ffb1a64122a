"""Recovering documents whose ingestion stalled (a worker killed mid-way, a lost message).

A healthy run touches the document after every embedding batch, so `updated_at` older than
INGEST_STUCK_AFTER_SECONDS means nobody is working on it. It is queued again until it has been
attempted INGEST_MAX_ATTEMPTS times, then failed with a reason.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models.functions import Now
from django.utils import timezone

from tenants.context import data_alias, tenant_context
from tenants.models import Tenant, TenantStatus
from tenants.sweep import each_tenant

from ..handoff import INGEST_DOCUMENT, after_commit
from ..models import IN_PROGRESS, Document, DocumentStatus


def documents_requeue_stuck(*, tenant: Tenant) -> tuple[list[str], list[str]]:
    """Requeue or fail the tenant's stalled documents; returns (requeued ids, failed ids)."""
    cutoff = timezone.now() - timedelta(seconds=settings.INGEST_STUCK_AFTER_SECONDS)
    stalled = {
        "status__in": IN_PROGRESS,
        "updated_at__lt": cutoff,
    }
    requeued, failed = [], []
    with tenant_context(tenant):
        for doc in Document.objects.filter(**stalled).only("id", "attempts"):
            # Conditional on the row still being stalled: two sweepers cannot both act on it.
            still = Document.objects.filter(pk=doc.pk, **stalled)
            if doc.attempts >= settings.INGEST_MAX_ATTEMPTS:
                reason = (
                    f"gave_up: ingestion stalled {doc.attempts} times (worker lost or too slow)"
                )
                if still.update(status=DocumentStatus.FAILED, error=reason, updated_at=Now()):
                    failed.append(str(doc.pk))
            elif still.update(status=DocumentStatus.QUEUED, updated_at=Now()):
                requeued.append(str(doc.pk))
                after_commit(INGEST_DOCUMENT, str(tenant.id), str(doc.pk), using=data_alias())
    return requeued, failed


def documents_requeue_stuck_everywhere() -> dict[str, tuple[list[str], list[str]] | str]:
    """Every active tenant; one whose store cannot be reached is reported and the rest go on."""
    tenants = Tenant.objects.filter(status=TenantStatus.ACTIVE).order_by("slug")
    return {
        tenant.slug: outcome.report()
        for tenant, outcome in each_tenant(
            tenants, lambda tenant: documents_requeue_stuck(tenant=tenant)
        )
    }
