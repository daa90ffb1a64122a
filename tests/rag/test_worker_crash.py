"""A worker killed in the middle of a document's ingestion: after a worker starts again, the
document ends `ready` exactly once, with no duplicate chunks."""

from rag.models import Chunk, Document
from tenants.context import tenant_context
from tests.helpers import bearer, wait_until


def _long_document(paragraphs: int = 500) -> str:
    topics = ["river", "mountain", "harbour", "orchard", "library", "market", "bridge", "forest"]
    return "\n\n".join(
        f"Paragraph {i}: the {topics[i % len(topics)]} chronicle records event {i * 7919 % 10007}, "
        + " ".join(f"detail{(i * j) % 997}" for j in range(60))
        for i in range(paragraphs)
    )


def _state(tenant, document_id) -> Document:
    with tenant_context(tenant):
        return Document.objects.get(pk=document_id)


def test_killed_worker_mid_ingestion_ends_ready_once(make_tenant, make_key, api, worker):
    tenant = make_tenant("bridge")
    key = make_key(tenant)
    doc_id = api.post(
        "/api/v1/documents", {"text": _long_document()}, format="json", **bearer(key)
    ).json()["id"]

    def under_way() -> bool:
        doc = _state(tenant, doc_id)
        if doc.status == "processing" and 0 < doc.chunks_embedded < doc.chunks_total:
            return True
        assert doc.status in ("queued", "processing"), doc.status
        return False

    wait_until(under_way, timeout=180, interval=0.1, message="ingestion never got under way")
    worker.kill()
    killed_at = _state(tenant, doc_id)
    assert killed_at.status == "processing" and killed_at.chunks_embedded < killed_at.chunks_total
    with tenant_context(tenant):
        assert Chunk.objects.filter(document_id=doc_id).count() == 0  # nothing half-written

    worker.start()

    def recovered():
        doc = _state(tenant, doc_id)
        assert doc.status != "failed", doc.error
        return doc if doc.status == "ready" else None

    doc = wait_until(recovered, timeout=300, interval=0.5, message="not recovered")
    assert doc.attempts == 2
    with tenant_context(tenant):
        ordinals = list(Chunk.objects.filter(document_id=doc_id).values_list("ordinal", flat=True))
    assert len(ordinals) == doc.chunks_total == len(set(ordinals))
    assert sorted(ordinals) == list(range(doc.chunks_total))

    # Repeating the task (as a redelivered message would) changes nothing.
    from rag.tasks import ingest_document

    assert ingest_document(str(tenant.id), doc_id) == "skipped"
    with tenant_context(tenant):
        assert Chunk.objects.filter(document_id=doc_id).count() == doc.chunks_total
