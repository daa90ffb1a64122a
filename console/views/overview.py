"""The console's overview: tenants by mode and status, the data planes' totals, the last 24
hours of requests and tokens, and recent failed ingestions."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import connections
from django.db.models import Count, F, Sum
from django.shortcuts import render

from rag.models import Chunk, Document, DocumentStatus
from tenants.models import IsolationMode, Tenant, TenantStatus, UsageRecord
from tenants.services.quotas import METERING_DB, WINDOW_START_SQL, clock_params
from tenants.sweep import each_tenant

from ..decorators import staff_only

logger = logging.getLogger(__name__)

FAILED_INGESTIONS_SHOWN = 10


@staff_only
def home(request):
    hourly = usage_hourly_totals(hours=24)
    chart = {
        "labels": [f"{row['hour']:%H}:00" for row in hourly],
        "requests": [row["requests"] for row in hourly],
        "tokens": [row["tokens"] for row in hourly],
    }
    context = {
        "nav": "overview",
        "counts": tenant_counts(),
        "dataplane": dataplane_totals(failed_limit=FAILED_INGESTIONS_SHOWN),
        "hourly": hourly,
        "chart": chart,
        "requests_24h": sum(chart["requests"]),
        "tokens_24h": sum(chart["tokens"]),
    }
    return render(request, "console/home.html", context)


# --- Selectors -------------------------------------------------------------------------------


def tenant_counts() -> dict:
    """Tenants per isolation mode and status, as table rows (modes) of cells (statuses)."""
    found = {
        (mode, status): n
        for mode, status, n in Tenant.objects.order_by()
        .values_list("isolation_mode", "status")
        .annotate(n=Count("id"))
    }
    statuses = TenantStatus.choices
    rows = []
    for mode, label in IsolationMode.choices:
        cells = [found.get((mode, status), 0) for status, _ in statuses]
        rows.append({"mode": mode, "label": label, "cells": cells, "total": sum(cells)})
    return {
        "statuses": [label for _, label in statuses],
        "rows": rows,
        "status_totals": [sum(row["cells"][i] for row in rows) for i in range(len(statuses))],
        "total": sum(row["total"] for row in rows),
    }


def dataplane_totals(*, failed_limit: int) -> dict:
    """Documents and chunks of every tenant, and the most recent failed ingestions across them.

    Each tenant is read inside its own tenant context (its pool rows, schema or database); a
    tenant whose store cannot be reached is listed rather than failing the page.
    """
    documents = chunks = 0
    failed: list[dict] = []
    unreachable: list[Tenant] = []

    def totals(tenant: Tenant) -> tuple[int, int, list[dict]]:
        recent = (
            Document.objects.filter(status=DocumentStatus.FAILED)
            .order_by("-updated_at")
            .values("id", "title", "error", "updated_at")[:failed_limit]
        )
        return Document.objects.count(), Chunk.objects.count(), list(recent)

    tenants = Tenant.objects.exclude(status=TenantStatus.PROVISIONING)
    for tenant, outcome in each_tenant(tenants, totals):
        if not outcome.ok:
            unreachable.append(tenant)
            continue
        tenant_documents, tenant_chunks, recent = outcome.value
        documents += tenant_documents
        chunks += tenant_chunks
        failed.extend({"tenant": tenant, **row} for row in recent)
    failed.sort(key=lambda row: row["updated_at"], reverse=True)
    return {
        "documents": documents,
        "chunks": chunks,
        "failed": failed[:failed_limit],
        "unreachable": unreachable,
    }


def usage_hourly_totals(*, hours: int) -> list[dict]:
    """Requests and tokens (prompt, completion and embedding) of all tenants per hour, for the
    last `hours` hours including the current one, oldest first; hours without usage are 0.

    Reads the usage ledger (a control-plane table) on the metering connection, by the
    database's clock, as tenants.services.usage does.
    """
    current = _current_hour()
    since = current - timedelta(hours=hours - 1)
    rows = (
        UsageRecord.objects.using(METERING_DB)
        .filter(hour__gte=since)
        .order_by()
        .values("hour")
        .annotate(
            requests=Sum("requests"),
            tokens=Sum(F("prompt_tokens") + F("completion_tokens") + F("embedding_tokens")),
        )
    )
    by_hour = {row["hour"]: row for row in rows}
    series = []
    for i in range(hours):
        hour = since + timedelta(hours=i)
        row = by_hour.get(hour, {})
        series.append(
            {"hour": hour, "requests": row.get("requests") or 0, "tokens": row.get("tokens") or 0}
        )
    return series


def _current_hour() -> datetime:
    with connections[METERING_DB].cursor() as cursor:
        # The quotas' own hour, so a test's pinned clock holds here too.
        cursor.execute(f"SELECT {WINDOW_START_SQL}", clock_params())
        return cursor.fetchone()[0]
