"""Caches: a repeated deterministic question is answered from the tenant's answer cache until
its documents change; identical texts are embedded once; nothing is shared between tenants."""

import pytest

from rag.models import Document, EmbeddingCacheEntry
from rag.services import cache as cache_service
from tenants.context import tenant_context
from tenants.models import UsageRecord
from tests.helpers import MODES, bearer

ZOO = (
    "# Lakeside zoo handbook\n\n## Zebras\n\nThe zebras at Lakeside zoo eat fresh meadow hay "
    "twice a day.\n\n## Penguins\n\nThe penguins are fed herring every morning."
)
QUESTION = "What do the zebras at Lakeside zoo eat?"


def ask(api, key, question=QUESTION, **body):
    response = api.post(
        "/api/v1/answer",
        {"question": question, "max_tokens": 8, "temperature": 0, **body},
        format="json",
        **bearer(key),
    )
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def zoo(make_tenant, make_key, upload, wait_done, worker):
    def make(mode="pool", text=ZOO):
        tenant = make_tenant(mode)
        key = make_key(tenant)
        document_id = upload(key, text=text, title="Zoo handbook").json()["id"]
        assert wait_done(key, document_id)["status"] == "ready"
        return tenant, key, document_id

    return make


def test_a_repeated_question_is_a_cache_hit_that_uses_no_tokens(api, zoo):
    from rag.models import QueryLog

    tenant, key, _ = zoo()
    first, second = ask(api, key), ask(api, key)
    assert first["cached"] is False and second["cached"] is True
    for field in ("answer", "citations", "usage", "model", "finish_reason"):
        assert second[field] == first[field]
    assert second["timings"]["generate_ms"] == 0
    # Whitespace and case do not make a new question.
    assert ask(api, key, question="  what do the ZEBRAS at Lakeside zoo   eat? ")["cached"]
    # Asking not to use the cache generates afresh.
    assert ask(api, key, cache=False)["cached"] is False
    [row] = UsageRecord.objects.filter(tenant_id=tenant.pk, kind="answer")
    assert row.requests == 4
    assert row.completion_tokens == 2 * first["usage"]["completion_tokens"]  # two generations
    with tenant_context(tenant):
        hits = list(QueryLog.objects.filter(kind="answer").values_list("cache_hit", flat=True))
    assert sorted(hits) == [False, False, True, True]


def test_a_warm_answer_or_stream_replays_the_same_text(api, zoo):
    _, key, _ = zoo()
    fresh = ask(api, key)
    response = api.post(
        "/api/v1/answer",
        {"question": QUESTION, "max_tokens": 8, "temperature": 0, "stream": True},
        format="json",
        **bearer(key),
    )
    text = b"".join(response.streaming_content).decode()
    assert '"cached":true' in text and fresh["answer"].replace('"', '\\"') in text


def test_uploading_or_deleting_a_document_invalidates_the_tenants_answers(
    api, zoo, upload, wait_done
):
    _, key, _ = zoo()
    ask(api, key)
    assert ask(api, key)["cached"]
    other = upload(key, text="# Notes\n\nThe zebra keeper is called Ada.").json()["id"]
    assert wait_done(key, other)["status"] == "ready"
    assert ask(api, key)["cached"] is False
    assert ask(api, key)["cached"] is True
    assert api.delete(f"/api/v1/documents/{other}", **bearer(key)).status_code == 204
    assert ask(api, key)["cached"] is False


def test_any_change_to_a_document_bumps_the_corpus_version(zoo):
    tenant, _, document_id = zoo()
    before = cache_service.corpus_version(tenant=tenant)
    with tenant_context(tenant):
        Document.objects.filter(pk=document_id).update(metadata={"edited": True})
    assert cache_service.corpus_version(tenant=tenant) == before + 1
    with tenant_context(tenant):
        Document.objects.filter(pk=document_id).update(chunks_embedded=1)  # progress only
    assert cache_service.corpus_version(tenant=tenant) == before + 1


@pytest.mark.parametrize("mode", MODES)
def test_another_tenant_never_gets_a_cached_answer(mode, api, zoo):
    _, a_key, _ = zoo(mode)
    _, b_key, b_doc = zoo(mode, text="# Farm\n\nOur zebras eat clover; the farm is by the lake.")
    ask(api, a_key)
    assert ask(api, a_key)["cached"]
    b = ask(api, b_key)
    assert b["cached"] is False
    assert {c["document_id"] for c in b["citations"]} == {b_doc}
    assert ask(api, b_key)["citations"] == b["citations"]


def test_identical_texts_are_embedded_once_per_tenant(make_tenant, monkeypatch):
    tenant, other = make_tenant("pool"), make_tenant("bridge")
    calls = []
    real = cache_service.embed_texts
    monkeypatch.setattr(
        cache_service,
        "embed_texts",
        lambda texts, **kw: calls.append(list(texts)) or real(texts, **kw),
    )
    first = cache_service.embeddings_cached(tenant=tenant, texts=["a b", "c d"], purpose="t")
    again = cache_service.embeddings_cached(tenant=tenant, texts=["c d", "e f", "a b"], purpose="t")
    assert calls == [["a b", "c d"], ["e f"]]
    assert (again[0] == first[1]).all() and (again[2] == first[0]).all()
    assert (
        again == real(["c d", "e f", "a b"], backend=tenant.embedding_backend)
    ).all()  # the cache returns the model's vectors
    cache_service.embeddings_cached(tenant=other, texts=["a b"], purpose="t")
    assert calls[-1] == ["a b"]  # the other tenant's cache is its own


def test_a_repeated_search_and_a_reingested_document_skip_the_model(
    api, zoo, upload, wait_done, search
):
    tenant, key, document_id = zoo()
    with tenant_context(tenant):
        entries = EmbeddingCacheEntry.objects.count()
    search(key, "penguin herring breakfast")
    search(key, "penguin herring breakfast")
    with tenant_context(tenant):
        assert EmbeddingCacheEntry.objects.count() == entries + 1
    assert api.delete(f"/api/v1/documents/{document_id}", **bearer(key)).status_code == 204
    again = upload(key, text=ZOO, title="Zoo handbook").json()["id"]
    assert wait_done(key, again)["status"] == "ready"
    with tenant_context(tenant):
        # Every chunk's vector came from the cache: the worker added no entry.
        assert EmbeddingCacheEntry.objects.count() == entries + 1
