"""API overhead: the search endpoint's latency minus the time of the same query embedding and
the same SQL done directly (what the platform adds: HTTP handling, authentication, quota,
tenant binding, serialisation, metering, query log)."""

from __future__ import annotations

import time

from django.db import connections

from rag.embedding import embed_texts
from rag.services.search import _load, _vector_ids
from tenants.context import data_alias, tenant_context

from .api import ApiClient, tenant_with_data
from .common import query_texts, summary


def _direct(tenant, query: str) -> float:
    started = time.perf_counter()
    vector = embed_texts([query])[0]
    with tenant_context(tenant), connections[data_alias()].cursor() as cursor:
        # The very statements chunk_search runs for a vector search.
        _load(cursor, _vector_ids(cursor, vector, 10, [], []))
    return (time.perf_counter() - started) * 1000


def bench_overhead(*, chunks: int, queries: int) -> dict:
    tenant, key = tenant_with_data(f"bench-overhead-{int(time.time())}", chunks, seed=31)
    client = ApiClient(key)
    warm = query_texts(10, seed=32)
    measured = query_texts(queries, seed=33)
    for q in warm:
        _direct(tenant, q)
        client.search(q)
    direct, wall, server, overhead = [], [], [], []
    for q in measured:
        # Direct first: the API call that follows then embeds the query itself too (a miss
        # in the tenant's embedding cache), as a new question would.
        d = _direct(tenant, q)
        status, elapsed, timings = client.search(q)
        if status != 200:
            raise RuntimeError(f"search answered {status}")
        direct.append(d)
        wall.append(elapsed)
        server.append(timings["total_ms"])
        overhead.append(elapsed - d)
    return {
        "chunks": chunks,
        "direct_embed_plus_sql_ms": summary(direct),
        "api_client_ms": summary(wall),
        "api_server_total_ms": summary(server),
        "overhead_ms": summary(overhead),
    }
