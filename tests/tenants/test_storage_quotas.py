"""Storage quotas through the documents API and the ingest command: bytes over the quota are a
413 `storage_quota_exceeded`, documents over it a 429 `quota_exceeded`, and nothing is stored.
No worker is needed: the API only stores and enqueues."""

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.management import call_command
from django.db import connections

from rag.models import Document, DocumentSource
from rag.services.documents import DocumentRejected, document_submit
from tenants.context import tenant_context
from tenants.services.quotas import quota_set
from tests.helpers import MODES, bearer


def post_text(api, key: str, text: str, **fields):
    return api.post("/api/v1/documents", {"text": text, **fields}, format="json", **bearer(key))


def stored(tenant) -> tuple[int, int, int]:
    """Documents, their bytes and stored sources of the tenant, read in its own store."""
    with tenant_context(tenant):
        documents = list(Document.objects.values_list("size_bytes", flat=True))
        return len(documents), sum(documents), DocumentSource.objects.count()


@pytest.mark.parametrize("mode", MODES)
def test_bytes_over_the_quota_are_a_413_and_nothing_is_stored(mode, make_tenant, make_key, api):
    tenant = make_tenant(mode)
    quota_set(tenant=tenant, max_storage_bytes=100)
    key = make_key(tenant, scopes=["ingest"])
    assert post_text(api, key, "a" * 60).status_code == 202
    refused = post_text(api, key, "b" * 41)
    assert refused.status_code == 413, refused.content
    assert refused["Content-Type"] == "application/problem+json"
    body = refused.json()
    assert body["code"] == "storage_quota_exceeded" and "100 bytes" in body["detail"]
    assert stored(tenant) == (1, 60, 1)
    assert post_text(api, key, "c" * 40).status_code == 202  # exactly up to the quota is fine
    assert stored(tenant) == (2, 100, 2)


@pytest.mark.parametrize("mode", MODES)
def test_documents_over_the_quota_are_a_429_quota_exceeded(mode, make_tenant, make_key, api):
    tenant = make_tenant(mode)
    quota_set(tenant=tenant, max_documents=2)
    key = make_key(tenant, scopes=["ingest"])
    assert post_text(api, key, "first document").status_code == 202
    assert post_text(api, key, "second document").status_code == 202
    refused = post_text(api, key, "third document")
    assert refused.status_code == 429, refused.content
    assert refused.json()["code"] == "quota_exceeded"
    assert stored(tenant)[0] == 2
    # The quota is the tenant's own: another tenant of the same mode is not limited by it.
    other = make_key(make_tenant(mode), scopes=["ingest"])
    assert post_text(api, other, "third document").status_code == 202


def test_duplicates_and_replacements_add_no_document(make_tenant, make_key, api):
    tenant = make_tenant("pool")
    quota_set(tenant=tenant, max_documents=1, max_storage_bytes=50)
    key = make_key(tenant, scopes=["ingest"])
    first = post_text(api, key, "version one of the policy", external_id="policy")
    assert first.status_code == 202
    duplicate = post_text(api, key, "version one of the policy")
    assert duplicate.status_code == 200 and duplicate.json()["outcome"] == "duplicate"
    replaced = post_text(api, key, "version two of the policy, longer", external_id="policy")
    assert replaced.status_code == 202 and replaced.json()["outcome"] == "replaced"
    assert stored(tenant) == (1, len("version two of the policy, longer"), 1)
    # A replacement that grows past the byte quota is refused and the old version stays.
    too_big = post_text(api, key, "x" * 51, external_id="policy")
    assert too_big.status_code == 413 and too_big.json()["code"] == "storage_quota_exceeded"
    with tenant_context(tenant):
        kept = Document.objects.get(external_id="policy")
        assert bytes(kept.source.data) == b"version two of the policy, longer"


def test_concurrent_uploads_cannot_squeeze_past_the_quota(make_tenant):
    tenant = make_tenant("pool")
    quota_set(tenant=tenant, max_documents=3)
    uploads = 20
    start = threading.Barrier(uploads)

    def submit(n):
        start.wait()
        try:
            return document_submit(tenant=tenant, data=f"document number {n}".encode()).outcome
        except DocumentRejected as exc:
            return exc.code
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=uploads) as pool:
        outcomes = list(pool.map(submit, range(uploads)))
    assert outcomes.count("created") == 3, outcomes
    assert outcomes.count("quota_exceeded") == uploads - 3
    assert stored(tenant)[0] == 3


def test_ingest_command_reports_quota_refusals_as_failed(make_tenant, tmp_path):
    tenant = make_tenant("bridge")
    quota_set(tenant=tenant, max_documents=1)
    (tmp_path / "a.txt").write_text("The first file fits.")
    (tmp_path / "b.txt").write_text("The second file does not.")
    out = io.StringIO()
    call_command(
        "ingest", tenant.slug, str(tmp_path), "--no-wait", stdout=out, stderr=io.StringIO()
    )
    assert "0 ingested, 0 duplicates, 1 failed, 1 queued." in out.getvalue()
    assert "b.txt: quota_exceeded:" in out.getvalue()
    assert stored(tenant)[0] == 1
