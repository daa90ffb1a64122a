"""Fair ingestion (rag/fair_dispatch.py): a tenant's upload of many documents puts at most
INGEST_TENANT_INFLIGHT of them in the broker's queue, so another tenant's document is not
queued behind them all. Real Redis, real broker, the session's real Celery worker."""

from __future__ import annotations

import uuid

import pytest

from rag import fair_dispatch
from rag.models import Document, DocumentStatus
from rag.services.documents import document_submit
from tenants.context import tenant_context
from tests.helpers import wait_until


def _ready(tenant, ids) -> int:
    with tenant_context(tenant):
        return Document.objects.filter(pk__in=ids, status=DocumentStatus.READY).count()


def _text(tenant, i: int) -> bytes:
    return (
        f"Report {i} of {tenant.slug}. " + "The river carries silt to the delta. " * 40
    ).encode()


@pytest.mark.worker
def test_one_document_is_not_queued_behind_another_tenants_many(make_tenant, worker, settings):
    assert settings.INGEST_TENANT_INFLIGHT == 2  # the worker process reads the same default
    flooder, other = make_tenant("pool"), make_tenant("bridge")
    many = [
        str(
            document_submit(tenant=flooder, data=_text(flooder, i), filename=f"{i}.txt").document.pk
        )
        for i in range(12)
    ]
    one = str(document_submit(tenant=other, data=_text(other, 0), filename="0.txt").document.pk)
    wait_until(lambda: _ready(other, [one]) == 1, timeout=180, interval=0.1, message="B not ready")
    # In the broker's order B's document would follow all twelve; with two of A's in flight
    # at a time it follows at most two, and a third may be handed over while B waits.
    done_before = _ready(flooder, many)
    assert done_before <= 3, f"{done_before} of A's documents were ingested before B's one"
    # Each finished ingestion hands over the next: nothing of A's is left behind.
    wait_until(lambda: _ready(flooder, many) == 12, timeout=300, interval=0.3, message="A stuck")
    assert fair_dispatch.backlog_size(str(flooder.pk)) == 0


@pytest.mark.worker
def test_the_backlog_keeps_a_waiting_document_once_and_drains(worker, settings):
    # A tenant id nobody has: the worker skips its messages ("skipped") and hands over the next.
    tenant_id = str(uuid.uuid4())
    ids = [str(uuid.uuid4()) for _ in range(5)]
    for document_id in ids:
        fair_dispatch.submit(tenant_id, document_id)
    waiting = fair_dispatch.backlog_size(tenant_id)
    assert waiting <= 3  # two in flight at most
    for document_id in ids[-2:]:  # sent again while waiting: still there once
        fair_dispatch.submit(tenant_id, document_id)
    assert fair_dispatch.backlog_size(tenant_id) <= waiting
    wait_until(
        lambda: fair_dispatch.backlog_size(tenant_id) == 0,
        timeout=60,
        interval=0.1,
        message="the worker's hand-overs did not drain the backlog",
    )


def test_an_in_flight_place_held_too_long_stops_counting(settings):
    settings.INGEST_TENANT_INFLIGHT = 1
    tenant_id = str(uuid.uuid4())
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    fair_dispatch.submit(tenant_id, first)
    fair_dispatch.submit(tenant_id, second)
    assert fair_dispatch.backlog_size(tenant_id) == 1  # one place, taken by the first
    # A worker killed with the first in hand never says finished: after
    # INGEST_STUCK_AFTER_SECONDS its place is free again (the sweep dispatches then).
    settings.INGEST_STUCK_AFTER_SECONDS = 0
    assert fair_dispatch.dispatch(tenant_id) == [second]
    assert fair_dispatch.backlog_size(tenant_id) == 0
