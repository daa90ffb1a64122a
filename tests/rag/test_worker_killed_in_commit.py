"""A worker killed (SIGKILL) inside the transaction that writes a document's chunks, in every
isolation mode: nothing of that transaction is kept, and after a worker starts again the
document ends `ready` exactly once with no duplicate chunks.

To kill it exactly there, the test holds a lock on the placement's chunk table that the
worker's chunk write must wait for, watches the worker's backend wait on it, then kills."""

import pytest
from django.conf import settings
from psycopg import sql

from rag.models import Chunk, Document
from tenants.context import tenant_context
from tests.helpers import MODES, bearer, superuser, wait_until


def _document(tenant, document_id) -> Document:
    with tenant_context(tenant):
        return Document.objects.get(pk=document_id)


def _chunk_table(tenant) -> tuple[str, sql.Composable]:
    """(database, qualified chunk table) of the tenant's placement."""
    if tenant.isolation_mode == "silo":
        return tenant.silo_database, sql.Identifier("public", "rag_chunk")
    schema = tenant.schema_name if tenant.isolation_mode == "bridge" else "public"
    return settings.DATABASES["default"]["NAME"], sql.Identifier(schema, "rag_chunk")


@pytest.mark.parametrize("mode", MODES)
def test_worker_killed_while_writing_chunks_ends_ready_once(
    mode, make_tenant, make_key, api, worker
):
    tenant = make_tenant(mode)
    key = make_key(tenant)
    text = "\n\n".join(f"Note {i} of the {mode} ledger: entry {i * 31 % 97}." for i in range(40))
    database, table = _chunk_table(tenant)
    # Two connections: pg_stat_activity is a snapshot per transaction, and the blocker's stays
    # open while it holds the lock.
    with superuser(database) as blocker, superuser(database) as watcher:
        blocker.autocommit = False
        blocker.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(table))
        doc_id = api.post("/api/v1/documents", {"text": text}, format="json", **bearer(key)).json()[
            "id"
        ]

        def writing_chunks() -> bool:
            row = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = %s AND query ILIKE %s",
                [database, "%rag_chunk%"],
            ).fetchone()
            return row[0] > 0

        wait_until(writing_chunks, timeout=120, interval=0.1, message="never reached the write")
        worker.kill()
        blocker.rollback()  # the lock goes; the dead worker's transaction can only roll back

    with tenant_context(tenant):
        assert Chunk.objects.filter(document_id=doc_id).count() == 0
    assert _document(tenant, doc_id).status == "processing"

    worker.start()

    def recovered():
        doc = _document(tenant, doc_id)
        assert doc.status != "failed", doc.error
        return doc if doc.status == "ready" else None

    doc = wait_until(recovered, timeout=180, interval=0.5, message="not recovered")
    assert doc.attempts == 2
    with tenant_context(tenant):
        ordinals = list(Chunk.objects.filter(document_id=doc_id).values_list("ordinal", flat=True))
    assert sorted(ordinals) == list(range(doc.chunks_total)) and doc.chunks_total > 0
