"""Noisy neighbour, ingestion: how long tenant B's one document takes to be ready while tenant
A's thousand documents are being ingested, against B's document alone.

Through the real pipeline (upload service, rag/fair_dispatch.py, a real Celery worker sized
as production sizes it). Without fair dispatch B's document would queue behind every one of
A's; with it, B's goes to the next free worker slot, so it waits at most for one of A's
documents in flight. A's documents are short and B is measured once A's queue is deep (not
after all thousand are in: the section would take many minutes); B's are the same kind of
document, so "alone" and "with A" ingest the same work.
"""

from __future__ import annotations

import statistics
import threading
import time

from django.db import close_old_connections
from django.utils import timezone

from rag.models import Document
from rag.services.documents import document_submit
from tenants.context import tenant_context
from tenants.services.provisioning import tenant_create, tenant_delete

from .common import synthetic_corpus


def _document(seed: int, paragraphs: int = 3) -> bytes:
    return "\n\n".join(synthetic_corpus(paragraphs, seed=seed).texts).encode()


def _ready_seconds(tenant, document_id, submitted, timeout: float = 600) -> float:
    """Seconds from `submitted` until the document turned ready (its own updated_at, so the
    polling interval does not count)."""
    from tests.helpers import wait_until

    def settled():
        with tenant_context(tenant):
            status, updated = Document.objects.values_list("status", "updated_at").get(
                pk=document_id
            )
        if status == "failed":
            raise RuntimeError("B's document failed to ingest")
        return updated if status == "ready" else None

    updated = wait_until(
        settled, timeout=timeout, interval=0.1, message="B's document was not ready in time"
    )
    return (updated - submitted).total_seconds()


def _b_once(tenant, seed: int) -> float:
    submitted = timezone.now()
    document = document_submit(tenant=tenant, data=_document(seed), filename=f"b{seed}.md")
    return _ready_seconds(tenant, document.document.id, submitted)


def _backlog(tenant) -> int:
    with tenant_context(tenant):
        return Document.objects.exclude(status__in=("ready", "failed")).count()


def _upload_all(tenant, count: int, stop: threading.Event, done: list) -> None:
    """A's upload, one document after another as its application would send them, until all
    are in or B's measurements are over."""
    close_old_connections()
    try:
        for i in range(count):
            if stop.is_set():
                break
            document_submit(tenant=tenant, data=_document(5000 + i), filename=f"a{i}.md")
            done.append(i)
    finally:
        close_old_connections()


def bench_noisy_ingest(*, a_documents: int, b_repetitions: int) -> dict:
    from tests.helpers import wait_until

    from .worker import running_worker

    stamp = int(time.time())
    a = tenant_create(slug=f"bench-ningest-a-{stamp}", mode="pool")
    b = tenant_create(slug=f"bench-ningest-b-{stamp}", mode="pool")
    # B is measured once A's queue is deep: a quarter of its upload, at most 200 documents.
    deep = max(1, min(a_documents // 4, 200))
    stop, uploaded = threading.Event(), []
    try:
        with running_worker():
            _b_once(b, seed=1)  # warm: the worker's first document loads what it needs
            alone = [_b_once(b, seed=10 + i) for i in range(b_repetitions)]
            uploader = threading.Thread(target=_upload_all, args=(a, a_documents, stop, uploaded))
            uploader.start()
            wait_until(
                lambda: _backlog(a) >= deep or not uploader.is_alive(),
                timeout=600,
                interval=0.5,
                message="A's queue never grew deep",
            )
            contended, backlog = [], []
            for i in range(b_repetitions):
                backlog.append(_backlog(a))
                contended.append(_b_once(b, seed=100 + i))
            stop.set()
            uploader.join()
            a_left = _backlog(a)
    finally:
        stop.set()
        # A's remaining backlog is dropped with it: the worker finds those documents gone.
        tenant_delete(tenant=a)
        tenant_delete(tenant=b)
    alone_p50, contended_p50 = statistics.median(alone), statistics.median(contended)
    return {
        "a_documents": a_documents,
        "a_uploaded": len(uploaded),
        "a_backlog_when_b_submitted": backlog,
        "a_backlog_at_end": a_left,
        "b_alone_s": [round(x, 3) for x in alone],
        "b_with_a_s": [round(x, 3) for x in contended],
        "b_alone_p50_s": round(alone_p50, 3),
        "b_with_a_p50_s": round(contended_p50, 3),
        "ratio": round(contended_p50 / alone_p50, 2),
    }


def markdown(r: dict) -> list[str]:
    return [
        "## Noisy neighbour: ingestion",
        "",
        f"Tenant A uploads up to {r['a_documents']} documents, one after another, while B "
        f"uploads one document at a time once A's queue is deep (A's documents not yet ready "
        f"when each of B's was sent: {r['a_backlog_when_b_submitted']}; A had uploaded "
        f"{r['a_uploaded']} when B's last was ready). Real Celery worker, fair dispatch.",
        "",
        "| B's document ready (s) | p50 | each |",
        "| --- | --- | --- |",
        f"| alone | {r['b_alone_p50_s']} | {r['b_alone_s']} |",
        f"| A's documents ingesting | {r['b_with_a_p50_s']} | {r['b_with_a_s']} |",
        "",
        f"Ratio with A / alone: {r['ratio']} (target at most 2). A's documents still "
        f"waiting at the end: {r['a_backlog_at_end']}.",
        "",
    ]
