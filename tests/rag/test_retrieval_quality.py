"""On a corpus with known answers, hybrid puts the right chunk first at least as often as
vector or keyword search alone."""

import time

import pytest

from rag.models import Document
from rag.services.documents import document_submit
from rag.services.ingest import document_ingest
from rag.services.search import chunk_search
from tests.rag.corpus import DOCUMENTS, QUESTIONS


@pytest.fixture
def corpus_tenant(make_tenant):
    tenant = make_tenant("pool")
    ids = {}
    for name, text in DOCUMENTS.items():
        doc = document_submit(tenant=tenant, data=text.encode(), filename=f"{name}.md").document
        # The service the worker runs, here in the test; a session worker may have claimed the
        # document first (the upload enqueued it), and then the test waits for that one.
        if document_ingest(tenant=tenant, document_id=doc.id) != "ready":
            _wait_ready(tenant, doc.id)
        ids[str(doc.id)] = name
    return tenant, ids


def _wait_ready(tenant, document_id, timeout: float = 120) -> None:
    from tenants.context import tenant_context

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with tenant_context(tenant):
            status = Document.objects.get(pk=document_id).status
        if status == "ready":
            return
        assert status != "failed"
        time.sleep(0.2)
    raise AssertionError(f"{document_id} not ready after {timeout}s")


def test_hybrid_ranks_the_right_chunk_first_at_least_as_often(corpus_tenant):
    tenant, names = corpus_tenant
    firsts = {}
    for mode in ("vector", "keyword", "hybrid"):
        hits = 0
        for question, answer in QUESTIONS:
            results = chunk_search(tenant=tenant, query=question, k=5, mode=mode).hits
            hits += bool(results) and names[results[0].document_id] == answer
        firsts[mode] = hits
    assert firsts["hybrid"] >= firsts["vector"], firsts
    assert firsts["hybrid"] >= firsts["keyword"], firsts
    assert firsts["hybrid"] >= len(QUESTIONS) * 0.75, firsts
