"""On a corpus with known answers, hybrid puts the right chunk first at least as often as
vector or keyword search alone."""

import pytest

from rag.services.search import chunk_search
from tests.helpers import ingest_now
from tests.rag.corpus import DOCUMENTS, QUESTIONS


@pytest.fixture
def corpus_tenant(make_tenant):
    tenant = make_tenant("pool")
    ids = ingest_now(tenant, DOCUMENTS, suffix=".md")
    return tenant, ids


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
