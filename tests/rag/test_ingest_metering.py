"""Ingestion is metered: the upload counts as a request against the key, the worker's
embedding work as embedding tokens of the tenant."""

from django.db.models import Sum

from rag.models import Chunk
from tenants.context import tenant_context
from tenants.models import UsageRecord


def test_ingestion_records_the_upload_and_its_embedding_tokens(
    make_tenant, make_key, upload, wait_done, worker
):
    tenant = make_tenant("bridge")
    key = make_key(tenant)
    text = "# Tides\n\n" + "The moon pulls the sea into two bulges. " * 40
    document_id = upload(key, text=text).json()["id"]
    assert wait_done(key, document_id)["status"] == "ready"
    with tenant_context(tenant):
        chunks = Chunk.objects.filter(document_id=document_id)
        expected = chunks.aggregate(n=Sum("token_count"))["n"] + 2 * chunks.count()
    rows = UsageRecord.objects.filter(tenant_id=tenant.pk, kind="ingest")
    by_key = {row.api_key_id is not None: row for row in rows}
    assert by_key[True].requests == 1 and by_key[True].embedding_tokens == 0
    assert by_key[False].requests == 0 and by_key[False].embedding_tokens == expected
