"""`manage.py reembed`: a tenant's chunks move to another embedding backend all at once, its
queries follow, other tenants are untouched, and an ingestion that raced the switch is
embedded again rather than left with vectors of the old backend. In every isolation mode."""

from __future__ import annotations

from io import StringIO

import numpy as np
import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connections

from tests.helpers import ingest_now

MODES = ["pool", "bridge", "silo"]
TEXTS = {
    "harbour": "The harbour keeps forty lanterns lit from November to March.",
    "ferry": "The ferry leaves the north pier at seven and returns at noon on weekdays.",
}


def _on(tenant, backend: str):
    from tenants.models import Tenant

    Tenant.objects.filter(pk=tenant.pk).update(embedding_backend=backend)
    tenant.refresh_from_db()
    return tenant


def _chunks(tenant) -> list[tuple[str, str, np.ndarray, bool]]:
    """(document backend, embedded text, vector, has a pending next vector) per chunk."""
    from rag.chunking import embedding_text
    from tenants.context import data_alias, tenant_context

    with tenant_context(tenant), connections[data_alias()].cursor() as cursor:
        cursor.execute(
            "SELECT d.embedding_backend, d.title, c.heading_path, c.text, c.embedding::text, "
            "c.embedding_next IS NOT NULL FROM rag_chunk c JOIN rag_document d "
            "ON d.id = c.document_id ORDER BY c.id"
        )
        rows = cursor.fetchall()
    return [
        (
            backend,
            embedding_text(title=title, heading_path=heading, text=text),
            np.array([float(x) for x in vector.strip("[]").split(",")], dtype=np.float32),
            pending,
        )
        for backend, title, heading, text, vector, pending in rows
    ]


def _assert_embedded_with(tenant, backend: str) -> None:
    from rag.embedding import embed_texts

    chunks = _chunks(tenant)
    assert chunks
    assert {c[0] for c in chunks} == {backend}
    assert not any(c[3] for c in chunks)
    expected = embed_texts([c[1] for c in chunks], backend=backend)
    got = np.stack([c[2] for c in chunks])
    np.testing.assert_allclose(got, expected, atol=2e-4)


@pytest.mark.parametrize("mode", MODES)
def test_reembed_moves_one_tenant_and_its_queries(make_tenant, mode):
    from rag.services.search import search_run

    moving = _on(make_tenant(mode), "torch")
    staying = _on(make_tenant(mode), "torch")
    ingest_now(moving, TEXTS)
    ingest_now(staying, {"other": "A neighbour's notes on lighthouse keeping and tide tables."})
    _assert_embedded_with(moving, "torch")
    before = [c[2] for c in _chunks(staying)]

    out, err = StringIO(), StringIO()
    call_command("reembed", moving.slug, "--backend", "onnx-int8", stdout=out, stderr=err)

    moving.refresh_from_db()
    assert moving.embedding_backend == "onnx-int8"
    _assert_embedded_with(moving, "onnx-int8")
    assert f"{moving.slug}: 2 chunks re-embedded, torch -> onnx-int8" in out.getvalue()
    assert "2/2" in err.getvalue()  # the progress bar
    # The neighbour in the same placement kind keeps its backend and its vectors.
    staying.refresh_from_db()
    assert staying.embedding_backend == "torch"
    np.testing.assert_array_equal(np.stack([c[2] for c in _chunks(staying)]), np.stack(before))
    # Queries now embed with the new backend and find the tenant's own documents only.
    result = search_run(tenant=moving, query="How many lanterns?", k=5, mode="vector")
    assert result.hits and result.hits[0].title == "harbour"
    assert all(hit.title in TEXTS for hit in result.hits)


def test_reembed_again_changes_nothing(make_tenant):
    tenant = make_tenant("pool")
    ingest_now(tenant, TEXTS)
    out = StringIO()
    call_command("reembed", tenant.slug, "--backend", tenant.embedding_backend, stdout=out)
    assert f"{tenant.slug}: already on {tenant.embedding_backend}" in out.getvalue()


@pytest.mark.parametrize("mode", ["pool", "silo"])
def test_an_ingestion_that_raced_the_switch_embeds_again(make_tenant, mode):
    """A worker loaded the tenant (torch) before the switch and stores after it: its document
    must end up with the tenant's new backend, not be the one torch document among onnx ones."""
    from rag.services.documents import document_submit
    from rag.services.ingest import document_ingest

    tenant = _on(make_tenant(mode), "torch")
    ingest_now(tenant, TEXTS)
    stale = type(tenant).objects.get(pk=tenant.pk)  # the worker's copy, still saying torch
    document = document_submit(
        tenant=tenant,
        data=b"The lighthouse was painted red in 1902.",
        filename="paint.txt",
        enqueue=False,
    ).document
    call_command("reembed", tenant.slug, "--backend", "onnx", stdout=StringIO(), stderr=StringIO())
    assert stale.embedding_backend == "torch"
    assert document_ingest(tenant=stale, document_id=document.id) == "ready"
    _assert_embedded_with(tenant, "onnx")


def test_a_second_reembed_of_the_same_tenant_is_refused(make_tenant):
    from rag.services.reembed import ReembedBusy, tenant_reembed

    tenant = _on(make_tenant("pool"), "torch")
    ingest_now(tenant, TEXTS)
    lock = f"tenantry:reembed:{tenant.id}"
    cache.add(lock, "1", timeout=60)  # as a running re-embedding holds it
    try:
        with pytest.raises(ReembedBusy):
            tenant_reembed(tenant=tenant, target="onnx")
    finally:
        cache.delete(lock)
    _assert_embedded_with(tenant, "torch")


def test_reembed_names_an_unknown_tenant(pg):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no-such-tenant"):
        call_command("reembed", "no-such-tenant", stdout=StringIO())
