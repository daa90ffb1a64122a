"""The tenant binding: loud when forgotten, clean after every unit of work, failure-isolating
in sweeps."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client

from config import embedded
from rag.models import Chunk, Document
from rag.services.recovery import documents_requeue_stuck_everywhere
from tenants.context import (
    TenantNotBound,
    current_binding,
    dangerously_unbound,
    tenant_context,
)
from tests.helpers import MODES, bearer


def _document(tenant, title="a document") -> Document:
    with tenant_context(tenant):
        return Document.objects.create(title=title, content_hash=title.ljust(64, "0")[:64])


def test_a_data_plane_query_outside_a_binding_raises_naming_the_model(make_tenant):
    _document(make_tenant("pool"))
    with pytest.raises(TenantNotBound, match=r"rag\.Document"):
        Document.objects.count()
    with pytest.raises(TenantNotBound, match=r"rag\.Chunk"):
        list(Chunk.objects.filter(pk=1))
    with pytest.raises(TenantNotBound, match=r"rag\.Document"):
        Document(title="orphan", content_hash="o" * 64).save()


def test_the_escape_hatch_reaches_the_pool_tables_and_sees_nothing(make_tenant):
    _document(make_tenant("pool"))
    with dangerously_unbound():
        assert Document.objects.count() == 0  # row-level security underneath: fail closed
    with pytest.raises(TenantNotBound):
        Document.objects.count()


def _session_state(alias: str = "default") -> tuple[str, str]:
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(current_setting('app.tenant_id', true), ''), "
            "current_setting('search_path')"
        )
        return cursor.fetchone()


@pytest.mark.parametrize("mode", MODES)
def test_connections_are_clean_after_a_request_that_succeeded_or_raised(
    mode, make_tenant, make_key
):
    tenant = make_tenant(mode)
    key = make_key(tenant)
    client = Client()
    default_path = _session_state()[1]
    ok = client.post(
        "/api/v1/documents",
        {"text": "Herons nest in tall trees.", "title": "t"},
        content_type="application/json",
        **bearer(key),
    )
    assert ok.status_code == 202, ok.content
    assert current_binding() is None
    assert _session_state() == ("", default_path)
    # The listing compiles its metadata filter inside the tenant's binding: a filter it
    # refuses raises there (422), and nothing of the binding stays behind.
    bad = client.get('/api/v1/documents?metadata={"bad key!": 1}', **bearer(key))
    assert bad.status_code == 422, bad.content
    assert current_binding() is None
    assert _session_state() == ("", default_path)
    assert not connections["default"].in_atomic_block


def test_connections_are_clean_after_a_streamed_answer(
    make_tenant, make_key, upload, wait_done, worker
):
    tenant = make_tenant("bridge")
    key = make_key(tenant)
    wait_done(key, upload(key, text="Otters hold hands while they sleep.").json()["id"])
    default_path = _session_state()[1]
    response = Client().post(
        "/api/v1/answer",
        {"question": "What do otters do?", "stream": True, "max_tokens": 4, "cache": False},
        content_type="application/json",
        **bearer(key),
    )
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert b"event: done" in body
    response.close()
    assert current_binding() is None
    assert _session_state() == ("", default_path)


@pytest.fixture
def unreachable_silo(make_tenant, tmp_path):
    """A silo tenant whose server has been stopped (started again for the cleanup)."""
    pgdata = tmp_path / "pgdata"
    server = embedded.start_postgres(pgdata, passwords_from=settings.DATA_DIR)
    tenant = make_tenant("silo", silo_dsn=server.url(embedded.OWNER_ROLE, database="postgres"))
    from tenants import placement

    placement.forget(tenant)
    embedded.stop_postgres(pgdata)
    yield tenant
    embedded.start_postgres(pgdata, passwords_from=settings.DATA_DIR)


def test_a_sweep_reports_an_unreachable_silo_and_goes_on(make_tenant, unreachable_silo):
    before, after = make_tenant("pool", slug="aaa-sweep"), make_tenant("pool", slug="zzz-sweep")
    report = documents_requeue_stuck_everywhere()
    assert report[unreachable_silo.slug] == "error: OperationalError"
    assert report[before.slug] == ([], []) and report[after.slug] == ([], [])
