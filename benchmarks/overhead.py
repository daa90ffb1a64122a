"""API overhead: the search endpoint's latency over HTTP on a real gunicorn, from a client in a
process of its own, minus the time of the same query embedding and the same SQL done directly
in this process (what the platform adds: HTTP handling, authentication, quota, tenant binding,
serialisation, metering, query log). Beside it, the server's own `timings.total_ms` (the
search service) minus direct, and client minus server: what is spent outside the search."""

from __future__ import annotations

import time

from django.db import connections

from rag.embedding import embed_texts
from rag.services.search import _load, _vector_ids
from tenants.context import data_alias, tenant_context

from .api import HttpClient, server_description, serving, tenant_with_data
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
    warm = query_texts(10, seed=32)
    measured = query_texts(queries, seed=33)
    direct, wall, server = [], [], []
    with serving() as web, HttpClient(web.url, key) as client:
        for q in warm:
            _direct(tenant, q)
            client.search(q)
        for q in measured:
            # Direct first: the API call that follows then embeds the query itself too (a
            # miss in the tenant's embedding cache), as a new question would. One at a time:
            # while one side runs the other is idle, so neither takes the other's cores.
            d = _direct(tenant, q)
            status, elapsed, timings = client.search(q)
            if status != 200:
                raise RuntimeError(f"search answered {status}")
            direct.append(d)
            wall.append(elapsed)
            server.append(timings["total_ms"])
    return {
        "chunks": chunks,
        "server": server_description(),
        "direct_embed_plus_sql_ms": summary(direct),
        "api_client_ms": summary(wall),
        "api_server_total_ms": summary(server),
        "overhead_ms": summary([w - d for w, d in zip(wall, direct, strict=True)]),
        "server_minus_direct_ms": summary([s - d for s, d in zip(server, direct, strict=True)]),
        "client_minus_server_ms": summary([w - s for w, s in zip(wall, server, strict=True)]),
    }
