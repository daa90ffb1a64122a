"""New chunks go straight into the keyword (GIN) index in every placement, never into a pending
list that each keyword search would have to scan (rag.models.Chunk says why)."""

import pytest
from django.db import connections

from tenants import placement
from tests.rag.chunks import fill_chunks


@pytest.mark.parametrize("mode", ["pool", "bridge", "silo"])
def test_ingested_chunks_leave_no_pending_list_to_scan(make_tenant, mode):
    tenant = make_tenant(mode)
    fill_chunks(tenant, 50, seed=3)
    with connections[placement.owner_alias_for(tenant)].cursor() as cursor:
        # The pages a pending list held, merged now; with fastupdate on, 50 new rows wait there.
        cursor.execute("SELECT gin_clean_pending_list('chunk_search_vector_gin'::regclass)")
        assert cursor.fetchone()[0] == 0
