"""Pool mode: a tenant with a handful of chunks beside one with thousands still gets k results,
both through the exact path and through the HNSW index with iterative scans."""

import pytest

from rag.services.search import chunk_search
from tests.rag.chunks import fill_chunks


@pytest.mark.parametrize(
    ("exact_below", "crossover"), [(20000, 3), (0, 0)], ids=["exact", "hnsw-iterative"]
)
def test_small_tenant_gets_k_results_beside_a_large_one(
    make_tenant, settings, exact_below, crossover
):
    settings.SEARCH_EXACT_BELOW_CHUNKS = exact_below
    settings.SEARCH_EXACT_CROSSOVER = crossover
    settings.HNSW_EF_SEARCH = 40
    large, small = make_tenant("pool"), make_tenant("pool")
    fill_chunks(large, 5000, seed=1)
    fill_chunks(small, 8, seed=2)
    for k in (5, 8):
        hits = chunk_search(tenant=small, query="passage", k=k, mode="vector").hits
        assert len(hits) == k
        assert all(small.slug in h.text for h in hits)
    big_hits = chunk_search(tenant=large, query="passage", k=10, mode="vector").hits
    assert len(big_hits) == 10 and all(large.slug in h.text for h in big_hits)


def test_the_exact_path_is_for_tenants_small_for_their_table(settings):
    from rag.services.search import _search_exactly

    settings.SEARCH_EXACT_BELOW_CHUNKS = 1000
    settings.SEARCH_EXACT_CROSSOVER = 3
    assert _search_exactly(999, 999, 10)  # any small store
    assert not _search_exactly(5000, 5000, 10)  # a bridge or silo table of its own
    assert _search_exactly(1500, 1_000_000, 10)  # a small pool tenant among large ones
    assert not _search_exactly(50_000, 100_000, 10)  # half of the pool
